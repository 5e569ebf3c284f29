"""Framework cost per training iteration: the Runner vs a plain PyTorch loop doing the same work.

Both train the same MLP (width 32, batch 64, 2000 iterations, SGD), validate every 500
iterations (the Runner's model returns its predictions as one dict of batch tensors, which
``Accuracy`` takes whole; ``--per-sample-outputs`` makes it return MMEngine's list of per-sample
dicts instead), log every 50 (the plain loop times each step and writes a text line and a JSON line
of window means, with one ``.item()`` per interval, as the Runner does) and save one checkpoint at
the end; both read the same in-memory data through a DataLoader with treadle's
DefaultSampler and default_collate. The Runner runs with its default hooks (runtime info, timer,
sampler seed, logger, param scheduler, checkpoint) and its default LocalVisBackend.

Budget (DESIGN.md): ≤ 30 µs per iteration over the plain loop; Runner construction ≤ 100 ms.

    uv run python benchmarks/bench_train_loop.py [--iters 2000] [--repeat 3] [--mmengine] [--breakdown]
        [--calls]

``--mmengine`` adds MMEngine 0.10.7's Runner on the same run (install it with
``uv sync --all-packages --group bench``). ``--breakdown`` times the four validations in both loops
and prints which part of the overhead they account for (the Runner then has one more hook, on
``before_val``/``after_val`` only), and splits the Runner's training iterations into the
before-iteration hooks, ``train_step`` (against the plain loop's same span) and the
after-iteration hooks, with two hooks that run first and last at those points (four more hook
calls per iteration in the Runner and one more clock read in the plain loop, so the overhead
measured with ``--breakdown`` is a little higher). ``--calls`` also counts the Python and builtin
function calls per iteration of each loop (and MMEngine's with ``--mmengine``): a count does not
drift with the machine's load as the times do, so it tells whether a change made the framework
run less Python.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
import types
from collections import Counter
from collections.abc import Callable, Iterator
from typing import IO, Any

import torch
from torch import nn

from treadle.core.dataset import DefaultSampler, default_collate
from treadle.core.hooks import Hook
from treadle.core.model import BaseModel
from treadle.core.registry import DATASETS, MODELS
from treadle.core.runner import Runner

WIDTH, BATCH, FEATURES, CLASSES = 32, 64, 32, 10


class Data(torch.utils.data.Dataset):  # type: ignore[type-arg]
    def __init__(self, n: int = 4096, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, FEATURES, generator=g)
        self.y = torch.randint(0, CLASSES, (n,), generator=g)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"inputs": self.x[i], "labels": self.y[i]}


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(FEATURES, WIDTH), nn.ReLU(), nn.Linear(WIDTH, CLASSES))


class Net(BaseModel):
    def __init__(self) -> None:
        super().__init__()
        self.net = mlp()

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor, mode: str = "tensor") -> Any:  # type: ignore[override]
        logits = self.net(inputs)
        if mode == "loss":
            return {"loss": nn.functional.cross_entropy(logits, labels)}
        if mode == "predict":
            if PER_SAMPLE_OUTPUTS:  # MMEngine's form: one result dict per sample
                return per_sample(logits, labels)
            return {"pred_label": logits.argmax(-1), "gt_label": labels}  # batched outputs
        return logits


#: ``--per-sample-outputs``: the Runner's model returns MMEngine's per-sample list from
#: ``forward(mode="predict")`` instead of one dict of batch tensors.
PER_SAMPLE_OUTPUTS = False


def per_sample(logits: torch.Tensor, labels: torch.Tensor) -> list[dict[str, torch.Tensor]]:
    """MMEngine's validation outputs: a result dict per sample."""
    return [
        {"pred_label": p, "gt_label": y} for p, y in zip(logits.argmax(-1), labels, strict=True)
    ]


def loader(dataset: Data, shuffle: bool) -> torch.utils.data.DataLoader[Any]:
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=BATCH,
        sampler=DefaultSampler(dataset, shuffle=shuffle, seed=0),
        collate_fn=default_collate,
    )


def endless(train: torch.utils.data.DataLoader[Any]) -> Iterator[Any]:
    """The batches of ``train``, epoch after epoch, telling the sampler each new epoch (as the
    Runner's iteration-based loop does)."""
    epoch = 0
    while True:
        yield from train
        epoch += 1
        train.sampler.set_epoch(epoch)  # type: ignore[attr-defined]


# Shared with bench_protocol_floor.py. Used at logging intervals, validation and the final save,
# never per iteration.


def register_bench_components() -> None:
    """Register the benchmark's model and dataset for the Runner's configs."""
    MODELS.register_module(name="BenchNet", module=Net, force=True)
    DATASETS.register_module(name="BenchData", module=Data, force=True)


def write_interval(
    log: IO[str],
    js: IO[str],
    it: int,
    iters: int,
    lr: float,
    eta: float,
    mean_time: float,
    mean_data: float,
    mean_loss: float,
) -> None:
    """Write one logging interval (after iteration ``it``): a text line and a JSON line."""
    log.write(
        f"Iter(train) [{it + 1:>4}/{iters}]  lr: {lr:.4e}  eta: {eta:.0f}s  "
        f"time: {mean_time:.4f}  data_time: {mean_data:.4f}  loss: {mean_loss:.4f}\n"
    )
    record = {"lr": lr, "time": mean_time, "data_time": mean_data, "loss": mean_loss}
    js.write(json.dumps({**record, "iter": it + 1, "step": it + 1}) + "\n")
    log.flush()
    js.flush()


def plain_accuracy(net: nn.Module, val: torch.utils.data.DataLoader[Any]) -> float:
    """Top-1 accuracy (%) of ``net``'s logits on ``val``, computed by hand."""
    correct = total = 0
    with torch.no_grad():
        for vb in val:
            correct += int((net(vb["inputs"]).argmax(-1) == vb["labels"]).sum())
            total += len(vb["labels"])
    return 100 * correct / total


def save(model: nn.Module, optimizer: torch.optim.Optimizer, path: str) -> None:
    """Save the model's and the optimizer's state, as a checkpoint does."""
    torch.save({"state_dict": model.state_dict(), "optimizer": optimizer.state_dict()}, path)


#: Seconds spent validating in the latest plain_loop / runner_loop call (``--breakdown``).
VALIDATION_SECONDS = {"plain": 0.0, "runner": 0.0}

#: Seconds spent in each part of the training iterations of the latest runner_loop call, and in
#: the plain loop's step (forward to optimizer step) in the latest plain_loop call
#: (``--breakdown``). The after hooks include the logging intervals and the final checkpoint.
ITERATION_SECONDS = {"before hooks": 0.0, "train_step": 0.0, "after hooks": 0.0, "plain step": 0.0}
_MARKS = {"before": 0.0, "step": 0.0, "after": 0.0}


class FirstMark(Hook):
    """Runs first at both train-iteration points (no default hook has priority HIGHEST)."""

    priority = "HIGHEST"

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
        _MARKS["before"] = time.perf_counter()

    def after_train_iter(
        self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        now = _MARKS["after"] = time.perf_counter()
        ITERATION_SECONDS["train_step"] += now - _MARKS["step"]


class LastMark(Hook):
    """Runs last at both train-iteration points (no default hook has priority LOWEST)."""

    priority = "LOWEST"

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
        now = _MARKS["step"] = time.perf_counter()
        ITERATION_SECONDS["before hooks"] += now - _MARKS["before"]

    def after_train_iter(
        self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        ITERATION_SECONDS["after hooks"] += time.perf_counter() - _MARKS["after"]


class ValidationTimer(Hook):
    """Adds the time from ``before_val`` to ``after_val`` to ``VALIDATION_SECONDS["runner"]``."""

    def before_val(self, runner: Any) -> None:
        self._start = time.perf_counter()

    def after_val(self, runner: Any) -> None:
        VALIDATION_SECONDS["runner"] += time.perf_counter() - self._start


def plain_loop(iters: int, work_dir: str, breakdown: bool = False) -> float:
    """The same work, written by hand: train, time each step, log window means every 50
    iterations to a text log and a JSON-lines file, validate every 500, save at the end.

    ``breakdown`` adds the time from the forward pass to the optimizer step to
    ``ITERATION_SECONDS["plain step"]`` (``--breakdown``)."""
    VALIDATION_SECONDS["plain"] = 0.0
    ITERATION_SECONDS["plain step"] = 0.0
    torch.manual_seed(0)
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    train, val = loader(Data(), True), loader(Data(512, 1), False)
    losses: list[torch.Tensor] = []
    times: list[float] = []
    data_times: list[float] = []
    start = time.perf_counter()
    batches = endless(train)
    model.train()
    with open(f"{work_dir}/plain.log", "w") as log, open(f"{work_dir}/plain.json", "w") as js:
        t = time.perf_counter()
        for it in range(iters):
            batch = next(batches)
            step_start = time.perf_counter()
            data_times.append(step_start - t)
            loss = nn.functional.cross_entropy(model(batch["inputs"]), batch["labels"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if breakdown:
                ITERATION_SECONDS["plain step"] += time.perf_counter() - step_start
            losses.append(loss.detach())
            now = time.perf_counter()
            times.append(now - t)
            t = now
            if (it + 1) % 50 == 0:
                mean_loss = torch.stack(losses[-50:]).mean().item()  # one sync per interval
                lr = optimizer.param_groups[0]["lr"]
                mean_time = sum(times[-50:]) / 50
                mean_data = sum(data_times[-50:]) / 50
                eta = mean_time * (iters - it - 1)
                write_interval(log, js, it, iters, lr, eta, mean_time, mean_data, mean_loss)
            if (it + 1) % 500 == 0:
                validation_start = time.perf_counter()
                model.eval()
                accuracy = plain_accuracy(model, val)
                js.write(json.dumps({"accuracy/top1": accuracy, "step": it + 1}) + "\n")
                model.train()
                t = time.perf_counter()
                VALIDATION_SECONDS["plain"] += t - validation_start
    save(model, optimizer, f"{work_dir}/plain.pth")
    return time.perf_counter() - start


def runner_cfg(iters: int, work_dir: str) -> dict[str, Any]:
    return {
        "model": {"type": "BenchNet"},
        "work_dir": work_dir,
        "train_dataloader": {
            "dataset": {"type": "BenchData"},
            "sampler": {"type": "DefaultSampler", "shuffle": True},
            "collate_fn": {"type": "default_collate"},
            "batch_size": BATCH,
        },
        "val_dataloader": {
            "dataset": {"type": "BenchData", "n": 512, "seed": 1},
            "sampler": {"type": "DefaultSampler", "shuffle": False},
            "collate_fn": {"type": "default_collate"},
            "batch_size": BATCH,
        },
        "train_cfg": {"type": "IterBasedTrainLoop", "max_iters": iters, "val_interval": 500},
        "val_cfg": {},
        "val_evaluator": {"type": "Accuracy"},
        "optim_wrapper": {"optimizer": {"type": "SGD", "lr": 0.01}},
        "default_hooks": {
            "logger": {"type": "LoggerHook", "interval": 50},
            "checkpoint": {"type": "CheckpointHook", "interval": iters, "by_epoch": False},
        },
        "log_processor": {"by_epoch": False},
        "randomness": {"seed": 0},
        "log_level": "WARNING",
    }


def runner_loop(iters: int, work_dir: str, breakdown: bool = False) -> tuple[float, float]:
    """Build a Runner on :func:`runner_cfg` and train; ``(training seconds, build seconds)``.

    ``breakdown`` adds a :class:`ValidationTimer` hook and the :class:`FirstMark` and
    :class:`LastMark` hooks around the default ones (``--breakdown``).
    """
    cfg = runner_cfg(iters, work_dir)
    VALIDATION_SECONDS["runner"] = 0.0
    for part in ("before hooks", "train_step", "after hooks"):
        ITERATION_SECONDS[part] = 0.0
    if breakdown:
        cfg["custom_hooks"] = [ValidationTimer(), FirstMark(), LastMark()]
    t0 = time.perf_counter()
    runner = Runner.from_cfg(cfg)
    built = time.perf_counter() - t0
    # Time the loop itself like the plain one: from the first batch to the saved checkpoint.
    start = time.perf_counter()
    runner.train()
    return time.perf_counter() - start, built


def mmengine_loop(iters: int, work_dir: str) -> float:
    """MMEngine 0.10.7 (the ``bench`` dependency group) on the same run, for comparison.

    One difference: its train dataloader uses MMEngine's ``InfiniteSampler``. With a
    ``DefaultSampler`` MMEngine's iteration-based loop sleeps 2 s each time the dataloader is
    exhausted (``_InfiniteDataloaderIterator``), which would dominate the measurement.
    """
    import mmengine
    from mmengine.evaluator import BaseMetric
    from mmengine.model import BaseModel as MMBaseModel
    from mmengine.registry import DATASETS as MM_DATASETS
    from mmengine.registry import METRICS as MM_METRICS
    from mmengine.registry import MODELS as MM_MODELS
    from mmengine.runner import Runner as MMRunner

    class MMNet(MMBaseModel):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.net = mlp()

        def forward(self, inputs: torch.Tensor, labels: torch.Tensor, mode: str = "tensor") -> Any:
            if mode == "predict":  # MMEngine's metrics take per-sample results only
                return per_sample(self.net(inputs), labels)
            return Net.forward(self, inputs, labels, mode)

    class MMAccuracy(BaseMetric):  # type: ignore[misc]
        default_prefix = "accuracy"

        def process(self, data_batch: Any, data_samples: Any) -> None:
            for sample in data_samples:
                self.results.append(bool(sample["pred_label"] == sample["gt_label"]))

        def compute_metrics(self, results: list[bool]) -> dict[str, float]:
            return {"top1": 100 * sum(results) / len(results)}

    MM_MODELS.register_module(name="BenchNet", module=MMNet, force=True)
    MM_DATASETS.register_module(name="BenchData", module=Data, force=True)
    MM_METRICS.register_module(name="BenchAccuracy", module=MMAccuracy, force=True)
    cfg = runner_cfg(iters, work_dir)
    cfg["train_dataloader"]["sampler"] = {"type": "InfiniteSampler", "shuffle": True}
    cfg["val_evaluator"] = {"type": "BenchAccuracy"}
    runner = MMRunner.from_cfg(mmengine.Config(cfg))
    logging.getLogger("mmengine").setLevel(logging.ERROR)
    start = time.perf_counter()
    runner.train()
    return time.perf_counter() - start


def count_calls(loop: Callable[[int, str], Any], iters: int, work_dir: str) -> Counter[str]:
    """Function calls per training iteration of ``loop`` (``plain_loop`` or ``runner_loop``), by
    function (``"C:name"`` for builtins), counted with ``sys.setprofile``: the difference between
    a run of ``2 * iters`` iterations and one of ``iters``, so that building the Runner and the
    final save cancel out, divided by ``iters`` (``--calls``).

    Unlike a time, a count does not move with the machine's load: it measures how much Python
    the framework runs per iteration, the part of the overhead that code changes control.
    """
    counts: Counter[Any] = Counter()

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            counts[frame.f_code] += 1
        elif event == "c_call":
            counts[arg] += 1

    runs = []
    for n in (iters, 2 * iters):
        run_dir = f"{work_dir}/calls{n}"
        os.makedirs(run_dir, exist_ok=True)
        counts.clear()
        sys.setprofile(profile)
        try:
            loop(n, run_dir)
        finally:
            sys.setprofile(None)
        named: Counter[str] = Counter()
        for key, number in counts.items():
            if isinstance(key, types.CodeType):
                path = key.co_filename.rsplit("site-packages/", 1)[-1].rsplit("/src/", 1)[-1]
                named[f"{path}:{key.co_firstlineno}:{key.co_name}"] += number
            else:
                named[f"C:{getattr(key, '__qualname__', key)}"] += number
        runs.append(named)
    short, long = runs
    return Counter({k: (long[k] - short[k]) / iters for k in long.keys() | short.keys()})


def print_calls(label: str, per_iter: Counter[str], plain: Counter[str] | None = None) -> None:
    python = sum(v for k, v in per_iter.items() if not k.startswith("C:"))
    builtin = sum(v for k, v in per_iter.items() if k.startswith("C:"))
    line = f"  {label:<22} {python:7.1f} Python + {builtin:6.1f} builtin calls/iter"
    if plain is None:
        print(line)
        return
    extra = {k: per_iter[k] - plain[k] for k in per_iter.keys() | plain.keys()}
    more = sum(v for k, v in extra.items() if not k.startswith("C:"))
    print(f"{line}   (+{more:.1f} Python over the plain loop)")
    top = sorted(extra.items(), key=lambda kv: -kv[1])[:8]
    print("      most added: " + ", ".join(f"{k.rsplit(':', 1)[-1]} {v:+.1f}" for k, v in top))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iters", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--mmengine",
        action="store_true",
        help="also run MMEngine (needs `uv sync --all-packages --group bench`)",
    )
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="time validation in both loops (a before_val/after_val hook in the Runner) and split "
        "the overhead into validation and the rest",
    )
    parser.add_argument(
        "--calls",
        action="store_true",
        help="also count the function calls per iteration of each loop (sys.setprofile; "
        "independent of the machine's load)",
    )
    parser.add_argument(
        "--per-sample-outputs",
        action="store_true",
        help="the Runner's model returns MMEngine's per-sample validation outputs instead of "
        "one dict of batch tensors",
    )
    args = parser.parse_args()
    global PER_SAMPLE_OUTPUTS
    PER_SAMPLE_OUTPUTS = args.per_sample_outputs
    torch.set_num_threads(1)
    logging.getLogger("treadle").setLevel(logging.WARNING)
    register_bench_components()

    with tempfile.TemporaryDirectory() as tmp:
        runner_loop(50, f"{tmp}/warm")  # imports, torch._dynamo's first-optimizer cost
        plain_loop(50, tmp)
        if args.mmengine:
            mmengine_loop(50, f"{tmp}/mm-warm")
        plain, ours, builds, theirs, validation = [], [], [], [], []
        parts: dict[str, list[float]] = {part: [] for part in ITERATION_SECONDS}
        for i in range(args.repeat):
            plain.append(plain_loop(args.iters, tmp, args.breakdown))
            elapsed, built = runner_loop(args.iters, f"{tmp}/run{i}", args.breakdown)
            ours.append(elapsed)
            builds.append(built)
            validation.append(VALIDATION_SECONDS["runner"] - VALIDATION_SECONDS["plain"])
            for part, seconds in ITERATION_SECONDS.items():
                parts[part].append(seconds)
            if args.mmengine:
                theirs.append(mmengine_loop(args.iters, f"{tmp}/mm{i}"))
        if args.calls:
            # 500 and 1000 iterations: one validation (every 500) and 10 logging intervals apart
            calls = {"plain": count_calls(plain_loop, 500, tmp)}
            calls["Runner"] = count_calls(runner_loop, 500, tmp)
            if args.mmengine:
                calls["MMEngine"] = count_calls(mmengine_loop, 500, tmp)

    p = min(plain) / args.iters * 1e6
    r = min(ours) / args.iters * 1e6
    print(f"{args.iters} iterations, best of {args.repeat}, torch {torch.__version__}, 1 thread")
    print(f"  plain PyTorch loop      {p:8.1f} µs/iter")
    print(f"  treadle Runner          {r:8.1f} µs/iter")
    print(f"  framework overhead      {r - p:8.1f} µs/iter   (budget 30)")
    paired = statistics.median(o - q for o, q in zip(ours, plain, strict=True)) / args.iters * 1e6
    print(f"    median of the {args.repeat} paired differences {paired:.1f} µs/iter")
    if args.breakdown:
        extra = statistics.median(validation) / args.iters * 1e6
        print(f"    of which validation   {extra:8.1f} µs/iter   (Runner's minus the plain loop's)")
        print(f"    the rest              {paired - extra:8.1f} µs/iter   (from the paired median)")
        us = {part: statistics.median(v) / args.iters * 1e6 for part, v in parts.items()}
        print("  the Runner's iterations, timed in place (medians; validation not included):")
        print(f"    before_train_iter hooks {us['before hooks']:7.1f} µs/iter")
        print(
            f"    model.train_step        {us['train_step']:7.1f} µs/iter   (the plain loop's "
            f"forward to optimizer step: {us['plain step']:.1f}, "
            f"+{us['train_step'] - us['plain step']:.1f})"
        )
        print(
            f"    after_train_iter hooks  {us['after hooks']:7.1f} µs/iter   (with the logging "
            "intervals and the final checkpoint)"
        )
    if theirs:
        m = min(theirs) / args.iters * 1e6
        print(f"  MMEngine Runner         {m:8.1f} µs/iter   (overhead {m - p:.1f})")
    print(f"  ratio Runner / plain    {r / p:8.3f}")
    if args.calls:
        print("  function calls per iteration (counted; validation and logging included):")
        print_calls("plain PyTorch loop", calls["plain"])
        for name in ("Runner", "MMEngine"):
            if name in calls:
                print_calls(f"{name}", calls[name], calls["plain"])
    print(
        f"  Runner construction     {statistics.median(builds) * 1e3:8.1f} ms (median, budget 100)"
    )


if __name__ == "__main__":
    main()

"""What MMEngine's per-iteration protocol costs by itself, written inline without a Runner.

``bench_train_loop.py`` compares the Runner with a plain PyTorch loop. Part of the difference is
not the framework's structure (loops, hook dispatch, hooks) but the work MMEngine's protocol asks
for, which any compatible engine does. This script writes that work into the plain loop of
``bench_train_loop.py`` (same MLP, data, logging, validation and checkpoint), one part at a time:

- ``hub``: per iteration, the message-hub updates of MMEngine's RuntimeInfoHook and
  IterTimerHook (info ``iter`` and ``eta``; scalars ``lr``, ``data_time``, ``loss``, ``time``),
  and the logged means read back from the hub;
- ``step``: ``BaseModel``'s train step: the data preprocessor, ``forward(mode="loss")`` through
  the model's ``__call__``, ``parse_losses``;
- ``val``: ``val_step`` with the bench model's predictions (one dict of batch tensors, as in
  ``bench_train_loop.py``), an ``Evaluator`` with ``Accuracy``.

Each round runs the plain loop, every variant and the Runner, and reports each one's overhead
over that round's plain loop (median over rounds: this machine's timing noise is a few µs).

    uv run python benchmarks/bench_protocol_floor.py [--iters 2000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
import uuid

import torch
from bench_train_loop import (
    BATCH,
    Data,
    Net,
    endless,
    loader,
    plain_accuracy,
    plain_loop,
    register_bench_components,
    runner_loop,
    save,
    write_interval,
)
from torch import nn

from treadle.core.evaluator import Evaluator
from treadle.core.evaluator.metrics import Accuracy
from treadle.core.logging import MessageHub


def protocol_loop(iters: int, work_dir: str, hub: bool, step: bool, val: bool) -> float:
    """``plain_loop`` with the chosen parts of MMEngine's protocol done inline."""
    torch.manual_seed(0)
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    train, val_data = loader(Data(), True), loader(Data(512, 1), False)
    message_hub = MessageHub.get_instance(f"floor-{uuid.uuid4().hex}")
    evaluator = Evaluator(Accuracy())
    losses: list[torch.Tensor] = []
    times: list[float] = []
    data_times: list[float] = []
    start = time.perf_counter()
    batches = endless(train)
    model.train()
    with open(f"{work_dir}/floor.log", "w") as log, open(f"{work_dir}/floor.json", "w") as js:
        t = time.perf_counter()
        for it in range(iters):
            batch = next(batches)
            if hub:
                message_hub.update_info("iter", it)
                message_hub.update_scalar("train/lr", optimizer.param_groups[0]["lr"])
                message_hub.update_scalar("train/data_time", time.perf_counter() - t)
            else:
                data_times.append(time.perf_counter() - t)
            if step:
                inputs = model.data_preprocessor(batch, True)
                loss, log_vars = model.parse_losses(model(**inputs, mode="loss"))
            else:
                loss = nn.functional.cross_entropy(model.net(batch["inputs"]), batch["labels"])
                log_vars = {"loss": loss.detach()}
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            now = time.perf_counter()
            if hub:
                message_hub.update_scalar("train/loss", log_vars["loss"])
                message_hub.update_scalar("train/time", now - t)
                message_hub.update_info("eta", (now - start) / (it + 1) * (iters - it - 1))
            else:
                losses.append(log_vars["loss"])
                times.append(now - t)
            t = now
            if (it + 1) % 50 == 0:
                if hub:
                    scalars = message_hub.log_scalars
                    mean_loss = scalars["train/loss"].mean(50)
                    lr = scalars["train/lr"].current()
                    mean_time = scalars["train/time"].mean(50)
                    mean_data = scalars["train/data_time"].mean(50)
                    eta = message_hub.get_info("eta")
                else:
                    mean_loss = torch.stack(losses[-50:]).mean().item()
                    lr = optimizer.param_groups[0]["lr"]
                    mean_time = sum(times[-50:]) / 50
                    mean_data = sum(data_times[-50:]) / 50
                    eta = mean_time * (iters - it - 1)
                write_interval(log, js, it, iters, lr, eta, mean_time, mean_data, mean_loss)
            if (it + 1) % 500 == 0:
                model.eval()
                with torch.no_grad():
                    if val:
                        for vb in val_data:
                            evaluator.process(model.val_step(vb), vb)
                        accuracy = evaluator.evaluate(512)["accuracy/top1"]
                    else:
                        accuracy = plain_accuracy(model.net, val_data)
                js.write(json.dumps({"accuracy/top1": accuracy, "step": it + 1}) + "\n")
                model.train()
                t = time.perf_counter()
    save(model, optimizer, f"{work_dir}/floor.pth")
    return time.perf_counter() - start


VARIANTS: dict[str, dict[str, bool]] = {
    "plain, rewritten": {"hub": False, "step": False, "val": False},
    "+ message hub": {"hub": True, "step": False, "val": False},
    "+ train step": {"hub": False, "step": True, "val": False},
    "+ validation": {"hub": False, "step": False, "val": True},
    "whole protocol": {"hub": True, "step": True, "val": True},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iters", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    logging.getLogger("treadle").setLevel(logging.WARNING)
    register_bench_components()
    overheads: dict[str, list[float]] = {name: [] for name in [*VARIANTS, "treadle Runner"]}
    with tempfile.TemporaryDirectory() as tmp:
        plain_loop(50, tmp)  # warm up: imports, torch's first-optimizer cost
        protocol_loop(50, tmp, hub=True, step=True, val=True)
        runner_loop(50, f"{tmp}/warm")
        for i in range(args.rounds):
            plain = plain_loop(args.iters, tmp)

            def per_iter(seconds: float) -> float:
                return (seconds - plain) / args.iters * 1e6  # noqa: B023 (used at once)

            for name, parts in VARIANTS.items():
                overheads[name].append(per_iter(protocol_loop(args.iters, tmp, **parts)))
            overheads["treadle Runner"].append(per_iter(runner_loop(args.iters, f"{tmp}/r{i}")[0]))
    print(
        f"{args.iters} iterations (batch {BATCH}), {args.rounds} rounds, torch "
        f"{torch.__version__}: overhead over the plain loop of the same round, µs/iter"
    )
    for name, values in overheads.items():
        print(f"  {name:18s} median {statistics.median(values):6.1f}   min {min(values):6.1f}")


if __name__ == "__main__":
    main()

"""Checkpoint save/load against raw ``torch.save``/``torch.load`` on the same bytes.

Budget (DESIGN.md): within 10 % of raw torch.save / torch.load.

    uv run python benchmarks/bench_checkpoint.py [--repeat 9] [--dir /path/on/the/disk/to/test]

Two checkpoints: ``large`` (~100 MB of float32 weights in 160 tensors, MMEngine's layout) and
``small`` (a tiny model, optimizer state, scheduler and message hub, a few KB).

Save scenarios, first replacing the previous file each time (``latest.pth`` style), then writing a
new file each time (``epoch_N.pth``, CheckpointHook's usual case):
  torch.save            raw ``torch.save(obj, f)`` into an open file: the very bytes treadle
                        writes (no temp file, no fsync: not crash-safe)
  torch.save(path)      raw ``torch.save(obj, path)`` (bytes differ only in the archive's name)
  torch.save+fsync      ``torch.save(obj, f)``, then ``fsync`` (what durability costs by itself)
  save_checkpoint       treadle: temp file + ``os.replace`` (the default: atomic, crash-safe)
  save_checkpoint fsync treadle with ``backend_args={"fsync": True}`` (also power-loss safe)
Load scenarios:
  torch.load wo=True    ``torch.load(path, weights_only=True)`` (PyTorch's safe loader)
  torch.load wo=False   ``torch.load(path, weights_only=False)`` (unrestricted pickle)
  load_checkpoint       treadle's restricted loader (the default)

Variants run interleaved (one of each per round, order rotating) and the median of the rounds is
reported, so disk and page-cache drift hits every variant alike. Ratios are against the raw
torch call: 1.00 = same time, < 1.10 = within budget.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch

from treadle.core.runner.checkpoint import load_checkpoint, save_checkpoint


def large_checkpoint() -> dict[str, Any]:
    gen = torch.Generator().manual_seed(0)
    state: OrderedDict[str, torch.Tensor] = OrderedDict()
    # 40 blocks x (weight 600k + bias/bn 4 x 256 + a 25k tensor) floats ~= 100 MB.
    for block in range(40):
        state[f"block{block}.conv.weight"] = torch.randn(600_000, generator=gen)
        for name in ("bias", "bn.weight", "bn.bias", "bn.running_mean"):
            state[f"block{block}.{name}"] = torch.randn(256, generator=gen)
        state[f"block{block}.proj.weight"] = torch.randn(25_000, generator=gen)
    return {"meta": {"epoch": 12, "iter": 120_000, "seed": 0}, "state_dict": state}


def small_checkpoint() -> dict[str, Any]:
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    params = list(model.parameters())
    return {
        "meta": {"epoch": 2, "iter": 200, "seed": 0, "cfg": "model = dict(type='MLP')\n" * 20},
        "state_dict": model.state_dict(),
        "optimizer": {
            "state": {i: {"momentum_buffer": torch.zeros_like(p)} for i, p in enumerate(params)},
            "param_groups": [{"lr": 0.1, "momentum": 0.9, "params": list(range(len(params)))}],
        },
        "param_schedulers": [{"milestones": {8: 1, 11: 1}, "gamma": 0.1, "last_step": 2}],
        "message_hub": {
            "log_scalars": {
                "train/loss": {"log_history": [0.5] * 50, "count_history": [1] * 50},
                "train/lr": {"log_history": [0.1] * 50, "count_history": [1] * 50},
            },
            "runtime_info": {"epoch": 2, "iter": 200, "max_iters": 1000},
            "resumed_keys": {"train/loss": True, "train/lr": True, "epoch": True, "iter": True},
        },
    }


def interleaved(
    variants: dict[str, Callable[[], Any]],
    rounds: int,
    after_round: Callable[[], None] | None = None,
) -> dict[str, float]:
    """Median seconds per call of each variant, one call of each per round."""
    for fn in variants.values():  # warm up (imports, first-touch allocations, page cache)
        fn()
    times: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for i in range(rounds):
        order = names[i % len(names) :] + names[: i % len(names)]
        for name in order:
            start = time.perf_counter()
            variants[name]()
            times[name].append(time.perf_counter() - start)
        if after_round is not None:
            after_round()  # untimed
    return {name: statistics.median(ts) for name, ts in times.items()}


def report(title: str, results: dict[str, float], baseline: str) -> None:
    base = results[baseline]
    print(f"\n{title}")
    for name, seconds in results.items():
        print(f"  {name:22s} {seconds * 1e3:9.2f} ms   ratio {seconds / base:5.2f}")


def bench(name: str, checkpoint: dict[str, Any], directory: str, rounds: int) -> None:
    raw_path = os.path.join(directory, f"{name}_raw.pth")
    ours_path = os.path.join(directory, f"{name}_ours.pth")
    nofs_path = os.path.join(directory, f"{name}_fsync.pth")

    path_path = os.path.join(directory, f"{name}_path.pth")

    def raw(fsync: bool = False) -> None:
        with open(raw_path, "wb") as f:
            torch.save(checkpoint, f)
            f.flush()
            if fsync:
                os.fsync(f.fileno())

    saves = interleaved(
        {
            "torch.save": raw,
            "torch.save(path)": lambda: torch.save(checkpoint, path_path),
            "torch.save+fsync": lambda: raw(fsync=True),
            "save_checkpoint": lambda: save_checkpoint(checkpoint, ours_path),
            "save_checkpoint fsync": lambda: save_checkpoint(
                checkpoint, nofs_path, backend_args={"fsync": True}
            ),
        },
        rounds,
    )
    size = os.path.getsize(ours_path)
    with open(ours_path, "rb") as ours, open(raw_path, "rb") as theirs:
        assert ours.read() == theirs.read(), "not the same bytes"
    report(f"{name}: save over the previous file ({size / 1e6:.2f} MB)", saves, "torch.save")

    # CheckpointHook's usual case: every save is a new file (epoch_1.pth, epoch_2.pth, ...).
    fresh_dir = os.path.join(directory, f"{name}_fresh")
    os.makedirs(fresh_dir)
    counter = iter(range(10**9))

    def fresh(prefix: str) -> str:
        return os.path.join(fresh_dir, f"{prefix}_{next(counter)}.pth")

    def raw_fresh(fsync: bool = False) -> None:
        with open(fresh("raw"), "wb") as f:
            torch.save(checkpoint, f)
            f.flush()
            if fsync:
                os.fsync(f.fileno())

    def clear() -> None:
        for entry in os.listdir(fresh_dir):
            os.remove(os.path.join(fresh_dir, entry))

    fresh_saves = interleaved(
        {
            "torch.save": raw_fresh,
            "torch.save+fsync": lambda: raw_fresh(fsync=True),
            "save_checkpoint": lambda: save_checkpoint(checkpoint, fresh("ours")),
            "save_checkpoint fsync": lambda: save_checkpoint(
                checkpoint, fresh("fsync"), backend_args={"fsync": True}
            ),
        },
        rounds,
        after_round=clear,
    )
    report(f"{name}: save to a new file", fresh_saves, "torch.save")

    loads = interleaved(
        {
            "torch.load wo=True": lambda: torch.load(raw_path, weights_only=True),
            "torch.load wo=False": lambda: torch.load(raw_path, weights_only=False),
            "load_checkpoint": lambda: load_checkpoint(raw_path),
        },
        rounds,
    )
    report(f"{name}: load", loads, "torch.load wo=True")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=9, help="rounds for the large checkpoint")
    parser.add_argument("--dir", default=None, help="where to write (default: a temp dir)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}")
    with tempfile.TemporaryDirectory(dir=args.dir) as directory:
        print(f"writing to {directory}")
        bench("large", large_checkpoint(), directory, args.repeat)
        bench("small", small_checkpoint(), directory, args.repeat * 20)


if __name__ == "__main__":
    main()

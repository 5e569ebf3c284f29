"""Benchmark ``Config.fromfile`` against MMEngine 0.10.7 on multi-base OpenMMLab-style configs.

Usage::

    uv run python benchmarks/bench_config.py            # treadle only
    uv sync --all-packages --group bench                # adds mmengine==0.10.7
    uv run python benchmarks/bench_config.py            # treadle vs MMEngine, with the ratio

The configs are the Faster R-CNN tree of the config test fixtures
(``tests/core/fixtures/configs/text``): a config with four bases (model, dataset, schedule,
runtime), a two-level chain on top of it, one with ``{{_base_.x}}`` references, a mixed
.py/.json/.yaml one and a six-level chain. For each file the script prints the best and the
median of ``--repeat`` runs in milliseconds and, when MMEngine is importable, MMEngine's numbers,
the speed-up and whether both produced the same dict (``to_dict()``, types and key order
included).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "core" / "fixtures" / "configs" / "text"
CONFIGS = [
    "faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py",
    "faster_rcnn/faster-rcnn_r101_fpn_1x_coco.py",
    "faster_rcnn/faster-rcnn_r50-caffe_fpn_ms-1x_coco.py",
    "faster_rcnn/faster-rcnn_r50_fpn_1x_voc0712.py",
    "chain/level6.py",
]


def _time(load: Callable[[], Any], repeat: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        load()
        samples.append((time.perf_counter() - start) * 1000)
    return min(samples), statistics.median(samples)


def _same(a: Any, b: Any) -> bool:
    """Equal values with equal types and equal key order, recursively."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=False))
    return bool(a == b)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30, help="runs per config (default 30)")
    args = parser.parse_args()

    from treadle.core.config import Config

    mmengine_config: Any = None
    if importlib.util.find_spec("mmengine") is not None:
        from mmengine.config import Config as MMConfig

        mmengine_config = MMConfig
    else:
        print(
            "mmengine is not installed: timing treadle only (uv sync --all-packages --group bench)"
        )

    header = f"{'config':52} {'treadle best/median ms':>24}"
    if mmengine_config is not None:
        header += f" {'mmengine best/median ms':>25} {'speed-up':>9} {'same dict':>10}"
    print(header)
    ratios = []
    all_same = True
    for rel in CONFIGS:
        path = str(FIXTURES / rel)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ours = Config.fromfile(path)
            best, median = _time(lambda p=path: Config.fromfile(p), args.repeat)
            line = f"{rel:52} {best:11.2f} / {median:8.2f}  "
            if mmengine_config is not None:
                theirs = mmengine_config.fromfile(path)
                mm_best, mm_median = _time(lambda p=path: mmengine_config.fromfile(p), args.repeat)
                same = _same(ours.to_dict(), theirs.to_dict())
                all_same &= same
                ratio = mm_median / median
                ratios.append(ratio)
                line += f" {mm_best:12.2f} / {mm_median:8.2f}   {ratio:7.1f}x {same!s:>10}"
        print(line)
    if ratios:
        print(f"\nmedian speed-up over MMEngine: {statistics.median(ratios):.1f}x (target >= 3x)")
        if not all_same:
            print("MISMATCH: treadle and MMEngine produced different dicts", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

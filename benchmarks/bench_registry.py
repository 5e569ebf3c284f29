"""Cost of `Registry.build` for a simple class, against calling the constructor directly.

Budget (issue 2): a few µs per build (MMEngine 0.10.7: ~14 µs). When `mmengine` is importable
(`uv sync --all-packages --group bench`), MMEngine's registry is measured on the same class.

    uv run python benchmarks/bench_registry.py [--repeat 7] [--number 20000]

Scenarios:
  plain          build(dict(type="Simple", a=1, b=2)), no default scope
  default scope  the same, with a process-wide default scope naming the registry's scope
  _scope_        the same, with `_scope_` in the config (switches the default scope per build)
  get            registry.get("Simple") alone
"""

from __future__ import annotations

import argparse
import statistics
import timeit
from collections.abc import Callable
from typing import Any


class Simple:
    def __init__(self, a: int = 0, b: int = 0) -> None:
        self.a = a
        self.b = b


def per_call_us(fn: Callable[[], Any], number: int, repeat: int) -> float:
    fn()  # warm up (first lookups load plugins, import locations, fill caches)
    times = timeit.repeat(fn, number=number, repeat=repeat)
    return statistics.median(times) / number * 1e6


def measure_registry(
    registry_cls: Any, default_scope_cls: Any, number: int, repeat: int
) -> dict[str, float]:
    registry = registry_cls("bench", scope="benchscope")
    registry.register_module(module=Simple)
    cfg = {"type": "Simple", "a": 1, "b": 2}
    scoped_cfg = {"type": "Simple", "a": 1, "b": 2, "_scope_": "benchscope"}
    results = {
        "plain": per_call_us(lambda: registry.build(cfg), number, repeat),
        "get": per_call_us(lambda: registry.get("Simple"), number, repeat),
    }
    results["_scope_"] = per_call_us(lambda: registry.build(scoped_cfg), number, repeat)
    with default_scope_cls.overwrite_default_scope("benchscope"):
        results["default scope"] = per_call_us(lambda: registry.build(cfg), number, repeat)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--number", type=int, default=20000)
    args = parser.parse_args()

    kwargs = {"a": 1, "b": 2}
    direct = per_call_us(lambda: Simple(**kwargs), args.number, args.repeat)

    from treadle.core.registry import DefaultScope, Registry

    ours = measure_registry(Registry, DefaultScope, args.number, args.repeat)

    theirs: dict[str, float] | None = None
    try:
        import logging

        from mmengine.logging import MMLogger
        from mmengine.registry import DefaultScope as MMDefaultScope
        from mmengine.registry import Registry as MMRegistry
    except ImportError:
        pass
    else:
        # MMEngine warns when it cannot import `<scope>.registry`; keep the console quiet.
        MMLogger.get_current_instance().setLevel(logging.ERROR)
        theirs = measure_registry(MMRegistry, MMDefaultScope, args.number, args.repeat)

    print(f"direct constructor Simple(**kwargs): {direct:8.2f} µs")
    header = f"{'scenario':<15}{'treadle µs':>12}{'overhead µs':>13}"
    if theirs is not None:
        header += f"{'MMEngine µs':>13}{'MMEngine/treadle':>18}"
    print(header)
    for name in ("plain", "default scope", "_scope_", "get"):
        ours_us = ours[name]
        overhead = ours_us - direct if name != "get" else ours_us
        line = f"{name:<15}{ours_us:>12.2f}{overhead:>13.2f}"
        if theirs is not None:
            line += f"{theirs[name]:>13.2f}{theirs[name] / ours_us:>17.1f}×"
        print(line)
    if theirs is None:
        print("(mmengine is not installed: `uv sync --all-packages --group bench` to compare)")


if __name__ == "__main__":
    main()

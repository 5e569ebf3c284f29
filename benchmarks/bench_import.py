"""Start-up cost: `import treadle.core` beyond torch's own, and plugin discovery.

Each measurement runs in a fresh interpreter (imports are cached per process), repeated, and the
median is printed. Budgets (DESIGN.md): import ≤ 100 ms beyond torch, discovery ≤ 30 ms.

    uv run python benchmarks/bench_import.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

PROBE = """
import time, sys
t0 = time.perf_counter()
{pre}
t1 = time.perf_counter()
{stmt}
t2 = time.perf_counter()
print((t1 - t0) * 1e3, (t2 - t1) * 1e3)
"""


# An installed package imports from cached bytecode; some sandboxes set PYTHONDONTWRITEBYTECODE,
# which makes every interpreter recompile every module. Measure what users get: caching on, and
# one unmeasured warm-up run per probe so the .pyc files exist.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def measure(pre: str, stmt: str, repeat: int) -> tuple[float, float]:
    firsts, seconds = [], []
    for i in range(repeat + 1):
        out = subprocess.run(
            [sys.executable, "-c", PROBE.format(pre=pre, stmt=stmt)],
            capture_output=True,
            text=True,
            check=True,
            env=ENV,
        ).stdout.split()
        if i == 0:
            continue  # warm-up: writes bytecode caches
        firsts.append(float(out[0]))
        seconds.append(float(out[1]))
    return statistics.median(firsts), statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    n = args.repeat

    torch_ms, _ = measure("import torch", "pass", n)
    _, core_alone = measure("pass", "import treadle.core", n)
    _, core_after_torch = measure("import torch", "import treadle.core", n)
    _, kernel_after_torch = measure(
        "import torch",
        "import treadle.core, treadle.core.registry, treadle.core.config, treadle.core.fileio, "
        "treadle.core.logging",
        n,
    )
    _, discovery = measure(
        "import treadle.core.registry, treadle.core.plugins",
        "treadle.core.plugins.load_plugins()",
        n,
    )
    _, cli_parser = measure(
        "import torch", "from treadle.core.cli import build_parser; build_parser()", n
    )

    print(f"median of {n} fresh interpreters ({sys.version.split()[0]}), bytecode cache on")
    print(f"  import torch                                     {torch_ms:8.1f} ms  (baseline)")
    print(f"  import treadle.core (no torch imported)          {core_alone:8.1f} ms")
    print(
        f"  import treadle.core after torch                  {core_after_torch:8.1f} ms  budget 100"
    )
    print(
        f"  + registry, config, fileio, logging after torch  {kernel_after_torch:8.1f} ms  budget 100"
    )
    print(f"  plugin discovery (load_plugins)                  {discovery:8.1f} ms  budget 30")
    print(f"  CLI parser incl. discovery, after torch          {cli_parser:8.1f} ms")
    print(f"  kernel import / torch import ratio              {kernel_after_torch / torch_ms:8.3f}")


if __name__ == "__main__":
    main()

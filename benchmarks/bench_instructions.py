"""Instructions per training iteration, Runner vs plain loop: a cost that does not move with load.

``bench_train_loop.py`` times both loops, and on a shared 2-core VM its overhead moves by ±5 µs
from run to run, as much as most changes to the per-iteration path are worth. This script counts
instead: it runs both loops of ``bench_train_loop.py`` under valgrind's callgrind and prints the
machine instructions per iteration (Python and torch's native code alike), with callgrind's
simulated instruction-cache misses and branch mispredictions. Runs of the same code agree to
about 0.3 % of the Runner's count (±6k of its ~2.4M instructions; GC timing, log line lengths):
compare changes of more than that. Each loop runs ``n`` and ``2n`` iterations and the
difference is divided by ``n``, so building the Runner, the final save and the one validation at
the end of each run cancel out: the count is the training iteration alone. Takes about 2.5
minutes (valgrind runs the measured part about 50x slower; the imports run uninstrumented).

    uv run python benchmarks/bench_instructions.py [--iters 200]

Needs valgrind, its headers (``valgrind/callgrind.h``) and a C compiler, for a three-line helper
that switches instrumentation on and marks the segments.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import glob
import os
import shutil
import subprocess
import sys
import tempfile

_HELPER = """
#include <valgrind/callgrind.h>
void start(void) { CALLGRIND_START_INSTRUMENTATION; }
void zero(void) { CALLGRIND_ZERO_STATS; }
void dump(void) { CALLGRIND_DUMP_STATS; }
"""

#: callgrind's event names, in the order printed, with what they count.
EVENTS = {
    "Ir": "instructions",
    "I1mr": "I-cache misses",
    "D1mr": "D-cache read misses",
    "Bcm": "mispredicted branches",
    "Bim": "mispredicted indirect jumps",
}


def child(helper: str, iters: int) -> None:
    """Under callgrind: warm both loops, then dump one profile per measured run."""
    import logging

    import torch

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import bench_train_loop as bench

    cg = ctypes.CDLL(helper)
    torch.set_num_threads(1)
    logging.getLogger("treadle").setLevel(logging.WARNING)
    bench.register_bench_components()
    loops = (("plain", bench.plain_loop), ("runner", bench.runner_loop))
    with tempfile.TemporaryDirectory() as tmp:
        # Imports and first calls uninstrumented, then a short run of each loop instrumented,
        # so that callgrind's simulated caches are warm when the measured runs start.
        for name, loop in loops:
            os.makedirs(f"{tmp}/warm-{name}")
            loop(50, f"{tmp}/warm-{name}")
        cg.start()
        for name, loop in loops:
            os.makedirs(f"{tmp}/warm2-{name}")
            loop(20, f"{tmp}/warm2-{name}")
        for name, loop in loops:
            for n in (iters, 2 * iters):
                run_dir = f"{tmp}/{name}{n}"
                os.makedirs(run_dir)
                gc.collect()
                cg.zero()
                loop(n, run_dir)
                cg.dump()


def totals(path: str) -> dict[str, int]:
    events: list[str] = []
    with open(path) as f:
        for line in f:
            if line.startswith("events:"):
                events = line.split()[1:]
            elif line.startswith(("summary:", "totals:")):
                return dict(zip(events, map(int, line.split()[1:]), strict=True))
    raise RuntimeError(f"no totals in {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.iters)
        return
    missing = [tool for tool in ("valgrind", "cc") if shutil.which(tool) is None]
    if missing:
        sys.exit(f"bench_instructions needs {' and '.join(missing)} on PATH")
    with tempfile.TemporaryDirectory() as tmp:
        source, helper = f"{tmp}/helper.c", f"{tmp}/helper.so"
        with open(source, "w") as f:
            f.write(_HELPER)
        built = subprocess.run(
            ["cc", "-O2", "-shared", "-fPIC", "-o", helper, source], capture_output=True, text=True
        )
        if built.returncode:
            sys.exit(f"could not build the callgrind helper (valgrind headers?):\n{built.stderr}")
        out = f"{tmp}/callgrind.out"
        command = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            "--cache-sim=yes",
            "--branch-sim=yes",
            f"--callgrind-out-file={out}",
            sys.executable,
            os.path.abspath(__file__),
            "--iters",
            str(args.iters),
            "--child",
            helper,
        ]
        run = subprocess.run(
            command, env={**os.environ, "PYTHONHASHSEED": "0"}, capture_output=True, text=True
        )
        if run.returncode:
            sys.exit(f"the run under valgrind failed:\n{run.stderr[-3000:]}")
        dumps = sorted(glob.glob(f"{out}.*"), key=lambda p: int(p.rsplit(".", 1)[1]))
        plain_n, plain_2n, runner_n, runner_2n = (totals(p) for p in dumps[-4:])
    n = args.iters
    print(f"per training iteration ({n} vs {2 * n} iterations, callgrind's simulated caches)")
    print(f"  {'':<28} {'plain loop':>12} {'Runner':>12} {'difference':>12} {'ratio':>7}")
    for event, name in EVENTS.items():
        plain = (plain_2n[event] - plain_n[event]) / n
        ours = (runner_2n[event] - runner_n[event]) / n
        print(
            f"  {name:<28} {plain:12,.0f} {ours:12,.0f} {ours - plain:+12,.0f} {ours / plain:7.3f}"
        )


if __name__ == "__main__":
    main()

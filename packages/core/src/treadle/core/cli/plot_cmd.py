"""``treadle plot``: training and validation curves of a run, saved as a PNG."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse


def _weight(text: str) -> float:
    import argparse

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def add_parsers(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> dict[str, argparse.ArgumentParser]:
    """Add the ``plot`` command; return its parser by command name."""
    parser = subparsers.add_parser(
        "plot",
        help="plot the curves of a run (scalars.json) to a PNG",
        description="Plot training and validation scalars of a run against the iteration, one "
        "panel per key, from WORK_DIR/<timestamp>/vis_data/scalars.json (the newest run unless "
        "--run is given).",
    )
    parser.add_argument(
        "work_dir", metavar="WORK_DIR", help="the work dir (or one run folder of it)"
    )
    parser.add_argument(
        "--keys",
        nargs="+",
        metavar="KEY",
        help="scalars to plot, e.g. loss accuracy/top1 (default: training losses and "
        "validation metrics)",
    )
    parser.add_argument(
        "-o",
        "--out",
        metavar="OUT",
        help="the PNG to write (default: WORK_DIR/<timestamp>/curves.png); any path treadle's "
        "file I/O knows",
    )
    parser.add_argument(
        "--run", metavar="TIMESTAMP", help="the run folder to plot (default: the newest)"
    )
    parser.add_argument(
        "--smooth",
        type=_weight,
        metavar="W",
        help="smoothing of the training curves in [0, 1) (0: raw values; default: chosen "
        "from the number of points)",
    )
    parser.set_defaults(func=_run)
    return {"plot": parser}


def _run(args: argparse.Namespace) -> int:
    import sys

    from treadle.core.visualization.plot import plot_curves

    out = plot_curves(
        args.work_dir, keys=args.keys, out_file=args.out, run=args.run, smooth=args.smooth
    )
    print(f"wrote {out}", file=sys.stderr)
    return 0

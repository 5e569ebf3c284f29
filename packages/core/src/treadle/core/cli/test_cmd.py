"""``treadle test``: MMEngine's ``tools/test.py`` as a command.

The config is read as ``treadle train`` reads it (its directory on ``sys.path`` for
``custom_imports``, ``--cfg-options``, the same ``work_dir`` rule); ``load_from`` is set to the
checkpoint, the Runner runs ``test()`` and the metrics are printed, one ``name: value`` per line
on stdout after the log lines (``--json``: one JSON object on the last line).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse


def add_parsers(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> dict[str, argparse.ArgumentParser]:
    """Add the ``test`` command; return its parser by command name."""
    from treadle.core.cli.train_cmd import add_common_arguments

    parser = subparsers.add_parser(
        "test",
        help="evaluate a checkpoint on the config's test set (MMEngine's tools/test.py)",
        description="Load CKPT into the config's model, run the test loop and print the metrics.",
    )
    parser.add_argument("config", metavar="CFG", help="config file (.py, .yaml, .yml or .json)")
    parser.add_argument(
        "checkpoint",
        metavar="CKPT",
        help="checkpoint file; any path or URI treadle's file I/O knows",
    )
    parser.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    add_common_arguments(parser)
    parser.set_defaults(func=_run)
    return {"test": parser}


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _run(args: argparse.Namespace) -> int:
    from treadle.core.cli.train_cmd import build_runner, check_launcher, load_config
    from treadle.core.fileio import exists

    cfg = load_config(args)
    if not exists(args.checkpoint):
        raise FileNotFoundError(f"checkpoint {args.checkpoint} does not exist")
    cfg.load_from = args.checkpoint
    check_launcher(cfg)
    runner = build_runner(cfg)
    metrics = runner.test()  # Ctrl-C: main() says "interrupted" and exits with 130
    if runner.rank != 0:
        return 0
    if args.json:
        print(json.dumps(metrics, default=str))
    else:
        for name, value in metrics.items():
            print(f"{name}: {_format(value)}")
    return 0

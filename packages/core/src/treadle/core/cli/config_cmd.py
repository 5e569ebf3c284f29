"""``treadle config show`` and ``treadle config dump``."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

    from treadle.core.config import Config

_FORMATS = ("py", "yaml", "json")


def _add_common(parser: argparse.ArgumentParser) -> None:
    from treadle.core.config import DictAction

    parser.add_argument("config", metavar="CFG", help="config file (.py, .yaml, .yml or .json)")
    parser.add_argument(
        "--cfg-options",
        nargs="+",
        action=DictAction,
        metavar="KEY=VALUE",
        help="override settings, e.g. optim_wrapper.optimizer.lr=0.01 model.layers=[1,2] "
        "(list items by index: a.0.b=1)",
    )


def add_parsers(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> dict[str, argparse.ArgumentParser]:
    """Add ``config`` and its subcommands; return the parsers by command name."""
    config = subparsers.add_parser("config", help="inspect and convert config files")
    config.set_defaults(func=lambda args: _help(config))
    sub = config.add_subparsers(dest="config_command", metavar="SUBCOMMAND")

    show = sub.add_parser("show", help="print the resolved config (bases merged, options applied)")
    _add_common(show)
    show.add_argument(
        "--format", choices=_FORMATS, default="py", help="output format (default: py)"
    )
    show.set_defaults(func=_show)

    dump = sub.add_parser(
        "dump", help="write the resolved config to OUT (.py, .yaml or .json, by suffix)"
    )
    _add_common(dump)
    dump.add_argument("out", metavar="OUT", help="output file; any path treadle's file I/O knows")
    dump.set_defaults(func=_dump)
    return {"config": config, "config show": show, "config dump": dump}


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _load(args: argparse.Namespace) -> Config:
    from treadle.core.cli.train_cmd import read_config

    return read_config(args.config, args.cfg_options)  # as train reads it (exit codes too)


def _show(args: argparse.Namespace) -> int:
    cfg = _load(args)
    text = cfg.pretty_text if args.format == "py" else cfg.dump(file=None, file_format=args.format)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def _dump(args: argparse.Namespace) -> int:
    cfg = _load(args)
    cfg.dump(args.out)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0

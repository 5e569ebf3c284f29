"""Parser construction, plugin commands and error handling for the ``treadle`` command.

Exit codes: 0 success, 1 the command failed (bad config, missing file, unknown type …), 2 bad
usage (argparse), 130 interrupted. Errors print as one ``treadle: error: …`` message; ``--debug``
prints the traceback as well.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from typing import TYPE_CHECKING

from treadle.core.cli import config_cmd, env_cmd, plugins_cmd
from treadle.core.version import __version__

if TYPE_CHECKING:
    from collections.abc import Sequence

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    """Build the full parser: built-in commands, then what plugins add."""
    from treadle.core.plugins import load_plugins

    parser = argparse.ArgumentParser(
        prog="treadle",
        description="treadle: a PyTorch training engine that reads MMEngine configs.",
    )
    parser.add_argument("--version", action="version", version=f"treadle-core {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="print the full traceback when a command fails"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands: dict[str, argparse.ArgumentParser] = {}
    commands.update(config_cmd.add_parsers(subparsers))
    commands.update(plugins_cmd.add_parsers(subparsers))
    commands.update(env_cmd.add_parsers(subparsers))

    hook = load_plugins().hook
    for name, command_parser in commands.items():
        hook.add_cli_arguments(command=name, parser=command_parser)
    hook.add_cli_commands(subparsers=subparsers)
    return parser


def _one_line(exc: BaseException) -> str:
    # KeyError quotes its message; show it as written.
    text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``treadle`` command line.

    Args:
        argv: The arguments without the program name; ``sys.argv[1:]`` when ``None``.

    Returns:
        The exit code.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        code = func(args)
    except KeyboardInterrupt:
        print("treadle: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if args.debug:
            traceback.print_exc()
        print(f"treadle: error: {_one_line(exc)}", file=sys.stderr)
        cause = exc.__cause__
        while cause is not None and not args.debug:
            print(f"  caused by: {_one_line(cause)}", file=sys.stderr)
            cause = cause.__cause__
        if not args.debug:
            print("  (run with --debug for the traceback)", file=sys.stderr)
        return EXIT_FAILURE
    return int(code or EXIT_OK)

"""Parser construction, plugin commands and error handling for the ``treadle`` command.

Errors print as one ``treadle: error: …`` message (with ``caused by:`` lines for chained
causes) and no traceback; ``--debug`` (``treadle --debug COMMAND`` or ``COMMAND … --debug``)
prints the traceback as well.

Exit codes:

===  ================================================================================
0    success
1    the command failed (an error while training, testing, …, not one of those below)
2    bad usage: unknown option, missing argument, malformed ``--cfg-options``
3    the config cannot be read or applied: syntax error, bad ``_base_``, failing
     ``custom_imports``, an option that does not fit the config
4    a file does not exist (the config, a base, a checkpoint, data)
5    a registry does not know a ``type`` (the message names the registry and close matches)
6    a plugin the command needs is not installed (e.g. treadle-dist for ``--launcher pytorch``)
130  interrupted (Ctrl-C); ``treadle train`` says how to resume
===  ================================================================================
"""

from __future__ import annotations

import argparse
import sys
import traceback
from typing import TYPE_CHECKING

from treadle.core.cli import config_cmd, env_cmd, plot_cmd, plugins_cmd, test_cmd, train_cmd
from treadle.core.version import __version__

if TYPE_CHECKING:
    from collections.abc import Sequence

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_CONFIG = 3
EXIT_NOT_FOUND = 4
EXIT_UNKNOWN_TYPE = 5
EXIT_MISSING_PLUGIN = 6
EXIT_INTERRUPTED = 130


class CommandError(Exception):
    """An error a command reports as its message alone, with a chosen exit code.

    Args:
        message: What went wrong and what to do about it.
        exit_code: The process exit code (one of the ``EXIT_*`` constants).
    """

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


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
    commands.update(train_cmd.add_parsers(subparsers))
    commands.update(test_cmd.add_parsers(subparsers))
    commands.update(config_cmd.add_parsers(subparsers))
    commands.update(plugins_cmd.add_parsers(subparsers))
    commands.update(env_cmd.add_parsers(subparsers))
    commands.update(plot_cmd.add_parsers(subparsers))

    hook = load_plugins().hook
    for name, command_parser in commands.items():
        hook.add_cli_arguments(command=name, parser=command_parser)
    hook.add_cli_commands(subparsers=subparsers)
    return parser


def _one_line(exc: BaseException) -> str:
    # KeyError quotes its message; show it as written.
    text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    if isinstance(exc, CommandError):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def exit_code_for(exc: BaseException) -> int:
    """The exit code for an exception a command raised (see the module docstring)."""
    from treadle.core.config import ConfigParsingError
    from treadle.core.registry import RegistryKeyError

    code = (
        exc.exit_code if isinstance(exc, CommandError) else getattr(exc, "treadle_exit_code", None)
    )
    if isinstance(code, int):
        return code
    if isinstance(exc, RegistryKeyError):
        return EXIT_UNKNOWN_TYPE
    if isinstance(exc, FileNotFoundError):
        return EXIT_NOT_FOUND
    if isinstance(exc, (ConfigParsingError, SyntaxError)):
        return EXIT_CONFIG
    return EXIT_FAILURE


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
        return exit_code_for(exc)
    return int(code or EXIT_OK)

"""A third-party-style treadle plugin, installed into the test environment as a real distribution.

It registers one model lazily (the module holding it is imported only on build) and adds one
``treadle`` subcommand and one option to ``treadle config show``.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from treadle.core.hookspecs import hookimpl

if TYPE_CHECKING:
    from treadle.core.registry import Registries


@hookimpl
def register_components(registries: Registries) -> None:
    registries.MODELS.register_lazy("ExampleNet", "treadle_example_plugin.models:ExampleNet")


def _hello(args: argparse.Namespace) -> int:
    print(f"hello from treadle-example-plugin, {args.who}")
    return 0


@hookimpl
def add_cli_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("example-hello", help="say hello (from the example plugin)")
    parser.add_argument("who", nargs="?", default="world")
    parser.set_defaults(func=_hello)


@hookimpl
def add_cli_arguments(command: str, parser: argparse.ArgumentParser) -> None:
    if command == "config show":
        parser.add_argument("--example-flag", action="store_true", help="example plugin's flag")

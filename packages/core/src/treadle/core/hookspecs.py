"""The hook specifications: the contract between treadle's kernel and its plugins.

Every hook a plugin may implement is declared here, in the order it fires, grouped under banner
comments. Spec bodies are docstrings only. A plugin implements a hook by decorating a function (or a
method) with :data:`hookimpl` and naming it after the spec; the arguments it declares are a subset of
the spec's, by name.

Where the hooks fire::

    process start ─────────────────────────────────────────────────────────────────────────────
    treadle.core.plugins.load_plugins()        # once per process, on first registry lookup
    │   built-in plugin (treadle.core._builtin) registered first, then every entry point in the
    │   ``treadle.plugins`` group, each imported defensively (a broken one is reported, skipped)
    ├── register_components(registries)        ◀ historic: also replayed for plugins added later
    │
    treadle <command> …                         # the CLI, when it builds its parser
    ├── add_cli_commands(subparsers)            ◀ a plugin adds its own ``treadle <cmd>``
    └── add_cli_arguments(command, parser)      ◀ a plugin adds options to a built-in command
    │
    Runner lifecycle ──────────────────────────────────────────────────────────────────────────
    (MMEngine's 22 points, ``before_run`` … ``after_run`` and ``on_exception``, are declared in the
    "Runner lifecycle" section below once the Runner exists; one PluginManager per Runner.)

Rules of the contract:

- Registration hooks add components by import path (``registry.register_lazy(name,
  "pkg.module:Class")``) so that discovering a plugin never imports its SDK.
- A hook that raises while a plugin is being loaded disables that plugin alone; the error is
  reported with the plugin's distribution and version, and the other plugins still load.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import argparse

    from treadle.core.registry import Registries

PROJECT_NAME = "treadle"

#: Marks a function as a hook specification. For treadle's own use.
hookspec = pluggy.HookspecMarker(PROJECT_NAME)

#: Marks a function or method as a hook implementation. Plugins import this one marker.
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# ---------------------------------------------------------------------------------------------
# Registration (process-level plugin manager)
# ---------------------------------------------------------------------------------------------


@hookspec(historic=True)
def register_components(registries: Registries) -> None:
    """Add the plugin's components to the root registries.

    When it fires:
        Once per process, when plugins are loaded (on the first registry lookup, or when the CLI or
        a Runner starts). Historic: a plugin registered later gets the call at registration.

    Args:
        registries: The root registries, one attribute per registry (``registries.MODELS``,
            ``registries.VISBACKENDS``, ``registries.FILE_BACKENDS``, …). Register by import path
            with ``register_lazy(name, "pkg.module:Class")`` so that nothing heavy is imported
            until a config asks for the component.

    On which ranks:
        Every process, every rank.
    """


@hookspec
def add_cli_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add subcommands to the ``treadle`` command line.

    When it fires:
        When the CLI builds its parser, after the built-in commands were added.

    Args:
        subparsers: The top-level subparsers. Add a command with
            ``p = subparsers.add_parser("name", help=...)`` and give it a handler with
            ``p.set_defaults(func=handler)``; ``handler(args)`` returns the exit code.

    On which ranks:
        Every process that runs the CLI.
    """


@hookspec
def add_cli_arguments(command: str, parser: argparse.ArgumentParser) -> None:
    """Add options to one of the built-in ``treadle`` commands.

    When it fires:
        When the CLI builds its parser, once for each built-in command (``"config show"``,
        ``"config dump"``, ``"plugins"``, ``"env"``, and later ``"train"``, ``"test"``).

    Args:
        command: The command's name, words separated by one space.
        parser: That command's parser. Options added here appear in the parsed namespace under
            their ``dest``; prefix them with the plugin's name to avoid clashes.

    On which ranks:
        Every process that runs the CLI.
    """


# ---------------------------------------------------------------------------------------------
# Runner lifecycle (one plugin manager per Runner)
# ---------------------------------------------------------------------------------------------
# Declared with the Runner: before_run, after_load_checkpoint, before_train, before_train_epoch,
# before_train_iter, after_train_iter, after_train_epoch, before_val, before_val_epoch,
# before_val_iter, after_val_iter, after_val_epoch, after_val, before_save_checkpoint,
# after_train, before_test, before_test_epoch, before_test_iter, after_test_iter,
# after_test_epoch, after_test, after_run, on_exception.

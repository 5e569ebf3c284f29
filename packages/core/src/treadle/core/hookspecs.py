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
    Runner lifecycle (one PluginManager per Runner; ◀ marks a hook point) ────────────────────────
    runner.train()
    ├── before_run(runner)                                          ◀
    ├── (load_from / resume)    after_load_checkpoint(runner, checkpoint)   ◀
    ├── before_train(runner)                                        ◀
    │   for epoch in epochs:                 # iteration-based loops: one endless "epoch"
    │   ├── before_train_epoch(runner)                              ◀
    │   │   for batch_idx, data_batch in enumerate(train_dataloader):
    │   │   ├── before_train_iter(runner, batch_idx, data_batch)    ◀
    │   │   │   outputs = model.train_step(data_batch, optim_wrapper)
    │   │   └── after_train_iter(runner, batch_idx, data_batch, outputs)  ◀
    │   ├── after_train_epoch(runner)                               ◀
    │   │   (every val_interval) runner.val_loop.run():
    │   │   ├── before_val(runner)                                  ◀
    │   │   ├── before_val_epoch(runner)                            ◀
    │   │   │   for batch_idx, data_batch in enumerate(val_dataloader):
    │   │   │   ├── before_val_iter(runner, batch_idx, data_batch)  ◀
    │   │   │   │   outputs = model.val_step(data_batch)
    │   │   │   └── after_val_iter(runner, batch_idx, data_batch, outputs)  ◀
    │   │   ├── after_val_epoch(runner, metrics)                    ◀
    │   │   └── after_val(runner)                                   ◀
    │   └── (CheckpointHook) before_save_checkpoint(runner, checkpoint)  ◀
    ├── after_train(runner)                                         ◀
    ├── after_run(runner)                                           ◀
    └── on any exception: on_exception(runner, exception)           ◀ then re-raised

    runner.test(): before_test ◀, before_test_epoch ◀, before_test_iter ◀ / after_test_iter ◀ per
    batch, after_test_epoch(runner, metrics) ◀, after_test ◀ (inside before_run/after_run).

Rules of the contract:

- Registration hooks add components by import path (``registry.register_lazy(name,
  "pkg.module:Class")``) so that discovering a plugin never imports its SDK.
- A hook that raises while a plugin is being loaded disables that plugin alone; the error is
  reported with the plugin's distribution and version, and the other plugins still load.
- Lifecycle hooks keep MMEngine's names and argument names, so a ``Hook`` subclass written for
  MMEngine works unchanged. They return nothing; they act through the ``runner``. They are called
  in MMEngine's priority order (HIGHEST=0 … LOWEST=100, first registered first among equals), for
  ``before_*`` and ``after_*`` points alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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

# --- Run ---


@hookspec
def before_run(runner: Any) -> None:
    """Set up what the whole run needs (loggers, trackers, timers).

    When it fires:
        Before anything else in ``train()``, ``val()`` or ``test()``, after the Runner is built.

    Args:
        runner: The Runner.

    On which ranks:
        Every rank.
    """


@hookspec
def after_load_checkpoint(runner: Any, checkpoint: dict[str, Any]) -> None:
    """Inspect or convert a checkpoint that was just read.

    When it fires:
        After a checkpoint was read for ``load_from`` or ``resume``, before its states are applied.

    Args:
        runner: The Runner.
        checkpoint: The checkpoint dict (``meta``, ``state_dict``, ``optimizer``, …).

    On which ranks:
        Every rank.
    """


# --- Training ---


@hookspec
def before_train(runner: Any) -> None:
    """Prepare for training (resumed counters are already in place).

    When it fires:
        Once, before the first training epoch (after resuming).

    Args:
        runner: The Runner.

    On which ranks:
        Every rank.
    """


@hookspec
def before_train_epoch(runner: Any) -> None:
    """Prepare for one training epoch (e.g. seed the sampler).

    When it fires:
        Before each training epoch (once for iteration-based loops).

    Args:
        runner: The Runner.

    On which ranks:
        Every rank.
    """


@hookspec
def before_train_iter(runner: Any, batch_idx: int, data_batch: Any = None) -> None:
    """Act before one training step.

    When it fires:
        Before each training iteration.

    Args:
        runner: The Runner.
        batch_idx: Index of the batch within the epoch (within the run for iteration-based loops).
        data_batch: The batch as the dataloader returned it.

    On which ranks:
        Every rank.
    """


@hookspec
def after_train_iter(
    runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None
) -> None:
    """Act after one training step (log, schedule, checkpoint).

    When it fires:
        After each training iteration's optimizer step.

    Args:
        runner: The Runner.
        batch_idx: Index of the batch within the epoch (within the run for iteration-based loops).
        data_batch: The batch as the dataloader returned it.
        outputs: What the model's ``*_step`` returned (training: the log variables, tensors).

    On which ranks:
        Every rank.
    """


@hookspec
def after_train_epoch(runner: Any) -> None:
    """Act at the end of a training epoch.

    When it fires:
        After each training epoch, before validation of that epoch.

    Args:
        runner: The Runner.

    On which ranks:
        Every rank.
    """


# --- Validation ---


@hookspec
def before_val(runner: Any) -> None:
    """Prepare for a validation run.

    When it fires:
        When a validation run starts.

    Args:
        runner: The Runner.

    On which ranks:
        Every rank.
    """


@hookspec
def before_val_epoch(runner: Any) -> None:
    """Prepare for the validation pass.

    When it fires:
        Before the validation pass over the dataloader(s).

    Args:
        runner: The Runner.

    On which ranks:
        Every rank.
    """


@hookspec
def before_val_iter(runner: Any, batch_idx: int, data_batch: Any = None) -> None:
    """Act before one validation step.

    When it fires:
        Before each validation iteration.

    Args:
        runner: The Runner.
        batch_idx: Index of the batch within the epoch (within the run for iteration-based loops).
        data_batch: The batch as the dataloader returned it.

    On which ranks:
        Every rank.
    """


@hookspec
def after_val_iter(
    runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None
) -> None:
    """Act after one validation step.

    When it fires:
        After each validation iteration.

    Args:
        runner: The Runner.
        batch_idx: Index of the batch within the epoch (within the run for iteration-based loops).
        data_batch: The batch as the dataloader returned it.
        outputs: What the model's ``*_step`` returned (training: the log variables, tensors).

    On which ranks:
        Every rank.
    """


@hookspec
def after_val_epoch(runner: Any, metrics: dict[str, Any] | None = None) -> None:
    """Receive the validation metrics (e.g. keep the best checkpoint).

    When it fires:
        After the evaluators computed the metrics of the validation pass.

    Args:
        runner: The Runner.
        metrics: The evaluation results, ``{name: value}``.

    On which ranks:
        Every rank; metrics are the same on every rank.
    """


@hookspec
def after_val(runner: Any) -> None:
    """Clean up after a validation run.

    When it fires:
        When a validation run ends.

    Args:
        runner: The Runner.

    On which ranks:
        Every rank.
    """


# --- Checkpoints ---


@hookspec
def before_save_checkpoint(runner: Any, checkpoint: dict[str, Any]) -> None:
    """Add to or change a checkpoint before it is written.

    When it fires:
        When a checkpoint dict is complete, just before it is written; hooks may add entries.

    Args:
        runner: The Runner.
        checkpoint: The checkpoint dict (``meta``, ``state_dict``, ``optimizer``, …).

    On which ranks:
        Every rank (only rank 0 writes, except sharded strategies).
    """


# --- End of training ---


@hookspec
def after_train(runner: Any) -> None:
    """Clean up after training.

    When it fires:
        Once, after the last training epoch or iteration.

    Args:
        runner: The Runner.

    On which ranks:
        Every rank.
    """


# --- Test ---


@hookspec
def before_test(runner: Any) -> None:
    """Prepare for a test run.

    When it fires:
        When a test run starts.

    Args:
        runner: The Runner.

    On which ranks:
        Every rank.
    """


@hookspec
def before_test_epoch(runner: Any) -> None:
    """Prepare for the test pass.

    When it fires:
        Before the test pass over the dataloader.

    Args:
        runner: The Runner.

    On which ranks:
        Every rank.
    """


@hookspec
def before_test_iter(runner: Any, batch_idx: int, data_batch: Any = None) -> None:
    """Act before one test step.

    When it fires:
        Before each test iteration.

    Args:
        runner: The Runner.
        batch_idx: Index of the batch within the epoch (within the run for iteration-based loops).
        data_batch: The batch as the dataloader returned it.

    On which ranks:
        Every rank.
    """


@hookspec
def after_test_iter(
    runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None
) -> None:
    """Act after one test step.

    When it fires:
        After each test iteration.

    Args:
        runner: The Runner.
        batch_idx: Index of the batch within the epoch (within the run for iteration-based loops).
        data_batch: The batch as the dataloader returned it.
        outputs: What the model's ``*_step`` returned (training: the log variables, tensors).

    On which ranks:
        Every rank.
    """


@hookspec
def after_test_epoch(runner: Any, metrics: dict[str, Any] | None = None) -> None:
    """Receive the test metrics.

    When it fires:
        After the evaluator computed the metrics of the test pass.

    Args:
        runner: The Runner.
        metrics: The evaluation results, ``{name: value}``.

    On which ranks:
        Every rank; metrics are the same on every rank.
    """


@hookspec
def after_test(runner: Any) -> None:
    """Clean up after a test run.

    When it fires:
        When a test run ends.

    Args:
        runner: The Runner.

    On which ranks:
        Every rank.
    """


# --- End of run ---


@hookspec
def after_run(runner: Any) -> None:
    """Release what the run held (files, trackers).

    When it fires:
        Last thing in ``train()``, ``val()`` or ``test()``, on success.

    Args:
        runner: The Runner.

    On which ranks:
        Every rank.
    """


@hookspec
def on_exception(runner: Any, exception: BaseException) -> None:
    """React to a failed run (flush logs, mark the tracker run as failed).

    When it fires:
        When ``train()``, ``val()`` or ``test()`` raises (KeyboardInterrupt included), before the exception propagates. New in treadle; MMEngine has no such point.

    Args:
        runner: The Runner.
        exception: The exception that is about to propagate.

    On which ranks:
        The rank(s) where it was raised.
    """


#: The registration hooks: they fire at plugin discovery and CLI set-up, not in a Runner.
_REGISTRATION_HOOKS = frozenset({"register_components", "add_cli_commands", "add_cli_arguments"})

#: The lifecycle hook points in the order they are declared (MMEngine's order), plus on_exception:
#: every spec of this module but the registration hooks, in definition order.
LIFECYCLE_HOOKS: tuple[str, ...] = tuple(
    name
    for name, obj in globals().items()
    if callable(obj) and hasattr(obj, f"{PROJECT_NAME}_spec") and name not in _REGISTRATION_HOOKS
)

"""``ParamSchedulerHook``: steps the parameter schedulers (MMEngine's hook)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from treadle.core.hooks.hook import DATA_BATCH, Hook

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["ParamSchedulerHook"]


class ParamSchedulerHook(Hook):
    """Steps ``runner.param_schedulers`` (a list, or a dict of lists for several optimizers).

    - after every training iteration: the schedulers with ``by_epoch=False``;
    - after every training epoch: the schedulers with ``by_epoch=True``;
    - after every validation pass with metrics: the epoch-based schedulers that need them
      (``need_val_args``, e.g. ``ReduceOnPlateau``), stepped with ``step(metrics)``.

    Nothing happens while ``runner.param_schedulers`` is ``None``; in ``after_val_epoch`` a list
    that does not hold built schedulers yet (configs) is skipped too.
    """

    priority = "LOW"

    def idle_points(self, runner: Any) -> tuple[str, ...]:
        """``after_train_iter`` when no scheduler steps by iteration (none, or all by epoch)."""
        schedulers = runner.param_schedulers
        if schedulers is None:
            return ("after_train_iter",)
        lists = schedulers.values() if isinstance(schedulers, dict) else [schedulers]
        if all(
            isinstance(group, list) and all(getattr(s, "by_epoch", None) is True for s in group)
            for group in lists
        ):
            return ("after_train_iter",)
        return ()

    def after_train_iter(
        self, runner: Any, batch_idx: int, data_batch: DATA_BATCH = None, outputs: Any = None
    ) -> None:
        """Step the iteration-based schedulers."""
        schedulers = runner.param_schedulers
        if schedulers is None:
            return
        if type(schedulers) is list:  # the common case, without a closure per iteration
            for scheduler in schedulers:
                if not scheduler.by_epoch:
                    scheduler.step()
            return

        def step(schedulers: list[Any]) -> None:
            for scheduler in schedulers:
                if not scheduler.by_epoch:
                    scheduler.step()

        _for_each_list(schedulers, step)

    def after_train_epoch(self, runner: Any) -> None:
        """Step the epoch-based schedulers."""

        def step(schedulers: list[Any]) -> None:
            for scheduler in schedulers:
                if scheduler.by_epoch:
                    scheduler.step()

        _for_each_list(runner.param_schedulers, step)

    def after_val_epoch(self, runner: Any, metrics: dict[str, Any] | None = None) -> None:
        """Step the epoch-based schedulers that need validation metrics."""
        # Without metrics nothing is stepped: the train hooks count the scheduler's steps.
        if metrics is None:
            return
        from treadle.core.optim.scheduler import ParamScheduler

        def step(schedulers: list[Any]) -> None:
            if not all(isinstance(s, ParamScheduler) for s in schedulers):
                return
            for scheduler in schedulers:
                if scheduler.by_epoch and getattr(scheduler, "need_val_args", False):
                    scheduler.step(metrics)

        _for_each_list(runner.param_schedulers, step)


def _for_each_list(param_schedulers: Any, step: Callable[[list[Any]], None]) -> None:
    """Call ``step`` on the list of schedulers, or on each list of a dict of them."""
    if param_schedulers is None:
        return
    if isinstance(param_schedulers, list):
        step(param_schedulers)
    elif isinstance(param_schedulers, dict):
        for name, schedulers in param_schedulers.items():
            if not isinstance(schedulers, list):
                raise TypeError(
                    f"runner.param_schedulers[{name!r}] should be a list of ParamScheduler, but "
                    f"got {type(schedulers).__name__}"
                )
            step(schedulers)
    else:
        raise TypeError(
            "runner.param_schedulers should be a list of ParamScheduler or a dict of such lists, "
            f"but got {param_schedulers!r}"
        )

"""The ``Hook`` base class: MMEngine's hook API, called through pluggy.

A hook written for MMEngine works unchanged: subclass :class:`Hook`, override the points you need
as plain methods, set ``priority`` (a name such as ``'LOW'`` or a number 0–100). The Runner's plugin
manager turns exactly the overridden methods into hook implementations (see
:func:`implemented_points`), so a hook that does not implement a point is never called for it and
costs nothing there.

MMEngine's per-mode helpers count too: a hook that overrides ``_after_iter(runner, batch_idx,
data_batch, outputs, mode)`` implements ``after_train_iter``, ``after_val_iter`` and
``after_test_iter``, as it does in MMEngine.
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Any

from treadle.core.hookspecs import LIFECYCLE_HOOKS

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence

__all__ = ["POINTS", "Hook", "Priority", "get_priority", "implemented_points"]

DATA_BATCH = Any


class Priority(Enum):
    """Hook priorities: lower runs first, for ``before_*`` and ``after_*`` points alike."""

    HIGHEST = 0
    VERY_HIGH = 10
    HIGH = 30
    ABOVE_NORMAL = 40
    NORMAL = 50
    BELOW_NORMAL = 60
    LOW = 70
    VERY_LOW = 90
    LOWEST = 100


def get_priority(priority: int | str | Priority) -> int:
    """Return a priority as a number.

    Args:
        priority: A number in 0–100, a :class:`Priority`, or its name (case-insensitive).

    Raises:
        ValueError: For a number outside 0–100 or an unknown name.
        TypeError: For anything else.
    """
    if isinstance(priority, bool):
        raise TypeError(f"priority must be an int, a str or a Priority, not {priority!r}")
    if isinstance(priority, int):
        if not 0 <= priority <= 100:
            raise ValueError(f"priority must be between 0 and 100, got {priority}")
        return priority
    if isinstance(priority, Priority):
        return priority.value
    if isinstance(priority, str):
        try:
            return Priority[priority.upper()].value
        except KeyError:
            names = ", ".join(p.name for p in Priority)
            raise ValueError(f"unknown priority {priority!r}; known: {names}") from None
    raise TypeError(f"priority must be an int, a str or a Priority, not {type(priority).__name__}")


class Hook:
    """Base class for hooks (MMEngine's ``mmengine.hooks.Hook`` API).

    Each point below does nothing here; override the ones you need. Helper predicates
    (:meth:`every_n_epochs`, :meth:`is_last_train_iter`, …) read the Runner's counters.
    """

    priority: int | str | Priority = "NORMAL"
    #: MMEngine's hook points in order: the lifecycle points but treadle's ``on_exception``.
    stages = tuple(point for point in LIFECYCLE_HOOKS if point != "on_exception")

    def before_run(self, runner: Any) -> None:
        """Before the run starts."""

    def after_run(self, runner: Any) -> None:
        """After the run ends."""

    def before_train(self, runner: Any) -> None:
        """Before training."""

    def after_train(self, runner: Any) -> None:
        """After training."""

    def before_val(self, runner: Any) -> None:
        """Before a validation run."""

    def after_val(self, runner: Any) -> None:
        """After a validation run."""

    def before_test(self, runner: Any) -> None:
        """Before a test run."""

    def after_test(self, runner: Any) -> None:
        """After a test run."""

    def before_save_checkpoint(self, runner: Any, checkpoint: dict[str, Any]) -> None:
        """Before a checkpoint is written; may change ``checkpoint``."""

    def after_load_checkpoint(self, runner: Any, checkpoint: dict[str, Any]) -> None:
        """After a checkpoint was read."""

    def before_train_epoch(self, runner: Any) -> None:
        """Before each training epoch."""
        self._before_epoch(runner, mode="train")

    def before_val_epoch(self, runner: Any) -> None:
        """Before the validation pass."""
        self._before_epoch(runner, mode="val")

    def before_test_epoch(self, runner: Any) -> None:
        """Before the test pass."""
        self._before_epoch(runner, mode="test")

    def after_train_epoch(self, runner: Any) -> None:
        """After each training epoch."""
        self._after_epoch(runner, mode="train")

    def after_val_epoch(self, runner: Any, metrics: dict[str, Any] | None = None) -> None:
        """After the validation pass, with its metrics."""
        self._after_epoch(runner, mode="val")

    def after_test_epoch(self, runner: Any, metrics: dict[str, Any] | None = None) -> None:
        """After the test pass, with its metrics."""
        self._after_epoch(runner, mode="test")

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: DATA_BATCH = None) -> None:
        """Before each training iteration."""
        self._before_iter(runner, batch_idx=batch_idx, data_batch=data_batch, mode="train")

    def before_val_iter(self, runner: Any, batch_idx: int, data_batch: DATA_BATCH = None) -> None:
        """Before each validation iteration."""
        self._before_iter(runner, batch_idx=batch_idx, data_batch=data_batch, mode="val")

    def before_test_iter(self, runner: Any, batch_idx: int, data_batch: DATA_BATCH = None) -> None:
        """Before each test iteration."""
        self._before_iter(runner, batch_idx=batch_idx, data_batch=data_batch, mode="test")

    def after_train_iter(
        self, runner: Any, batch_idx: int, data_batch: DATA_BATCH = None, outputs: Any = None
    ) -> None:
        """After each training iteration."""
        self._after_iter(
            runner, batch_idx=batch_idx, data_batch=data_batch, outputs=outputs, mode="train"
        )

    def after_val_iter(
        self, runner: Any, batch_idx: int, data_batch: DATA_BATCH = None, outputs: Any = None
    ) -> None:
        """After each validation iteration."""
        self._after_iter(
            runner, batch_idx=batch_idx, data_batch=data_batch, outputs=outputs, mode="val"
        )

    def after_test_iter(
        self, runner: Any, batch_idx: int, data_batch: DATA_BATCH = None, outputs: Any = None
    ) -> None:
        """After each test iteration."""
        self._after_iter(
            runner, batch_idx=batch_idx, data_batch=data_batch, outputs=outputs, mode="test"
        )

    def on_exception(self, runner: Any, exception: BaseException) -> None:
        """When the run raises, before the exception propagates (new in treadle)."""

    # MMEngine's per-mode helpers: override one to implement the point for every mode.

    def _before_epoch(self, runner: Any, mode: str = "train") -> None:
        """Before each epoch of any mode."""

    def _after_epoch(self, runner: Any, mode: str = "train") -> None:
        """After each epoch of any mode."""

    def _before_iter(
        self, runner: Any, batch_idx: int, data_batch: DATA_BATCH = None, mode: str = "train"
    ) -> None:
        """Before each iteration of any mode."""

    def _after_iter(
        self,
        runner: Any,
        batch_idx: int,
        data_batch: DATA_BATCH = None,
        outputs: Any = None,
        mode: str = "train",
    ) -> None:
        """After each iteration of any mode."""

    # Predicates on the Runner's counters (MMEngine's helpers).

    def every_n_epochs(self, runner: Any, n: int, start: int = 0) -> bool:
        """Whether the epoch that just ended is a multiple of ``n`` past ``start``."""
        dividend = runner.epoch + 1 - start
        return dividend % n == 0 if dividend >= 0 and n > 0 else False

    def every_n_inner_iters(self, batch_idx: int, n: int) -> bool:
        """Whether ``batch_idx + 1`` is a multiple of ``n`` within the epoch."""
        return (batch_idx + 1) % n == 0 if n > 0 else False

    def every_n_train_iters(self, runner: Any, n: int, start: int = 0) -> bool:
        """Whether the iteration that just ended is a multiple of ``n`` past ``start``."""
        dividend = runner.iter + 1 - start
        return dividend % n == 0 if dividend >= 0 and n > 0 else False

    def end_of_epoch(self, dataloader: Any, batch_idx: int) -> bool:
        """Whether ``batch_idx`` is the last batch of ``dataloader``."""
        return batch_idx + 1 == len(dataloader)

    def is_last_train_epoch(self, runner: Any) -> bool:
        """Whether the current epoch is the last training epoch."""
        return bool(runner.epoch + 1 == runner.max_epochs)

    def is_last_train_iter(self, runner: Any) -> bool:
        """Whether the current iteration is the last training iteration."""
        return bool(runner.iter + 1 == runner.max_iters)

    def idle_points(self, runner: Any) -> Collection[str]:
        """The per-iteration training points (``before_train_iter``, ``after_train_iter``) at
        which this hook has nothing to do until the next training epoch starts (new in treadle).

        The train loops ask at the start of each training epoch, after ``before_train_epoch``
        (an iteration-based run has one), and do not call the hook at these points for the rest
        of that epoch. This only saves calls: a hook called there anyway (through pluggy, when
        hook calls are traced) must do nothing. The answer covers the methods of the class that
        defines ``idle_points`` and of its bases: a subclass that overrides a point's method
        without overriding ``idle_points`` is called there. By default, none.
        """
        return ()

    def get_triggered_stages(self) -> list[str]:
        """The points this hook implements, in lifecycle order (MMEngine's name)."""
        return implemented_points(self)


# Which per-mode helper each point delegates to in the base class.
_DELEGATES: dict[str, str] = {}
for _mode in ("train", "val", "test"):
    _DELEGATES[f"before_{_mode}_epoch"] = "_before_epoch"
    _DELEGATES[f"after_{_mode}_epoch"] = "_after_epoch"
    _DELEGATES[f"before_{_mode}_iter"] = "_before_iter"
    _DELEGATES[f"after_{_mode}_iter"] = "_after_iter"


def _overrides(cls: type, name: str) -> bool:
    for klass in cls.__mro__:
        if klass is Hook:
            return False
        if name in vars(klass):
            return True
    return False


#: Every lifecycle point a hook can implement: MMEngine's stages plus ``on_exception``.
POINTS: tuple[str, ...] = LIFECYCLE_HOOKS


def implemented_points(hook: object, points: Sequence[str] = POINTS) -> list[str]:
    """Return the lifecycle points ``hook`` implements, in lifecycle order.

    A point counts when the hook's class (or a base class below :class:`Hook`) defines it, or
    defines the per-mode helper it delegates to. For objects that are not :class:`Hook` instances
    every method named after a point counts.
    """
    cls = type(hook)
    if not isinstance(hook, Hook):
        return [p for p in points if callable(getattr(hook, p, None))]
    return [
        p
        for p in points
        if _overrides(cls, p) or (p in _DELEGATES and _overrides(cls, _DELEGATES[p]))
    ]

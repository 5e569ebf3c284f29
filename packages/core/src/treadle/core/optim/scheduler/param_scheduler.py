"""Parameter schedulers: change one hyper-parameter (``lr``, ``momentum``, …) of every
parameter group of an optimizer as training goes on.

MMEngine 0.10.7's schedulers with the same names, arguments, values and ``state_dict`` keys, so
MMEngine configs and checkpoints carry over:

- a scheduler acts on ``param_groups[i][param_name]`` for every ``step()`` whose index lies in
  ``[begin, end)``; outside that window it leaves the value alone (``last_step`` counts the steps
  inside the window, ``_global_step`` all of them);
- values are computed in MMEngine's *chainable* form (each step rescales the current value), so
  two schedulers on the same parameter compose, e.g. a ``LinearLR`` warm-up followed by a
  ``CosineAnnealingLR``;
- ``by_epoch`` says whether the runner steps the scheduler after every epoch or every iteration;
  ``build_iter_from_epoch`` (used by ``convert_to_iter_based=True`` in a config) turns an
  epoch-based configuration into the equivalent iteration-based scheduler.

The ``optimizer`` may be a :class:`torch.optim.Optimizer` or an optimizer wrapper: anything with
``param_groups`` (an ``OptimWrapper`` also has ``.optimizer``). This module does not import torch.
"""

from __future__ import annotations

import math
import numbers
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Protocol, TypeGuard, TypeVar

__all__ = [
    "INF",
    "ConstantParamScheduler",
    "CosineAnnealingParamScheduler",
    "CosineRestartParamScheduler",
    "ExponentialParamScheduler",
    "LinearParamScheduler",
    "MultiStepParamScheduler",
    "OneCycleParamScheduler",
    "OptimizerLike",
    "ParamScheduler",
    "PolyParamScheduler",
    "ReduceOnPlateauParamScheduler",
    "StepParamScheduler",
    "_ParamScheduler",
]

#: MMEngine's "no end": the default ``end`` of every scheduler.
INF = int(1e9)

_S = TypeVar("_S", bound="ParamScheduler")


class OptimizerLike(Protocol):
    """What a scheduler needs from its optimizer: the ``param_groups`` it edits.

    A :class:`torch.optim.Optimizer` qualifies, and so does an optimizer wrapper that exposes
    its optimizer's groups (MMEngine's ``OptimWrapper`` and treadle's own).
    """

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        """The parameter groups whose hyper-parameters are scheduled."""
        ...


# ---------------------------------------------------------------------------------------------
# Argument checks shared by the schedulers
# ---------------------------------------------------------------------------------------------


def _param_groups(optimizer: object, owner: str) -> list[dict[str, Any]]:
    groups = getattr(optimizer, "param_groups", None)
    if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
        raise TypeError(
            f"{owner}: optimizer must be a torch.optim.Optimizer or an optimizer wrapper with "
            f"`param_groups` (a list of dicts), but got {type(optimizer).__name__}"
        )
    if not groups:
        raise ValueError(f"{owner}: optimizer has no parameter groups")
    return groups


def _optimizer_defaults(optimizer: object) -> Mapping[str, Any]:
    """``optimizer.defaults``, looking through a wrapper's ``.optimizer`` when needed."""
    for candidate in (optimizer, getattr(optimizer, "optimizer", None)):
        defaults = getattr(candidate, "defaults", None)
        if isinstance(defaults, Mapping):
            return defaults
    groups = getattr(optimizer, "param_groups", None)
    if isinstance(groups, list) and groups and isinstance(groups[0], Mapping):
        return groups[0]
    return {}


def _check_param_name(groups: list[dict[str, Any]], param_name: object, owner: str) -> str:
    if not isinstance(param_name, str) or not param_name:
        raise TypeError(f"{owner}: param_name must be a non-empty string, but got {param_name!r}")
    for i, group in enumerate(groups):
        if param_name not in group:
            known = ", ".join(sorted(k for k in group if k != "params"))
            raise KeyError(
                f"{owner}: param_name={param_name!r} is not a hyper-parameter of "
                f"optimizer.param_groups[{i}] (it has: {known})"
            )
    return param_name


def _check_window(begin: float, end: float, owner: str) -> None:
    if not isinstance(begin, numbers.Real) or not isinstance(end, numbers.Real):
        raise TypeError(
            f"{owner}: begin and end must be numbers, but got begin={begin!r}, end={end!r}"
        )
    if end <= begin:
        raise ValueError(
            f"{owner}: end must be larger than begin, but got begin={begin}, end={end}"
        )


def _check_last_step(last_step: object, owner: str) -> int:
    if isinstance(last_step, bool) or not isinstance(last_step, int) or last_step < -1:
        raise ValueError(f"{owner}: last_step must be an integer >= -1, but got {last_step!r}")
    return last_step


def _record_initial_values(
    groups: list[dict[str, Any]], param_name: str, last_step: int, owner: str
) -> None:
    """Store ``initial_<param_name>`` in every group (a fresh start), or check it is there."""
    key = f"initial_{param_name}"
    if last_step == -1:
        for group in groups:
            group.setdefault(key, group[param_name])
        return
    for i, group in enumerate(groups):
        if key not in group:
            raise KeyError(
                f"{owner}: resuming with last_step={last_step} needs {key!r} in "
                f"optimizer.param_groups[{i}], but it is missing (load the optimizer's state "
                "dict first, or start with last_step=-1)"
            )


def _check_positive(value: object, name: str, owner: str) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value <= 0:
        raise ValueError(f"{owner}: {name} must be a positive number, but got {value!r}")


def _is_positive_int(value: object) -> TypeGuard[numbers.Integral]:
    return not isinstance(value, bool) and isinstance(value, numbers.Integral) and int(value) > 0


def _check_eta_min(eta_min: float | None, eta_min_ratio: float | None, owner: str) -> None:
    if (eta_min is None) == (eta_min_ratio is None):
        raise ValueError(
            f"{owner}: give exactly one of eta_min and eta_min_ratio, but got "
            f"eta_min={eta_min!r}, eta_min_ratio={eta_min_ratio!r}"
        )


def _eta_min_of(base_value: float, eta_min: float | None, eta_min_ratio: float | None) -> float:
    """The floor of a cosine schedule: ``eta_min``, or ``eta_min_ratio`` times the base value."""
    if eta_min_ratio is None:
        assert eta_min is not None
        return eta_min
    return base_value * eta_min_ratio


def _cosine_step(
    step: int,
    period: float,
    base_values: list[Any],
    current: list[Any],
    eta_min: float | None,
    eta_min_ratio: float | None,
) -> list[Any]:
    """Values after ``step`` of a chainable cosine from each base value down to its floor."""
    ratio = (1 + math.cos(math.pi * step / period)) / (1 + math.cos(math.pi * (step - 1) / period))
    values = []
    for base, value in zip(base_values, current, strict=True):
        floor = _eta_min_of(base, eta_min, eta_min_ratio)
        values.append(ratio * (value - floor) + floor)
    return values


def _plain(value: Any) -> Any:
    """A shallow copy of containers, with ``Counter`` as a plain ``dict`` (checkpoint friendly)."""
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, list):
        return list(value)
    return value


# ---------------------------------------------------------------------------------------------
# Base class
# ---------------------------------------------------------------------------------------------


class ParamScheduler:
    """Base class of the parameter schedulers (MMEngine's ``_ParamScheduler``).

    Subclasses implement :meth:`_get_value`, which returns the new value of every parameter
    group for the current ``last_step``; they may override :meth:`_scale_epoch_args` to convert
    their own step-count arguments in :meth:`build_iter_from_epoch`. The constructor applies the
    value of step 0 (it calls :meth:`step` once), as MMEngine and PyTorch do.

    Args:
        optimizer: The optimizer, or an optimizer wrapper (anything with ``param_groups``).
        param_name: The hyper-parameter to schedule, such as ``"lr"`` or ``"momentum"``; every
            parameter group must have it.
        begin: First step (epoch or iteration) at which the scheduler changes the value.
        end: Step at which it stops (exclusive). Defaults to :data:`INF`.
        last_step: Index of the last step taken. ``-1`` (default) is a fresh start, which
            records each group's current value as ``initial_<param_name>``; another value resumes
            without a state dict, and then ``initial_<param_name>`` must already be in the groups.
        by_epoch: Whether the runner steps this scheduler every epoch (``True``) or every
            iteration.
        verbose: Whether to log every value it sets.

    Raises:
        TypeError: ``optimizer`` has no ``param_groups``, or ``param_name`` is not a string.
        KeyError: A parameter group has no ``param_name``, or lacks ``initial_<param_name>``
            when resuming with ``last_step >= 0``.
        ValueError: ``end <= begin``, or ``last_step < -1``.
    """

    #: Attributes that are not part of :meth:`state_dict` (the optimizer is saved on its own).
    _transient_state: ClassVar[frozenset[str]] = frozenset({"optimizer"})

    def __init__(
        self,
        optimizer: OptimizerLike,
        param_name: str,
        begin: int = 0,
        end: int = INF,
        last_step: int = -1,
        by_epoch: bool = True,
        verbose: bool = False,
    ) -> None:
        self._attach(optimizer, param_name, begin, end, last_step, by_epoch)
        self.base_values: list[Any] = [
            group[f"initial_{param_name}"] for group in self.optimizer.param_groups
        ]
        self.last_step = last_step
        self._global_step = -1
        self.verbose = verbose
        self._last_value: list[Any] = []
        self.step()

    def _attach(
        self,
        optimizer: OptimizerLike,
        param_name: str,
        begin: int,
        end: int,
        last_step: int,
        by_epoch: bool,
    ) -> None:
        """Check the common arguments and bind the scheduler to ``optimizer``."""
        owner = type(self).__name__
        groups = _param_groups(optimizer, owner)
        self.optimizer = optimizer
        self.param_name = _check_param_name(groups, param_name, owner)
        _check_window(begin, end, owner)
        self.begin = begin
        self.end = end
        self.by_epoch = by_epoch
        _record_initial_values(groups, param_name, _check_last_step(last_step, owner), owner)

    # -- construction from an epoch-based config ------------------------------------------------

    @classmethod
    def build_iter_from_epoch(
        cls: type[_S],
        *args: Any,
        begin: float = 0,
        end: float = INF,
        by_epoch: bool = True,
        epoch_length: int | None = None,
        **kwargs: Any,
    ) -> _S:
        """Build the iteration-based equivalent of an epoch-based scheduler.

        ``begin`` and ``end`` (and the scheduler's own step counts, such as ``step_size`` or
        ``milestones``) are multiplied by ``epoch_length``; the result has ``by_epoch=False``.
        This is what ``convert_to_iter_based=True`` in a scheduler config does.

        Args:
            *args: Positional arguments of the constructor (usually just the optimizer).
            begin: First epoch of the schedule (may be fractional).
            end: End epoch of the schedule (exclusive); :data:`INF` stays :data:`INF`.
            by_epoch: Must be ``True``: only an epoch-based configuration can be converted.
            epoch_length: Iterations per epoch, a positive integer.
            **kwargs: The other constructor arguments.

        Returns:
            The iteration-based scheduler.

        Raises:
            ValueError: ``by_epoch`` is false, or ``epoch_length`` is not a positive integer.
        """
        if not by_epoch:
            raise ValueError(
                f"{cls.__name__}: convert_to_iter_based needs an epoch-based config "
                "(by_epoch=True), but got by_epoch=False"
            )
        if not _is_positive_int(epoch_length):
            raise ValueError(
                f"{cls.__name__}: epoch_length must be a positive integer to convert an "
                f"epoch-based scheduler to an iteration-based one, but got {epoch_length!r}"
            )
        length = int(epoch_length)
        kwargs = cls._scale_epoch_args(dict(kwargs), length)
        kwargs["begin"] = int(begin * length)
        kwargs["end"] = int(end * length) if end != INF else INF
        kwargs["by_epoch"] = False
        return cls(*args, **kwargs)

    @classmethod
    def _scale_epoch_args(cls, kwargs: dict[str, Any], epoch_length: int) -> dict[str, Any]:
        """Convert the scheduler's own epoch counts in ``kwargs`` to iterations (none here)."""
        return kwargs

    @classmethod
    def _require_kwarg(cls, kwargs: Mapping[str, Any], name: str) -> Any:
        if name not in kwargs:
            raise TypeError(
                f"{cls.__name__}.build_iter_from_epoch() needs {name!r} as a keyword argument"
            )
        return kwargs[name]

    # -- state -----------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Return the scheduler's state: every attribute except the optimizer.

        The keys are MMEngine's (``param_name``, ``begin``, ``end``, ``by_epoch``,
        ``base_values``, ``last_step``, ``_global_step``, ``verbose``, ``_last_value`` and the
        scheduler's own arguments), so checkpoints move between MMEngine and treadle. Values are
        plain Python objects (a ``Counter`` becomes a ``dict``; functions are left out), so a
        checkpoint loads with ``torch.load(weights_only=True)``.

        Returns:
            The state, with containers copied.
        """
        return {
            key: _plain(value)
            for key, value in self.__dict__.items()
            if key not in self._transient_state
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore the state returned by :meth:`state_dict` (treadle's or MMEngine's).

        Args:
            state_dict: The scheduler state.

        Raises:
            TypeError: ``state_dict`` is not a mapping.
            ValueError: It schedules another parameter than this scheduler.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(
                f"{type(self).__name__}.load_state_dict: state_dict must be a mapping, but got "
                f"{type(state_dict).__name__}"
            )
        saved_name = state_dict.get("param_name", self.param_name)
        if saved_name != self.param_name:
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: the state schedules "
                f"param_name={saved_name!r}, but this scheduler schedules {self.param_name!r}"
            )
        for key, value in state_dict.items():
            if key in self._transient_state:
                continue  # the optimizer, or a function MMEngine pickled (rebuilt from args)
            self.__dict__[key] = self._restore_value(key, value)

    def _restore_value(self, key: str, value: Any) -> Any:
        """Convert one loaded state value back to the attribute's type."""
        return _plain(value)

    # -- stepping --------------------------------------------------------------------------------

    def get_last_value(self) -> list[Any]:
        """Return the value of every parameter group after the last :meth:`step`."""
        return self._last_value

    def _get_value(self) -> list[Any]:
        """Compute the new value of every parameter group for ``self.last_step``."""
        raise NotImplementedError(f"{type(self).__name__} must implement _get_value()")

    def print_value(self, is_verbose: bool, group: int, value: float) -> None:
        """Log a new value when ``is_verbose`` is true.

        Args:
            is_verbose: Whether to log.
            group: Index of the parameter group.
            value: The value it was set to.
        """
        if is_verbose:
            from treadle.core.logging import print_log

            print_log(f"Adjusting parameter value of group {group} to {value:.4e}.", "current")

    def step(self) -> None:
        """Advance one step and set the scheduled value of every parameter group.

        Call it after ``optimizer.step()``: once per epoch when ``by_epoch`` is true, else once
        per iteration. Steps outside ``[begin, end)`` leave the values unchanged.
        """
        self._global_step += 1
        groups = self.optimizer.param_groups
        if self.begin <= self._global_step < self.end:
            self.last_step += 1
            name = self.param_name
            for i, (group, value) in enumerate(zip(groups, self._get_value(), strict=True)):
                group[name] = value
                if self.verbose:
                    self.print_value(True, i, value)
        self._last_value = [group[self.param_name] for group in groups]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(param_name={self.param_name!r}, begin={self.begin}, "
            f"end={self.end}, by_epoch={self.by_epoch}, last_step={self.last_step})"
        )

    # Helpers for the subclasses: the current value of every group, and it times ``factor``.
    def _current_values(self) -> list[Any]:
        return [group[self.param_name] for group in self.optimizer.param_groups]

    def _scaled_values(self, factor: float) -> list[Any]:
        return [value * factor for value in self._current_values()]


#: MMEngine's name for :class:`ParamScheduler` (``isinstance`` checks and subclasses written for
#: MMEngine keep working).
_ParamScheduler = ParamScheduler


# ---------------------------------------------------------------------------------------------
# Schedulers
# ---------------------------------------------------------------------------------------------


class StepParamScheduler(ParamScheduler):
    """Multiply the value by ``gamma`` every ``step_size`` steps.

    Args:
        optimizer: The optimizer or optimizer wrapper.
        param_name: The hyper-parameter to schedule.
        step_size: Period of the decay, in steps (epochs or iterations).
        gamma: Multiplicative factor of the decay.
        begin: First step of the schedule.
        end: End step of the schedule (exclusive).
        last_step: Index of the last step; ``-1`` is a fresh start.
        by_epoch: Whether the scheduler is stepped every epoch.
        verbose: Whether to log every value it sets.

    Raises:
        ValueError: ``step_size`` is not positive (and see :class:`ParamScheduler`).
    """

    def __init__(
        self,
        optimizer: OptimizerLike,
        param_name: str,
        step_size: int,
        gamma: float = 0.1,
        begin: int = 0,
        end: int = INF,
        last_step: int = -1,
        by_epoch: bool = True,
        verbose: bool = False,
    ) -> None:
        _check_positive(step_size, "step_size", type(self).__name__)
        self.step_size = step_size
        self.gamma = gamma
        super().__init__(optimizer, param_name, begin, end, last_step, by_epoch, verbose)

    @classmethod
    def _scale_epoch_args(cls, kwargs: dict[str, Any], epoch_length: int) -> dict[str, Any]:
        kwargs["step_size"] = cls._require_kwarg(kwargs, "step_size") * epoch_length
        return kwargs

    def _get_value(self) -> list[Any]:
        if self.last_step == 0 or self.last_step % self.step_size != 0:
            return self._current_values()
        return self._scaled_values(self.gamma)


class MultiStepParamScheduler(ParamScheduler):
    """Multiply the value by ``gamma`` at every milestone.

    A milestone listed twice decays twice (``gamma ** count``), as in MMEngine and PyTorch.

    Args:
        optimizer: The optimizer or optimizer wrapper.
        param_name: The hyper-parameter to schedule.
        milestones: Steps (counted from ``begin``) at which to decay.
        gamma: Multiplicative factor of the decay.
        last_step: Index of the last step; ``-1`` is a fresh start.
        begin: First step of the schedule.
        end: End step of the schedule (exclusive).
        by_epoch: Whether the scheduler is stepped every epoch.
        verbose: Whether to log every value it sets.

    Raises:
        TypeError: ``milestones`` is not a sequence of integers.
    """

    def __init__(
        self,
        optimizer: OptimizerLike,
        param_name: str,
        milestones: Iterable[int],
        gamma: float = 0.1,
        last_step: int = -1,
        begin: int = 0,
        end: int = INF,
        by_epoch: bool = True,
        verbose: bool = False,
    ) -> None:
        is_iterable = not isinstance(milestones, (str, bytes)) and isinstance(milestones, Iterable)
        if is_iterable:
            milestones = list(milestones)
        if not is_iterable or not all(isinstance(m, numbers.Integral) for m in milestones):
            raise TypeError(
                f"{type(self).__name__}: milestones must be a list of integers, but got "
                f"{milestones!r}"
            )
        self.milestones: Counter[int] = Counter(int(m) for m in milestones)
        self.gamma = gamma
        super().__init__(optimizer, param_name, begin, end, last_step, by_epoch, verbose)

    @classmethod
    def _scale_epoch_args(cls, kwargs: dict[str, Any], epoch_length: int) -> dict[str, Any]:
        kwargs["milestones"] = [m * epoch_length for m in cls._require_kwarg(kwargs, "milestones")]
        return kwargs

    def _restore_value(self, key: str, value: Any) -> Any:
        if key == "milestones":
            return Counter(value)
        return super()._restore_value(key, value)

    def _get_value(self) -> list[Any]:
        count = self.milestones.get(self.last_step, 0)
        if not count:
            return self._current_values()
        return self._scaled_values(self.gamma**count)


class ConstantParamScheduler(ParamScheduler):
    """Multiply the value by a constant ``factor`` from ``begin`` until ``end``.

    At the last step of the window (``end - 1``) the value returns to its undecayed level.

    Args:
        optimizer: The optimizer or optimizer wrapper.
        param_name: The hyper-parameter to schedule.
        factor: The factor, in ``(0, 1]``.
        begin: First step of the schedule.
        end: End step of the schedule (exclusive).
        last_step: Index of the last step; ``-1`` is a fresh start.
        by_epoch: Whether the scheduler is stepped every epoch.
        verbose: Whether to log every value it sets.

    Raises:
        ValueError: ``factor`` is not in ``(0, 1]``.
    """

    def __init__(
        self,
        optimizer: OptimizerLike,
        param_name: str,
        factor: float = 1.0 / 3,
        begin: int = 0,
        end: int = INF,
        last_step: int = -1,
        by_epoch: bool = True,
        verbose: bool = False,
    ) -> None:
        if not 0 < factor <= 1:
            raise ValueError(f"{type(self).__name__}: factor must be in (0, 1], but got {factor!r}")
        self.factor = factor
        self.total_iters = end - begin - 1
        super().__init__(optimizer, param_name, begin, end, last_step, by_epoch, verbose)

    def _get_value(self) -> list[Any]:
        if self.last_step == 0:
            return self._scaled_values(self.factor)
        if self.last_step == self.total_iters:
            return self._scaled_values(1.0 / self.factor)
        return self._current_values()


class ExponentialParamScheduler(ParamScheduler):
    """Multiply the value by ``gamma`` at every step.

    Args:
        optimizer: The optimizer or optimizer wrapper.
        param_name: The hyper-parameter to schedule.
        gamma: Multiplicative factor of the decay.
        begin: First step of the schedule.
        end: End step of the schedule (exclusive).
        last_step: Index of the last step; ``-1`` is a fresh start.
        by_epoch: Whether the scheduler is stepped every epoch.
        verbose: Whether to log every value it sets.
    """

    def __init__(
        self,
        optimizer: OptimizerLike,
        param_name: str,
        gamma: float,
        begin: int = 0,
        end: int = INF,
        last_step: int = -1,
        by_epoch: bool = True,
        verbose: bool = False,
    ) -> None:
        self.gamma = gamma
        super().__init__(optimizer, param_name, begin, end, last_step, by_epoch, verbose)

    def _get_value(self) -> list[Any]:
        if self.last_step == 0:
            return self._current_values()
        return self._scaled_values(self.gamma)


class CosineAnnealingParamScheduler(ParamScheduler):
    r"""Anneal the value along a cosine from its initial value to ``eta_min``.

    With this scheduler alone the value at step :math:`t` (counted from ``begin``) is

    .. math::
        \eta_t = \eta_{min} + \frac{1}{2}(\eta_{max} - \eta_{min})
        \left(1 + \cos\frac{t\pi}{T_{max}}\right)

    where :math:`\eta_{max}` is the initial value; the chainable form used here also composes
    with other schedulers. There are no restarts (see :class:`CosineRestartParamScheduler`).

    Args:
        optimizer: The optimizer or optimizer wrapper.
        param_name: The hyper-parameter to schedule.
        T_max: Steps of a half period; defaults to ``end - begin``.
        eta_min: The minimum value. Defaults to 0 when ``eta_min_ratio`` is not given either.
        begin: First step of the schedule.
        end: End step of the schedule (exclusive).
        last_step: Index of the last step; ``-1`` is a fresh start.
        by_epoch: Whether the scheduler is stepped every epoch.
        verbose: Whether to log every value it sets.
        eta_min_ratio: The minimum as a fraction of each group's initial value (instead of
            ``eta_min``).

    Raises:
        ValueError: Both ``eta_min`` and ``eta_min_ratio`` are given, or ``T_max`` is not
            positive.
    """

    def __init__(
        self,
        optimizer: OptimizerLike,
        param_name: str,
        T_max: int | None = None,
        eta_min: float | None = None,
        begin: int = 0,
        end: int = INF,
        last_step: int = -1,
        by_epoch: bool = True,
        verbose: bool = False,
        eta_min_ratio: float | None = None,
    ) -> None:
        owner = type(self).__name__
        if eta_min is None and eta_min_ratio is None:
            eta_min = 0.0
        _check_eta_min(eta_min, eta_min_ratio, owner)
        self.T_max = T_max or (end - begin)
        _check_positive(self.T_max, "T_max", owner)
        self.eta_min = eta_min
        self.eta_min_ratio = eta_min_ratio
        super().__init__(optimizer, param_name, begin, end, last_step, by_epoch, verbose)

    @classmethod
    def _scale_epoch_args(cls, kwargs: dict[str, Any], epoch_length: int) -> dict[str, Any]:
        if kwargs.get("T_max") is not None:
            kwargs["T_max"] = kwargs["T_max"] * epoch_length
        return kwargs

    def _get_value(self) -> list[Any]:
        t, t_max = self.last_step, self.T_max
        current = self._current_values()
        if t == 0:
            return current
        if (t - 1 - t_max) % (2 * t_max) == 0:
            # The recursive ratio below is 0/0 at the trough; step up by the exact increment.
            rise = (1 - math.cos(math.pi / t_max)) / 2
            return [
                value + (base - _eta_min_of(base, self.eta_min, self.eta_min_ratio)) * rise
                for base, value in zip(self.base_values, current, strict=True)
            ]
        return _cosine_step(t, t_max, self.base_values, current, self.eta_min, self.eta_min_ratio)


class LinearParamScheduler(ParamScheduler):
    """Scale the value by a factor that moves linearly from ``start_factor`` to ``end_factor``.

    The factor is ``start_factor`` at ``begin`` and ``end_factor`` at ``end - 1``; the usual
    learning-rate warm-up.

    Args:
        optimizer: The optimizer or optimizer wrapper.
        param_name: The hyper-parameter to schedule.
        start_factor: Factor at the first step, in ``(0, 1]``.
        end_factor: Factor at the last step, in ``[0, 1]``.
        begin: First step of the schedule.
        end: End step of the schedule (exclusive).
        last_step: Index of the last step; ``-1`` is a fresh start.
        by_epoch: Whether the scheduler is stepped every epoch.
        verbose: Whether to log every value it sets.

    Raises:
        ValueError: A factor is out of its range.
    """

    def __init__(
        self,
        optimizer: OptimizerLike,
        param_name: str,
        start_factor: float = 1.0 / 3,
        end_factor: float = 1.0,
        begin: int = 0,
        end: int = INF,
        last_step: int = -1,
        by_epoch: bool = True,
        verbose: bool = False,
    ) -> None:
        owner = type(self).__name__
        if not 0 < start_factor <= 1:
            raise ValueError(f"{owner}: start_factor must be in (0, 1], but got {start_factor!r}")
        if not 0 <= end_factor <= 1:
            raise ValueError(f"{owner}: end_factor must be in [0, 1], but got {end_factor!r}")
        self.start_factor = start_factor
        self.end_factor = end_factor
        self.total_iters = end - begin - 1
        super().__init__(optimizer, param_name, begin, end, last_step, by_epoch, verbose)

    def _get_value(self) -> list[Any]:
        if self.last_step == 0:
            return self._scaled_values(self.start_factor)
        delta = self.end_factor - self.start_factor
        return self._scaled_values(
            1.0 + delta / (self.total_iters * self.start_factor + (self.last_step - 1) * delta)
        )


class PolyParamScheduler(ParamScheduler):
    """Decay the value polynomially to ``eta_min`` at the last step of the window.

    With this scheduler alone the value at step :math:`t` is
    ``eta_min + (initial - eta_min) * (1 - t / (end - begin - 1)) ** power``.

    Args:
        optimizer: The optimizer or optimizer wrapper.
        param_name: The hyper-parameter to schedule.
        eta_min: The value at the end of the schedule.
        power: The power of the polynomial.
        begin: First step of the schedule.
        end: End step of the schedule (exclusive).
        last_step: Index of the last step; ``-1`` is a fresh start.
        by_epoch: Whether the scheduler is stepped every epoch.
        verbose: Whether to log every value it sets.
    """

    def __init__(
        self,
        optimizer: OptimizerLike,
        param_name: str,
        eta_min: float = 0,
        power: float = 1.0,
        begin: int = 0,
        end: int = INF,
        last_step: int = -1,
        by_epoch: bool = True,
        verbose: bool = False,
    ) -> None:
        self.eta_min = eta_min
        self.power = power
        self.total_iters = end - begin - 1
        super().__init__(optimizer, param_name, begin, end, last_step, by_epoch, verbose)

    def _get_value(self) -> list[Any]:
        current = self._current_values()
        if self.last_step == 0:
            return current
        factor = (1 - 1 / (self.total_iters - self.last_step + 1)) ** self.power
        return [(value - self.eta_min) * factor + self.eta_min for value in current]


def _annealing_cos(start: float, end: float, pct: float) -> float:
    """Cosine anneal from ``start`` to ``end`` as ``pct`` goes from 0 to 1."""
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


def _annealing_linear(start: float, end: float, pct: float) -> float:
    """Linear anneal from ``start`` to ``end`` as ``pct`` goes from 0 to 1."""
    return (end - start) * pct + start


_ANNEALING: dict[str, Callable[[float, float, float], float]] = {
    "cos": _annealing_cos,
    "linear": _annealing_linear,
}


class OneCycleParamScheduler(ParamScheduler):
    """The 1cycle policy: rise from ``eta_max / div_factor`` to ``eta_max``, then anneal to
    ``eta_max / div_factor / final_div_factor``.

    Only ``param_name="lr"`` is supported (as in MMEngine). The scheduler sets the value
    directly, so it does not chain with others. With ``three_phase=True`` the second phase
    returns to the initial value and a third phase anneals to the minimum (the original paper);
    by default there are two phases (fastai).

    It stores ``initial_lr``, ``max_lr`` and ``min_lr`` in every parameter group.

    Args:
        optimizer: The optimizer or optimizer wrapper.
        param_name: Must be ``"lr"``.
        eta_max: The peak value, one for all groups or a list with one per group.
        total_steps: Steps in the cycle; defaults to ``end - begin``.
        pct_start: Fraction of the cycle spent rising, in ``[0, 1]``.
        anneal_strategy: ``"cos"`` or ``"linear"``.
        div_factor: ``initial = eta_max / div_factor``.
        final_div_factor: ``minimum = initial / final_div_factor``.
        three_phase: Use the three-phase schedule.
        begin: First step of the schedule.
        end: End step of the schedule (exclusive).
        last_step: Index of the last step; ``-1`` is a fresh start.
        by_epoch: Whether the scheduler is stepped every epoch.
        verbose: Whether to log every value it sets.

    Raises:
        ValueError: An argument is out of range, or the scheduler is stepped past
            ``total_steps``.
    """

    # MMEngine saves its annealing function in the state dict; treadle rebuilds it from
    # ``anneal_strategy`` and leaves it out, so checkpoints load with ``weights_only=True``.
    _transient_state: ClassVar[frozenset[str]] = frozenset({"optimizer", "anneal_func"})

    def __init__(
        self,
        optimizer: OptimizerLike,
        param_name: str,
        eta_max: float | Sequence[float] = 0,
        total_steps: int | None = None,
        pct_start: float = 0.3,
        anneal_strategy: str = "cos",
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
        begin: int = 0,
        end: int = INF,
        last_step: int = -1,
        by_epoch: bool = True,
        verbose: bool = False,
    ) -> None:
        owner = type(self).__name__
        if param_name != "lr":
            raise ValueError(
                f"{owner}: OneCycle schedules the learning rate only (param_name='lr'), but got "
                f"param_name={param_name!r}"
            )
        groups = _param_groups(optimizer, owner)
        self.eta_max = eta_max
        self.div_factor = div_factor
        self.final_div_factor = final_div_factor
        self.total_steps: int
        if total_steps is not None:
            if not _is_positive_int(total_steps):
                raise ValueError(
                    f"{owner}: total_steps must be a positive integer, but got {total_steps!r}"
                )
            self.total_steps = int(total_steps)
        else:
            self.total_steps = end - begin
        if isinstance(pct_start, bool) or not isinstance(pct_start, numbers.Real):
            raise ValueError(f"{owner}: pct_start must be a number in [0, 1], got {pct_start!r}")
        if not 0 <= pct_start <= 1:
            raise ValueError(f"{owner}: pct_start must be in [0, 1], but got {pct_start!r}")
        if anneal_strategy not in _ANNEALING:
            raise ValueError(
                f"{owner}: anneal_strategy must be 'cos' or 'linear', but got {anneal_strategy!r}"
            )
        self.anneal_func: Callable[[float, float, float], float] = _ANNEALING[anneal_strategy]
        pct = float(pct_start)
        first = float(pct * self.total_steps) - 1
        if three_phase:
            phases = [
                (first, "initial", "max"),
                (float(2 * pct * self.total_steps) - 2, "max", "initial"),
                (self.total_steps - 1, "initial", "min"),
            ]
        else:
            phases = [(first, "initial", "max"), (self.total_steps - 1, "max", "min")]
        self._schedule_phases: list[dict[str, Any]] = [
            {
                "end_step": end_step,
                f"start_{param_name}": f"{start}_{param_name}",
                f"end_{param_name}": f"{stop}_{param_name}",
            }
            for end_step, start, stop in phases
        ]
        if isinstance(eta_max, (list, tuple)):
            if len(eta_max) != len(groups):
                raise ValueError(
                    f"{owner}: eta_max has {len(eta_max)} values but the optimizer has "
                    f"{len(groups)} parameter groups"
                )
            max_values = list(eta_max)
        else:
            max_values = [eta_max] * len(groups)
        if last_step == -1:
            for group, max_value in zip(groups, max_values, strict=True):
                group[f"initial_{param_name}"] = max_value / div_factor
                group[f"max_{param_name}"] = max_value
                group[f"min_{param_name}"] = group[f"initial_{param_name}"] / final_div_factor
        super().__init__(optimizer, param_name, begin, end, last_step, by_epoch, verbose)

    @classmethod
    def _scale_epoch_args(cls, kwargs: dict[str, Any], epoch_length: int) -> dict[str, Any]:
        if kwargs.get("total_steps") is not None:
            kwargs["total_steps"] = kwargs["total_steps"] * epoch_length
        return kwargs

    def _get_value(self) -> list[Any]:
        step_num = self.last_step
        if step_num > self.total_steps:
            raise ValueError(
                f"{type(self).__name__}: tried to step {step_num + 1} times, but total_steps is "
                f"{self.total_steps}"
            )
        name = self.param_name
        last = len(self._schedule_phases) - 1
        values = []
        for group in self.optimizer.param_groups:
            start_step: float = 0
            for i, phase in enumerate(self._schedule_phases):
                end_step = phase["end_step"]
                if step_num <= end_step or i == last:
                    pct = (step_num - start_step) / (end_step - start_step)
                    values.append(
                        self.anneal_func(
                            group[phase[f"start_{name}"]], group[phase[f"end_{name}"]], pct
                        )
                    )
                    break
                start_step = end_step
        return values


class CosineRestartParamScheduler(ParamScheduler):
    """Cosine annealing with restarts: one cosine from the (weighted) initial value to the
    minimum per period, restarting at the start of each period.

    Period ``i`` starts at ``initial_value * restart_weights[i]``. After the last period the
    value stays where it is.

    Args:
        optimizer: The optimizer or optimizer wrapper.
        param_name: The hyper-parameter to schedule.
        periods: Length of each cosine cycle, in steps.
        restart_weights: Weight of the initial value at each restart, one per period.
        eta_min: The minimum value.
        eta_min_ratio: The minimum as a fraction of each group's initial value. Give exactly
            one of ``eta_min`` and ``eta_min_ratio``.
        begin: First step of the schedule.
        end: End step of the schedule (exclusive).
        last_step: Index of the last step; ``-1`` is a fresh start.
        by_epoch: Whether the scheduler is stepped every epoch.
        verbose: Whether to log every value it sets.

    Raises:
        ValueError: ``periods`` and ``restart_weights`` differ in length, a period is not
            positive, or not exactly one of ``eta_min``/``eta_min_ratio`` is given.
    """

    def __init__(
        self,
        optimizer: OptimizerLike,
        param_name: str,
        periods: Sequence[int],
        restart_weights: Sequence[float] = (1,),
        eta_min: float | None = None,
        eta_min_ratio: float | None = None,
        begin: int = 0,
        end: int = INF,
        last_step: int = -1,
        by_epoch: bool = True,
        verbose: bool = False,
    ) -> None:
        owner = type(self).__name__
        _check_eta_min(eta_min, eta_min_ratio, owner)
        if isinstance(periods, (str, bytes)) or not isinstance(periods, Sequence):
            raise TypeError(f"{owner}: periods must be a list of integers, but got {periods!r}")
        for period in periods:
            _check_positive(period, "every period", owner)
        if len(periods) != len(restart_weights):
            raise ValueError(
                f"{owner}: periods and restart_weights must have the same length, but got "
                f"{len(periods)} periods and {len(restart_weights)} restart_weights"
            )
        self.periods = list(periods)
        self.eta_min = eta_min
        self.eta_min_ratio = eta_min_ratio
        self.restart_weights = list(restart_weights)
        total = 0
        self.cumulative_periods: list[int] = []
        for period in self.periods:
            total += period
            self.cumulative_periods.append(total)
        super().__init__(optimizer, param_name, begin, end, last_step, by_epoch, verbose)

    @classmethod
    def _scale_epoch_args(cls, kwargs: dict[str, Any], epoch_length: int) -> dict[str, Any]:
        kwargs["periods"] = [p * epoch_length for p in cls._require_kwarg(kwargs, "periods")]
        return kwargs

    @staticmethod
    def get_position_from_periods(iteration: int, cumulative_periods: list[int]) -> int | None:
        """Index of the period that holds ``iteration``, or ``None`` after the last one.

        Args:
            iteration: The step.
            cumulative_periods: Running sums of the periods, e.g. ``[100, 200, 300]``.

        Returns:
            The index of the first running sum larger than ``iteration``.
        """
        for i, period in enumerate(cumulative_periods):
            if iteration < period:
                return i
        return None

    def _get_value(self) -> list[Any]:
        idx = self.get_position_from_periods(self.last_step, self.cumulative_periods)
        current = self._current_values()
        if idx is None:
            return current
        weight = self.restart_weights[idx]
        period = self.periods[idx]
        step = self.last_step - (self.cumulative_periods[idx - 1] if idx else 0)
        if step == 0:
            return [base * weight for base in self.base_values]
        return _cosine_step(
            step, period, self.base_values, current, self.eta_min, self.eta_min_ratio
        )


class ReduceOnPlateauParamScheduler(ParamScheduler):
    """Reduce the value by ``factor`` when a validation metric stops improving.

    PyTorch's ``ReduceLROnPlateau`` with MMEngine's names (``rule`` for ``mode``,
    ``threshold_rule`` for ``threshold_mode``, ``min_value`` for ``min_lr``). The runner calls
    ``step(metrics)`` after each validation epoch (``need_val_args``) and ``step()`` after each
    training epoch, which only counts epochs for the ``begin``/``end`` window. Epoch-based only.

    Args:
        optimizer: The optimizer or optimizer wrapper.
        param_name: The hyper-parameter to schedule.
        monitor: Key of the metric to watch in the ``metrics`` dict.
        rule: ``"less"`` (lower is better) or ``"greater"``.
        factor: New value = value * factor; must be below 1.
        patience: Epochs without improvement tolerated before reducing.
        threshold: Minimal change that counts as an improvement (``>= 0``).
        threshold_rule: ``"rel"`` or ``"abs"``.
        cooldown: Epochs to wait after a reduction before counting bad epochs again.
        min_value: Lower bound, one for all groups or a list with one per group.
        eps: Reductions smaller than this are skipped.
        begin: First epoch at which the metric is watched.
        end: Epoch at which watching stops (exclusive).
        last_step: Index of the last step; ``-1`` is a fresh start.
        by_epoch: Must be ``True``.
        verbose: Whether to log every value it sets.

    Raises:
        ValueError: An argument is out of range, or ``by_epoch`` is false.
    """

    need_val_args: ClassVar[bool] = True

    def __init__(
        self,
        optimizer: OptimizerLike,
        param_name: str,
        monitor: str = "loss",
        rule: str = "less",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_rule: str = "rel",
        cooldown: int = 0,
        min_value: float | Sequence[float] = 0.0,
        eps: float = 1e-8,
        begin: int = 0,
        end: int = INF,
        last_step: int = -1,
        by_epoch: bool = True,
        verbose: bool = False,
    ) -> None:
        owner = type(self).__name__
        if not by_epoch:
            raise ValueError(
                f"{owner}: only by_epoch=True is supported (it steps on validation metrics), "
                "but got by_epoch=False"
            )
        self._attach(optimizer, param_name, begin, end, last_step, by_epoch)
        self.last_step = last_step
        self._global_step = 0
        self.verbose = verbose
        if factor >= 1.0:
            raise ValueError(f"{owner}: factor must be < 1.0, but got {factor!r}")
        self.factor = factor
        groups = self.optimizer.param_groups
        if isinstance(min_value, (list, tuple)):
            raw_groups = getattr(getattr(optimizer, "optimizer", optimizer), "param_groups", groups)
            if len(min_value) != len(raw_groups):
                raise ValueError(
                    f"{owner}: min_value has {len(min_value)} values but the optimizer has "
                    f"{len(raw_groups)} parameter groups"
                )
            self.min_values = list(min_value)
            # An optimizer wrapper may add a group holding the base settings; it gets the
            # bound of the last real group (as in MMEngine).
            if len(groups) > len(raw_groups):
                self.min_values.append(self.min_values[-1])
        else:
            self.min_values = [min_value] * len(groups)
        self.patience = patience
        self.cooldown = cooldown
        self.cooldown_counter = 0
        self.eps = eps
        self.monitor = monitor
        if threshold < 0:
            raise ValueError(f"{owner}: threshold must be >= 0, but got {threshold!r}")
        if rule not in ("less", "greater"):
            raise ValueError(f"{owner}: rule must be 'less' or 'greater', but got {rule!r}")
        if threshold_rule not in ("rel", "abs"):
            raise ValueError(
                f"{owner}: threshold_rule must be 'rel' or 'abs', but got {threshold_rule!r}"
            )
        self.rule = rule
        self.threshold = threshold
        self.threshold_rule = threshold_rule
        self.rule_worse = math.inf if rule == "less" else -math.inf
        self.best: float = self.rule_worse
        self.num_bad_epochs = 0
        self._last_value = self._current_values()

    @classmethod
    def build_iter_from_epoch(cls: type[_S], *args: Any, **kwargs: Any) -> _S:
        """Not supported: the scheduler reacts to validation metrics, once per epoch.

        Raises:
            ValueError: Always.
        """
        raise ValueError(
            f"{cls.__name__} cannot be converted to iteration-based "
            "(convert_to_iter_based=True): it steps on validation metrics, by epoch only"
        )

    def _is_better(self, metric: float, best: float) -> bool:
        if self.rule == "less":
            if self.threshold_rule == "rel":
                return metric < best * (1.0 - self.threshold)
            return metric < best - self.threshold
        if self.threshold_rule == "rel":
            return metric > best * (1.0 + self.threshold)
        return metric > best + self.threshold

    def _get_value(self) -> list[Any]:
        return [
            max(float(value) * self.factor, min_value)
            for value, min_value in zip(self._current_values(), self.min_values, strict=True)
        ]

    def print_value(self, is_verbose: bool, group: int, value: float) -> None:
        """Log a reduction when ``is_verbose`` is true (with the epoch it happened in)."""
        if is_verbose:
            from treadle.core.logging import print_log

            unit = "epoch" if self.by_epoch else "iter"
            print_log(
                f"Adjusting parameter value of group {group} to {value:.4e} in {unit} "
                f"{self.last_step}.",
                "current",
            )

    def step(self, metrics: Mapping[str, Any] | None = None) -> None:
        """Count an epoch (``metrics=None``) or judge the monitored metric.

        Args:
            metrics: The validation results; must contain ``monitor``.

        Raises:
            TypeError: ``metrics`` is not a dict.
            KeyError: ``metrics`` lacks the ``monitor`` key.
        """
        if metrics is None:
            self._global_step += 1
            return
        if not isinstance(metrics, Mapping):
            raise TypeError(
                f"{type(self).__name__}.step: metrics must be a dict, but got "
                f"{type(metrics).__name__}"
            )
        if self.begin <= self._global_step < self.end:
            self.last_step += 1
            if self.monitor not in metrics:
                raise KeyError(
                    f"{type(self).__name__}: monitor={self.monitor!r} is not among the "
                    f"validation metrics {sorted(metrics)}"
                )
            metric = float(metrics[self.monitor])
            if self._is_better(metric, self.best):
                self.best = metric
                self.num_bad_epochs = 0
            else:
                self.num_bad_epochs += 1
            if self.cooldown_counter > 0:
                self.cooldown_counter -= 1
                self.num_bad_epochs = 0  # bad epochs do not count during the cooldown
            if self.num_bad_epochs > self.patience:
                groups = self.optimizer.param_groups
                for i, (group, value) in enumerate(zip(groups, self._get_value(), strict=True)):
                    if group[self.param_name] - value > self.eps:
                        group[self.param_name] = value
                        self.print_value(self.verbose, i, value)
                self.cooldown_counter = self.cooldown
                self.num_bad_epochs = 0
        self._last_value = self._current_values()

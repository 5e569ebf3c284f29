"""Learning-rate schedulers: the parameter schedulers with ``param_name="lr"``.

MMEngine's names (``StepLR``, ``MultiStepLR``, ``ConstantLR``, ``ExponentialLR``,
``CosineAnnealingLR``, ``LinearLR``, ``PolyLR``, ``OneCycleLR``, ``CosineRestartLR``,
``ReduceOnPlateauLR``) and arguments; see :mod:`treadle.core.optim.scheduler.param_scheduler`
for the schedules themselves.
"""

from __future__ import annotations

from typing import Any

from treadle.core.optim.scheduler.param_scheduler import (
    ConstantParamScheduler,
    CosineAnnealingParamScheduler,
    CosineRestartParamScheduler,
    ExponentialParamScheduler,
    LinearParamScheduler,
    MultiStepParamScheduler,
    OneCycleParamScheduler,
    OptimizerLike,
    ParamScheduler,
    PolyParamScheduler,
    ReduceOnPlateauParamScheduler,
    StepParamScheduler,
)

__all__ = [
    "ConstantLR",
    "CosineAnnealingLR",
    "CosineRestartLR",
    "ExponentialLR",
    "LRSchedulerMixin",
    "LinearLR",
    "MultiStepLR",
    "OneCycleLR",
    "PolyLR",
    "ReduceOnPlateauLR",
    "StepLR",
]


class LRSchedulerMixin(ParamScheduler):
    """Fixes ``param_name`` to ``"lr"``; put it first among the bases of a scheduler class.

    Args:
        optimizer: The optimizer or optimizer wrapper.
        *args: The remaining positional arguments of the scheduler (after ``param_name``).
        **kwargs: Its keyword arguments.

    Raises:
        TypeError: ``param_name`` is passed.
    """

    def __init__(self, optimizer: OptimizerLike, *args: Any, **kwargs: Any) -> None:
        if "param_name" in kwargs:
            raise TypeError(
                f"{type(self).__name__} schedules the learning rate; do not pass param_name "
                f"(got param_name={kwargs['param_name']!r})"
            )
        super().__init__(optimizer, "lr", *args, **kwargs)


class ConstantLR(LRSchedulerMixin, ConstantParamScheduler):
    """Multiply the learning rate by a constant ``factor`` from ``begin`` until ``end``.

    :class:`~treadle.core.optim.scheduler.param_scheduler.ConstantParamScheduler` with ``param_name="lr"``;
    it takes the same arguments except ``param_name``.
    """


class CosineAnnealingLR(LRSchedulerMixin, CosineAnnealingParamScheduler):
    """Anneal the learning rate along a cosine to ``eta_min`` (or ``eta_min_ratio`` × initial).

    :class:`~treadle.core.optim.scheduler.param_scheduler.CosineAnnealingParamScheduler` with ``param_name="lr"``;
    it takes the same arguments except ``param_name``.
    """


class CosineRestartLR(LRSchedulerMixin, CosineRestartParamScheduler):
    """Cosine annealing of the learning rate with restarts.

    :class:`~treadle.core.optim.scheduler.param_scheduler.CosineRestartParamScheduler` with ``param_name="lr"``;
    it takes the same arguments except ``param_name``.
    """


class ExponentialLR(LRSchedulerMixin, ExponentialParamScheduler):
    """Multiply the learning rate by ``gamma`` at every step.

    :class:`~treadle.core.optim.scheduler.param_scheduler.ExponentialParamScheduler` with ``param_name="lr"``;
    it takes the same arguments except ``param_name``.
    """


class LinearLR(LRSchedulerMixin, LinearParamScheduler):
    """Scale the learning rate by a factor moving linearly from ``start_factor`` to ``end_factor``.

    :class:`~treadle.core.optim.scheduler.param_scheduler.LinearParamScheduler` with ``param_name="lr"``;
    it takes the same arguments except ``param_name``.
    """


class MultiStepLR(LRSchedulerMixin, MultiStepParamScheduler):
    """Multiply the learning rate by ``gamma`` at every milestone.

    :class:`~treadle.core.optim.scheduler.param_scheduler.MultiStepParamScheduler` with ``param_name="lr"``;
    it takes the same arguments except ``param_name``.
    """


class OneCycleLR(LRSchedulerMixin, OneCycleParamScheduler):
    """The 1cycle learning-rate policy.

    :class:`~treadle.core.optim.scheduler.param_scheduler.OneCycleParamScheduler` with ``param_name="lr"``;
    it takes the same arguments except ``param_name``.
    """


class PolyLR(LRSchedulerMixin, PolyParamScheduler):
    """Decay the learning rate polynomially to ``eta_min``.

    :class:`~treadle.core.optim.scheduler.param_scheduler.PolyParamScheduler` with ``param_name="lr"``;
    it takes the same arguments except ``param_name``.
    """


class ReduceOnPlateauLR(LRSchedulerMixin, ReduceOnPlateauParamScheduler):
    """Reduce the learning rate when a validation metric stops improving.

    :class:`~treadle.core.optim.scheduler.param_scheduler.ReduceOnPlateauParamScheduler` with ``param_name="lr"``;
    it takes the same arguments except ``param_name``.
    """


class StepLR(LRSchedulerMixin, StepParamScheduler):
    """Multiply the learning rate by ``gamma`` every ``step_size`` steps.

    :class:`~treadle.core.optim.scheduler.param_scheduler.StepParamScheduler` with ``param_name="lr"``;
    it takes the same arguments except ``param_name``.
    """

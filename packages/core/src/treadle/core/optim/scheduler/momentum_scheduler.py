"""Momentum schedulers: the parameter schedulers applied to the momentum.

For SGD-style optimizers they schedule ``param_groups[i]["momentum"]``; for Adam-style ones
(``betas`` in the optimizer's defaults) they keep a ``"momentum"`` entry in every group and copy
it into ``betas[0]`` after each step, as MMEngine does. MMEngine's names and arguments; there is
no OneCycle momentum scheduler (MMEngine has none either).
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
    OptimizerLike,
    ParamScheduler,
    PolyParamScheduler,
    ReduceOnPlateauParamScheduler,
    StepParamScheduler,
    _optimizer_defaults,
    _param_groups,
)

__all__ = [
    "ConstantMomentum",
    "CosineAnnealingMomentum",
    "CosineRestartMomentum",
    "ExponentialMomentum",
    "LinearMomentum",
    "MomentumSchedulerMixin",
    "MultiStepMomentum",
    "PolyMomentum",
    "ReduceOnPlateauMomentum",
    "StepMomentum",
]


class MomentumSchedulerMixin(ParamScheduler):
    """Fixes ``param_name`` to ``"momentum"`` and handles Adam's ``betas``.

    Put it first among the bases of a scheduler class. ``use_betas`` (saved in the state dict,
    as in MMEngine) tells whether the momentum is ``betas[0]``.

    Args:
        optimizer: The optimizer or optimizer wrapper.
        *args: The remaining positional arguments of the scheduler (after ``param_name``).
        **kwargs: Its keyword arguments.

    Raises:
        ValueError: The optimizer has neither ``momentum`` nor ``betas``.
        TypeError: ``param_name`` is passed.
    """

    def __init__(self, optimizer: OptimizerLike, *args: Any, **kwargs: Any) -> None:
        owner = type(self).__name__
        if "param_name" in kwargs:
            raise TypeError(
                f"{owner} schedules the momentum; do not pass param_name "
                f"(got param_name={kwargs['param_name']!r})"
            )
        groups = _param_groups(optimizer, owner)
        defaults = _optimizer_defaults(optimizer)
        self.use_betas = False
        if "momentum" in defaults:
            pass
        elif "betas" in defaults:
            # Adam and friends: the momentum is beta_0; keep a copy to schedule.
            self.use_betas = True
            for group in groups:
                group["momentum"] = group["betas"][0]
        else:
            raise ValueError(
                f"{owner} needs an optimizer with momentum (a 'momentum' or 'betas' "
                f"hyper-parameter), but {type(optimizer).__name__} has neither"
            )
        super().__init__(optimizer, "momentum", *args, **kwargs)

    def _sync_betas(self) -> None:
        """Write the scheduled momentum into ``betas[0]`` (Adam-style optimizers)."""
        if self.use_betas:
            for group in self.optimizer.param_groups:
                group["betas"] = (group["momentum"], group["betas"][1])

    def step(self, *args: Any, **kwargs: Any) -> None:
        """Advance one step (the scheduler's own ``step``, with its arguments), then update
        ``betas`` when the momentum lives there."""
        super().step(*args, **kwargs)
        self._sync_betas()


class ConstantMomentum(MomentumSchedulerMixin, ConstantParamScheduler):
    """Multiply the momentum by a constant ``factor`` from ``begin`` until ``end``.

    :class:`~treadle.core.optim.scheduler.param_scheduler.ConstantParamScheduler` on the momentum
    (``betas[0]`` for Adam-style optimizers); same arguments except ``param_name``.
    """


class CosineAnnealingMomentum(MomentumSchedulerMixin, CosineAnnealingParamScheduler):
    """Anneal the momentum along a cosine to ``eta_min`` (or ``eta_min_ratio`` × initial).

    :class:`~treadle.core.optim.scheduler.param_scheduler.CosineAnnealingParamScheduler` on the momentum
    (``betas[0]`` for Adam-style optimizers); same arguments except ``param_name``.
    """


class CosineRestartMomentum(MomentumSchedulerMixin, CosineRestartParamScheduler):
    """Cosine annealing of the momentum with restarts.

    :class:`~treadle.core.optim.scheduler.param_scheduler.CosineRestartParamScheduler` on the momentum
    (``betas[0]`` for Adam-style optimizers); same arguments except ``param_name``.
    """


class ExponentialMomentum(MomentumSchedulerMixin, ExponentialParamScheduler):
    """Multiply the momentum by ``gamma`` at every step.

    :class:`~treadle.core.optim.scheduler.param_scheduler.ExponentialParamScheduler` on the momentum
    (``betas[0]`` for Adam-style optimizers); same arguments except ``param_name``.
    """


class LinearMomentum(MomentumSchedulerMixin, LinearParamScheduler):
    """Scale the momentum by a factor moving linearly from ``start_factor`` to ``end_factor``.

    :class:`~treadle.core.optim.scheduler.param_scheduler.LinearParamScheduler` on the momentum
    (``betas[0]`` for Adam-style optimizers); same arguments except ``param_name``.
    """


class MultiStepMomentum(MomentumSchedulerMixin, MultiStepParamScheduler):
    """Multiply the momentum by ``gamma`` at every milestone.

    :class:`~treadle.core.optim.scheduler.param_scheduler.MultiStepParamScheduler` on the momentum
    (``betas[0]`` for Adam-style optimizers); same arguments except ``param_name``.
    """


class PolyMomentum(MomentumSchedulerMixin, PolyParamScheduler):
    """Decay the momentum polynomially to ``eta_min``.

    :class:`~treadle.core.optim.scheduler.param_scheduler.PolyParamScheduler` on the momentum
    (``betas[0]`` for Adam-style optimizers); same arguments except ``param_name``.
    """


class StepMomentum(MomentumSchedulerMixin, StepParamScheduler):
    """Multiply the momentum by ``gamma`` every ``step_size`` steps.

    :class:`~treadle.core.optim.scheduler.param_scheduler.StepParamScheduler` on the momentum
    (``betas[0]`` for Adam-style optimizers); same arguments except ``param_name``.
    """


class ReduceOnPlateauMomentum(MomentumSchedulerMixin, ReduceOnPlateauParamScheduler):
    """Reduce the momentum when a validation metric stops improving.

    :class:`~treadle.core.optim.scheduler.param_scheduler.ReduceOnPlateauParamScheduler` on the
    momentum (``betas[0]`` for Adam-style optimizers); same arguments except ``param_name``.
    """

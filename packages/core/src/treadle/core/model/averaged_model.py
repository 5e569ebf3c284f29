"""Averaged copies of a model: EMA and SWA (MMEngine's ``mmengine.model.averaged_model``).

The averaged model keeps a frozen deep copy of the model in ``module`` and a ``steps`` buffer,
so its state dict is ``{"steps": ..., "module.<name>": ...}``, MMEngine's layout (the
``ema_state_dict`` of a checkpoint). Averaging is in place.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from copy import deepcopy
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from treadle.core.logging import print_log

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "BaseAveragedModel",
    "ExponentialMovingAverage",
    "MomentumAnnealingEMA",
    "StochasticWeightAverage",
]


class BaseAveragedModel(nn.Module):
    """Base of the weight-averaging models; subclasses implement :meth:`avg_func`.

    :meth:`update_parameters` copies the source model's weights on its first call, then, on
    every call where ``steps % interval == 0``, folds them into the average with
    :meth:`avg_func` (floating-point tensors only). Without ``update_buffers`` the buffers
    (BatchNorm statistics, …) are copied from the source on every call instead of averaged.

    Args:
        model: The model to average (deep-copied, with ``requires_grad`` off).
        interval: Average every ``interval`` calls of :meth:`update_parameters`.
        device: Keep the averaged copy on this device (``steps`` always stays on the CPU).
        update_buffers: Average the buffers too (through the state dict).

    Raises:
        ValueError: ``interval`` is not a positive integer.
    """

    steps: Tensor

    def __init__(
        self,
        model: nn.Module,
        interval: int = 1,
        device: torch.device | str | None = None,
        update_buffers: bool = False,
    ) -> None:
        super().__init__()
        if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
            raise ValueError(f"interval must be a positive integer, but got {interval!r}")
        self.module = deepcopy(model).requires_grad_(False)
        self.interval = interval
        if device is not None:
            self.module = self.module.to(device)
        # `steps` stays on the CPU (see _apply), wherever the averaged copy lives: reading it
        # for every update needs no device-to-host sync, and it is the only count there is.
        self.register_buffer("steps", torch.tensor(0, dtype=torch.long, device="cpu"))
        self.update_buffers = update_buffers
        self._refresh_avg_parameters()

    def _refresh_avg_parameters(self) -> None:
        self.avg_parameters: dict[str, Tensor] = (
            self.module.state_dict()
            if self.update_buffers
            else dict(self.module.named_parameters())
        )

    def _apply(
        self, fn: Callable[[Tensor], Tensor], *args: Any, **kwargs: Any
    ) -> BaseAveragedModel:
        # .to()/.cuda() may replace buffer tensors; keep avg_parameters pointing at the live ones.
        super()._apply(fn, *args, **kwargs)  # type: ignore[no-untyped-call]
        steps = self._buffers.get("steps")
        if steps is not None and steps.device.type not in ("cpu", "meta"):
            self._buffers["steps"] = steps.cpu()  # pinned to the CPU (see __init__)
        if hasattr(self, "avg_parameters"):
            self._refresh_avg_parameters()
        return self

    @abstractmethod
    def avg_func(self, averaged_param: Tensor, source_param: Tensor, steps: int) -> None:
        """Fold ``source_param`` into ``averaged_param`` in place.

        Args:
            averaged_param: The running average.
            source_param: The current value, on ``averaged_param``'s device.
            steps: How many times :meth:`update_parameters` ran before this call.
        """

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Run the averaged model."""
        return self.module(*args, **kwargs)

    def update_parameters(self, model: nn.Module) -> None:
        """Average ``model``'s current weights into this model (see the class docstring).

        Args:
            model: The model being trained, with the same structure as the averaged one.
        """
        source = model.state_dict() if self.update_buffers else dict(model.named_parameters())
        steps = int(self.steps)
        if steps == 0:
            for name, avg in self.avg_parameters.items():
                avg.data.copy_(source[name].data)
        elif steps % self.interval == 0:
            for name, avg in self.avg_parameters.items():
                if avg.dtype.is_floating_point:
                    self.avg_func(avg.data, source[name].data.to(avg.device), steps)
        if not self.update_buffers:
            # Buffers are not averaged: keep them equal to the source model's.
            for avg_buf, src_buf in zip(self.module.buffers(), model.buffers(), strict=True):
                avg_buf.data.copy_(src_buf.data.to(avg_buf.device))
        self.steps += 1


class StochasticWeightAverage(BaseAveragedModel):
    """Stochastic weight averaging (Izmailov et al., 2018): the plain mean of the weights seen
    at every ``interval``-th update.

    Args: see :class:`BaseAveragedModel`.
    """

    def avg_func(self, averaged_param: Tensor, source_param: Tensor, steps: int) -> None:
        """``avg += (src - avg) / (steps // interval + 1)``."""
        averaged_param.add_(
            source_param - averaged_param, alpha=1 / float(steps // self.interval + 1)
        )


class ExponentialMovingAverage(BaseAveragedModel):
    r"""Exponential moving average of the weights.

    ``ema = (1 - momentum) * ema + momentum * param``. Note that ``momentum`` is the weight of
    the *new* value (usually small), unlike an optimizer's momentum.

    Args:
        model: The model to average.
        momentum: Weight of the new value, in (0, 1).
        interval: Average every ``interval`` updates.
        device: Keep the averaged copy on this device.
        update_buffers: Average the buffers too.

    Raises:
        ValueError: ``momentum`` is not in (0, 1).
    """

    def __init__(
        self,
        model: nn.Module,
        momentum: float = 0.0002,
        interval: int = 1,
        device: torch.device | str | None = None,
        update_buffers: bool = False,
    ) -> None:
        super().__init__(model, interval, device, update_buffers)
        if not 0.0 < momentum < 1.0:
            raise ValueError(f"momentum must be in range (0.0, 1.0), but got {momentum}")
        if momentum > 0.5:
            print_log(
                "The value of momentum in EMA is usually a small number, which is different from "
                f"the conventional notion of momentum, but got {momentum}. Please make sure the "
                "value is correct.",
                logger="current",
                level=logging.WARNING,
            )
        self.momentum = momentum

    def avg_func(self, averaged_param: Tensor, source_param: Tensor, steps: int) -> None:
        """``ema.lerp_(param, momentum)``."""
        averaged_param.lerp_(source_param, self.momentum)


class MomentumAnnealingEMA(ExponentialMovingAverage):
    """EMA whose momentum starts large and anneals to ``momentum``.

    The momentum used at step ``t`` is ``max(momentum, gamma / (gamma + t))``, so early updates
    follow the model closely.

    Args:
        model: The model to average.
        momentum: The final (smallest) momentum.
        gamma: Annealing speed, > 0.
        interval: Average every ``interval`` updates.
        device: Keep the averaged copy on this device.
        update_buffers: Average the buffers too.

    Raises:
        ValueError: ``gamma`` is not positive.
    """

    def __init__(
        self,
        model: nn.Module,
        momentum: float = 0.0002,
        gamma: int = 100,
        interval: int = 1,
        device: torch.device | str | None = None,
        update_buffers: bool = False,
    ) -> None:
        super().__init__(
            model=model,
            momentum=momentum,
            interval=interval,
            device=device,
            update_buffers=update_buffers,
        )
        if gamma <= 0:
            raise ValueError(f"gamma must be greater than 0, but got {gamma}")
        self.gamma = gamma

    def avg_func(self, averaged_param: Tensor, source_param: Tensor, steps: int) -> None:
        """``ema.lerp_(param, max(momentum, gamma / (gamma + steps)))``."""
        momentum = max(self.momentum, self.gamma / (self.gamma + steps))
        averaged_param.lerp_(source_param, momentum)

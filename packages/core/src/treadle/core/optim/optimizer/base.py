"""The optimizer wrapper interface: :class:`BaseOptimWrapper`.

An optimizer wrapper owns a ``torch.optim.Optimizer`` and gives the training loop one way to
update parameters, whatever the precision or the number of optimizers. The state shared by every
wrapper lives here: the optimizer, MMEngine's ``base_param_settings`` (see below), the state dict
and the learning rate / momentum read-outs that the parameter schedulers and the logger use.
"""

from __future__ import annotations

import operator
from abc import ABCMeta, abstractmethod
from typing import TYPE_CHECKING, Any

import torch

from treadle.core.utils.overrides import keeps_methods

if TYPE_CHECKING:
    from torch.optim import Optimizer

__all__ = ["BaseOptimWrapper"]

_LR = operator.itemgetter("lr")


class BaseOptimWrapper(metaclass=ABCMeta):
    """What every optimizer wrapper provides.

    When the optimizer has more than one parameter group, the wrapper keeps one extra group,
    ``base_param_settings``: the optimizer's defaults with a dummy parameter. It is appended to
    :attr:`param_groups`, so parameter schedulers update it like the real groups, and it gives
    the logger a ``base_lr`` that does not depend on per-group multipliers. It is saved in the
    state dict under ``"base_param_settings"``, exactly as MMEngine does, so checkpoints
    interoperate.

    Args:
        optimizer: The optimizer to wrap.

    Attributes:
        optimizer: The wrapped optimizer.
        base_param_settings: The extra group described above, or ``None`` with a single group.
    """

    #: Whether the class keeps :meth:`get_lr` (set per subclass): RuntimeInfoHook then reads the
    #: first group's rate, what ``get_lr()["lr"][0]`` gives, without building the dict each
    #: iteration.
    _plain_get_lr: bool = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._plain_get_lr = keeps_methods(cls, BaseOptimWrapper, ("get_lr",))

    def __init__(self, optimizer: Optimizer) -> None:
        self.optimizer = optimizer
        self.base_param_settings: dict[str, Any] | None
        if len(optimizer.param_groups) > 1:
            self.base_param_settings = {"params": torch.tensor([0.0], dtype=torch.float)}
            self.base_param_settings.update(**optimizer.defaults)
        else:
            self.base_param_settings = None

    @abstractmethod
    def update_params(self, *args: Any, **kwargs: Any) -> None:
        """Update the parameters of :attr:`optimizer` (backward, step, zero_grad)."""

    @abstractmethod
    def backward(self, loss: torch.Tensor, **kwargs: Any) -> None:
        """Back-propagate ``loss``."""

    @abstractmethod
    def zero_grad(self, **kwargs: Any) -> None:
        """Reset the gradients, as ``Optimizer.zero_grad``."""

    @abstractmethod
    def step(self, **kwargs: Any) -> None:
        """Update the parameters from their gradients, as ``Optimizer.step``."""

    def state_dict(self) -> dict[str, Any]:
        """The optimizer's state dict, plus ``base_param_settings`` when there is one.

        Returns:
            A dict loadable by :meth:`load_state_dict` (and by MMEngine's wrappers).
        """
        state_dict: dict[str, Any] = self.optimizer.state_dict()
        if self.base_param_settings is not None:
            state_dict["base_param_settings"] = self.base_param_settings
        return state_dict

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict made by :meth:`state_dict` (or by MMEngine).

        The dict passed in is not modified.

        Args:
            state_dict: The optimizer's state dict, optionally with ``base_param_settings``.
        """
        state_dict = dict(state_dict)
        base_param_settings = state_dict.pop("base_param_settings", None)
        if base_param_settings is not None:
            self.base_param_settings = base_param_settings
        self.optimizer.load_state_dict(state_dict)

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        """The optimizer's parameter groups, plus ``base_param_settings`` when there is one.

        Parameter schedulers take the wrapper as their optimizer and update these groups.
        """
        if self.base_param_settings is not None:
            return [*self.optimizer.param_groups, self.base_param_settings]
        return self.optimizer.param_groups

    @property
    def defaults(self) -> dict[str, Any]:
        """The optimizer's defaults (``Optimizer.defaults``)."""
        return self.optimizer.defaults

    def get_lr(self) -> dict[str, list[float]]:
        """The learning rate of every parameter group.

        Returns:
            ``{"lr": [...]}`` with one value per optimizer group, plus ``"base_lr"`` (one value)
            when there is a ``base_param_settings`` group.
        """
        result: dict[str, list[float]] = {}
        if self.base_param_settings is not None:
            result["base_lr"] = [self.base_param_settings["lr"]]
        result["lr"] = list(map(_LR, self.optimizer.param_groups))
        return result

    def get_momentum(self) -> dict[str, list[float]]:
        """The momentum of every parameter group.

        ``momentum`` for SGD-like optimizers, ``betas[0]`` for Adam-like ones, ``0`` otherwise.

        Returns:
            ``{"momentum": [...]}`` with one value per optimizer group.
        """
        momentum: list[float] = []
        for group in self.optimizer.param_groups:
            if "momentum" in group:
                momentum.append(group["momentum"])
            elif "betas" in group:
                momentum.append(group["betas"][0])
            else:
                momentum.append(0)
        return {"momentum": momentum}

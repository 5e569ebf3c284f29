"""The single-precision optimizer wrapper: :class:`OptimWrapper`.

``OptimWrapper`` is MMEngine's wrapper with MMEngine's names, arguments and state dict, minus the
per-iteration host synchronisations: the gradient norm stays a tensor on the device
(:attr:`OptimWrapper.last_grad_norm`, :meth:`OptimWrapper.get_grad_norm`) until the logger asks
for it.

The update rule of one :meth:`~OptimWrapper.update_params` call::

    loss = loss / loss_factor          # scale_loss: 1, accumulative_counts, or the tail remainder
    loss.backward()                    # backward: inner_count += 1
    if should_update():                # inner_count % accumulative_counts == 0 or == max_counts
        clip gradients (clip_grad)     # step
        optimizer.step()
        optimizer.zero_grad()
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any

import torch

from treadle.core.logging import print_log
from treadle.core.optim.optimizer.base import BaseOptimWrapper
from treadle.core.utils.overrides import keeps_methods

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractContextManager

    from torch import nn
    from torch.optim import Optimizer

__all__ = ["OptimWrapper"]

_CLIP_TYPES = ("norm", "value")


_NULL_CONTEXT = contextlib.nullcontext()


def _has_batch_norm(model: nn.Module) -> bool:
    from torch.nn.modules.batchnorm import _BatchNorm

    return any(isinstance(module, _BatchNorm) for module in model.modules())


class OptimWrapper(BaseOptimWrapper):
    """Updates parameters: loss scaling for gradient accumulation, gradient clipping, one step.

    Used directly for full-precision training; :class:`AmpOptimWrapper` adds mixed precision.

    Gradient accumulation: with ``accumulative_counts=n`` the parameters are updated every ``n``
    calls of :meth:`update_params` and each loss is divided by ``n``, so the accumulated
    gradient is the mean over the ``n`` iterations. After
    :meth:`initialize_count_status` has told the wrapper the total number of iterations
    (``max_counts``), the last ``max_counts % n`` iterations, which cannot fill a whole group,
    divide by that remainder instead and the last iteration always updates. Without it every loss
    is divided by ``n``.

    Args:
        optimizer: The optimizer that updates the model's parameters.
        accumulative_counts: Number of iterations whose gradients are accumulated before one
            update. Defaults to 1.
        clip_grad: Gradient clipping, ``None`` for none. A dict with ``type`` (``"norm"``, the
            default, or ``"value"``) and the keyword arguments of
            :func:`torch.nn.utils.clip_grad_norm_` (``max_norm``, ``norm_type``,
            ``error_if_nonfinite``, ``foreach``) or :func:`torch.nn.utils.clip_grad_value_`
            (``clip_value``, ``foreach``). The dict passed in is not modified.

    Attributes:
        clip_grad_kwargs: The clipping arguments without ``type`` (``None`` without clipping).
        clip_func: The clipping function (only when clipping).
        grad_name: ``"grad_norm"`` or ``"grad_value"`` (only when clipping).
        last_grad_norm: The total gradient norm measured by the last clip by norm, as a tensor
            on the parameters' device (``None`` until then). Reading it as a number is a host
            sync: do it at logging time only.

    Raises:
        ValueError: ``accumulative_counts`` is not a positive integer, or ``clip_grad`` is
            malformed.

    Example:
        >>> model = torch.nn.Linear(2, 1)
        >>> optim_wrapper = OptimWrapper(
        ...     torch.optim.SGD(model.parameters(), lr=0.1), clip_grad=dict(max_norm=1.0)
        ... )
        >>> with optim_wrapper.optim_context(model):
        ...     loss = model(torch.ones(4, 2)).sum()
        >>> optim_wrapper.update_params(loss)
        >>> sorted(optim_wrapper.get_grad_norm())
        ['grad_norm']
    """

    #: Set by ``NonFiniteLossHook(action='skip')``: skip steps whose loss is not finite.
    skip_nonfinite: bool = False
    #: Whether the class keeps OptimWrapper's own steps of :meth:`update_params` (set per
    #: subclass), so that it may call them inline.
    _plain_update: bool = True
    #: Whether the last :meth:`update_params` skipped its loss (only in ``skip_nonfinite`` mode).
    last_step_skipped: bool = False

    #: Whether the class keeps OptimWrapper's :meth:`optim_context` and :meth:`should_sync` (set
    #: per subclass).
    _plain_context: bool = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._plain_update = keeps_methods(
            cls, OptimWrapper, ("scale_loss", "backward", "should_update", "step", "zero_grad")
        )
        cls._plain_context = keeps_methods(cls, OptimWrapper, ("optim_context", "should_sync"))

    def __init__(
        self,
        optimizer: Optimizer,
        accumulative_counts: int = 1,
        clip_grad: dict[str, Any] | None = None,
    ) -> None:
        if (
            isinstance(accumulative_counts, bool)
            or not isinstance(accumulative_counts, int)
            or accumulative_counts < 1
        ):
            raise ValueError(
                f"accumulative_counts must be an integer >= 1, got {accumulative_counts!r}"
            )
        if not (hasattr(optimizer, "param_groups") and hasattr(optimizer, "step")):
            raise TypeError(
                "optimizer must be a torch.optim.Optimizer (something with param_groups and "
                f"step), got {type(optimizer).__name__}; build optimizer configs with "
                "build_optim_wrapper"
            )
        super().__init__(optimizer)
        self._accumulative_counts = accumulative_counts
        #: :meth:`optim_context` is always the shared no-op context (no accumulation, no subclass
        #: context): BaseModel.train_step then does not ask for it every iteration.
        self.no_forward_context = self._plain_context and accumulative_counts == 1

        self.clip_grad_kwargs: dict[str, Any] | None = None
        self.clip_func: Callable[..., torch.Tensor | None]
        self.grad_name: str
        if clip_grad is not None:
            self._init_clip_grad(clip_grad)
        self.last_grad_norm: torch.Tensor | None = None

        self._inner_count = 0
        self._window_bad = False
        # Total number of update_params calls of the run (-1: unknown). When it is not divisible
        # by accumulative_counts, the last `_remainder_counts` iterations divide their loss by the
        # remainder and the last one still updates, so no gradient is lost.
        self._max_counts = -1
        self._remainder_counts = -1

    def _init_clip_grad(self, clip_grad: dict[str, Any]) -> None:
        if not isinstance(clip_grad, dict) or not clip_grad:
            raise ValueError(
                "clip_grad must be None or a non-empty dict of the arguments of "
                "torch.nn.utils.clip_grad_norm_ (type='norm') or clip_grad_value_ "
                f"(type='value'), got {clip_grad!r}"
            )
        kwargs = dict(clip_grad)
        clip_type = kwargs.pop("type", "norm")
        if clip_type == "norm":
            self.clip_func = torch.nn.utils.clip_grad_norm_
            self.grad_name = "grad_norm"
        elif clip_type == "value":
            self.clip_func = torch.nn.utils.clip_grad_value_
            self.grad_name = "grad_value"
        else:
            raise ValueError(f"clip_grad type must be 'norm' or 'value', got {clip_type!r}")
        if not kwargs:
            needed = "max_norm" if clip_type == "norm" else "clip_value"
            raise ValueError(
                f"clip_grad={clip_grad!r} needs arguments besides 'type' (at least {needed!r})"
            )
        self.clip_grad_kwargs = kwargs

    # -----------------------------------------------------------------------------------------
    # The update
    # -----------------------------------------------------------------------------------------

    def update_params(
        self,
        loss: torch.Tensor,
        step_kwargs: dict[str, Any] | None = None,
        zero_kwargs: dict[str, Any] | None = None,
    ) -> None:
        """Scale ``loss``, back-propagate it, and update the parameters when it is time to.

        Args:
            loss: The loss of this iteration (a tensor that requires grad).
            step_kwargs: Keyword arguments for ``optimizer.step``.
            zero_kwargs: Keyword arguments for ``optimizer.zero_grad``.

        When :attr:`skip_nonfinite` is set (by ``NonFiniteLossHook(action='skip')``), a
        non-finite ``loss`` is not back-propagated, and the accumulation window holding it ends
        with ``zero_grad`` instead of a step. That check is a host sync, made only in that mode.
        """
        if self._accumulative_counts == 1 and not self.skip_nonfinite and self._plain_update:
            # What the general path below does without accumulation, minus its method calls.
            loss.backward()  # type: ignore[no-untyped-call]
            self._inner_count += 1
            if self.clip_grad_kwargs:
                self._clip_grad()
            if step_kwargs:
                self.optimizer.step(**step_kwargs)
            else:
                self.optimizer.step()
            if zero_kwargs:
                self.optimizer.zero_grad(**zero_kwargs)
            else:
                self.optimizer.zero_grad()
            return
        if self.skip_nonfinite:
            self.last_step_skipped = not bool(torch.isfinite(loss).all())
            if self.last_step_skipped:
                self._window_bad = True
                self._inner_count += 1  # keep accumulation in step with the data
                if self.should_update():
                    self._end_window(zero_kwargs)
                return
        loss = self.scale_loss(loss)
        self.backward(loss)
        if self.should_update():
            if self._window_bad:
                self._end_window(zero_kwargs)
                return
            self.step(**(step_kwargs or {}))
            self.zero_grad(**(zero_kwargs or {}))

    def _end_window(self, zero_kwargs: dict[str, Any] | None) -> None:
        """Drop an accumulation window that held a non-finite loss: no step."""
        self.zero_grad(**(zero_kwargs or {}))
        self._window_bad = False

    def backward(self, loss: torch.Tensor, **kwargs: Any) -> None:
        """Back-propagate ``loss`` and count the iteration.

        Subclasses that override it must increment ``_inner_count`` too.

        Args:
            loss: The (already scaled) loss.
            **kwargs: Passed to :meth:`torch.Tensor.backward`.
        """
        loss.backward(**kwargs)  # type: ignore[no-untyped-call]
        self._inner_count += 1

    def zero_grad(self, **kwargs: Any) -> None:
        """Reset the gradients.

        Args:
            **kwargs: Passed to :meth:`torch.optim.Optimizer.zero_grad` (``set_to_none``).
        """
        self.optimizer.zero_grad(**kwargs)

    def step(self, **kwargs: Any) -> None:
        """Clip the gradients (when ``clip_grad`` is set), then step the optimizer.

        Args:
            **kwargs: Passed to :meth:`torch.optim.Optimizer.step` (``closure``).
        """
        if self.clip_grad_kwargs:
            self._clip_grad()
        self.optimizer.step(**kwargs)

    def _clip_grad(self) -> None:
        """Clip the gradients of the parameters that have one; keep the norm as a tensor."""
        params = [
            param
            for group in self.optimizer.param_groups
            for param in group["params"]
            if param.requires_grad and param.grad is not None
        ]
        if params:
            assert self.clip_grad_kwargs is not None
            grad = self.clip_func(params, **self.clip_grad_kwargs)
            # clip_grad_value_ returns None; clip_grad_norm_ the total norm (no sync here).
            if grad is not None:
                self.last_grad_norm = grad.detach()

    def get_grad_norm(self) -> dict[str, torch.Tensor]:
        """The gradient norm measured by the last clip by norm, for the logger.

        The value is a tensor on the parameters' device; turning it into a number is a host
        sync, meant for logging intervals (MMEngine logs it as ``train/grad_norm``).

        Returns:
            ``{"grad_norm": tensor}``, or ``{}`` before the first clip by norm (or without one).
        """
        if self.last_grad_norm is None:
            return {}
        return {"grad_norm": self.last_grad_norm}

    # -----------------------------------------------------------------------------------------
    # Gradient accumulation
    # -----------------------------------------------------------------------------------------

    def optim_context(self, model: nn.Module) -> AbstractContextManager[Any]:
        """The context for the forward pass of one iteration.

        During gradient accumulation it skips gradient synchronisation on the iterations that do
        not update, through the model's ``no_sync()`` (DistributedDataParallel and any model that
        has one). Subclasses add their own context (autocast in :class:`AmpOptimWrapper`).
        Otherwise it is a shared no-op context: nothing is built per iteration.

        Args:
            model: The model being trained.
        """
        # type(model) lookup: nn.Module.__getattr__ would raise and catch for a missing name.
        no_sync: Callable[[], AbstractContextManager[Any]] | None = getattr(
            type(model), "no_sync", None
        )
        if no_sync is not None and not self.should_sync():
            context: AbstractContextManager[Any] = no_sync(model)  # type: ignore[call-arg]
            return context
        return _NULL_CONTEXT

    def initialize_count_status(self, model: nn.Module, init_counts: int, max_counts: int) -> None:
        """Tell the wrapper where the run starts and how many iterations it has.

        Without it a run whose length is not a multiple of ``accumulative_counts`` would lose
        the gradients of its last iterations; with it they are averaged over the remainder and
        applied at the last iteration.

        Args:
            model: The model being trained (checked for BatchNorm, which accumulation affects).
            init_counts: The iteration the run starts (or resumes) at.
            max_counts: The total number of iterations of the run.

        Raises:
            ValueError: ``init_counts`` or ``max_counts`` is negative, or ``init_counts`` is
                larger than ``max_counts``.
        """
        if init_counts < 0 or max_counts < 0 or init_counts > max_counts:
            raise ValueError(
                "initialize_count_status needs 0 <= init_counts <= max_counts, got "
                f"init_counts={init_counts}, max_counts={max_counts}"
            )
        self._inner_count = init_counts
        self._max_counts = max_counts
        if self._inner_count % self._accumulative_counts != 0:
            print_log(
                f"Resumed iteration {init_counts} is not divisible by accumulative_counts="
                f"{self._accumulative_counts}: the gradients accumulated before the "
                "interruption are lost, which may influence the result slightly.",
                logger="current",
                level=logging.WARNING,
            )
        if self._accumulative_counts > 1 and _has_batch_norm(model):
            print_log(
                "Gradient accumulation may slightly decrease performance because the model has "
                "BatchNorm layers (their statistics see one batch at a time).",
                logger="current",
                level=logging.WARNING,
            )
        self._remainder_counts = self._max_counts % self._accumulative_counts

    def should_update(self) -> bool:
        """Whether the iteration just back-propagated should update the parameters.

        Returns:
            True every ``accumulative_counts`` iterations and at the last one (``max_counts``).
        """
        return (
            self._inner_count % self._accumulative_counts == 0
            or self._inner_count == self._max_counts
        )

    def should_sync(self) -> bool:
        """Whether the coming iteration should synchronise gradients across processes.

        Called by :meth:`optim_context`, before :meth:`backward` counts the iteration, hence the
        ``+ 1``.

        Returns:
            True when the coming iteration will update the parameters.
        """
        return (self._inner_count + 1) % self._accumulative_counts == 0 or (
            self._inner_count + 1
        ) == self._max_counts

    def scale_loss(self, loss: torch.Tensor) -> torch.Tensor:
        """Divide ``loss`` by the number of iterations accumulated into the coming update.

        That is ``accumulative_counts``, except for the last ``max_counts % accumulative_counts``
        iterations of a run, which divide by that remainder. Without accumulation ``loss`` is
        returned as is (no division kernel).

        Args:
            loss: The loss of this iteration.

        Returns:
            The scaled loss.

        Raises:
            RuntimeError: When called more than ``max_counts`` times.
        """
        if self._accumulative_counts == 1:
            return loss
        if self._max_counts == -1 or (
            self._inner_count < self._max_counts - self._remainder_counts
        ):
            return loss / self._accumulative_counts
        if self._remainder_counts == 0:
            raise RuntimeError(
                f"update_params was called for iteration {self._inner_count + 1}, beyond "
                f"max_counts={self._max_counts} given to initialize_count_status"
            )
        return loss / self._remainder_counts

    @property
    def inner_count(self) -> int:
        """The number of iterations back-propagated so far."""
        return self._inner_count

    def __repr__(self) -> str:
        return (
            f"Type: {type(self).__name__}\n"
            f"_accumulative_counts: {self._accumulative_counts}\n"
            f"optimizer: \n{self.optimizer!r}\n"
        )

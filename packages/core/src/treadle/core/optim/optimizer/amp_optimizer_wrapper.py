"""Mixed-precision training: :class:`AmpOptimWrapper`.

``optim_context`` enters :func:`torch.autocast` for the forward pass; float16 training scales the
loss with a :class:`torch.amp.GradScaler` so that small gradients survive. Where MMEngine
requires a CUDA (NPU, MLU, MUSA) device, this wrapper also runs bfloat16 autocast on CPU, where no
scaler is needed.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import torch

from treadle.core.logging import print_log
from treadle.core.optim.optimizer.optimizer_wrapper import OptimWrapper

if TYPE_CHECKING:
    from collections.abc import Iterator

    from torch import nn
    from torch.optim import Optimizer

__all__ = ["AmpOptimWrapper"]


def _params_device_type(optimizer: Optimizer) -> str:
    for group in optimizer.param_groups:
        for param in group["params"]:
            return str(param.device.type)
    return "cpu"


class AmpOptimWrapper(OptimWrapper):
    """An :class:`OptimWrapper` for automatic mixed precision.

    The forward pass runs under ``torch.autocast(device_type, dtype)`` inside
    :meth:`optim_context`. With float16 the loss is multiplied by a
    :class:`torch.amp.GradScaler` before ``backward`` and the gradients are unscaled before
    clipping and stepping (a step whose gradients overflowed is skipped, and the scale adapts).
    bfloat16 has float32's range and needs no scaler.

    The device is that of the optimizer's parameters, so build the wrapper after moving the model
    (the Runner does), or pass ``device_type``.

    What ``dtype`` gives:

    - ``None``: the device's default autocast type, float16 on CUDA, bfloat16 on CPU;
    - ``"float16"``: autocast with a GradScaler; an error on CPU (use bfloat16 there);
    - ``"bfloat16"``: autocast without a scaler, on CUDA and CPU alike (MMEngine keeps a
      scaler for bfloat16 on CUDA, where it does nothing useful and costs a host sync per step);
    - ``"float32"`` / ``"float64"``: autocast disabled, no scaler (accepted for MMEngine
      configs).

    Args:
        loss_scale: The loss scaling of float16 training:

            - ``"dynamic"``: a GradScaler with its default (adaptive) settings;
            - a number: a fixed scale (``init_scale``, reset after every step);
            - a dict: the GradScaler's keyword arguments (``init_scale``, ``growth_factor``,
              ``backoff_factor``, ``growth_interval``).

            Unused (but still checked) when no scaler is needed.
        dtype: ``"float16"``, ``"bfloat16"``, ``"float32"``, ``"float64"``, a ``torch.dtype``,
            or ``None`` for the device's default autocast type (see above).
        use_fsdp: Use FSDP's ``ShardedGradScaler`` (for models sharded with FSDP).
        optimizer: The optimizer (keyword).
        accumulative_counts: See :class:`OptimWrapper`.
        clip_grad: See :class:`OptimWrapper`.
        device_type: ``"cuda"``, ``"cpu"``, …; by default the device type of the optimizer's
            first parameter (``"cpu"`` without parameters).

    Attributes:
        cast_dtype: The autocast dtype.
        device_type: The autocast device type.
        loss_scaler: The GradScaler, or ``None`` when training needs none.

    Raises:
        ValueError: ``dtype`` is unknown, or float16 was asked for on CPU.
        TypeError: ``loss_scale`` is neither ``"dynamic"``, a number nor a dict.
    """

    valid_dtypes = ("float16", "bfloat16", "float32", "float64")

    def __init__(
        self,
        loss_scale: str | float | dict[str, Any] = "dynamic",
        dtype: str | torch.dtype | None = None,
        use_fsdp: bool = False,
        *,
        optimizer: Optimizer,
        accumulative_counts: int = 1,
        clip_grad: dict[str, Any] | None = None,
        device_type: str | None = None,
    ) -> None:
        super().__init__(optimizer, accumulative_counts=accumulative_counts, clip_grad=clip_grad)
        self.device_type = device_type or _params_device_type(optimizer)
        self.cast_dtype = self._resolve_dtype(dtype)
        self._autocast_enabled = self.cast_dtype in (torch.float16, torch.bfloat16)
        scaler_kwargs, self._scale_update_param = self._scaler_settings(loss_scale)

        self.loss_scaler: torch.amp.GradScaler | None = None
        if self.cast_dtype == torch.float16:
            if use_fsdp:
                from torch.distributed.fsdp.sharded_grad_scaler import ShardedGradScaler

                self.loss_scaler = ShardedGradScaler(self.device_type, **scaler_kwargs)
            else:
                self.loss_scaler = torch.amp.GradScaler(self.device_type, **scaler_kwargs)

    def _resolve_dtype(self, dtype: str | torch.dtype | None) -> torch.dtype:
        if isinstance(dtype, str):
            if dtype not in self.valid_dtypes:
                raise ValueError(
                    f"AmpOptimWrapper dtype must be one of {self.valid_dtypes}, a torch.dtype or "
                    f"None, got {dtype!r}"
                )
            resolved: torch.dtype = getattr(torch, dtype)
        elif dtype is None:
            if self.device_type == "cpu":
                resolved = torch.bfloat16
            else:
                resolved = torch.get_autocast_dtype(self.device_type)
        elif isinstance(dtype, torch.dtype):
            resolved = dtype
        else:
            raise ValueError(
                f"AmpOptimWrapper dtype must be one of {self.valid_dtypes}, a torch.dtype or "
                f"None, got {type(dtype).__name__} {dtype!r}"
            )
        if resolved not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
            raise ValueError(f"AmpOptimWrapper dtype {resolved} is not a floating point type")
        if resolved == torch.float16 and self.device_type == "cpu":
            raise ValueError(
                "AmpOptimWrapper(dtype='float16') needs a CUDA device (with a GradScaler), but "
                "the parameters are on the CPU; use dtype='bfloat16' for mixed precision on CPU"
            )
        return resolved

    @staticmethod
    def _scaler_settings(
        loss_scale: str | float | dict[str, Any],
    ) -> tuple[dict[str, Any], float | None]:
        if loss_scale == "dynamic":
            return {}, None
        if isinstance(loss_scale, (int, float)) and not isinstance(loss_scale, bool):
            if loss_scale <= 0:
                raise ValueError(f"loss_scale must be positive, got {loss_scale}")
            return {"init_scale": float(loss_scale)}, float(loss_scale)
        if isinstance(loss_scale, dict):
            return dict(loss_scale), None
        raise TypeError(
            f"loss_scale must be 'dynamic', a number or a dict of GradScaler arguments, got "
            f"{loss_scale!r}"
        )

    def backward(self, loss: torch.Tensor, **kwargs: Any) -> None:
        """Back-propagate ``loss`` (multiplied by the loss scale with float16).

        Args:
            loss: The (already accumulation-scaled) loss.
            **kwargs: Passed to :meth:`torch.Tensor.backward`.
        """
        if self.loss_scaler is not None:
            loss = self.loss_scaler.scale(loss)
        loss.backward(**kwargs)  # type: ignore[no-untyped-call]
        self._inner_count += 1

    def step(self, **kwargs: Any) -> None:
        """Unscale and clip the gradients, step (skipped on overflow), update the scale.

        Args:
            **kwargs: Passed to :meth:`torch.optim.Optimizer.step`.
        """
        if self.loss_scaler is None:
            super().step(**kwargs)
            return
        if self.clip_grad_kwargs:
            self.loss_scaler.unscale_(self.optimizer)
            self._clip_grad()
        self.loss_scaler.step(self.optimizer, **kwargs)
        self.loss_scaler.update(self._scale_update_param)

    def state_dict(self) -> dict[str, Any]:
        """The optimizer's state dict, plus ``"loss_scaler"`` when there is a scaler.

        Returns:
            A dict loadable by :meth:`load_state_dict` and by MMEngine's AmpOptimWrapper.
        """
        state_dict = super().state_dict()
        if self.loss_scaler is not None:
            state_dict["loss_scaler"] = self.loss_scaler.state_dict()
        return state_dict

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict made by :meth:`state_dict` (or by MMEngine's AmpOptimWrapper).

        A ``"loss_scaler"`` entry is loaded into the scaler; without a scaler (bfloat16) it is
        ignored. The dict passed in is not modified.

        Args:
            state_dict: The optimizer's state dict with optional ``"loss_scaler"`` and
                ``"base_param_settings"`` entries.
        """
        state_dict = dict(state_dict)
        scaler_state = state_dict.pop("loss_scaler", None)
        if scaler_state is not None:
            if self.loss_scaler is not None:
                self.loss_scaler.load_state_dict(scaler_state)
            else:
                print_log(
                    f"AmpOptimWrapper: ignoring the saved loss_scaler state ({self.cast_dtype} "
                    "training uses no loss scaling)",
                    logger="current",
                    level=logging.DEBUG,
                )
        super().load_state_dict(state_dict)

    @contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        """Autocast (plus the gradient accumulation context of :class:`OptimWrapper`).

        Args:
            model: The model being trained.
        """
        with (
            super().optim_context(model),
            torch.autocast(self.device_type, dtype=self.cast_dtype, enabled=self._autocast_enabled),
        ):
            yield

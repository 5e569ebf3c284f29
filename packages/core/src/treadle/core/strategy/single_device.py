"""One process, one device: CPU, a CUDA GPU or Apple's MPS."""

from __future__ import annotations

from typing import TYPE_CHECKING

from treadle.core.strategy.base import Strategy

if TYPE_CHECKING:
    import torch
    from torch import nn


def default_device() -> str:
    """``cuda`` when a GPU is visible, else ``mps`` when available, else ``cpu``."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


class SingleDeviceStrategy(Strategy):
    """Run on one device in one process.

    Args:
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` or a :class:`torch.device`;
            the best available one when ``None``.
    """

    def __init__(self, device: str | torch.device | None = None) -> None:
        import torch

        try:
            self._device = torch.device(device if device is not None else default_device())
        except RuntimeError as exc:
            raise ValueError(f"SingleDeviceStrategy: invalid device {device!r}: {exc}") from exc
        if self._device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(
                f"SingleDeviceStrategy: device {device!r} asked for, but torch sees no CUDA "
                "device; use device='cpu'"
            )

    @property
    def device(self) -> torch.device:
        """The device the model and the batches go to."""
        return self._device

    def prepare_model(self, model: nn.Module) -> nn.Module:
        """Move ``model`` to the device."""
        return model.to(self._device)

    def __repr__(self) -> str:
        return f"SingleDeviceStrategy(device={str(self._device)!r})"

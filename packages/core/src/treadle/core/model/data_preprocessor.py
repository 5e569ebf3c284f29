"""Data preprocessors: the first step of ``BaseModel.train_step``/``val_step``/``test_step``.

:class:`BaseDataPreprocessor` moves a batch to the model's device; :class:`ImgDataPreprocessor`
also converts channels, normalises, pads and stacks images (MMEngine's
``mmengine.model.base_model.data_preprocessor``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from treadle.core.model.utils import stack_batch

__all__ = ["BaseDataPreprocessor", "ImgDataPreprocessor"]

_Tensor = torch.Tensor
_CPU = torch.device("cpu")


class BaseDataPreprocessor(nn.Module):
    """Move a batch to the target device; subclasses add batch-level preprocessing.

    The device follows the module: every move of it or of a module holding it (``.to(device)``,
    ``.cuda()``, ``.cpu()``, ``.to_empty(device=...)``) sets :attr:`device`.

    Args:
        non_blocking: Copy tensors with ``non_blocking=True`` (asynchronous host-to-device copies
            from pinned memory).
    """

    def __init__(self, non_blocking: bool | None = False) -> None:
        super().__init__()
        self._non_blocking = bool(non_blocking)
        self._device = torch.device("cpu")

    @property
    def device(self) -> torch.device:
        """Where :meth:`cast_data` moves tensors."""
        return self._device

    def cast_data(self, data: Any) -> Any:
        """Move ``data`` to :attr:`device`, recursively.

        Mappings become dicts, named tuples, tuples and lists keep their type, tensors and any
        object with a ``to`` method (MMEngine's ``BaseDataElement`` and the like) are moved with
        ``.to(device, non_blocking=...)``; strings, bytes, ``None`` and everything else are
        returned as they are.
        """
        kind = type(data)
        # ``device == cpu``, not ``device.type == "cpu"``: reading ``.type`` builds a string
        # (about 190 ns, several times the rest of this test).
        if kind is dict and self._device == _CPU:
            # The usual CPU batch, a dict of CPU tensors, stays as it is (in a new dict).
            for value in data.values():
                if type(value) is not _Tensor or not value.is_cpu:
                    break
            else:
                return data.copy()
        if kind is not dict and isinstance(data, torch.Tensor):
            if data.device == self._device:  # already there: skip the dispatcher
                return data
            return data.to(self._device, non_blocking=self._non_blocking)
        if kind is dict or isinstance(data, Mapping):
            return {key: self.cast_data(value) for key, value in data.items()}
        if isinstance(data, (str, bytes)) or data is None:
            return data
        if isinstance(data, tuple) and hasattr(data, "_fields"):  # a namedtuple
            return type(data)(*(self.cast_data(item) for item in data))
        if isinstance(data, Sequence):
            return type(data)(self.cast_data(item) for item in data)  # type: ignore[call-arg]
        if callable(getattr(data, "to", None)):
            return data.to(self._device, non_blocking=self._non_blocking)
        return data

    def forward(self, data: Any, training: bool = False) -> Any:
        """Return ``data`` on :attr:`device`.

        Args:
            data: The batch from the dataloader (dict, list or tuple).
            training: Whether this is a training step (subclasses may augment then).
        """
        return self.cast_data(data)

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True) -> Any:
        # Every move (.to/.cuda/.cpu/.to_empty, on this module or on any parent) goes through
        # _apply: follow it by applying ``fn`` to an empty probe on the current device. This
        # yields concrete devices ("cuda:0", not "cuda"), so cast_data's "already there" check
        # holds, and dtype-only conversions leave the device as it is.
        try:
            probe = fn(torch.empty(0, device=self._device))
        except NotImplementedError:
            if self._device.type != "meta":
                raise
            # Nothing can be copied out of a meta tensor: probe with a CPU one instead.
            probe = fn(torch.empty(0))
        if isinstance(probe, torch.Tensor):
            self._device = probe.device
        return super()._apply(fn, recurse)  # type: ignore[no-untyped-call]


def _check_flippable(shape: torch.Size, dim: int, name: str) -> None:
    if len(shape) <= dim or shape[dim] < 3:
        raise ValueError(
            f"{name} must have at least 3 channels (dimension {dim}) to flip BGR/RGB, but got "
            f"shape {tuple(shape)}"
        )


class ImgDataPreprocessor(BaseDataPreprocessor):
    """Move images to the device, convert BGR↔RGB, normalise, pad and stack them.

    ``data["inputs"]`` is either a list of ``(C, H, W)`` tensors (``pseudo_collate``), which may
    differ in size and are padded at the bottom/right to the largest, rounded up to
    ``pad_size_divisor``, or one ``(N, C, H, W)`` tensor (``default_collate``), padded the same
    way. Inputs become float32 after the channel flip. Returns ``data`` with ``inputs`` replaced by
    the batch tensor and ``data_samples`` set to ``None`` when absent.

    Args:
        mean: Per-channel mean (1 or 3 values; of R, G, B when ``bgr_to_rgb``); ``None`` (with
            ``std`` ``None``) disables normalisation.
        std: Per-channel standard deviation (1 or 3 values).
        pad_size_divisor: Padded height and width are multiples of it.
        pad_value: Value of the padded pixels.
        bgr_to_rgb: Flip the channel order (``[2, 1, 0]``) of 3-channel inputs.
        rgb_to_bgr: The same flip, named the other way; at most one of the two.
        non_blocking: See :class:`BaseDataPreprocessor`.

    Raises:
        ValueError: Both flips requested, only one of ``mean``/``std`` given, a wrong number of
            values, or ``pad_size_divisor < 1``.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        pad_size_divisor: int = 1,
        pad_value: float = 0,
        bgr_to_rgb: bool = False,
        rgb_to_bgr: bool = False,
        non_blocking: bool | None = False,
    ) -> None:
        super().__init__(non_blocking)
        if bgr_to_rgb and rgb_to_bgr:
            raise ValueError("bgr_to_rgb and rgb_to_bgr cannot both be True")
        if (mean is None) != (std is None):
            raise ValueError(
                f"mean and std must both be None or both be given, but got mean={mean}, std={std}"
            )
        if mean is not None and std is not None:
            for arg, values in (("mean", mean), ("std", std)):
                if len(values) not in (1, 3):
                    raise ValueError(
                        f"{arg} must have 1 or 3 values (gray or RGB images), but got "
                        f"{len(values)}: {values}"
                    )
            self._enable_normalize = True
            self.register_buffer("mean", torch.tensor(mean).view(-1, 1, 1), persistent=False)
            self.register_buffer("std", torch.tensor(std).view(-1, 1, 1), persistent=False)
        else:
            self._enable_normalize = False
        if isinstance(pad_size_divisor, bool) or not isinstance(pad_size_divisor, int):
            raise TypeError(f"pad_size_divisor must be an int, but got {type(pad_size_divisor)}")
        if pad_size_divisor < 1:
            raise ValueError(f"pad_size_divisor must be >= 1, but got {pad_size_divisor}")
        self._channel_conversion = bgr_to_rgb or rgb_to_bgr
        self.pad_size_divisor = pad_size_divisor
        self.pad_value = pad_value

    def _normalize(self, image: torch.Tensor) -> torch.Tensor:
        return (image - self.mean) / self.std

    def _uniform_images(self, images: Sequence[torch.Tensor]) -> bool:
        """Whether ``images`` can be stacked and processed as one batch: all ``(C, H, W)`` of
        one shape and dtype, with ``C`` valid for the flip and the mean (else the per-image path
        runs and names the offending image)."""
        if not images:
            return False
        first = images[0]
        shape, dtype = first.shape, first.dtype
        if len(shape) != 3:
            return False
        if self._channel_conversion and shape[0] < 3:
            return False
        if self._enable_normalize and self.mean.shape[0] == 3 and shape[0] != 3:
            return False
        return all(t.shape == shape and t.dtype == dtype for t in images)

    def _process_batch(self, inputs: torch.Tensor) -> torch.Tensor:
        """Flip, cast, normalise and pad an ``(N, C, H, W)`` batch already checked."""
        if self._channel_conversion:
            inputs = inputs[:, [2, 1, 0], ...]
        # Cast after the channel flip: indexing the smaller dtype is cheaper.
        batch = inputs.float()
        if self._enable_normalize:
            batch = self._normalize(batch)
        h, w = batch.shape[2:]
        div = self.pad_size_divisor
        pad_h = -(-h // div) * div - h
        pad_w = -(-w // div) * div - w
        return F.pad(batch, (0, pad_w, 0, pad_h), "constant", self.pad_value)

    def _process_images(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        """Flip, cast and normalise images one by one, then pad and stack them."""
        images = []
        for i, image in enumerate(inputs):
            if self._channel_conversion:
                _check_flippable(image.shape, 0, f"inputs[{i}]")
                image = image[[2, 1, 0], ...]
            # Cast after the channel flip: indexing the smaller dtype is cheaper.
            image = image.float()
            if self._enable_normalize:
                if self.mean.shape[0] == 3 and (image.dim() != 3 or image.shape[0] != 3):
                    raise ValueError(
                        f"inputs[{i}] must have shape (3, H, W) when mean has 3 values, but "
                        f"got {tuple(image.shape)}"
                    )
                image = self._normalize(image)
            images.append(image)
        return stack_batch(images, self.pad_size_divisor, self.pad_value)

    def forward(self, data: Any, training: bool = False) -> Any:
        """Preprocess a batch (see the class docstring).

        Args:
            data: A dict with ``inputs`` (a list of ``(C, H, W)`` tensors or an ``(N, C, H, W)``
                tensor) and optionally ``data_samples``.
            training: Whether this is a training step.

        Raises:
            TypeError: ``data`` is not a dict with ``inputs`` of a supported kind.
            ValueError: An input has the wrong shape for the configured mean or flip.
        """
        data = self.cast_data(data)
        if not isinstance(data, dict) or "inputs" not in data:
            raise TypeError(
                "ImgDataPreprocessor expects a dict with an 'inputs' key, but got "
                f"{type(data).__name__}"
                + (f" with keys {list(data)}" if isinstance(data, dict) else "")
            )
        inputs = data["inputs"]
        if isinstance(inputs, (list, tuple)) and all(isinstance(t, torch.Tensor) for t in inputs):
            if self._uniform_images(inputs):
                # One shape and dtype for all: stack first and process the batch in one go (the
                # same values as image by image, in a few kernels instead of a few per image).
                batch = self._process_batch(torch.stack(list(inputs)))
            else:
                batch = self._process_images(inputs)
        elif isinstance(inputs, torch.Tensor):
            if inputs.dim() != 4:
                raise ValueError(
                    "ImgDataPreprocessor expects inputs as an (N, C, H, W) tensor or a list of "
                    f"(C, H, W) tensors, but got a tensor of shape {tuple(inputs.shape)}"
                )
            if self._channel_conversion:
                _check_flippable(inputs.shape, 1, "inputs")
            batch = self._process_batch(inputs)
        else:
            raise TypeError(
                "ImgDataPreprocessor expects data['inputs'] to be an (N, C, H, W) tensor or a list "
                f"of (C, H, W) tensors, but got {type(inputs).__name__}"
            )
        data["inputs"] = batch
        data.setdefault("data_samples", None)
        return data

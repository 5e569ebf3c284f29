"""``PixelData``: pixel-level annotations or predictions (MMEngine 0.10.7).

Every data field is a tensor or numpy array of shape ``(C, H, W)`` with the same ``H`` and ``W``;
a 2-D value ``(H, W)`` is stored as ``(1, H, W)`` (with a warning, as in MMEngine). Indexing with
two ints or slices crops every field.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

from treadle.core.structures.base_data_element import (
    _PRIVATE_FIELDS,
    BaseDataElement,
    DataElementTypeError,
    DataElementValueError,
    is_ndarray,
)

__all__ = ["PixelData"]


class PixelData(BaseDataElement):
    """Data fields of shape ``(C, H, W)`` sharing ``H`` and ``W``.

    Examples:
        >>> pixel_data = PixelData(featmap=torch.zeros(10, 20, 40))
        >>> pixel_data.shape
        (20, 40)
        >>> pixel_data[10:20, 20:40].shape
        (10, 20)
        >>> pixel_data[10, 20].shape
        (1, 1)
    """

    def __setattr__(self, name: str, value: Any) -> None:
        """Set a data field: a 2-D or 3-D tensor or array whose last two sizes match.

        Raises:
            TypeError: ``value`` is neither a tensor nor a numpy array.
            ValueError: ``value``'s height and width differ from the element's, or it is not
                2-D or 3-D.
        """
        if name in _PRIVATE_FIELDS:
            super().__setattr__(name, value)
            return
        if not (isinstance(value, torch.Tensor) or is_ndarray(value)):
            raise DataElementTypeError(
                f"Can not set {type(value)}, only support (torch.Tensor, numpy.ndarray) "
                f"(setting {name!r})"
            )
        if self.shape and tuple(value.shape[-2:]) != self.shape:
            raise DataElementValueError(
                f"The height and width of values {tuple(value.shape[-2:])} is not consistent "
                f"with the shape of this :obj:`PixelData` {self.shape} (setting {name!r})"
            )
        if value.ndim not in (2, 3):
            raise DataElementValueError(
                f"The dim of value must be 2 or 3, but got {value.ndim} (setting {name!r})"
            )
        if value.ndim == 2:
            value = value[None]
            warnings.warn(
                f"The shape of value will convert from {value.shape[-2:]} to {value.shape}",
                stacklevel=2,
            )
        super().__setattr__(name, value)

    def __getitem__(self, item: tuple[int | slice, int | slice]) -> PixelData:
        """Crop every field: ``pixel_data[rows, cols]`` with ints or slices.

        An int keeps its dimension (a size of 1).

        Args:
            item: Two ints or slices, for height and width.

        Returns:
            A new :class:`PixelData` with the same metainfo.

        Raises:
            TypeError: ``item`` is not a tuple, or holds something else than ints and slices.
            ValueError: ``item`` does not have two entries.
        """
        if not isinstance(item, tuple):
            raise DataElementTypeError(f"Unsupported type {type(item)} for slicing PixelData")
        if len(item) != 2:
            raise DataElementValueError(
                f"Only support to slice height and width, but got {len(item)} indices"
            )
        shape = self.shape or (0, 0)
        crop: list[slice] = [slice(None)]
        for single_item, size in zip(item, shape, strict=True):
            if isinstance(single_item, int) and not isinstance(single_item, bool):
                crop.append(slice(single_item, None, size))  # keep the dimension
            elif isinstance(single_item, slice):
                crop.append(single_item)
            else:
                raise DataElementTypeError(
                    "The type of element in input must be int or slice, but got "
                    f"{type(single_item)}"
                )
        new_data = self.__class__(metainfo=self.metainfo)
        for key, value in self.items():
            setattr(new_data, key, value[tuple(crop)])
        return new_data

    @property
    def shape(self) -> tuple[int, int] | None:
        """``(H, W)`` of the fields, or ``None`` without any."""
        if len(self._data_fields) > 0:
            height, width = self.values()[0].shape[-2:]
            return (int(height), int(width))
        return None

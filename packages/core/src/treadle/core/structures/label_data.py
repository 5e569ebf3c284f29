"""``LabelData``: label-level annotations or predictions (MMEngine 0.10.7), with one-hot helpers."""

from __future__ import annotations

import torch

from treadle.core.structures.base_data_element import (
    BaseDataElement,
    DataElementTypeError,
    DataElementValueError,
)

__all__ = ["LabelData"]


class LabelData(BaseDataElement):
    """Data structure for label-level annotations or predictions (class labels, scores).

    Examples:
        >>> LabelData.label_to_onehot(torch.tensor([1, 3]), num_classes=5)
        tensor([0, 1, 0, 1, 0])
        >>> LabelData.onehot_to_label(torch.tensor([0, 1, 0, 1, 0]))
        tensor([1, 3])
    """

    @staticmethod
    def onehot_to_label(onehot: torch.Tensor) -> torch.Tensor:
        """The positions of the ones of a 1-D one-hot (or multi-hot) tensor.

        Args:
            onehot: A 1-D tensor of zeros and ones.

        Returns:
            The labels.

        Raises:
            TypeError: ``onehot`` is not a tensor.
            ValueError: ``onehot`` is not 1-D or holds values outside ``[0, 1]``.
        """
        if not isinstance(onehot, torch.Tensor):
            raise DataElementTypeError(f"onehot should be a torch.Tensor, but got {type(onehot)}")
        if onehot.ndim == 1 and (
            onehot.numel() == 0 or (onehot.max().item() <= 1 and onehot.min().item() >= 0)
        ):
            return onehot.nonzero().squeeze(-1)
        raise ValueError("input is not one-hot and can not convert to label")

    @staticmethod
    def label_to_onehot(label: torch.Tensor, num_classes: int) -> torch.Tensor:
        """A one-hot (multi-hot) vector of ``num_classes`` with ones at ``label``.

        Args:
            label: The labels (a tensor of class indices).
            num_classes: The number of classes.

        Returns:
            The one-hot tensor, of ``label``'s dtype and device.

        Raises:
            TypeError: ``label`` is not a tensor.
            ValueError: A label is ``num_classes`` or more.
        """
        if not isinstance(label, torch.Tensor):
            raise DataElementTypeError(f"label should be a torch.Tensor, but got {type(label)}")
        onehot = label.new_zeros((num_classes,))
        largest = int(label.max().item()) if label.numel() else 0
        if largest >= num_classes:
            raise DataElementValueError(
                f"label {largest} is out of range for num_classes={num_classes}"
            )
        onehot[label] = 1
        return onehot

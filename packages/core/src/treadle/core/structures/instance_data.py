"""``InstanceData``: instance-level annotations or predictions (MMEngine 0.10.7).

Every data field has one entry per instance (boxes, scores, labels, masks, …), so all have the
same length, and the element can be indexed like a tensor along that first dimension: an int,
a slice, a bool mask, integer indices (tensor, numpy array or list). ``InstanceData.cat``
concatenates elements.

Values may be tensors, numpy arrays, lists, tuples, strings, or any object with ``__len__``,
``__getitem__`` and a ``cat`` method.
"""

from __future__ import annotations

import itertools
from collections.abc import Sized
from typing import Any

import torch

from treadle.core.structures.base_data_element import (
    _PRIVATE_FIELDS,
    BaseDataElement,
    DataElementTypeError,
    DataElementValueError,
    is_ndarray,
    numpy_module,
)

__all__ = ["InstanceData"]


def _as_index_tensor(item: Any) -> torch.Tensor:
    """A list, numpy array or tensor index as a 1-D bool or int64 tensor."""
    if isinstance(item, list):
        item = torch.tensor(item) if item else torch.zeros(0, dtype=torch.long)
    elif is_ndarray(item):
        item = torch.from_numpy(item)
    if item.dtype == torch.bool:
        index: torch.Tensor = item
    elif (
        not item.dtype.is_floating_point and not item.dtype.is_complex and item.dtype != torch.uint8
    ):
        index = item.long()
    else:
        raise DataElementTypeError(
            "an index tensor must hold bools (a mask) or integers (positions), but got "
            f"dtype {item.dtype}"
        )
    if index.dim() != 1:
        raise DataElementValueError(
            "Only support to get the values along the first dimension: the index must be 1-D, "
            f"but got shape {tuple(index.shape)}"
        )
    return index


class InstanceData(BaseDataElement):
    """Data fields of equal length, one entry per instance, indexable along it.

    Examples:
        >>> instances = InstanceData(metainfo=dict(img_shape=(800, 1196)))
        >>> instances.labels = torch.tensor([2, 3])
        >>> instances.scores = torch.tensor([0.8, 0.7])
        >>> instances.names = ["cat", "dog"]
        >>> len(instances)
        2
        >>> instances[instances.scores > 0.75].names
        ['cat']
        >>> len(InstanceData.cat([instances, instances]))
        4
    """

    def __setattr__(self, name: str, value: Any) -> None:
        """Set a data field, whose length must match the others'.

        Raises:
            TypeError: ``value`` has no length.
            ValueError: ``value``'s length differs from the element's.
        """
        if name in _PRIVATE_FIELDS:
            super().__setattr__(name, value)
            return
        if not isinstance(value, Sized):
            raise DataElementTypeError(
                f"value must contain `__len__` attribute: {name!r} is a {type(value).__name__}"
            )
        if len(self) > 0 and len(value) != len(self):
            raise DataElementValueError(
                f"The length of values {len(value)} is not consistent with the length of this "
                f":obj:`InstanceData` {len(self)} (setting {name!r})"
            )
        super().__setattr__(name, value)

    __setitem__ = __setattr__

    def __getitem__(self, item: Any) -> Any:
        """The field ``item`` (a string), or the instances ``item`` selects.

        Args:
            item: A field name; an int (kept as one instance); a slice; a bool mask (tensor,
                numpy array or list) as long as the element; integer positions (tensor, numpy
                array or list).

        Returns:
            The field's value for a string, else a new :class:`InstanceData` with the same
            metainfo.

        Raises:
            IndexError: An int out of range.
            TypeError: An index of another type.
            ValueError: A mask of the wrong length, or an index that is not 1-D.
        """
        if isinstance(item, str):
            return getattr(self, item)
        if isinstance(item, bool) or not (
            isinstance(item, int | slice | list | torch.Tensor) or is_ndarray(item)
        ):
            raise DataElementTypeError(
                "InstanceData can be indexed by a str, int, slice, list, bool or long tensor, or "
                f"numpy array, but got {type(item).__name__}"
            )
        if isinstance(item, int):
            if item >= len(self) or item < -len(self):
                raise IndexError(f"Index {item} out of range!")
            # Keep the dimension: one instance is a length-1 InstanceData.
            item = slice(item, None, len(self))

        new_data = self.__class__(metainfo=self.metainfo)
        if isinstance(item, slice):
            for key, value in self.items():
                new_data[key] = value[item]
            return new_data

        index = _as_index_tensor(item)
        is_mask = index.dtype == torch.bool
        if is_mask and len(index) != len(self):
            raise DataElementValueError(
                f"The shape of the input(BoolTensor) {len(index)} does not match the shape of "
                f"the indexed tensor in results_field {len(self)} at first dimension."
            )
        for key, value in self.items():
            if isinstance(value, torch.Tensor):
                new_data[key] = value[index.to(value.device)]
            elif is_ndarray(value):
                new_data[key] = value[index.cpu().numpy()]
            elif isinstance(value, str | list | tuple) or (
                hasattr(value, "__getitem__") and hasattr(value, "cat")
            ):
                positions = (
                    torch.nonzero(index).view(-1).tolist() if is_mask else index.cpu().tolist()
                )
                # v[slice(i, None, len(v))] is the one item at i, kept as a sequence (or as the
                # custom type, for its `cat`), as MMEngine slices.
                if positions:
                    pieces = [value[slice(i, None, len(value))] for i in positions]
                else:
                    pieces = [value[slice(None, 0, None)]]
                if isinstance(value, str | list | tuple):
                    new_value = pieces[0]
                    for piece in pieces[1:]:
                        new_value = new_value + piece
                else:
                    new_value = value.cat(pieces)
                new_data[key] = new_value
            else:
                raise DataElementValueError(
                    f"The type of `{key}` is `{type(value)}`, which has no attribute of `cat`, "
                    "so it does not support slice with `bool`"
                )
        return new_data

    @staticmethod
    def cat(instances_list: list[InstanceData]) -> InstanceData:
        """Concatenate the instances of several elements (all with exactly the same keys).

        Args:
            instances_list: The elements; the first one's metainfo is kept.

        Returns:
            The concatenation (the element itself when there is one).

        Raises:
            TypeError: An item is not an InstanceData.
            ValueError: The list is empty, the keys differ, or a value cannot be concatenated.
        """
        if not all(isinstance(results, InstanceData) for results in instances_list):
            raise DataElementTypeError(
                "InstanceData.cat takes a list of InstanceData, but got "
                f"{[type(r).__name__ for r in instances_list]}"
            )
        if len(instances_list) == 0:
            raise DataElementValueError("InstanceData.cat needs at least one InstanceData")
        if len(instances_list) == 1:
            return instances_list[0]

        field_keys_list = [instances.all_keys() for instances in instances_list]
        if len({len(keys) for keys in field_keys_list}) != 1 or len(
            set(itertools.chain(*field_keys_list))
        ) != len(field_keys_list[0]):
            raise DataElementValueError(
                "There are different keys in `instances_list`, which may cause the cat "
                "operation to fail. Please make sure all elements in `instances_list` have the "
                f"exact same key: {[sorted(keys) for keys in field_keys_list]}"
            )

        new_data = instances_list[0].__class__(metainfo=instances_list[0].metainfo)
        for key in instances_list[0].keys():  # noqa: SIM118 (iterating yields instances)
            values = [results[key] for results in instances_list]
            first = values[0]
            new_values: Any
            if isinstance(first, torch.Tensor):
                new_values = torch.cat(values, dim=0)
            elif is_ndarray(first):
                new_values = numpy_module().concatenate(values, axis=0)
            elif isinstance(first, str | list | tuple):
                new_values = first[:]
                for value in values[1:]:
                    new_values += value
            elif hasattr(first, "cat"):
                new_values = first.cat(values)
            else:
                raise DataElementValueError(
                    f"The type of `{key}` is `{type(first)}` which has no attribute of `cat`"
                )
            new_data[key] = new_values
        return new_data

    def __len__(self) -> int:
        """The number of instances (the length of the data fields; 0 without any)."""
        if len(self._data_fields) > 0:
            return len(self.values()[0])
        return 0

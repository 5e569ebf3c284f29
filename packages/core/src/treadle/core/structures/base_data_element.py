"""``BaseDataElement``: MMEngine 0.10.7's data interface between datasets, models and metrics.

A data element holds two kinds of fields: **metainfo** (image shape, file name, …) and **data**
(annotations, predictions). Both read as attributes (``element.bboxes``) and through dict-like
methods (``in``, ``get``, ``pop``, ``keys``); the tensor-like methods (``to``, ``cpu``, ``cuda``,
``detach``, ``numpy``, ``to_tensor``) apply to the data fields and return a new element.

Where MMEngine checks a value with ``assert``, treadle raises a :class:`TypeError` or
:class:`ValueError` that explains itself and is *also* an :class:`AssertionError`, so code written
for MMEngine that catches ``AssertionError`` keeps working. numpy is optional: it is only imported
by :meth:`BaseDataElement.numpy`, and arrays are recognised only when numpy is already loaded.
"""

from __future__ import annotations

import copy
import sys
from typing import TYPE_CHECKING, Any, TypeVar

import torch

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

__all__ = ["BaseDataElement"]

_T = TypeVar("_T", bound="BaseDataElement")

#: The two private attributes that record which fields are metainfo and which are data.
_PRIVATE_FIELDS = ("_metainfo_fields", "_data_fields")


class DataElementTypeError(TypeError, AssertionError):
    """A value of the wrong type (an ``AssertionError`` too, as MMEngine's asserts raise)."""


class DataElementValueError(ValueError, AssertionError):
    """A value of the wrong shape or length (an ``AssertionError`` too, as in MMEngine)."""


def numpy_module() -> Any:
    """The numpy module if it has been imported, else ``None`` (no array can exist then)."""
    return sys.modules.get("numpy")


def is_ndarray(value: object) -> bool:
    """Whether ``value`` is a numpy array, without importing numpy."""
    np = numpy_module()
    return np is not None and isinstance(value, np.ndarray)


def _addindent(text: str, num_spaces: int) -> str:
    """Indent every line of ``text`` but the first (from PyTorch's ``nn.Module.__repr__``)."""
    lines = text.split("\n")
    if len(lines) == 1:
        return text
    first = lines.pop(0)
    return first + "\n" + "\n".join(num_spaces * " " + line for line in lines)


def _dump(obj: Any) -> str:
    """MMEngine's representation of a data element, a dict of fields or a value."""
    text = ""
    if isinstance(obj, dict):
        for key, value in obj.items():
            text += f"\n{key}: {_addindent(_dump(value), 4)}"
    elif isinstance(obj, BaseDataElement):
        text += "\n\n    META INFORMATION"
        text += _addindent(_dump(dict(obj.metainfo_items())), 4)
        text += "\n\n    DATA FIELDS"
        text += _addindent(_dump(dict(obj.items())), 4)
        text = f"<{obj.__class__.__name__}({text}\n) at {hex(id(obj))}>"
    else:
        text += repr(obj)
    return text


class BaseDataElement:
    """A container of metainfo and data fields with dict-like and tensor-like methods.

    Subclasses (``DetDataSample``, …) expose typed fields as properties whose setters call
    :meth:`set_field` with ``dtype=`` and store the value under ``"_" + name``; such private
    names are hidden from :meth:`keys`.

    Args:
        metainfo: Meta information (image shape, scale factor, …); deep-copied.
        **kwargs: Data fields (annotations, predictions).

    Examples:
        >>> element = BaseDataElement(metainfo=dict(img_shape=(4, 4)), scores=torch.ones(2))
        >>> element.img_shape, "scores" in element, element.keys()
        ((4, 4), True, ['scores'])
        >>> element.metainfo_keys()
        ['img_shape']
    """

    _metainfo_fields: set[str]
    _data_fields: set[str]

    def __init__(self, *, metainfo: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self._metainfo_fields = set()
        self._data_fields = set()
        if metainfo is not None:
            self.set_metainfo(metainfo=metainfo)
        if kwargs:
            self.set_data(kwargs)

    # ------------------------------------------------------------------------------ setting

    def set_metainfo(self, metainfo: dict[str, Any]) -> None:
        """Set or change metainfo fields (the values are deep-copied).

        Args:
            metainfo: The fields and their values.

        Raises:
            TypeError: ``metainfo`` is not a dict.
            AttributeError: A key is already a data field.
        """
        if not isinstance(metainfo, dict):
            raise DataElementTypeError(f"metainfo should be a ``dict`` but got {type(metainfo)}")
        for key, value in copy.deepcopy(metainfo).items():
            self.set_field(name=key, value=value, field_type="metainfo", dtype=None)

    def set_data(self, data: dict[str, Any]) -> None:
        """Set or change data fields (through ``setattr``, so property setters run).

        Args:
            data: The fields and their values.

        Raises:
            TypeError: ``data`` is not a dict.
            AttributeError: A key is already a metainfo field.
        """
        if not isinstance(data, dict):
            raise DataElementTypeError(f"data should be a `dict` but got {data}")
        for key, value in data.items():
            setattr(self, key, value)

    def update(self, instance: BaseDataElement) -> None:
        """Copy the metainfo and data fields of another element into this one.

        Args:
            instance: The other element.
        """
        if not isinstance(instance, BaseDataElement):
            raise DataElementTypeError(
                f"instance should be a `BaseDataElement` but got {type(instance)}"
            )
        self.set_metainfo(dict(instance.metainfo_items()))
        self.set_data(dict(instance.items()))

    def set_field(
        self,
        value: Any,
        name: str,
        dtype: type | tuple[type, ...] | None = None,
        field_type: str = "data",
    ) -> None:
        """Set one field; what property setters of subclasses call.

        Args:
            value: The value.
            name: The field's name.
            dtype: When given, the type(s) ``value`` must have.
            field_type: ``"data"`` or ``"metainfo"``.

        Raises:
            ValueError: ``field_type`` is neither ``"data"`` nor ``"metainfo"``.
            TypeError: ``value`` is not of ``dtype``.
            AttributeError: ``name`` is already a field of the other kind.
        """
        if field_type not in ("metainfo", "data"):
            raise DataElementValueError(
                f"field_type should be 'metainfo' or 'data', but got {field_type!r}"
            )
        if dtype is not None and not isinstance(value, dtype):
            raise DataElementTypeError(f"{value} should be a {dtype} but got {type(value)}")
        if field_type == "metainfo":
            if name in self._data_fields:
                raise AttributeError(
                    f"Cannot set {name} to be a field of metainfo because {name} is already a "
                    "data field"
                )
            self._metainfo_fields.add(name)
        else:
            if name in self._metainfo_fields:
                raise AttributeError(
                    f"Cannot set {name} to be a field of data because {name} is already a "
                    "metainfo field"
                )
            self._data_fields.add(name)
        # object.__setattr__ honours properties, so a subclass's setter runs here.
        object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        """Set a data field (the two private field sets can be set once)."""
        if name in _PRIVATE_FIELDS:
            if not hasattr(self, name):
                object.__setattr__(self, name, value)
            else:
                raise AttributeError(
                    f"{name} has been used as a private attribute, which is immutable."
                )
        else:
            self.set_field(name=name, value=value, field_type="data", dtype=None)

    def __delattr__(self, item: str) -> None:
        """Delete a field.

        Args:
            item: The field's name.
        """
        if item in _PRIVATE_FIELDS:
            raise AttributeError(
                f"{item} has been used as a private attribute, which is immutable."
            )
        object.__delattr__(self, item)
        if item in self._metainfo_fields:
            self._metainfo_fields.remove(item)
        elif item in self._data_fields:
            self._data_fields.remove(item)

    __delitem__ = __delattr__

    # ------------------------------------------------------------------------------ copies

    def new(self: _T, *, metainfo: dict[str, Any] | None = None, **kwargs: Any) -> _T:
        """A new element of the same type: these fields, or this element's where not given.

        Args:
            metainfo: The new metainfo (default: a copy of this element's).
            **kwargs: The new data fields (default: this element's values, shared).

        Returns:
            The new element.
        """
        new_data = self.__class__()
        if metainfo is not None:
            new_data.set_metainfo(metainfo)
        else:
            new_data.set_metainfo(dict(self.metainfo_items()))
        if kwargs:
            new_data.set_data(kwargs)
        else:
            new_data.set_data(dict(self.items()))
        return new_data

    def clone(self: _T) -> _T:
        """A copy: the metainfo is deep-copied, the data values are shared (as in MMEngine).

        Returns:
            The copy.
        """
        return self.new()

    # ------------------------------------------------------------------------------ dict-like

    def keys(self) -> list[str]:
        """The data fields' names (without the ``_name`` storage of properties)."""
        # A property `name` stores its value in the field `_name`: hide those.
        private_keys = {
            "_" + key
            for key in self._data_fields
            if isinstance(getattr(type(self), key, None), property)
        }
        return list(self._data_fields - private_keys)

    def metainfo_keys(self) -> list[str]:
        """The metainfo fields' names."""
        return list(self._metainfo_fields)

    def values(self) -> list[Any]:
        """The data fields' values."""
        return [getattr(self, k) for k in self.keys()]

    def metainfo_values(self) -> list[Any]:
        """The metainfo fields' values."""
        return [getattr(self, k) for k in self.metainfo_keys()]

    def all_keys(self) -> list[str]:
        """The metainfo fields' names, then the data fields'."""
        return self.metainfo_keys() + self.keys()

    def all_values(self) -> list[Any]:
        """The metainfo fields' values, then the data fields'."""
        return self.metainfo_values() + self.values()

    def all_items(self) -> Iterator[tuple[str, Any]]:
        """``(name, value)`` of the metainfo fields, then of the data fields."""
        for k in self.all_keys():
            yield (k, getattr(self, k))

    def items(self) -> Iterator[tuple[str, Any]]:
        """``(name, value)`` of the data fields."""
        for k in self.keys():
            yield (k, getattr(self, k))

    def metainfo_items(self) -> Iterator[tuple[str, Any]]:
        """``(name, value)`` of the metainfo fields."""
        for k in self.metainfo_keys():
            yield (k, getattr(self, k))

    @property
    def metainfo(self) -> dict[str, Any]:
        """The metainfo fields as a dict."""
        return dict(self.metainfo_items())

    def get(self, key: str, default: Any = None) -> Any:
        """A field's value (properties included), or ``default``."""
        return getattr(self, key, default)

    def pop(self, *args: Any) -> Any:
        """Remove a field and return its value: ``pop(name)`` or ``pop(name, default)``.

        Raises:
            TypeError: More than two arguments.
            KeyError: ``name`` is no field and no default was given.
        """
        if not 1 <= len(args) <= 2:
            raise DataElementTypeError(
                f"``pop`` takes a name and an optional default, but got {len(args)} arguments"
            )
        name = args[0]
        if name in self._metainfo_fields:
            self._metainfo_fields.remove(name)
            return self.__dict__.pop(*args)
        if name in self._data_fields:
            self._data_fields.remove(name)
            return self.__dict__.pop(*args)
        if len(args) == 2:
            return args[1]
        raise KeyError(f"{name} is not contained in metainfo or data")

    def __contains__(self, item: str) -> bool:
        """Whether ``item`` is a metainfo or data field."""
        return item in self._data_fields or item in self._metainfo_fields

    # ------------------------------------------------------------------------------ tensor-like

    def _apply(self: _T, fn: Callable[[Any], Any], applies: Callable[[Any], bool]) -> _T:
        """A new element whose data values that ``applies`` accepts are replaced by ``fn(v)``."""
        new_data = self.new()
        for key, value in self.items():
            if applies(value):
                new_data.set_data({key: fn(value)})
        return new_data

    def to(self: _T, *args: Any, **kwargs: Any) -> _T:
        """Call ``.to(*args, **kwargs)`` on every data value that has it."""
        return self._apply(lambda v: v.to(*args, **kwargs), lambda v: hasattr(v, "to"))

    def cpu(self: _T) -> _T:
        """Move every tensor (and nested element) of the data to the CPU."""
        return self._apply(lambda v: v.cpu(), _is_tensor_or_element)

    def cuda(self: _T) -> _T:
        """Move every tensor (and nested element) of the data to the current CUDA device."""
        return self._apply(lambda v: v.cuda(), _is_tensor_or_element)

    def musa(self: _T) -> _T:
        """Move every tensor (and nested element) of the data to a MUSA device."""
        return self._apply(lambda v: v.musa(), _is_tensor_or_element)

    def npu(self: _T) -> _T:
        """Move every tensor (and nested element) of the data to an NPU."""
        return self._apply(lambda v: v.npu(), _is_tensor_or_element)

    def mlu(self: _T) -> _T:
        """Move every tensor (and nested element) of the data to an MLU."""
        return self._apply(lambda v: v.mlu(), _is_tensor_or_element)

    def detach(self: _T) -> _T:
        """Detach every tensor (and nested element) of the data."""
        return self._apply(lambda v: v.detach(), _is_tensor_or_element)

    def numpy(self: _T) -> _T:
        """Turn every tensor (and nested element) of the data into numpy arrays (on the CPU)."""
        return self._apply(lambda v: v.detach().cpu().numpy(), _is_tensor_or_element)

    def to_tensor(self: _T) -> _T:
        """Turn every numpy array (and nested element) of the data into tensors."""

        def convert(value: Any) -> Any:
            if isinstance(value, BaseDataElement):
                return value.to_tensor()
            return torch.from_numpy(value)

        return self._apply(convert, lambda v: is_ndarray(v) or isinstance(v, BaseDataElement))

    def to_dict(self) -> dict[str, Any]:
        """All fields as a dict (nested elements as dicts too)."""
        return {
            k: v.to_dict() if isinstance(v, BaseDataElement) else v for k, v in self.all_items()
        }

    def __repr__(self) -> str:
        """MMEngine's layout: the class, META INFORMATION, DATA FIELDS, the address."""
        return _dump(self)


def _is_tensor_or_element(value: object) -> bool:
    return isinstance(value, torch.Tensor | BaseDataElement)

"""``ConfigDict``: the dictionary type of every mapping inside a :class:`Config`.

It behaves like MMEngine's ``ConfigDict`` (an ``addict.Dict`` subclass) without depending on
addict: keys are reachable as attributes, nested mappings (also those inside lists and tuples)
become ``ConfigDict`` on assignment, a missing attribute raises ``AttributeError`` and a missing
key ``KeyError``. Values that are lazily imported objects (:class:`LazyObject`,
:class:`LazyAttr`, from pure-Python configs) are built when read through ``[]``, ``.``,
``get``, ``pop``, ``items`` or ``values``; ``to_dict`` turns them into their import strings.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, ClassVar

from treadle.core.config.lazy import LazyAttr, LazyObject, _to_plain

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

DELETE_KEY = "_delete_"

_LAZY_TYPES = (LazyObject, LazyAttr)


def _hook(item: Any) -> Any:
    """Convert plain dicts (also inside lists and tuples) to ``ConfigDict``, as MMEngine does.

    Only ``dict`` and ``OrderedDict`` are converted: user-defined mapping subclasses and
    existing ``ConfigDict`` objects are kept as they are.
    """
    kind = type(item)
    if kind is dict or kind is OrderedDict:
        return ConfigDict(item)
    if kind is list:
        return [_hook(elem) for elem in item]
    if kind is tuple:
        return tuple([_hook(elem) for elem in item])
    if isinstance(item, (list, tuple)):
        return kind(_hook(elem) for elem in item)
    return item


def to_config_tree(item: Any) -> Any:
    """Deep-convert ``item`` into fresh ``ConfigDict``/list/tuple containers.

    Unlike :func:`_hook`, existing ``ConfigDict`` objects are copied too, so the result shares
    no container with the input. Leaves (strings, numbers, classes, …) are shared.
    """
    if isinstance(item, dict):
        kind = type(item)
        if kind is dict or kind is OrderedDict or isinstance(item, ConfigDict):
            out = ConfigDict()
            for key, value in dict.items(item):
                dict.__setitem__(out, key, to_config_tree(value))
            return out
        return item
    kind = type(item)
    if kind is list:
        return [to_config_tree(elem) for elem in item]
    if kind is tuple:
        return tuple([to_config_tree(elem) for elem in item])
    if isinstance(item, (list, tuple)):
        return kind(to_config_tree(elem) for elem in item)
    return item


class ConfigDict(dict[Any, Any]):
    """A ``dict`` whose keys are also attributes; the mapping type of configs.

    Nested ``dict`` values (including those inside lists and tuples) are converted to
    ``ConfigDict`` when stored. Attribute access never shadows ``dict`` methods: a key named
    ``items`` is reachable only as ``cfg["items"]``.

    Attributes:
        lazy: When False (the default), lazily imported objects stored in the dict are built
            (imported) when read. Set to True only while parsing pure-Python configs.

    Examples:
        >>> cfg = ConfigDict(model=dict(type="ResNet", depth=50))
        >>> cfg.model.depth
        50
        >>> cfg.model.width
        Traceback (most recent call last):
        ...
        AttributeError: 'ConfigDict' object has no attribute 'width'. Keys: 'type', 'depth'
    """

    lazy: ClassVar[bool] = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.pop("__parent", None)
        kwargs.pop("__key", None)
        setitem = dict.__setitem__
        for arg in args:
            if not arg:
                continue
            if isinstance(arg, dict):
                for key, value in dict.items(arg):
                    setitem(self, key, _hook(value))
            elif isinstance(arg, tuple) and not isinstance(arg[0], tuple):
                setitem(self, arg[0], _hook(arg[1]))
            else:
                for key, value in iter(arg):
                    setitem(self, key, _hook(value))
        for key, value in kwargs.items():
            setitem(self, key, _hook(value))

    # -- attribute access -------------------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        try:
            value = dict.__getitem__(self, name)
        except KeyError:
            raise AttributeError(self._missing_message(name)) from None
        if not self.lazy and isinstance(value, _LAZY_TYPES):
            return value.build()
        return value

    def _missing_message(self, name: str) -> str:
        message = f"'{type(self).__name__}' object has no attribute '{name}'"
        if name.startswith("_"):  # private names are probes (hasattr), not typos
            return message
        import difflib

        keys = [key for key in dict.keys(self) if isinstance(key, str)]
        close = difflib.get_close_matches(name, keys, n=3, cutoff=0.6)
        if close:
            message += ". Did you mean " + " or ".join(repr(key) for key in close) + "?"
        elif keys:
            shown = ", ".join(repr(key) for key in keys[:20])
            more = ", …" if len(keys) > 20 else ""
            message += f". Keys: {shown}{more}"
        return message

    def __setattr__(self, name: str, value: Any) -> None:
        if hasattr(type(self), name):
            raise AttributeError(f"'{type(self).__name__}' object attribute '{name}' is read-only")
        dict.__setitem__(self, name, _hook(value))

    def __delattr__(self, name: str) -> None:
        del self[name]

    def __dir__(self) -> Iterable[str]:
        keys = [key for key in dict.keys(self) if isinstance(key, str) and key.isidentifier()]
        return [*super().__dir__(), *keys]

    # -- item access ------------------------------------------------------------------------

    def __setitem__(self, key: Any, value: Any) -> None:
        dict.__setitem__(self, key, _hook(value))

    def __getitem__(self, key: Any) -> Any:
        value = dict.__getitem__(self, key)
        if not self.lazy and isinstance(value, _LAZY_TYPES):
            return value.build()
        return value

    def build_lazy(self, value: Any) -> Any:
        """Return ``value`` built when it is a lazy object and :attr:`lazy` is False."""
        if not self.lazy and isinstance(value, _LAZY_TYPES):
            return value.build()
        return value

    def get(self, key: Any, default: Any = None) -> Any:
        """Return the value of ``key`` (built when lazy), or ``default`` when absent."""
        return self.build_lazy(dict.get(self, key, default))

    def pop(self, key: Any, default: Any = None) -> Any:
        """Remove ``key`` and return its value (built when lazy), or ``default`` when absent.

        As in MMEngine, a missing key without a default returns ``None`` instead of raising.
        """
        return self.build_lazy(dict.pop(self, key, default))

    def setdefault(self, key: Any, default: Any = None) -> Any:
        """Return the value of ``key``, storing ``default`` first when it is absent."""
        if key not in self:
            self[key] = default
        return self[key]

    def values(self) -> list[Any]:  # type: ignore[override]
        """Return a list of the values, lazy objects built."""
        return [self.build_lazy(value) for value in dict.values(self)]

    def items(self) -> list[tuple[Any, Any]]:  # type: ignore[override]
        """Return a list of ``(key, value)`` pairs, lazy objects built."""
        return [(key, self.build_lazy(value)) for key, value in dict.items(self)]

    def __iter__(self) -> Iterator[Any]:
        return iter(dict.keys(self))

    def update(self, *args: Any, **kwargs: Any) -> None:
        """Update recursively: a dict value merges into an existing dict value.

        Lazy objects are copied without being built.
        """
        other: dict[Any, Any] = {}
        if args:
            if len(args) > 1:
                raise TypeError("update only accept one positional argument")
            source = args[0]
            items = dict.items(source) if isinstance(source, dict) else source
            for key, value in items:
                other[key] = value
        other.update(kwargs)
        for key, value in other.items():
            current = dict.get(self, key)
            if key in self and isinstance(current, dict) and isinstance(value, dict):
                current.update(value)
            else:
                self[key] = value

    def __or__(self, other: Any) -> ConfigDict:
        if not isinstance(other, dict):
            return NotImplemented
        new: ConfigDict = to_config_tree(self)
        new.update(to_config_tree(other))
        return new

    def __ror__(self, other: Any) -> ConfigDict:
        if not isinstance(other, dict):
            return NotImplemented
        new: ConfigDict = to_config_tree(ConfigDict(other))
        new.update(to_config_tree(self))
        return new

    def __ior__(self, other: Any) -> ConfigDict:
        self.update(other)
        return self

    # -- copies, pickling, comparison -------------------------------------------------------

    def __copy__(self) -> ConfigDict:
        other = type(self)()
        dict.update(other, self)
        return other

    copy = __copy__

    def __deepcopy__(self, memo: dict[int, Any]) -> ConfigDict:
        other = type(self)()
        memo[id(self)] = other
        for key, value in dict.items(self):
            dict.__setitem__(other, copy.deepcopy(key, memo), copy.deepcopy(value, memo))
        return other

    def deepcopy(self) -> ConfigDict:
        """Return a deep copy."""
        return copy.deepcopy(self)

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, ...]:
        # Pickle the raw items so that lazy objects are not built while pickling.
        return (type(self), (dict(dict.items(self)),), None, None, None, None)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ConfigDict):
            return bool(other.to_dict() == self.to_dict())
        if isinstance(other, dict):
            return dict(self.items()) == other
        return False

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = None

    # -- conversion and merging -------------------------------------------------------------

    def merge(self, other: dict[Any, Any]) -> None:
        """Merge ``other`` into this dict in place, honouring ``_delete_=True``.

        Dicts merge recursively; any other value replaces the current one.

        Args:
            other: The mapping to merge in.
        """
        missing = object()

        def merge_into(a: Any, b: Any) -> Any:
            if isinstance(a, dict):
                if not isinstance(b, dict):
                    return {k: v for k, v in dict.items(a) if k != DELETE_KEY}
                if a.get(DELETE_KEY, False):
                    b = {}
                keys = [*dict.keys(b), *(k for k in dict.keys(a) if k not in b)]
                return {
                    key: merge_into(dict.get(a, key, missing), dict.get(b, key, missing))
                    for key in keys
                    if key != DELETE_KEY
                }
            return a if a is not missing else b

        merged = merge_into(copy.deepcopy(other), copy.deepcopy(self))
        dict.clear(self)
        for key, value in merged.items():
            self[key] = value

    def _to_lazy_dict(self) -> dict[Any, Any]:
        """Return a plain-dict copy that keeps lazy objects unbuilt."""
        result: dict[Any, Any] = _to_plain(self)
        return result

    def to_dict(self) -> dict[Any, Any]:
        """Return a plain-dict copy; tuples stay tuples, lazy objects become import strings."""
        result: dict[Any, Any] = _to_plain(self, lazy_to_str=True)
        return result

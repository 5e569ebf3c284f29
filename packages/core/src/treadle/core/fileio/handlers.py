"""Serialization handlers for :func:`~treadle.core.fileio.load` and :func:`~treadle.core.fileio.dump`.

A handler turns objects into a text or byte stream and back; ``load``/``dump`` pick one by the
file's suffix (or ``file_format``) from :data:`file_handlers`. Built in: ``json``, ``yaml``/``yml``
and ``pickle``/``pkl``. Add formats with :func:`register_handler`. The serialization libraries are
imported when a handler is first used, not when this module is imported.
"""

from __future__ import annotations

import sys
from abc import ABCMeta, abstractmethod
from typing import IO, TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

_H = TypeVar("_H", bound="type[BaseFileHandler]")


class BaseFileHandler(metaclass=ABCMeta):
    """Reads and writes one serialization format.

    Attributes:
        str_like: ``True`` when the format is text (file objects are text streams and
            :meth:`dump_to_str` returns ``str``), ``False`` for binary formats (``bytes``).
    """

    str_like: bool = True

    @abstractmethod
    def load_from_fileobj(self, file: IO[Any], **kwargs: Any) -> Any:
        """Deserialize one object from an open file object."""

    @abstractmethod
    def dump_to_fileobj(self, obj: Any, file: IO[Any], **kwargs: Any) -> None:
        """Serialize ``obj`` into an open file object."""

    @abstractmethod
    def dump_to_str(self, obj: Any, **kwargs: Any) -> Any:
        """Serialize ``obj`` to ``str`` (text formats) or ``bytes`` (binary formats)."""

    def load_from_path(self, filepath: str, **kwargs: Any) -> Any:
        """Deserialize from a local file."""
        mode = "r" if self.str_like else "rb"
        encoding = "utf-8" if self.str_like else None
        with open(filepath, mode, encoding=encoding) as f:
            return self.load_from_fileobj(f, **kwargs)

    def dump_to_path(self, obj: Any, filepath: str, **kwargs: Any) -> None:
        """Serialize to a local file (not atomic; :func:`~treadle.core.fileio.dump` is)."""
        mode = "w" if self.str_like else "wb"
        encoding = "utf-8" if self.str_like else None
        with open(filepath, mode, encoding=encoding) as f:
            self.dump_to_fileobj(obj, f, **kwargs)


def _json_default(obj: Any) -> Any:
    """Make sets, ranges, numpy values and tensors JSON-serializable.

    Sets, ranges, numpy arrays and numpy scalars as MMEngine; a tensor (when torch is imported
    already) becomes a number if it has one element, else nested lists.
    """
    torch_module = sys.modules.get("torch")
    if torch_module is not None and isinstance(obj, torch_module.Tensor):
        return obj.item() if obj.numel() == 1 else obj.tolist()
    if isinstance(obj, (set, frozenset, range)):
        return list(obj)
    # numpy without importing numpy: ndarray.tolist() gives lists, numpy scalars' .tolist() gives
    # plain Python numbers.
    if type(obj).__module__.split(".")[0] == "numpy" and hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


class JsonHandler(BaseFileHandler):
    """JSON via the standard library; sets, ranges and numpy values are converted to lists/numbers."""

    def load_from_fileobj(self, file: IO[Any], **kwargs: Any) -> Any:
        """``json.load`` with ``kwargs``."""
        import json

        return json.load(file, **kwargs)

    def dump_to_fileobj(self, obj: Any, file: IO[Any], **kwargs: Any) -> None:
        """``json.dump`` with ``kwargs``."""
        import json

        kwargs.setdefault("default", _json_default)
        json.dump(obj, file, **kwargs)

    def dump_to_str(self, obj: Any, **kwargs: Any) -> str:
        """``json.dumps`` with ``kwargs``."""
        import json

        kwargs.setdefault("default", _json_default)
        return json.dumps(obj, **kwargs)


def _yaml_classes() -> tuple[Any, Any]:
    """The (Loader, Dumper) pair used by default, built once and C-accelerated when available."""
    global _YAML_CLASSES
    if _YAML_CLASSES is None:
        import yaml

        safe_loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        dumper: Any = getattr(yaml, "CDumper", yaml.Dumper)

        class _Loader(safe_loader):  # type: ignore[misc]
            """SafeLoader that also reads ``!!python/tuple`` (MMEngine dumps tuples that way)."""

        def _tuple(loader: Any, node: Any) -> tuple[Any, ...]:
            return tuple(loader.construct_sequence(node))

        _Loader.add_constructor("tag:yaml.org,2002:python/tuple", _tuple)
        _YAML_CLASSES = (_Loader, dumper)
    return _YAML_CLASSES


_YAML_CLASSES: tuple[Any, Any] | None = None


class YamlHandler(BaseFileHandler):
    """YAML via PyYAML (C-accelerated when available).

    Loading uses a *safe* loader extended with ``!!python/tuple``, so files written by
    :func:`~treadle.core.fileio.dump` (and by MMEngine) load back, tuples included, but a file
    cannot make the loader construct arbitrary Python objects. MMEngine loads with the unsafe
    ``yaml.Loader``; pass ``Loader=yaml.Loader`` to ``load`` for that. Dumping uses ``yaml.Dumper``
    as MMEngine does (tuples become ``!!python/tuple``).
    """

    def load_from_fileobj(self, file: IO[Any], **kwargs: Any) -> Any:
        """``yaml.load`` with the safe tuple-aware loader unless ``Loader`` is given."""
        import yaml

        kwargs.setdefault("Loader", _yaml_classes()[0])
        return yaml.load(file, **kwargs)

    def dump_to_fileobj(self, obj: Any, file: IO[Any], **kwargs: Any) -> None:
        """``yaml.dump`` with ``kwargs``."""
        import yaml

        kwargs.setdefault("Dumper", _yaml_classes()[1])
        yaml.dump(obj, file, **kwargs)

    def dump_to_str(self, obj: Any, **kwargs: Any) -> str:
        """``yaml.dump`` to a string."""
        import yaml

        kwargs.setdefault("Dumper", _yaml_classes()[1])
        text: str = yaml.dump(obj, **kwargs)
        return text


class PickleHandler(BaseFileHandler):
    """Pickle with the interpreter's default protocol (MMEngine pins protocol 2; pass ``protocol=``
    to choose). Loading a pickle runs code from the file: only load files you trust."""

    str_like = False

    def load_from_fileobj(self, file: IO[Any], **kwargs: Any) -> Any:
        """``pickle.load`` with ``kwargs``."""
        import pickle

        return pickle.load(file, **kwargs)

    def dump_to_fileobj(self, obj: Any, file: IO[Any], **kwargs: Any) -> None:
        """``pickle.dump`` with ``kwargs``."""
        import pickle

        pickle.dump(obj, file, **kwargs)

    def dump_to_str(self, obj: Any, **kwargs: Any) -> bytes:
        """``pickle.dumps`` with ``kwargs``: returns bytes."""
        import pickle

        return pickle.dumps(obj, **kwargs)


#: Suffix (without the dot, lower case) → handler instance.
file_handlers: dict[str, BaseFileHandler] = {
    "json": JsonHandler(),
    "yaml": YamlHandler(),
    "yml": YamlHandler(),
    "pickle": PickleHandler(),
    "pkl": PickleHandler(),
}


def _register_handler(handler: BaseFileHandler, file_formats: str | Sequence[str]) -> None:
    if not isinstance(handler, BaseFileHandler):
        raise TypeError(f"handler must be a BaseFileHandler instance, got {type(handler).__name__}")
    formats = [file_formats] if isinstance(file_formats, str) else list(file_formats)
    if not formats or not all(isinstance(fmt, str) and fmt for fmt in formats):
        raise TypeError(f"file_formats must be a str or a list of str, got {file_formats!r}")
    for fmt in formats:
        file_handlers[fmt.lower().lstrip(".")] = handler


def register_handler(file_formats: str | Sequence[str], **kwargs: Any) -> Callable[[_H], _H]:
    """Class decorator: register a handler class for one or more file suffixes.

    The class is instantiated with ``kwargs``; a later registration for a suffix replaces the
    earlier one.

    Example:
        >>> @register_handler(["txt", "log"])
        ... class TxtHandler(BaseFileHandler):
        ...     ...

    Args:
        file_formats: Suffix or suffixes without the dot (``"toml"``).
        **kwargs: Constructor arguments for the handler.
    """

    def wrap(cls: _H) -> _H:
        _register_handler(cls(**kwargs), file_formats)
        return cls

    return wrap

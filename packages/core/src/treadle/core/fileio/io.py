"""MMEngine's file I/O functions, dispatched by URI scheme to a storage backend.

Every function takes the path first and ``backend_args`` last; the backend comes from
:func:`~treadle.core.fileio.get_file_backend`. Local writes are atomic (temporary file +
``os.replace``), so a reader never sees half a checkpoint, log or config.

Example:
    >>> from treadle.core import fileio
    >>> fileio.dump({"lr": 0.1}, "memory://run/cfg.json")
    >>> fileio.load("memory://run/cfg.json")
    {'lr': 0.1}
"""

from __future__ import annotations

import contextlib
import io
import os
from typing import IO, TYPE_CHECKING, Any

from treadle.core.fileio.dispatch import get_file_backend
from treadle.core.fileio.handlers import BaseFileHandler, file_handlers

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from treadle.core.fileio.backends.base import PathType


class UnsupportedFormatError(TypeError, ValueError):
    """``load``/``dump`` got a format no handler serves.

    A ``TypeError`` as in MMEngine (so existing ``except TypeError`` keeps working) and a
    ``ValueError``, which is what it is.
    """


def get(filepath: PathType, backend_args: Mapping[str, Any] | None = None) -> bytes:
    """Read a whole file as bytes.

    Raises:
        FileNotFoundError: The file does not exist; the message names it and the backend.
    """
    return get_file_backend(filepath, backend_args=backend_args).get(filepath)


def get_text(
    filepath: PathType, encoding: str = "utf-8", backend_args: Mapping[str, Any] | None = None
) -> str:
    """Read a whole file as text."""
    return get_file_backend(filepath, backend_args=backend_args).get_text(filepath, encoding)


def put(obj: bytes, filepath: PathType, backend_args: Mapping[str, Any] | None = None) -> None:
    """Write bytes to ``filepath`` atomically, creating parent directories."""
    get_file_backend(filepath, backend_args=backend_args).put(obj, filepath)


def put_text(
    obj: str,
    filepath: PathType,
    encoding: str = "utf-8",
    backend_args: Mapping[str, Any] | None = None,
) -> None:
    """Write text to ``filepath`` atomically, creating parent directories."""
    get_file_backend(filepath, backend_args=backend_args).put_text(obj, filepath, encoding)


def exists(filepath: PathType, backend_args: Mapping[str, Any] | None = None) -> bool:
    """Return whether ``filepath`` exists."""
    return get_file_backend(filepath, backend_args=backend_args).exists(filepath)


def isdir(filepath: PathType, backend_args: Mapping[str, Any] | None = None) -> bool:
    """Return whether ``filepath`` is a directory."""
    return get_file_backend(filepath, backend_args=backend_args).isdir(filepath)


def isfile(filepath: PathType, backend_args: Mapping[str, Any] | None = None) -> bool:
    """Return whether ``filepath`` is a file."""
    return get_file_backend(filepath, backend_args=backend_args).isfile(filepath)


def join_path(
    filepath: PathType, *filepaths: PathType, backend_args: Mapping[str, Any] | None = None
) -> str:
    """Join path components the way ``filepath``'s backend does (``os.path.join`` locally)."""
    return get_file_backend(filepath, backend_args=backend_args).join_path(filepath, *filepaths)


@contextlib.contextmanager
def get_local_path(
    filepath: PathType, backend_args: Mapping[str, Any] | None = None
) -> Iterator[str]:
    """Context manager yielding a local path with ``filepath``'s content.

    A local file is yielded as is (and kept); a remote one is downloaded to a temporary file that
    is removed when the ``with`` block exits.
    """
    backend = get_file_backend(filepath, backend_args=backend_args)
    with backend.get_local_path(filepath) as local_path:
        yield local_path


def copyfile(src: PathType, dst: PathType, backend_args: Mapping[str, Any] | None = None) -> str:
    """Copy a file within one backend; into ``dst`` under its own name if ``dst`` is a directory.

    Returns:
        The destination file.
    """
    return get_file_backend(src, backend_args=backend_args).copyfile(src, dst)


def copytree(src: PathType, dst: PathType, backend_args: Mapping[str, Any] | None = None) -> str:
    """Copy a directory tree within one backend; ``dst`` must not exist.

    Returns:
        The destination directory.
    """
    return get_file_backend(src, backend_args=backend_args).copytree(src, dst)


def copyfile_from_local(
    src: PathType, dst: PathType, backend_args: Mapping[str, Any] | None = None
) -> str:
    """Upload the local file ``src`` to ``dst`` (on ``dst``'s backend)."""
    return get_file_backend(dst, backend_args=backend_args).copyfile_from_local(src, dst)


def copytree_from_local(
    src: PathType, dst: PathType, backend_args: Mapping[str, Any] | None = None
) -> str:
    """Upload the local directory tree ``src`` to ``dst`` (on ``dst``'s backend)."""
    return get_file_backend(dst, backend_args=backend_args).copytree_from_local(src, dst)


def copyfile_to_local(
    src: PathType, dst: PathType, backend_args: Mapping[str, Any] | None = None
) -> str:
    """Download ``src`` (on ``src``'s backend) to the local path ``dst``.

    MMEngine picks the backend from ``dst`` here, which is always local and so cannot read a
    remote ``src``; treadle picks it from ``src``.
    """
    return get_file_backend(src, backend_args=backend_args).copyfile_to_local(src, dst)


def copytree_to_local(
    src: PathType, dst: PathType, backend_args: Mapping[str, Any] | None = None
) -> str:
    """Download the directory tree ``src`` (on ``src``'s backend) to the local ``dst``."""
    return get_file_backend(src, backend_args=backend_args).copytree_to_local(src, dst)


def remove(filepath: PathType, backend_args: Mapping[str, Any] | None = None) -> None:
    """Remove a file (``FileNotFoundError`` if missing, ``IsADirectoryError`` for a directory)."""
    get_file_backend(filepath, backend_args=backend_args).remove(filepath)


def rmtree(dir_path: PathType, backend_args: Mapping[str, Any] | None = None) -> None:
    """Remove a directory tree."""
    get_file_backend(dir_path, backend_args=backend_args).rmtree(dir_path)


def copy_if_symlink_fails(
    src: PathType, dst: PathType, backend_args: Mapping[str, Any] | None = None
) -> bool:
    """Link ``dst`` to ``src`` where possible, else copy; return whether a link was made."""
    return get_file_backend(src, backend_args=backend_args).copy_if_symlink_fails(src, dst)


def list_dir_or_file(
    dir_path: PathType,
    list_dir: bool = True,
    list_file: bool = True,
    suffix: str | tuple[str, ...] | None = None,
    recursive: bool = False,
    backend_args: Mapping[str, Any] | None = None,
) -> Iterator[str]:
    """Iterate over a directory's entries, as paths relative to ``dir_path``.

    Args:
        dir_path: The directory.
        list_dir: Yield directories.
        list_file: Yield files.
        suffix: Only files ending with this suffix (or one of a tuple of them); requires
            ``list_dir=False``, as in MMEngine.
        recursive: Descend into subdirectories.
        backend_args: Backend arguments.

    Hidden files are skipped. Bad arguments and a missing directory raise at the call, not at the
    first iteration.
    """
    backend = get_file_backend(dir_path, backend_args=backend_args)
    return backend.list_dir_or_file(dir_path, list_dir, list_file, suffix, recursive)


# ---------------------------------------------------------------------- load / dump


def _handler_for(file_format: str | None, file: object) -> BaseFileHandler:
    fmt = file_format
    if fmt is None:
        if not isinstance(file, str):
            raise UnsupportedFormatError(
                "file_format must be given when file is not a path "
                f"(got {type(file).__name__}); supported formats: {_supported()}"
            )
        base = file.rstrip("/").rsplit("/", 1)[-1]
        if "." not in base:
            raise UnsupportedFormatError(
                f"Cannot infer the file format of {file!r} (no suffix); pass file_format= one of "
                f"{_supported()}"
            )
        fmt = base.rsplit(".", 1)[-1]
    handler = file_handlers.get(fmt.lower().lstrip("."))
    if handler is None:
        where = f" for {file!r}" if isinstance(file, str) else ""
        raise UnsupportedFormatError(
            f"Unsupported file format {fmt!r}{where}; supported formats: {_supported()} "
            "(add one with treadle.core.fileio.register_handler)"
        )
    return handler


def _supported() -> str:
    return ", ".join(sorted(file_handlers))


def load(
    file: PathType | IO[Any],
    file_format: str | None = None,
    backend_args: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> Any:
    """Load an object from a json, yaml or pickle file (format chosen by suffix).

    Args:
        file: A path/URI or an open file object (text for json/yaml, binary for pickle).
        file_format: Overrides the suffix (``"json"``, ``"yaml"``, ``"pkl"``, …); required for
            file objects.
        backend_args: Backend arguments for a path.
        **kwargs: Passed to the handler (e.g. ``Loader=`` for yaml).

    Raises:
        UnsupportedFormatError: Unknown format (the message lists the supported ones).
        FileNotFoundError: The file does not exist.
    """
    if isinstance(file, os.PathLike):
        file = os.fspath(file)
    handler = _handler_for(file_format, file)
    if isinstance(file, str):
        backend = get_file_backend(file, backend_args=backend_args)
        if handler.str_like:
            with io.StringIO(backend.get_text(file)) as text:
                return handler.load_from_fileobj(text, **kwargs)
        with io.BytesIO(backend.get(file)) as data:
            return handler.load_from_fileobj(data, **kwargs)
    if hasattr(file, "read"):
        return handler.load_from_fileobj(file, **kwargs)
    raise TypeError(f"file must be a path or a file object, got {type(file).__name__}")


def dump(
    obj: Any,
    file: PathType | IO[Any] | None = None,
    file_format: str | None = None,
    backend_args: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> Any:
    """Dump an object as json, yaml or pickle, to a string, a file object or a path.

    The object is serialized in memory first and then written with one atomic ``put``, so a
    serializer that fails (an unpicklable object, a value json cannot encode) leaves an existing
    file untouched.

    Args:
        obj: The object.
        file: ``None`` to return the serialized form; a path/URI; or an open file object.
        file_format: Overrides the suffix; required when ``file`` is not a path.
        backend_args: Backend arguments for a path.
        **kwargs: Passed to the handler (e.g. ``indent=2`` for json).

    Returns:
        With ``file=None``, the serialized object: ``str`` for json/yaml, ``bytes`` for pickle.
        Otherwise ``None``.
    """
    if isinstance(file, os.PathLike):
        file = os.fspath(file)
    if file is None and file_format is None:
        raise ValueError(f"file_format must be given when file is None; supported: {_supported()}")
    handler = _handler_for(file_format, file)
    if file is None:
        return handler.dump_to_str(obj, **kwargs)
    if isinstance(file, str):
        backend = get_file_backend(file, backend_args=backend_args)
        if handler.str_like:
            with io.StringIO() as text:
                handler.dump_to_fileobj(obj, text, **kwargs)
                backend.put_text(text.getvalue(), file)
        else:
            with io.BytesIO() as data:
                handler.dump_to_fileobj(obj, data, **kwargs)
                backend.put(data.getvalue(), file)
        return None
    if hasattr(file, "write"):
        handler.dump_to_fileobj(obj, file, **kwargs)
        return None
    raise TypeError(f"file must be None, a path or a file object, got {type(file).__name__}")

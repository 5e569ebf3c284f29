"""The interface every storage backend implements.

A backend is a class registered in ``FILE_BACKENDS`` under the URI scheme it serves (``s3``,
``local``, …) and built with the caller's ``backend_args`` as keyword arguments. Subclasses must
implement the abstract primitives (:meth:`get`, :meth:`put`, :meth:`exists`, :meth:`isdir`,
:meth:`isfile`, :meth:`remove`, :meth:`list_dir_or_file`); everything else has a default written
on top of them, which a backend overrides where its storage offers something faster (server-side
copies, ranged downloads, recursive deletes).

Paths are the caller's URIs (``s3://bucket/key``), never backend-internal forms; methods that
return a path return it in the same form.
"""

from __future__ import annotations

import contextlib
import errno
import os
from abc import ABCMeta, abstractmethod
from typing import TYPE_CHECKING, TypeAlias, Union

if TYPE_CHECKING:
    from collections.abc import Iterator

#: What every path argument accepts: a string (URI or local path) or an ``os.PathLike``.
PathType: TypeAlias = Union[str, "os.PathLike[str]"]


def _check_list_args(list_dir: bool, suffix: str | tuple[str, ...] | None) -> None:
    """Check the ``list_dir``/``suffix`` arguments of :meth:`~BaseStorageBackend.list_dir_or_file`."""
    if list_dir and suffix is not None:
        raise TypeError("`suffix` must be None when `list_dir` is True (suffixes apply to files)")
    if suffix is not None and not isinstance(suffix, (str, tuple)):
        raise TypeError(f"`suffix` must be a str or a tuple of str, got {type(suffix).__name__}")


class BaseStorageBackend(metaclass=ABCMeta):
    """Abstract storage backend: MMEngine's method set, with defaults built on a few primitives."""

    @property
    def name(self) -> str:
        """The backend's class name, used in error messages."""
        return type(self).__name__

    def _not_found(self, path: PathType, what: str = "No such file or directory") -> OSError:
        """A ``FileNotFoundError`` that names ``path`` and this backend."""
        return FileNotFoundError(errno.ENOENT, f"{what} ({self.name})", os.fspath(path))

    def _not_a_dir(self, dir_path: PathType, exists: bool) -> OSError:
        """The error for listing ``dir_path``, which is a file (``exists``) or missing."""
        if exists:
            return NotADirectoryError(
                errno.ENOTDIR, f"Not a directory ({self.name})", os.fspath(dir_path)
            )
        return self._not_found(dir_path, "No such directory")

    # ---------------------------------------------------------------- primitives (abstract)

    @abstractmethod
    def get(self, filepath: PathType) -> bytes:
        """Read a whole file as bytes.

        Raises:
            FileNotFoundError: ``filepath`` does not exist (the message names it and the backend).
        """

    @abstractmethod
    def put(self, obj: bytes, filepath: PathType) -> None:
        """Write ``obj`` to ``filepath``, atomically: a reader never sees half a file.

        Missing parent directories are created where the storage has directories.
        """

    @abstractmethod
    def exists(self, filepath: PathType) -> bool:
        """Return whether ``filepath`` exists (file or directory)."""

    @abstractmethod
    def isdir(self, filepath: PathType) -> bool:
        """Return whether ``filepath`` is a directory (a key prefix on object stores)."""

    @abstractmethod
    def isfile(self, filepath: PathType) -> bool:
        """Return whether ``filepath`` is a file."""

    @abstractmethod
    def remove(self, filepath: PathType) -> None:
        """Remove a file.

        Raises:
            FileNotFoundError: ``filepath`` does not exist.
            IsADirectoryError: ``filepath`` is a directory.
        """

    @abstractmethod
    def list_dir_or_file(
        self,
        dir_path: PathType,
        list_dir: bool = True,
        list_file: bool = True,
        suffix: str | tuple[str, ...] | None = None,
        recursive: bool = False,
    ) -> Iterator[str]:
        """Yield the entries of a directory as paths relative to ``dir_path``.

        Args:
            dir_path: The directory to scan.
            list_dir: Yield directories.
            list_file: Yield files.
            suffix: Only yield files whose relative path ends with this suffix (or one of these
                suffixes). Must be ``None`` when ``list_dir`` is true, as in MMEngine.
            recursive: Descend into subdirectories (a directory is yielded before its content).

        Hidden files (name starting with ``.``) are skipped, as in MMEngine. Entries come in
        sorted order within each directory.

        Raises:
            TypeError: ``suffix`` given with ``list_dir=True``, or not a str/tuple.
            FileNotFoundError: ``dir_path`` does not exist.
        """

    # ---------------------------------------------------------------- derived operations

    def get_text(self, filepath: PathType, encoding: str = "utf-8") -> str:
        """Read a whole file as text decoded with ``encoding``."""
        return self.get(filepath).decode(encoding)

    def put_text(self, obj: str, filepath: PathType, encoding: str = "utf-8") -> None:
        """Write text to ``filepath`` encoded with ``encoding``, atomically."""
        if not isinstance(obj, str):
            raise TypeError(f"put_text() needs a str, got {type(obj).__name__}")
        self.put(obj.encode(encoding), filepath)

    def join_path(self, filepath: PathType, *filepaths: PathType) -> str:
        """Join path components with ``/`` (URI style)."""
        result = os.fspath(filepath)
        for part in filepaths:
            part_str = os.fspath(part)
            result = result + part_str if result.endswith("/") else f"{result}/{part_str}"
        return result

    @contextlib.contextmanager
    def get_local_path(self, filepath: PathType) -> Iterator[str]:
        """Yield a local file holding ``filepath``'s content, removed on exit.

        The temporary file keeps the original suffix, so format detection by extension works.
        """
        import tempfile

        suffix = os.path.splitext(os.fspath(filepath).rstrip("/"))[1]
        data = self.get(filepath)
        fd, tmp = tempfile.mkstemp(suffix=suffix, prefix="treadle-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            yield tmp
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)

    def _dst_file(self, src: PathType, dst: PathType, dst_is_dir: bool) -> str:
        dst_str = os.fspath(dst)
        if dst_is_dir:
            base = os.path.basename(os.fspath(src).rstrip("/\\"))
            return self.join_path(dst_str, base)
        return dst_str

    def copyfile(self, src: PathType, dst: PathType) -> str:
        """Copy file ``src`` to ``dst`` (both on this backend) and return the destination.

        If ``dst`` is a directory, the file is copied into it under its own name; an existing
        destination file is replaced.
        """
        target = self._dst_file(src, dst, self.isdir(dst))
        self.put(self.get(src), target)
        return target

    def copytree(self, src: PathType, dst: PathType) -> str:
        """Copy the directory tree ``src`` to ``dst`` (which must not exist) and return ``dst``.

        The default copies the files :meth:`list_dir_or_file` yields (hidden files are skipped).

        Raises:
            FileExistsError: ``dst`` exists.
            FileNotFoundError: ``src`` does not exist.
        """
        dst_str = os.fspath(dst)
        if self.exists(dst):
            raise FileExistsError(f"copytree destination exists ({self.name}): {dst_str!r}")
        for rel in self.list_dir_or_file(src, list_dir=False, recursive=True):
            self.copyfile(self.join_path(src, rel), self.join_path(dst_str, rel))
        return dst_str

    def copyfile_from_local(self, src: PathType, dst: PathType) -> str:
        """Upload the local file ``src`` to ``dst`` on this backend and return the destination."""
        target = self._dst_file(src, dst, self.isdir(dst))
        with open(src, "rb") as f:
            self.put(f.read(), target)
        return target

    def copytree_from_local(self, src: PathType, dst: PathType) -> str:
        """Upload the local directory tree ``src`` to ``dst`` (which must not exist)."""
        dst_str = os.fspath(dst)
        if self.exists(dst):
            raise FileExistsError(f"copytree destination exists ({self.name}): {dst_str!r}")
        src_str = os.fspath(src)
        if not os.path.isdir(src_str):
            raise FileNotFoundError(f"local directory not found: {src_str!r}")
        for root, _dirs, files in os.walk(src_str):
            for name in files:
                local = os.path.join(root, name)
                rel = os.path.relpath(local, src_str).replace(os.sep, "/")
                self.copyfile_from_local(local, self.join_path(dst_str, rel))
        return dst_str

    def copyfile_to_local(self, src: PathType, dst: PathType) -> str:
        """Download ``src`` from this backend to the local path ``dst`` and return it.

        If ``dst`` is an existing local directory the file lands inside it under its own name.
        The local file is written atomically.
        """
        from treadle.core.fileio._atomic import write_bytes_atomic

        dst_str = os.fspath(dst)
        if os.path.isdir(dst_str):
            dst_str = os.path.join(dst_str, os.path.basename(os.fspath(src).rstrip("/")))
        write_bytes_atomic(dst_str, self.get(src))
        return dst_str

    def copytree_to_local(self, src: PathType, dst: PathType) -> str:
        """Download the directory tree ``src`` to the local directory ``dst`` (must not exist)."""
        dst_str = os.fspath(dst)
        if os.path.exists(dst_str):
            raise FileExistsError(f"copytree destination exists (local): {dst_str!r}")
        for rel in self.list_dir_or_file(src, list_dir=False, recursive=True):
            self.copyfile_to_local(self.join_path(src, rel), os.path.join(dst_str, rel))
        return dst_str

    def rmtree(self, dir_path: PathType) -> None:
        """Remove a directory tree.

        The default removes every file :meth:`list_dir_or_file` yields, so hidden files survive;
        backends with a recursive delete override it.

        Raises:
            FileNotFoundError: ``dir_path`` does not exist.
        """
        if not self.isdir(dir_path):
            raise FileNotFoundError(f"directory not found ({self.name}): {os.fspath(dir_path)!r}")
        for rel in self.list_dir_or_file(dir_path, list_dir=False, recursive=True):
            self.remove(self.join_path(dir_path, rel))

    def copy_if_symlink_fails(self, src: PathType, dst: PathType) -> bool:
        """Link ``dst`` to ``src`` where the storage supports links, else copy.

        Returns:
            ``True`` when a link was made, ``False`` when the content was copied. The default has
            no links and always copies.
        """
        if self.isfile(src):
            self.copyfile(src, dst)
        else:
            self.copytree(src, dst)
        return False

    def __repr__(self) -> str:
        return f"{self.name}()"

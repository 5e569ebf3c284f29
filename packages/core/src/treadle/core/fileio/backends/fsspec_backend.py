"""A backend for any protocol fsspec knows (``memory://``, ``file://``, ``gcs://``, ``sftp://``, …).

``get_file_backend`` falls back to it for a URI scheme that no plugin registered in
``FILE_BACKENDS`` when fsspec has an implementation for the protocol. fsspec is imported when the
backend is built, never when ``treadle.core.fileio`` is imported.
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import tempfile
from typing import TYPE_CHECKING, Any

from treadle.core.fileio._atomic import atomic_local_path, temp_path_for
from treadle.core.fileio.backends.base import BaseStorageBackend, _check_list_args

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from treadle.core.fileio.backends.base import PathType

#: Protocols whose stores make a single upload atomic (a reader sees the old object or the whole
#: new one) and have no cheap rename: writes go straight to the destination there.
_SINGLE_PUT_ATOMIC = frozenset(
    {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oss", "oci", "cos", "obs", "tos"}
)


class FsspecBackend(BaseStorageBackend):
    """Storage through an fsspec filesystem.

    Paths are full URIs (``memory://bucket/a.json``); on ``file`` a plain local path works too.
    Writes are atomic: on filesystems with a rename (local, memory, sftp, hdfs, …) the content is
    written to a hidden temporary name next to the destination and then moved over it (on local
    files with :func:`os.replace`); on object stores a single upload is already atomic and is used
    directly.

    Args:
        protocol: The fsspec protocol (``"memory"``, ``"file"``, ``"gcs"``, …).
            ``get_file_backend`` passes the URI's scheme.
        rename_writes: Force (``True``) or disable (``False``) the temporary-name-then-move write;
            by default it is used everywhere except on object stores.
        **storage_options: Passed to ``fsspec.filesystem`` (credentials, endpoints, …).

    Raises:
        ImportError: fsspec has no usable implementation for ``protocol`` (fsspec's own message
            names the package to install).
    """

    def __init__(
        self, protocol: str = "file", *, rename_writes: bool | None = None, **storage_options: Any
    ) -> None:
        import fsspec

        self.protocol = protocol
        self.storage_options = storage_options
        self.fs: Any = fsspec.filesystem(protocol, **storage_options)
        from fsspec.implementations.local import LocalFileSystem

        self._is_local = isinstance(self.fs, LocalFileSystem)
        self._rename_writes = (
            rename_writes if rename_writes is not None else protocol not in _SINGLE_PUT_ATOMIC
        )

    @property
    def name(self) -> str:
        """``FsspecBackend(<protocol>)``, used in error messages."""
        return f"{type(self).__name__}({self.protocol})"

    def __repr__(self) -> str:
        return self.name

    # ---------------------------------------------------------------- helpers

    def _path(self, filepath: PathType) -> str:
        """The filesystem-internal path of a URI (protocol stripped)."""
        path: str = self.fs._strip_protocol(os.fspath(filepath))
        return path

    def _write(self, filepath: PathType, write: Callable[[str], object]) -> None:
        """Call ``write(internal_path)`` so that the destination appears whole or not at all."""
        target = self._path(filepath)
        parent = posixpath.dirname(target)
        if self._is_local:
            with atomic_local_path(target) as tmp:
                write(tmp)
            return
        if not self._rename_writes:
            write(target)
            return
        if parent:
            self.fs.makedirs(parent, exist_ok=True)
        tmp = temp_path_for(target, posixpath)
        try:
            write(tmp)
            self.fs.mv(tmp, target)
        except BaseException:
            with contextlib.suppress(Exception):
                if self.fs.exists(tmp):
                    self.fs.rm_file(tmp)
            raise

    def _require_file(self, filepath: PathType) -> str:
        path = self._path(filepath)
        if not self.fs.isfile(path):
            if self.fs.isdir(path):
                raise IsADirectoryError(
                    errno.EISDIR, f"Is a directory ({self.name})", os.fspath(filepath)
                )
            raise self._not_found(filepath)
        return path

    def _require_dir(self, dir_path: PathType) -> str:
        path = self._path(dir_path).rstrip("/")
        if not self.fs.isdir(path):
            raise self._not_found(dir_path, "No such directory")
        return path

    def _find(self, dir_path: str) -> Iterator[tuple[str, str, bool]]:
        """``(internal path, path relative to dir_path, is a directory)`` of what it holds."""
        for name, info in sorted(self.fs.find(dir_path, withdirs=True, detail=True).items()):
            rel = name[len(dir_path) :].lstrip("/")
            if rel:
                yield name, rel, info["type"] == "directory"

    # ---------------------------------------------------------------- primitives

    def get(self, filepath: PathType) -> bytes:
        """Read a whole file as bytes."""
        try:
            data: bytes = self.fs.cat_file(self._path(filepath))
        except FileNotFoundError:
            raise self._not_found(filepath) from None
        return data

    def put(self, obj: bytes, filepath: PathType) -> None:
        """Write bytes atomically (see the class docstring)."""
        if not isinstance(obj, (bytes, bytearray, memoryview)):
            raise TypeError(f"put() needs bytes, got {type(obj).__name__}")
        self._write(filepath, lambda path: self.fs.pipe_file(path, bytes(obj)))

    def exists(self, filepath: PathType) -> bool:
        """Return whether ``filepath`` exists."""
        return bool(self.fs.exists(self._path(filepath)))

    def isdir(self, filepath: PathType) -> bool:
        """Return whether ``filepath`` is a directory."""
        return bool(self.fs.isdir(self._path(filepath)))

    def isfile(self, filepath: PathType) -> bool:
        """Return whether ``filepath`` is a file."""
        return bool(self.fs.isfile(self._path(filepath)))

    def remove(self, filepath: PathType) -> None:
        """Remove a file.

        Raises:
            FileNotFoundError: ``filepath`` does not exist.
            IsADirectoryError: ``filepath`` is a directory (use :meth:`rmtree`).
        """
        self.fs.rm_file(self._require_file(filepath))

    def rmtree(self, dir_path: PathType) -> None:
        """Remove a directory tree.

        Raises:
            FileNotFoundError: ``dir_path`` does not exist.
        """
        path = self._path(dir_path)
        if not self.fs.isdir(path):
            raise self._not_found(dir_path, "No such directory")
        self.fs.rm(path, recursive=True)

    def list_dir_or_file(
        self,
        dir_path: PathType,
        list_dir: bool = True,
        list_file: bool = True,
        suffix: str | tuple[str, ...] | None = None,
        recursive: bool = False,
    ) -> Iterator[str]:
        """Yield directory entries relative to ``dir_path`` (see the base class).

        The arguments and the directory's existence are checked when this is called.
        """
        _check_list_args(list_dir, suffix)
        root = self._path(dir_path).rstrip("/")
        if not self.fs.isdir(root or "/"):
            raise self._not_a_dir(dir_path, self.fs.exists(root))
        return self._scan(root, root, list_dir, list_file, suffix, recursive)

    def _scan(
        self,
        root: str,
        current: str,
        list_dir: bool,
        list_file: bool,
        suffix: str | tuple[str, ...] | None,
        recursive: bool,
    ) -> Iterator[str]:
        entries = self.fs.ls(current or "/", detail=True)
        for entry in sorted(entries, key=lambda e: str(e["name"])):
            name = str(entry["name"]).rstrip("/")
            if name == current or not name.startswith(root):
                continue  # some stores list the directory itself
            rel = name[len(root) :].lstrip("/")
            if entry["type"] == "directory":
                if list_dir:
                    yield rel
                if recursive:
                    yield from self._scan(root, name, list_dir, list_file, suffix, recursive)
            elif (
                list_file
                and not posixpath.basename(name).startswith(".")
                and (suffix is None or rel.endswith(suffix))
            ):
                yield rel

    # ---------------------------------------------------------------- faster derived operations

    @contextlib.contextmanager
    def get_local_path(self, filepath: PathType) -> Iterator[str]:
        """Yield a local path with the file's content.

        On ``file`` that is the file itself (kept afterwards); elsewhere a temporary download
        that keeps the original suffix and is removed on exit.
        """
        path = self._require_file(filepath)
        if self._is_local:
            yield path
            return
        fd, tmp = tempfile.mkstemp(suffix=posixpath.splitext(path)[1], prefix="treadle-")
        os.close(fd)
        try:
            self.fs.get_file(path, tmp)
            yield tmp
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)

    def copyfile(self, src: PathType, dst: PathType) -> str:
        """Copy a file within this filesystem, atomically, and return the destination."""
        src_path = self._require_file(src)
        target = self._dst_file(src, dst, self.isdir(dst))
        self._write(target, lambda path: self.fs.cp_file(src_path, path))
        return target

    def copytree(self, src: PathType, dst: PathType) -> str:
        """Copy a directory tree (hidden files included) to ``dst``, which must not exist."""
        src_path = self._require_dir(src)
        dst_str = os.fspath(dst)
        if self.exists(dst):
            raise FileExistsError(errno.EEXIST, f"Destination exists ({self.name})", dst_str)
        for _name, rel, is_dir in self._find(src_path):
            if is_dir:
                if self._rename_writes:
                    self.fs.makedirs(self._path(self.join_path(dst_str, rel)), exist_ok=True)
            else:
                self.copyfile(self.join_path(src, rel), self.join_path(dst_str, rel))
        if self._rename_writes:
            self.fs.makedirs(self._path(dst_str), exist_ok=True)
        return dst_str

    def copyfile_from_local(self, src: PathType, dst: PathType) -> str:
        """Upload a local file, atomically, and return the destination."""
        src_str = os.fspath(src)
        if not os.path.isfile(src_str):
            raise FileNotFoundError(errno.ENOENT, "No such local file", src_str)
        target = self._dst_file(src, dst, self.isdir(dst))
        self._write(target, lambda path: self.fs.put_file(src_str, path))
        return target

    def copyfile_to_local(self, src: PathType, dst: PathType) -> str:
        """Download a file to a local path, atomically, and return that path."""
        src_path = self._require_file(src)
        dst_str = os.fspath(dst)
        if os.path.isdir(dst_str):
            dst_str = os.path.join(dst_str, posixpath.basename(src_path))
        with atomic_local_path(dst_str) as tmp:
            self.fs.get_file(src_path, tmp)
        return dst_str

    def copytree_to_local(self, src: PathType, dst: PathType) -> str:
        """Download a directory tree (hidden files included) to a new local directory."""
        src_path = self._require_dir(src)
        dst_str = os.fspath(dst)
        if os.path.exists(dst_str):
            raise FileExistsError(errno.EEXIST, "Destination exists (local)", dst_str)
        os.makedirs(dst_str)
        for name, rel, is_dir in self._find(src_path):
            local = os.path.join(dst_str, *rel.split("/"))
            if is_dir:
                os.makedirs(local, exist_ok=True)
            else:
                os.makedirs(os.path.dirname(local), exist_ok=True)
                self.fs.get_file(name, local)
        return dst_str

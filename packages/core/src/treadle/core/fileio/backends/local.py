"""The local filesystem backend."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from typing import TYPE_CHECKING

from treadle.core.fileio._atomic import atomic_local_path, write_bytes_atomic, write_text_atomic
from treadle.core.fileio.backends.base import BaseStorageBackend, _check_list_args

if TYPE_CHECKING:
    from collections.abc import Iterator

    from treadle.core.fileio.backends.base import PathType


class LocalBackend(BaseStorageBackend):
    """Files on the local filesystem.

    Writes (:meth:`put`, :meth:`put_text`, :meth:`copyfile`, and ``dump`` through them) are
    atomic: the content goes to a hidden temporary file in the destination's directory, which then
    replaces the destination with :func:`os.replace`. A reader sees the old file or the complete
    new one; an error or a killed process leaves the old file intact. Parent directories are
    created.

    Args:
        fsync: Also flush each written file and its directory to disk before returning, so that
            the write survives a power loss, not only a process crash. Costs a disk round trip per
            write; off by default (MMEngine never syncs). Pass it as
            ``backend_args={"fsync": True}``.
    """

    def __init__(self, fsync: bool = False) -> None:
        self.fsync = fsync

    def get(self, filepath: PathType) -> bytes:
        """Read a whole file as bytes."""
        try:
            with open(filepath, "rb") as f:
                return f.read()
        except FileNotFoundError:
            raise self._not_found(filepath) from None

    def get_text(self, filepath: PathType, encoding: str = "utf-8") -> str:
        """Read a whole file as text (universal newlines, as ``open``)."""
        try:
            with open(filepath, encoding=encoding) as f:
                return f.read()
        except FileNotFoundError:
            raise self._not_found(filepath) from None

    def put(self, obj: bytes, filepath: PathType) -> None:
        """Write bytes atomically, creating parent directories."""
        write_bytes_atomic(os.fspath(filepath), obj, fsync=self.fsync)

    def put_text(self, obj: str, filepath: PathType, encoding: str = "utf-8") -> None:
        """Write text atomically (platform newlines, as ``open``), creating parent directories."""
        write_text_atomic(os.fspath(filepath), obj, encoding=encoding, fsync=self.fsync)

    def exists(self, filepath: PathType) -> bool:
        """Return whether ``filepath`` exists."""
        return os.path.exists(filepath)

    def isdir(self, filepath: PathType) -> bool:
        """Return whether ``filepath`` is a directory."""
        return os.path.isdir(filepath)

    def isfile(self, filepath: PathType) -> bool:
        """Return whether ``filepath`` is a file."""
        return os.path.isfile(filepath)

    def join_path(self, filepath: PathType, *filepaths: PathType) -> str:
        """Join with :func:`os.path.join`."""
        return os.path.join(os.fspath(filepath), *(os.fspath(p) for p in filepaths))

    @contextlib.contextmanager
    def get_local_path(self, filepath: PathType) -> Iterator[str]:
        """Yield the path itself: it is local already, and is not removed afterwards."""
        path = os.fspath(filepath)
        if not os.path.exists(path):
            raise self._not_found(path)
        yield path

    def copyfile(self, src: PathType, dst: PathType) -> str:
        """Copy a file (content and permission bits) atomically and return the destination.

        Raises:
            FileNotFoundError: ``src`` does not exist.
            shutil.SameFileError: ``src`` and ``dst`` are the same file.
        """
        src_str = os.fspath(src)
        if not os.path.isfile(src_str):
            if os.path.isdir(src_str):
                raise IsADirectoryError(
                    errno.EISDIR, f"copyfile source is a directory ({self.name})", src_str
                )
            raise self._not_found(src_str)
        target = self._dst_file(src_str, dst, os.path.isdir(dst))
        if os.path.exists(target) and os.path.samefile(src_str, target):
            raise shutil.SameFileError(f"{src_str!r} and {target!r} are the same file")
        with atomic_local_path(target, fsync=self.fsync) as tmp:
            shutil.copyfile(src_str, tmp)
            shutil.copymode(src_str, tmp)
        return target

    def copytree(self, src: PathType, dst: PathType) -> str:
        """Copy a directory tree (hidden files included) to ``dst``, which must not exist.

        Raises:
            FileExistsError: ``dst`` exists.
            FileNotFoundError: ``src`` does not exist.
        """
        src_str, dst_str = os.fspath(src), os.fspath(dst)
        if not os.path.isdir(src_str):
            raise self._not_found(src_str, "No such directory")
        if os.path.exists(dst_str):
            raise FileExistsError(errno.EEXIST, f"Destination exists ({self.name})", dst_str)
        return os.fspath(shutil.copytree(src_str, dst_str))

    def copyfile_from_local(self, src: PathType, dst: PathType) -> str:
        """Same as :meth:`copyfile`."""
        return self.copyfile(src, dst)

    def copytree_from_local(self, src: PathType, dst: PathType) -> str:
        """Same as :meth:`copytree`."""
        return self.copytree(src, dst)

    def copyfile_to_local(self, src: PathType, dst: PathType) -> str:
        """Same as :meth:`copyfile`."""
        return self.copyfile(src, dst)

    def copytree_to_local(self, src: PathType, dst: PathType) -> str:
        """Same as :meth:`copytree`."""
        return self.copytree(src, dst)

    def remove(self, filepath: PathType) -> None:
        """Remove a file.

        Raises:
            FileNotFoundError: ``filepath`` does not exist.
            IsADirectoryError: ``filepath`` is a directory (use :meth:`rmtree`).
        """
        path = os.fspath(filepath)
        if os.path.isdir(path):
            raise IsADirectoryError(errno.EISDIR, f"Is a directory, use rmtree ({self.name})", path)
        try:
            os.remove(path)
        except FileNotFoundError:
            raise self._not_found(path) from None

    def rmtree(self, dir_path: PathType) -> None:
        """Remove a directory tree.

        Raises:
            FileNotFoundError: ``dir_path`` does not exist.
        """
        path = os.fspath(dir_path)
        if not os.path.lexists(path):
            raise self._not_found(path, "No such directory")
        shutil.rmtree(path)

    def copy_if_symlink_fails(self, src: PathType, dst: PathType) -> bool:
        """Make ``dst`` a symbolic link to ``src``; copy instead where links fail.

        Returns:
            ``True`` when the link was made, ``False`` when the content was copied.
        """
        try:
            os.symlink(src, dst)
            return True
        except OSError:
            return super().copy_if_symlink_fails(src, dst)

    def list_dir_or_file(
        self,
        dir_path: PathType,
        list_dir: bool = True,
        list_file: bool = True,
        suffix: str | tuple[str, ...] | None = None,
        recursive: bool = False,
    ) -> Iterator[str]:
        """Yield directory entries relative to ``dir_path`` (see the base class).

        Hidden files are skipped, hidden directories are not (MMEngine's behaviour). The
        arguments and the directory's existence are checked when this is called, not at the first
        iteration.
        """
        _check_list_args(list_dir, suffix)
        root = os.fspath(dir_path)
        if not os.path.isdir(root):
            raise self._not_a_dir(root, os.path.exists(root))
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
        with os.scandir(current) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            if entry.is_dir():
                if list_dir:
                    yield os.path.relpath(entry.path, root)
                if recursive:
                    yield from self._scan(root, entry.path, list_dir, list_file, suffix, recursive)
            elif list_file and not entry.name.startswith(".") and entry.is_file():
                rel = os.path.relpath(entry.path, root)
                if suffix is None or rel.endswith(suffix):
                    yield rel

    def __repr__(self) -> str:
        return f"{self.name}(fsync={self.fsync})"

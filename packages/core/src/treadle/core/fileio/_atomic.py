"""Atomic replacement of local files.

A write goes to a temporary file in the destination's directory and is then moved over the
destination with :func:`os.replace`, which is atomic on POSIX and Windows when both paths are on
the same filesystem (hence the same directory). A reader sees either the old file or the complete
new one, never half a file, and a failure before the rename (an exception, a killed process) leaves
the old file as it was; the temporary file is removed on every error path that Python still
controls.

Durability is a separate question: without ``fsync`` the new content may still sit in the page
cache when :func:`os.replace` returns, so a power loss or kernel crash (not a process crash) can
lose it. ``fsync=True`` flushes the file before the rename and the directory entry after it, at
the cost of a disk round trip per write.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import ModuleType

_TEMP_SUFFIX = ".tmp"


def temp_path_for(path: str, pathmod: ModuleType = os.path) -> str:
    """Return an unused-looking temporary file name next to ``path``.

    The name is hidden (leading dot), carries the destination's name for debugging and a random
    token so that concurrent writers never share a temporary file.

    Args:
        path: The destination file.
        pathmod: The path module that splits and joins ``path``: :mod:`os.path` for local files,
            :mod:`posixpath` for URI-style paths.
    """
    directory, name = pathmod.split(path)
    tmp: str = pathmod.join(directory, f".{name}.{secrets.token_hex(6)}{_TEMP_SUFFIX}")
    return tmp


def _fsync_directory(directory: str) -> None:
    # Directories cannot be opened for fsync on Windows; durability of the rename there is the
    # filesystem's business.
    if os.name == "nt":  # pragma: no cover - exercised on Windows only
        return
    fd = os.open(directory or ".", os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_local_path(path: str, *, fsync: bool = False) -> Iterator[str]:
    """Yield a temporary path to fill in; on success it replaces ``path`` atomically.

    Parent directories are created. The temporary file exists (empty) when the body starts, has
    the permissions a plain ``open(path, "w")`` would give (the process umask applies; an existing
    destination's mode is kept) and is removed if the body raises. A symbolic link at ``path`` is
    followed: its target is replaced, the link stays.

    Args:
        path: The destination file.
        fsync: Flush the file and its directory to disk before returning.

    Yields:
        The temporary file's path.
    """
    if os.path.islink(path):
        # Write through the link, as open(path, "w") would, instead of replacing the link.
        path = os.path.realpath(path)
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    tmp = temp_path_for(path)
    # 0o666 filtered by the umask: the same mode open(path, "w") gives a new file.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    os.close(fd)
    try:
        try:
            os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
        except FileNotFoundError:
            pass
        yield tmp
        if fsync:
            fd = os.open(tmp, os.O_RDWR | getattr(os, "O_BINARY", 0))
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if fsync:
        _fsync_directory(directory)


def write_bytes_atomic(path: str, data: bytes, *, fsync: bool = False) -> None:
    """Replace ``path`` with ``data`` atomically (see the module docstring)."""
    with atomic_local_path(path, fsync=fsync) as tmp, open(tmp, "wb") as f:
        f.write(data)


def write_text_atomic(
    path: str, text: str, *, encoding: str = "utf-8", fsync: bool = False
) -> None:
    """Replace ``path`` with ``text`` atomically, in text mode (platform newlines, as ``open``)."""
    with atomic_local_path(path, fsync=fsync) as tmp, open(tmp, "w", encoding=encoding) as f:
        f.write(text)

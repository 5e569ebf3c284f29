"""Storage backends: the abstract interface, the local filesystem and fsspec.

Only :class:`BaseStorageBackend` is imported eagerly; the concrete backends load on first access
(``from treadle.core.fileio.backends import FsspecBackend`` imports fsspec then).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from treadle.core.fileio.backends.base import BaseStorageBackend
from treadle.core.utils.lazy import lazy_exports

if TYPE_CHECKING:
    from treadle.core.fileio.backends.fsspec_backend import FsspecBackend
    from treadle.core.fileio.backends.local import LocalBackend

__all__ = ["BaseStorageBackend", "FsspecBackend", "LocalBackend"]

_LAZY = {
    "LocalBackend": "treadle.core.fileio.backends.local",
    "FsspecBackend": "treadle.core.fileio.backends.fsspec_backend",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)

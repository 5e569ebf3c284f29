"""File I/O: MMEngine's function API over pluggable storage backends.

``get``/``put``/``load``/``dump``/… take a local path or a URI; the URI's scheme picks the backend
from ``FILE_BACKENDS`` (plugins such as treadle-fileio-s3 register theirs), with the local
filesystem built in and fsspec as the fallback for any protocol it knows (``memory://``,
``file://``, ``gcs://``, …). Local writes are atomic.

Importing this package is cheap: fsspec, yaml and pickle are imported when first used.
"""

from __future__ import annotations

from treadle.core.fileio.backends.base import BaseStorageBackend
from treadle.core.fileio.dispatch import UnsupportedSchemeError, get_file_backend, parse_uri_scheme
from treadle.core.fileio.handlers import (
    BaseFileHandler,
    JsonHandler,
    PickleHandler,
    YamlHandler,
    file_handlers,
    register_handler,
)
from treadle.core.fileio.io import (
    UnsupportedFormatError,
    copy_if_symlink_fails,
    copyfile,
    copyfile_from_local,
    copyfile_to_local,
    copytree,
    copytree_from_local,
    copytree_to_local,
    dump,
    exists,
    get,
    get_local_path,
    get_text,
    isdir,
    isfile,
    join_path,
    list_dir_or_file,
    load,
    put,
    put_text,
    remove,
    rmtree,
)

__all__ = [
    "BaseFileHandler",
    "BaseStorageBackend",
    "JsonHandler",
    "PickleHandler",
    "UnsupportedFormatError",
    "UnsupportedSchemeError",
    "YamlHandler",
    "copy_if_symlink_fails",
    "copyfile",
    "copyfile_from_local",
    "copyfile_to_local",
    "copytree",
    "copytree_from_local",
    "copytree_to_local",
    "dump",
    "exists",
    "file_handlers",
    "get",
    "get_file_backend",
    "get_local_path",
    "get_text",
    "isdir",
    "isfile",
    "join_path",
    "list_dir_or_file",
    "load",
    "parse_uri_scheme",
    "put",
    "put_text",
    "register_handler",
    "remove",
    "rmtree",
]

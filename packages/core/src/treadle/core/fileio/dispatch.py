"""From a URI to a storage backend instance.

Resolution order for the scheme of a URI (``s3://b/k`` → ``s3``; plain paths, ``C:\\…`` drive
paths and ``Path`` objects → ``local``):

1. ``backend_args["backend"]`` when given (MMEngine's way of naming a backend explicitly);
2. the class registered in ``FILE_BACKENDS`` under the scheme (plugins register theirs, e.g.
   treadle-fileio-s3 claims ``s3``; the built-in plugin registers ``local``);
3. ``local`` always resolves to :class:`~treadle.core.fileio.backends.local.LocalBackend`;
4. :class:`~treadle.core.fileio.backends.fsspec_backend.FsspecBackend` when fsspec knows the
   protocol and its implementation is installed;
5. otherwise a :class:`UnsupportedSchemeError` naming the URI, the scheme and what to install.

Instances are cached per (backend class, protocol, ``backend_args``), so every call on the same
kind of URI shares one client.
"""

from __future__ import annotations

import importlib.util
import os
import re
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Hashable, Mapping

    from treadle.core.fileio.backends.base import BaseStorageBackend, PathType

#: Schemes served by a treadle plugin distribution: scheme → distribution to install.
PLUGIN_SCHEMES: dict[str, str] = {"s3": "treadle-fileio-s3", "s3a": "treadle-fileio-s3"}

# "scheme://…", optionally behind MMEngine/Petrel's "cluster:" prefix ("cluster:s3://b/k").
# A single letter before ":" is a Windows drive, never a scheme ("C://x" stays local).
_SCHEME_RE = re.compile(r"^(?:[A-Za-z0-9_\-]+:)?([A-Za-z][A-Za-z0-9+.\-]+)://")

_cache: dict[tuple[Hashable, ...], BaseStorageBackend] = {}
_cache_lock = threading.Lock()


class UnsupportedSchemeError(ValueError):
    """No backend can serve a URI's scheme."""


def parse_uri_scheme(uri: PathType) -> str:
    """Return the URI scheme of ``uri``, or ``"local"`` for local paths.

    Examples:
        >>> parse_uri_scheme("s3://bucket/key")
        's3'
        >>> parse_uri_scheme("/data/x.json"), parse_uri_scheme("C:\\\\data\\\\x.json")
        ('local', 'local')
        >>> parse_uri_scheme("cluster1:s3://bucket/key")
        's3'
    """
    if not isinstance(uri, str):
        return "local"  # a PathLike is a local path (Path("s3://b") is "s3:/b" anyway)
    match = _SCHEME_RE.match(uri)
    return match.group(1).lower() if match else "local"


def _freeze(value: Any) -> Hashable:
    """A hashable, order-independent stand-in for backend arguments (for the cache key)."""
    if isinstance(value, dict):
        return ("__dict__", tuple(sorted((str(k), _freeze(v)) for k, v in value.items())))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_freeze(v) for v in value))
    if isinstance(value, (set, frozenset)):
        return ("__set__", tuple(sorted(repr(v) for v in value)))
    try:
        hash(value)
    except TypeError:
        return ("__repr__", repr(value))
    hashable: Hashable = value
    return hashable


def _fsspec_status(scheme: str) -> tuple[bool, str]:
    """Whether fsspec can serve ``scheme`` here, and fsspec's install hint when it cannot.

    Checks fsspec's table of known protocols and whether the implementation's top-level package
    is installed, without importing the implementation.
    """
    from fsspec.registry import known_implementations, registry

    if scheme in registry:
        return True, ""
    known = known_implementations.get(scheme)
    if known is None:
        return False, ""
    top_level = str(known["class"]).split(".", 1)[0]
    if importlib.util.find_spec(top_level) is None:
        return False, str(known.get("err") or f"install {top_level} for {scheme}://")
    return True, ""


def _unsupported(uri: PathType | None, scheme: str, fsspec_hint: str) -> UnsupportedSchemeError:
    where = f"URI {os.fspath(uri)!r}" if uri is not None else "backend_args"
    lines = [f"No file backend for scheme {scheme!r} ({where})."]
    plugin = PLUGIN_SCHEMES.get(scheme)
    if plugin is not None:
        lines.append(f"Install the plugin that provides it: pip install {plugin}")
        if fsspec_hint:
            lines.append(f"(or, through fsspec: {fsspec_hint})")
    elif fsspec_hint:
        lines.append(f"fsspec knows {scheme}:// but its implementation is missing: {fsspec_hint}")
    else:
        lines.append(
            "No installed plugin registered it in FILE_BACKENDS and fsspec does not know the "
            "protocol; install a plugin that provides it or register a backend with "
            "FILE_BACKENDS.register_module()."
        )
    return UnsupportedSchemeError(" ".join(lines))


def _resolve_class(
    name: str, uri: PathType | None
) -> tuple[type[BaseStorageBackend], dict[str, Any]]:
    """The backend class for a scheme or backend name, plus extra constructor arguments."""
    from treadle.core.registry import FILE_BACKENDS

    cls: type[BaseStorageBackend] | None = FILE_BACKENDS.get(name)
    if cls is None and name == "local":
        from treadle.core.fileio.backends.local import LocalBackend

        cls = LocalBackend
    if cls is not None:
        from treadle.core.fileio.backends.fsspec_backend import FsspecBackend

        if isinstance(cls, type) and issubclass(cls, FsspecBackend):
            return cls, {"protocol": name}
        return cls, {}
    usable, hint = _fsspec_status(name)
    if usable:
        from treadle.core.fileio.backends.fsspec_backend import FsspecBackend

        return FsspecBackend, {"protocol": name}
    raise _unsupported(uri, name, hint)


def get_file_backend(
    uri: PathType | None = None,
    *,
    backend_args: Mapping[str, Any] | None = None,
    enable_singleton: bool = True,
) -> BaseStorageBackend:
    """Return the storage backend for ``uri`` (see the module docstring for the resolution).

    Args:
        uri: A URI (``s3://bucket/key``, ``memory://x``) or a local path. May be omitted when
            ``backend_args`` names the backend.
        backend_args: Constructor arguments for the backend. A ``"backend"`` key names the
            backend explicitly (MMEngine's convention) and is not passed on.
        enable_singleton: Reuse one instance per (class, protocol, arguments). MMEngine defaults
            this to ``False`` in this function (and ``True`` in the ``io`` functions); here both
            share instances unless you ask for a fresh one.

    Returns:
        The backend instance.

    Raises:
        UnsupportedSchemeError: Nothing can serve the scheme; the message names the URI, the
            scheme and what to install.
        ValueError: Neither ``uri`` nor ``backend_args["backend"]`` is given.
    """
    args = dict(backend_args) if backend_args else {}
    name = args.pop("backend", None)
    if name is None:
        if uri is None:
            raise ValueError('get_file_backend needs a uri or backend_args={"backend": name}')
        name = parse_uri_scheme(uri)
    cls, extra = _resolve_class(str(name), uri)
    kwargs = {**extra, **args}
    if not enable_singleton:
        return cls(**kwargs)
    key = (cls, _freeze(kwargs))
    backend = _cache.get(key)
    if backend is None:
        with _cache_lock:
            backend = _cache.get(key)
            if backend is None:
                backend = cls(**kwargs)
                _cache[key] = backend
    return backend

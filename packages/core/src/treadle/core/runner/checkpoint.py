"""Checkpoint files: atomic saves through the file I/O layer, safe loads, weights into models.

MMEngine's ``mmengine.runner.checkpoint`` API (``save_checkpoint``, ``load_checkpoint``,
``_load_checkpoint``, ``_load_checkpoint_to_model``, ``load_state_dict``, ``get_state_dict``,
``weights_to_cpu``, ``find_latest_checkpoint``) with three differences that matter:

**Saves are atomic.** A local checkpoint is written by ``torch.save`` into a hidden temporary file
next to the destination and moved over the destination with :func:`os.replace`. A crash or
``kill -9`` in the middle leaves the previous file untouched; the next save in that directory
removes temporary files whose writer is dead. ``backend_args={"fsync": True}`` also flushes the
file to disk before the rename (the writeback runs in a helper thread while ``torch.save`` is still
writing), so that a power loss cannot lose it either; it is off by default because it costs disk
bandwidth (a new 100 MB checkpoint: 1.36× ``torch.save`` with it, 0.92× without, on the machine
this was measured on), and neither MMEngine nor ``torch.save`` flushes. A remote
URI (``s3://…``, ``memory://…``) is serialized in memory and written with one ``put`` of its
storage backend, which object stores apply atomically.

**Loads run no code from the file.** ``torch.load`` unpickles through a restricted unpickler that
resolves only an allowlist of globals: what ``torch.load(weights_only=True)`` accepts (tensors,
storages, dtypes, plain containers, plus anything registered with
:func:`torch.serialization.add_safe_globals`), numpy arrays, dtypes and scalars, and the MMEngine
classes found in MMEngine checkpoints, which are mapped to treadle's own:

=================================================== ============================================
in the file                                         loaded as
=================================================== ============================================
``mmengine.logging.history_buffer.HistoryBuffer``   :class:`treadle.core.logging.HistoryBuffer`
``mmengine.config.config.ConfigDict``               :class:`treadle.core.config.ConfigDict`
=================================================== ============================================

So an MMEngine checkpoint loads without MMEngine installed, and a file that names anything else
(``os.system``, a class of some project) is refused with an :class:`UnsafeCheckpointError` that
names the global and the file. ``weights_only=False`` lifts the restriction for trusted files.
The unpickler is CPython's C unpickler with a filtered ``find_class``, so loading is as fast as an
unrestricted ``torch.load`` (and faster than the pure-Python ``weights_only`` unpickler).

**Errors say what and where.** A missing file raises :class:`FileNotFoundError` naming it; a
truncated or corrupt one raises :class:`CorruptCheckpointError` naming it, with the low-level
zip/pickle error chained.

Example:
    >>> from treadle.core.runner.checkpoint import load_checkpoint, save_checkpoint
    >>> save_checkpoint({"state_dict": model.state_dict()}, "work_dir/epoch_1.pth")  # doctest: +SKIP
    >>> load_checkpoint("work_dir/epoch_1.pth", map_location="cpu")["state_dict"]  # doctest: +SKIP
    >>> load_checkpoint(model, "mmengine_epoch_12.pth")  # MMEngine's form: into a model  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import inspect
import io
import logging
import os
import pickle
import re
import secrets
import socket
import stat
import threading
import types
import warnings
from collections import Counter, OrderedDict, defaultdict
from typing import IO, TYPE_CHECKING, Any, cast, overload

import torch

from treadle.core.logging import get_rank, print_log

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from torch import nn

    from treadle.core.fileio.backends.base import PathType

__all__ = [
    "DEFAULT_REVISE_KEYS",
    "LAST_CHECKPOINT",
    "CorruptCheckpointError",
    "UnsafeCheckpointError",
    "find_latest_checkpoint",
    "get_state_dict",
    "load_checkpoint",
    "load_checkpoint_file",
    "load_state_dict",
    "save_checkpoint",
    "weights_to_cpu",
    "write_last_checkpoint",
]

#: Name of the file in the work dir that holds the path of the newest checkpoint.
LAST_CHECKPOINT = "last_checkpoint"

#: MMEngine's default ``revise_keys``: strip the ``module.`` prefix that DDP adds.
DEFAULT_REVISE_KEYS: tuple[tuple[str, str], ...] = ((r"^module\.", ""),)

#: MMEngine model-zoo schemes; they need download tables that treadle does not ship.
_MODEL_ZOO_SCHEMES = (
    "torchvision://",
    "modelzoo://",
    "open-mmlab://",
    "openmmlab://",
    "mmcls://",
    "pavi://",
)


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint names a class or function outside the allowlist of safe types.

    Attributes:
        global_name: The refused global, as ``"module.name"``.
        filename: The checkpoint file.
    """

    def __init__(self, global_name: str, filename: str, detail: str = "") -> None:
        self.global_name = global_name
        self.filename = filename
        self._detail = detail
        super().__init__(
            f"Refusing to load checkpoint {filename!r}: it refers to {global_name}"
            f"{detail}, which is not on the list of types that are safe to load (tensors, "
            "plain containers, numpy arrays and scalars, MMEngine's HistoryBuffer and "
            "ConfigDict, and globals registered with torch.serialization.add_safe_globals). "
            "Unpickling it could run code chosen by whoever wrote the file. If you trust the "
            "file, load it with weights_only=False, or allow just that global with "
            "torch.serialization.add_safe_globals."
        )

    def __reduce__(self) -> tuple[Any, ...]:  # picklable across processes, like other errors
        return (type(self), (self.global_name, self.filename, self._detail))


class CorruptCheckpointError(RuntimeError):
    """A checkpoint file cannot be read: truncated, corrupt, or not written by ``torch.save``."""


# ---------------------------------------------------------------------------------------------
# Restricted unpickling
# ---------------------------------------------------------------------------------------------

# Python 2 names that protocol-2 pickles use (``__builtin__.getattr``), as pickle's own
# ``fix_imports`` maps them. Imported lazily: only pickles with such names need them.
_PY2_MODULES = frozenset({"__builtin__", "copy_reg", "exceptions", "UserDict", "_abcoll"})


def _fix_py2_name(module: str, name: str) -> tuple[str, str]:
    if module in _PY2_MODULES or module.startswith("__builtin__"):
        import _compat_pickle

        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
    return module, name


def _history_buffer_cls() -> type:
    from treadle.core.logging.history_buffer import HistoryBuffer

    return HistoryBuffer


def _config_dict_cls() -> type:
    from treadle.core.config import ConfigDict

    return ConfigDict


#: Globals of MMEngine (and mmcv) checkpoints → treadle's equivalent, resolved on first use.
_RENAMES: dict[str, Callable[[], Any]] = {
    "mmengine.logging.history_buffer.HistoryBuffer": _history_buffer_cls,
    "mmengine.config.config.ConfigDict": _config_dict_cls,
    "mmcv.utils.config.ConfigDict": _config_dict_cls,
    # treadle's own classes, under their import paths.
    "treadle.core.logging.history_buffer.HistoryBuffer": _history_buffer_cls,
    "treadle.core.config.config_dict.ConfigDict": _config_dict_cls,
}

#: Plain classes that are safe to build from any arguments (beyond torch's own list).
_EXTRA_SAFE: dict[str, Any] = {
    "collections.OrderedDict": OrderedDict,
    "collections.Counter": Counter,
    "collections.defaultdict": defaultdict,
    "builtins.set": set,
    "builtins.frozenset": frozenset,
    "builtins.bytearray": bytearray,
    "builtins.complex": complex,
    "builtins.slice": slice,
    "builtins.range": range,
    "torch.torch_version.TorchVersion": torch.torch_version.TorchVersion,
}

_torch_safe: dict[str, Any] | None = None
_numpy_safe: dict[str, Any] | None = None


def _torch_safe_globals() -> dict[str, Any]:
    """What ``torch.load(weights_only=True)`` allows by default (computed once)."""
    global _torch_safe
    if _torch_safe is None:
        from torch import _weights_only_unpickler

        allowed: Callable[[], dict[str, Any]] = _weights_only_unpickler._get_allowed_globals
        _torch_safe = {**allowed(), **_EXTRA_SAFE}
    return _torch_safe


def _user_safe_globals() -> dict[str, Any]:
    """Globals the user registered with ``torch.serialization.add_safe_globals``."""
    from torch import _weights_only_unpickler

    user: Callable[[], dict[str, Any]] | None = getattr(
        _weights_only_unpickler, "_get_user_allowed_globals", None
    )
    return user() if user is not None else {}


def _numpy_safe_globals() -> dict[str, Any]:
    """numpy's array, dtype and scalar reconstructors, under numpy 1's and numpy 2's names."""
    global _numpy_safe
    if _numpy_safe is None:
        try:
            import numpy as np
        except ImportError:
            return {}
        import importlib

        safe: dict[str, Any] = {"numpy.ndarray": np.ndarray, "numpy.dtype": np.dtype}
        # numpy 2 moved numpy.core to numpy._core; pickles name either. Resolve from the real
        # module (importing numpy.core under numpy 2 warns).
        for sub, names in (
            ("multiarray", ("_reconstruct", "scalar")),
            ("numeric", ("_frombuffer",)),
        ):
            try:
                module = importlib.import_module(f"numpy._core.{sub}")
            except ImportError:
                module = importlib.import_module(f"numpy.core.{sub}")
            for name in names:
                if hasattr(module, name):
                    for prefix in ("numpy.core", "numpy._core"):
                        safe[f"{prefix}.{sub}.{name}"] = getattr(module, name)
        for name, obj in vars(np).items():
            if isinstance(obj, type) and issubclass(obj, np.generic):
                safe[f"numpy.{name}"] = obj  # scalar types: numpy.float64, …
        dtypes = getattr(np, "dtypes", None)  # numpy >= 1.25: numpy.dtypes.Float64DType, …
        if dtypes is not None:
            for name, obj in vars(dtypes).items():
                if isinstance(obj, type) and issubclass(obj, np.dtype):
                    safe[f"numpy.dtypes.{name}"] = obj
        _numpy_safe = safe
    return _numpy_safe


def _safe_getattr(filename: str, restricted: bool, obj: Any, name: str) -> Any:
    """``getattr`` as a pickle may call it: MMEngine pickles ``HistoryBuffer.min`` & co. so."""
    if obj is _history_buffer_cls() and isinstance(name, str) and not name.startswith("_"):
        value = inspect.getattr_static(obj, name, None)
        if inspect.isfunction(value):
            return value
    if not restricted:
        return getattr(obj, name)
    raise UnsafeCheckpointError("builtins.getattr", filename, f" (getattr({obj!r}, {name!r}))")


class _CheckpointUnpickler(pickle.Unpickler):
    """CPython's unpickler with MMEngine renames and, unless trusted, an allowlist of globals.

    ``torch.load`` subclasses it (to resolve storages); :func:`_pickle_module` makes one subclass
    per load that carries the file name and the allowlist.
    """

    _filename: str = "<checkpoint>"
    _allowed: dict[str, Any] | None = None  # None: trusted, anything resolves

    def find_class(self, module: str, name: str, /) -> Any:
        module, name = _fix_py2_name(module, name)
        key = f"{module}.{name}"
        rename = _RENAMES.get(key)
        if rename is not None:
            return rename()
        if key == "builtins.getattr":
            return functools.partial(_safe_getattr, self._filename, self._allowed is not None)
        allowed = self._allowed
        if allowed is None:
            return super().find_class(module, name)
        obj = allowed.get(key)
        if obj is None and key.startswith("numpy."):
            obj = _numpy_safe_globals().get(key)
            if obj is None and not _numpy_safe_globals():
                raise UnsafeCheckpointError(
                    key, self._filename, " (numpy is not installed; install it to load numpy data)"
                )
        if obj is None:
            raise UnsafeCheckpointError(key, self._filename)
        return obj


def _pickle_module(filename: str, restricted: bool) -> types.ModuleType:
    """A stand-in for the ``pickle`` module, as ``torch.load(pickle_module=…)`` wants one."""
    allowed = {**_torch_safe_globals(), **_user_safe_globals()} if restricted else None

    class Unpickler(_CheckpointUnpickler):
        _filename = filename
        _allowed = allowed

    def load(file: IO[bytes], **kwargs: Any) -> Any:
        return Unpickler(file, **kwargs).load()

    module = types.ModuleType("treadle_checkpoint_pickle")
    module.__dict__.update(Unpickler=Unpickler, load=load)
    return module


def _force_weights_only() -> bool:
    value = os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "0").lower()
    return value in ("1", "y", "yes", "true")


# Low-level messages that mean "this is not (all of) a torch checkpoint".
_CORRUPT_MARKERS = ("PytorchStreamReader", "zip archive", "corrupt", "magic number")


def _is_corruption(exc: BaseException) -> bool:
    if isinstance(exc, (OSError, MemoryError, UnsafeCheckpointError)):
        return False
    if isinstance(exc, pickle.UnpicklingError) and "Weights only load failed" in str(exc):
        return False  # torch's own weights_only refusal (TORCH_FORCE_WEIGHTS_ONLY_LOAD)
    if isinstance(exc, RuntimeError):  # device placement, out of memory, …: not the file's fault
        return any(marker in str(exc) for marker in _CORRUPT_MARKERS)
    # Unpickling garbage raises about anything: UnpicklingError, EOFError, KeyError, ValueError,
    # UnicodeDecodeError, struct.error, IndexError, TypeError, zipfile.BadZipFile, …
    return isinstance(exc, Exception)


class _UserError(Exception):
    """Carries an exception raised by the caller's ``map_location`` function through torch.load."""

    def __init__(self, error: Exception) -> None:
        super().__init__(error)
        self.error = error


def _guard_map_location(map_location: Any) -> Any:
    """Tag errors of a ``map_location`` function, so they are not taken for a corrupt file."""
    if not callable(map_location):
        return map_location

    def guarded(storage: Any, location: str) -> Any:
        try:
            return map_location(storage, location)
        except Exception as exc:
            raise _UserError(exc) from exc

    return guarded


def _torch_load(source: str | IO[bytes], name: str, map_location: Any, weights_only: bool) -> Any:
    map_location = _guard_map_location(map_location)
    try:
        if weights_only and _force_weights_only():
            # torch refuses a custom pickle module under this switch; use its own unpickler.
            return torch.load(source, map_location=map_location, weights_only=True)
        module = _pickle_module(name, restricted=weights_only)
        # Validate sparse tensors' indices, as torch's weights_only loader does.
        sparse_check = cast(
            "Callable[..., contextlib.AbstractContextManager[Any]]",
            torch.sparse.check_sparse_tensor_invariants,  # untyped in torch
        )
        with sparse_check(enable=True) if weights_only else contextlib.nullcontext():
            return torch.load(
                source, map_location=map_location, weights_only=False, pickle_module=module
            )
    except _UserError as wrapper:
        raise wrapper.error from None  # the caller's own error, with its own traceback
    except Exception as exc:
        if not _is_corruption(exc):
            raise
        raise CorruptCheckpointError(
            f"Cannot read checkpoint {name!r}: the file is truncated or corrupt, or was not "
            f"written by torch.save ({type(exc).__name__}: {exc})"
        ) from exc


def load_checkpoint_file(
    filename: PathType,
    map_location: Any = None,
    *,
    weights_only: bool = True,
    backend_args: Mapping[str, Any] | None = None,
    logger: logging.Logger | str | None = None,
) -> Any:
    """Read a checkpoint from a local path or any URI the file I/O layer serves.

    Args:
        filename: Path or URI (``s3://…``, ``memory://…``, ``https://…`` through fsspec).
        map_location: As for :func:`torch.load` (``"cpu"``, a device, a dict or a function).
        weights_only: Load through the restricted unpickler (see the module docstring). Pass
            ``False`` only for files you trust: it runs whatever the pickle asks for.
        backend_args: Arguments for the storage backend.
        logger: Where to log "Loads checkpoint by … backend from path: …" (MMEngine's line);
            ``None`` logs nothing.

    Returns:
        What was saved: usually a dict (MMEngine's layout: ``meta``, ``state_dict``, …).

    Raises:
        FileNotFoundError: The file does not exist (the message names it).
        UnsafeCheckpointError: ``weights_only`` and the file names a global outside the allowlist.
        CorruptCheckpointError: The file is truncated, corrupt or not a torch checkpoint.
        ValueError: ``filename`` uses a model-zoo scheme (``torchvision://``, …).
    """
    from treadle.core.fileio import get_file_backend
    from treadle.core.fileio.backends.local import LocalBackend

    name = os.fspath(filename)
    if name.startswith(_MODEL_ZOO_SCHEMES):
        raise ValueError(
            f"Cannot load checkpoint {name!r}: model-zoo URIs ({', '.join(_MODEL_ZOO_SCHEMES)}) "
            "are not supported; download the file and give its path or URL"
        )
    backend = get_file_backend(name, backend_args=backend_args)
    if logger is not None:
        print_log(f"Loads checkpoint by {backend.name} from path: {name}", logger=logger)
    if isinstance(backend, LocalBackend):
        path = os.path.expanduser(name)
        if not os.path.isfile(path):
            if os.path.isdir(path):
                raise IsADirectoryError(errno.EISDIR, "Checkpoint is a directory", path)
            raise FileNotFoundError(errno.ENOENT, "Checkpoint file not found", path)
        return _torch_load(path, name, map_location, weights_only)
    data = backend.get(name)  # FileNotFoundError names the URI
    with io.BytesIO(data) as buffer:
        return _torch_load(buffer, name, map_location, weights_only)


def _load_checkpoint(
    filename: PathType,
    map_location: Any = None,
    logger: logging.Logger | str | None = "current",
    *,
    weights_only: bool = True,
    backend_args: Mapping[str, Any] | None = None,
) -> Any:
    """MMEngine's ``_load_checkpoint``: :func:`load_checkpoint_file`, logging where it reads."""
    return load_checkpoint_file(
        filename,
        map_location,
        weights_only=weights_only,
        backend_args=backend_args,
        logger=logger,
    )


def _load_checkpoint_with_prefix(
    prefix: str, filename: PathType, map_location: Any = None
) -> dict[str, Any]:
    """The weights under ``prefix`` (``"backbone"`` or ``"backbone."``), with the prefix removed.

    Raises:
        ValueError: No key of the checkpoint starts with the prefix.
    """
    checkpoint = load_checkpoint_file(filename, map_location)
    state_dict = _state_dict_of(checkpoint, filename)
    if not prefix.endswith("."):
        prefix += "."
    selected = {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}
    if not selected:
        raise ValueError(f"No key of checkpoint {os.fspath(filename)!r} starts with {prefix!r}")
    return selected


def _state_dict_of(checkpoint: Any, filename: PathType | None = None) -> Any:
    if not isinstance(checkpoint, dict):
        where = f" file {os.fspath(filename)}" if filename is not None else ""
        raise RuntimeError(
            f"No state_dict found in checkpoint{where}: it holds a {type(checkpoint).__name__}"
        )
    return checkpoint.get("state_dict", checkpoint)


# ---------------------------------------------------------------------------------------------
# Model state
# ---------------------------------------------------------------------------------------------


def load_state_dict(
    module: nn.Module,
    state_dict: Mapping[str, Any],
    strict: bool = False,
    logger: logging.Logger | str | None = None,
) -> None:
    """Load ``state_dict`` into ``module``, reporting every mismatch (MMEngine's version).

    Unlike :meth:`torch.nn.Module.load_state_dict` with ``strict=False``, mismatches are not
    silent: unexpected keys, missing keys (BatchNorm's ``num_batches_tracked`` aside) and tensors
    whose shape differs (which are skipped) are reported in one message, MMEngine's text::

        The model and loaded state dict do not match exactly

        size mismatch for head.weight: copying a param with shape … from checkpoint, …
        unexpected key in source state_dict: extra.weight

        missing keys in source state_dict: head.bias

    Model wrappers (DDP, …) anywhere in the tree are looked through. ``_load_state_dict_post_hooks``
    run as in PyTorch.

    Args:
        module: The module to load into.
        state_dict: Names to tensors; its ``_metadata`` (module versions) is honoured.
        strict: Raise instead of warning.
        logger: Where the warning goes (:func:`~treadle.core.logging.print_log`; ``None`` prints).
            Only rank 0 warns.

    Raises:
        RuntimeError: ``strict`` and anything does not match (on every rank, so that no rank
            waits for one that stopped).
    """
    from treadle.core.model.utils import unwrap_model

    missing: list[str] = []
    unexpected: list[str] = []
    errors: list[str] = []
    metadata = getattr(state_dict, "_metadata", None)
    incompatible = torch.nn.modules.module._IncompatibleKeys(missing, unexpected)

    def load(mod: nn.Module, local: dict[str, Any], prefix: str) -> None:
        mod = unwrap_model(mod)
        local_metadata = {} if metadata is None else metadata.get(prefix[:-1], {})
        mod._load_from_state_dict(local, prefix, local_metadata, True, missing, unexpected, errors)
        for child_name, child in mod._modules.items():
            if child is not None:
                child_prefix = f"{prefix}{child_name}."
                child_local = {k: v for k, v in local.items() if k.startswith(child_prefix)}
                load(child, child_local, child_prefix)
        for hook in mod._load_state_dict_post_hooks.values():
            if hook(mod, incompatible) is not None:
                raise RuntimeError(
                    "load_state_dict post hooks must change missing/unexpected keys in place "
                    "and return None"
                )

    load(module, dict(state_dict), "")
    missing_reported = [key for key in missing if "num_batches_tracked" not in key]
    if unexpected:
        errors.append(f"unexpected key in source state_dict: {', '.join(unexpected)}\n")
    if missing_reported:
        errors.append(f"missing keys in source state_dict: {', '.join(missing_reported)}\n")
    if not errors:
        return
    message = "\n".join(["The model and loaded state dict do not match exactly\n", *errors])
    if strict:
        raise RuntimeError(message)
    if get_rank() == 0:
        print_log(message, logger=logger, level=logging.WARNING)


def _revise(
    state_dict: Mapping[str, Any], revise_keys: Iterable[tuple[str, str]]
) -> OrderedDict[str, Any]:
    metadata = getattr(state_dict, "_metadata", OrderedDict())
    revised: OrderedDict[str, Any] = OrderedDict(state_dict)
    for pattern, replacement in revise_keys:
        regex = re.compile(pattern)
        revised = OrderedDict((regex.sub(replacement, k), v) for k, v in revised.items())
    revised._metadata = metadata  # type: ignore[attr-defined]
    return revised


def _load_checkpoint_to_model(
    model: nn.Module,
    checkpoint: Any,
    strict: bool = False,
    logger: logging.Logger | str | None = None,
    revise_keys: Iterable[tuple[str, str]] = DEFAULT_REVISE_KEYS,
) -> Any:
    """Load a checkpoint's weights into ``model`` (MMEngine's ``_load_checkpoint_to_model``).

    The weights are ``checkpoint["state_dict"]`` when present, else the whole dict. Each
    ``(pattern, replacement)`` of ``revise_keys`` is applied to every key with :func:`re.sub`, in
    order (by default a leading ``module.`` is stripped). Mismatches are reported by
    :func:`load_state_dict`.

    Returns:
        ``checkpoint``, unchanged.
    """
    state_dict = _revise(_state_dict_of(checkpoint), revise_keys)
    load_state_dict(model, state_dict, strict, logger)
    return checkpoint


@overload
def load_checkpoint(
    filename: PathType,
    map_location: Any = None,
    *,
    weights_only: bool = True,
    backend_args: Mapping[str, Any] | None = None,
    logger: logging.Logger | str | None = None,
) -> Any: ...


@overload
def load_checkpoint(
    model: nn.Module,
    filename: PathType,
    map_location: Any = None,
    strict: bool = False,
    logger: logging.Logger | str | None = None,
    revise_keys: Iterable[tuple[str, str]] = DEFAULT_REVISE_KEYS,
    *,
    weights_only: bool = True,
    backend_args: Mapping[str, Any] | None = None,
) -> Any: ...


def load_checkpoint(*args: Any, **kwargs: Any) -> Any:
    """Read a checkpoint file, or (MMEngine's form) read it and load its weights into a model.

    ``load_checkpoint(filename, map_location=None, *, weights_only=True, backend_args=None,
    logger=None)`` returns the file's content: see :func:`load_checkpoint_file`.

    ``load_checkpoint(model, filename, map_location=None, strict=False, logger=None,
    revise_keys=[(r"^module\\.", "")], *, weights_only=True, backend_args=None)`` is MMEngine's
    ``mmengine.runner.load_checkpoint``: it reads the file, loads ``state_dict`` into ``model``
    (see :func:`_load_checkpoint_to_model`) and returns the checkpoint.

    Raises:
        RuntimeError: (model form) The file holds no dict; or ``strict`` and keys mismatch.
    """
    model = kwargs.pop("model", None)
    if model is None and args and isinstance(args[0], torch.nn.Module):
        model, args = args[0], args[1:]
    if model is None:
        return load_checkpoint_file(*args, **kwargs)
    return _load_into_model(model, *args, **kwargs)


def _load_into_model(
    model: nn.Module,
    filename: PathType,
    map_location: Any = None,
    strict: bool = False,
    logger: logging.Logger | str | None = None,
    revise_keys: Iterable[tuple[str, str]] = DEFAULT_REVISE_KEYS,
    *,
    weights_only: bool = True,
    backend_args: Mapping[str, Any] | None = None,
) -> Any:
    checkpoint = _load_checkpoint(
        filename,
        map_location,
        logger if logger is not None else "current",
        weights_only=weights_only,
        backend_args=backend_args,
    )
    if not isinstance(checkpoint, dict):
        raise RuntimeError(f"No state_dict found in checkpoint file {os.fspath(filename)}")
    return _load_checkpoint_to_model(model, checkpoint, strict, logger, revise_keys)


def weights_to_cpu(state_dict: Mapping[str, Any]) -> OrderedDict[str, Any]:
    """A copy of ``state_dict`` with every tensor on the CPU, keeping ``_metadata``.

    Values that are not tensors (a module's extra state) are kept as they are.
    """
    cpu: OrderedDict[str, Any] = OrderedDict()
    for key, value in state_dict.items():
        cpu[key] = value.cpu() if isinstance(value, torch.Tensor) else value
    cpu._metadata = getattr(state_dict, "_metadata", OrderedDict())  # type: ignore[attr-defined]
    return cpu


def get_state_dict(
    module: nn.Module,
    destination: OrderedDict[str, Any] | None = None,
    prefix: str = "",
    keep_vars: bool = False,
) -> OrderedDict[str, Any]:
    """``module.state_dict()`` with model wrappers looked through at every level.

    A DDP (or other registered wrapper) anywhere in the tree contributes its inner module's
    entries without a ``module.`` prefix, so the keys are those of the bare model. State-dict
    pre- and post-hooks run as in :meth:`torch.nn.Module.state_dict`; ``_metadata`` records
    each module's version.

    Args:
        module: The module.
        destination: Dict to fill (a new ``OrderedDict`` if ``None``).
        prefix: Prefix for every key.
        keep_vars: Keep tensors attached to autograd (``Parameter`` objects) instead of detached.

    Returns:
        The filled ``destination``.
    """
    from treadle.core.model.utils import unwrap_model

    module = unwrap_model(module)
    if destination is None:
        destination = OrderedDict()
        destination._metadata = OrderedDict()  # type: ignore[attr-defined]
    local_metadata = {"version": module._version}
    metadata = getattr(destination, "_metadata", None)
    if metadata is not None:
        metadata[prefix[:-1]] = local_metadata
    for pre_hook in module._state_dict_pre_hooks.values():
        pre_hook(module, prefix, keep_vars)
    module._save_to_state_dict(destination, prefix, keep_vars)
    for name, child in module._modules.items():
        if child is not None:
            get_state_dict(child, destination, f"{prefix}{name}.", keep_vars=keep_vars)
    for hook in module._state_dict_hooks.values():
        result = hook(module, destination, prefix, local_metadata)
        if result is not None:
            destination = result
    return destination


# ---------------------------------------------------------------------------------------------
# Saving
# ---------------------------------------------------------------------------------------------

# Temporary files: ".<name>.<host tag>-<pid>-<random>.tmp" next to the destination. Hidden, so
# directory listings (and CheckpointHook's max_keep_ckpts cleanup) never see them; host and pid
# let a later save recognise the leftovers of a writer that died.
_HOST_TAG = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]
_TEMP_RE = re.compile(r"^\..+\.(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-[0-9a-f]{8}\.tmp$")
_in_flight: set[str] = set()
_in_flight_lock = threading.Lock()


def _temp_path(path: str) -> str:
    directory, name = os.path.split(path)
    token = secrets.token_hex(4)
    return os.path.join(directory, f".{name}.{_HOST_TAG}-{os.getpid()}-{token}.tmp")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # exists under another user, or we cannot tell: leave it
    return True


def _remove_stale_temp_files(directory: str) -> None:
    """Delete temporary files left in ``directory`` by writers of this host that are gone."""
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process on Windows
        return
    try:
        with os.scandir(directory or ".") as entries:
            names = [entry.name for entry in entries if entry.name.endswith(".tmp")]
    except OSError:
        return
    own_pid = os.getpid()
    for name in names:
        match = _TEMP_RE.match(name)
        if match is None or match["host"] != _HOST_TAG:
            continue
        path = os.path.join(directory, name)
        pid = int(match["pid"])
        if pid == own_pid:
            with _in_flight_lock:
                stale = path not in _in_flight
        else:
            stale = not _pid_alive(pid)
        if stale:
            with contextlib.suppress(OSError):
                os.unlink(path)


def _fsync_directory(path: str) -> None:
    if os.name == "nt":  # pragma: no cover - Windows cannot open directories
        return
    fd = os.open(path or ".", os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _SyncingWriter:
    """A file for ``torch.save`` that writes large checkpoints back to disk while they are written.

    ``fsync`` after ``torch.save`` would wait for the whole file to reach the disk. Instead, each
    time another ``chunk`` bytes were written, a helper thread calls ``fdatasync`` on what is there
    so far, overlapping disk writeback with serialization; :meth:`sync` then waits only for the
    tail.
    Small files never start the thread.
    """

    def __init__(self, file: IO[bytes], chunk: int = 4 << 20) -> None:
        self._file = file
        self._fd = file.fileno()
        self._chunk = chunk
        self._unsynced = 0
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._closing = False
        self._error: OSError | None = None

    def write(self, data: bytes) -> int:
        written = self._file.write(data)
        self._unsynced += written
        if self._unsynced >= self._chunk:
            self._unsynced = 0
            self._file.flush()
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._writeback, name="treadle-checkpoint-sync", daemon=True
                )
                self._thread.start()
            self._wake.set()
        return written

    def flush(self) -> None:
        self._file.flush()

    def _writeback(self) -> None:
        datasync = getattr(os, "fdatasync", os.fsync)  # macOS has no fdatasync
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._closing:
                return
            try:
                datasync(self._fd)
            except OSError as exc:  # reported by sync()
                self._error = exc
                return

    def sync(self) -> None:
        """Flush and ``fsync`` the file, after the helper thread (if any) has stopped."""
        if self._thread is not None:
            self._closing = True
            self._wake.set()
            self._thread.join()
        if self._error is not None:
            raise self._error
        self._file.flush()
        os.fsync(self._fd)


#: Replacing a file at least this large moves freeing its blocks off the save's critical path.
_DEFER_FREE_BYTES = 16 << 20


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def _link_aside(path: str) -> str | None:
    """Give ``path``'s file a second, hidden name; ``None`` where hard links are unsupported."""
    aside = _temp_path(path)
    try:
        os.link(path, aside)
    except (OSError, NotImplementedError):
        return None
    return aside


def _save_local(checkpoint: Any, path: str, fsync: bool) -> None:
    if os.path.islink(path):
        path = os.path.realpath(path)  # replace the link's target, as open(path, "wb") would
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    _remove_stale_temp_files(directory)
    tmp = _temp_path(path)
    aside: str | None = None
    with _in_flight_lock:
        _in_flight.add(tmp)
    try:
        # Through a file object, not the temp path: torch.save names the archive's root folder
        # after a path ("archive" for a file object, as MMEngine's in-memory save), and the bytes
        # must not depend on the random temp name.
        with open(tmp, "xb") as f:
            if fsync:
                writer = _SyncingWriter(f)
                torch.save(checkpoint, cast("IO[bytes]", writer))  # it only calls write/flush
                writer.sync()
            else:
                torch.save(checkpoint, f)
        try:
            old = os.stat(path)
        except FileNotFoundError:
            old = None
        if old is not None:
            os.chmod(tmp, stat.S_IMODE(old.st_mode))  # keep an existing file's mode
            if old.st_size >= _DEFER_FREE_BYTES and old.st_nlink == 1:
                # Replacing the last name of a big file frees its blocks inside os.replace
                # (tens of ms per 100 MB with online discard); keep a second name until a
                # background thread drops it. A crash leaves it as a stale temp file.
                aside = _link_aside(path)
        os.replace(tmp, path)
    except BaseException:
        _unlink_quietly(tmp)
        if aside is not None:
            _unlink_quietly(aside)
        raise
    finally:
        with _in_flight_lock:
            _in_flight.discard(tmp)
    if aside is not None:
        # Not a daemon: the interpreter waits for it at exit, so nothing is left behind.
        threading.Thread(target=_unlink_quietly, args=(aside,), name="treadle-free-old").start()
    if fsync:
        _fsync_directory(directory)


def save_checkpoint(
    checkpoint: Any,
    filename: PathType,
    file_client_args: Mapping[str, Any] | None = None,
    backend_args: Mapping[str, Any] | None = None,
) -> None:
    """Write ``checkpoint`` with ``torch.save`` to a path or URI, atomically.

    Locally: ``torch.save`` into a hidden temporary file in the destination's directory (flushed
    with ``fsync`` when asked), then :func:`os.replace` over the destination (parent directories are created). Readers, and a
    resume after a crash or ``kill -9``, see the previous file or the complete new one, never part
    of one. Temporary files of dead writers in that directory are removed. Elsewhere: serialized
    in memory and written with one ``put`` of the URI's storage backend.

    Args:
        checkpoint: What to save, usually MMEngine's dict layout.
        filename: Destination path or URI.
        file_client_args: MMEngine's deprecated name for ``backend_args`` (warns).
        backend_args: Arguments for the storage backend. ``{"fsync": True}`` flushes local saves
            to disk before the rename, so a power loss cannot lose the newest checkpoint either
            (a process crash never can: the rename is atomic). Off by default: it costs disk
            bandwidth.

    Raises:
        ValueError: Both ``file_client_args`` and ``backend_args`` are given, or ``filename`` is a
            ``pavi://`` URI.
    """
    from treadle.core.fileio import get_file_backend
    from treadle.core.fileio.backends.local import LocalBackend

    if file_client_args is not None:
        if backend_args is not None:
            raise ValueError(
                '"file_client_args" and "backend_args" cannot be set at the same time.'
            )
        warnings.warn(
            '"file_client_args" will be deprecated in future. Please use "backend_args" instead',
            DeprecationWarning,
            stacklevel=2,
        )
        backend_args = file_client_args
    name = os.fspath(filename)
    if name.startswith("pavi://"):
        raise ValueError(f"Cannot save checkpoint to {name!r}: pavi:// is not supported")
    args = dict(backend_args or {})
    fsync = bool(args.pop("fsync", False))
    backend = get_file_backend(name, backend_args=args)
    if isinstance(backend, LocalBackend):
        _save_local(checkpoint, name, fsync)
        return
    with io.BytesIO() as buffer:
        torch.save(checkpoint, buffer)
        backend.put(buffer.getvalue(), name)


# ---------------------------------------------------------------------------------------------
# last_checkpoint
# ---------------------------------------------------------------------------------------------


def write_last_checkpoint(
    work_dir: PathType, checkpoint_path: PathType, backend_args: Mapping[str, Any] | None = None
) -> str:
    """Record ``checkpoint_path`` as the newest checkpoint in ``work_dir/last_checkpoint``.

    The file is replaced atomically (through the file I/O layer), so a resume after a crash reads
    the previous path or the new one. Call it after :func:`save_checkpoint` returned.

    Returns:
        The ``last_checkpoint`` file's path.
    """
    from treadle.core.fileio import join_path, put_text

    target = join_path(work_dir, LAST_CHECKPOINT, backend_args=backend_args)
    put_text(os.fspath(checkpoint_path), target, backend_args=backend_args)
    return target


def find_latest_checkpoint(
    path: PathType,
    backend_args: Mapping[str, Any] | None = None,
    logger: logging.Logger | str | None = "current",
) -> str | None:
    """The checkpoint named by ``path/last_checkpoint``, or ``None`` when there is none.

    Only ``last_checkpoint`` is read, never a directory listing, so temporary files of an
    interrupted save are never picked.

    Args:
        path: The work dir (path or URI).
        backend_args: Arguments for the storage backend.
        logger: Where "Did not find last_checkpoint to be resumed." goes.
    """
    from treadle.core.fileio import exists, get_text, join_path

    save_file = join_path(path, LAST_CHECKPOINT, backend_args=backend_args)
    if exists(save_file, backend_args=backend_args):
        last_saved = get_text(save_file, backend_args=backend_args).strip()
        if last_saved:
            return last_saved
    print_log("Did not find last_checkpoint to be resumed.", logger=logger)
    return None

"""Visualization backends (MMEngine's ``BaseVisBackend`` API) and the built-in local backend.

A backend receives what the :class:`~treadle.core.visualization.Visualizer` records (config,
scalars, images, the model graph) and stores it somewhere. Its environment (directories, an SDK
session) is set up lazily, on the first call that needs it: methods decorated with
:func:`force_init_env` call ``_init_env()`` once. Trackers (wandb, TensorBoard, Neptune) ship as
plugins and register in ``VISBACKENDS`` like :class:`LocalVisBackend` does.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import weakref
from abc import ABCMeta, abstractmethod
from typing import TYPE_CHECKING, Any, TypeVar, cast

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["BaseVisBackend", "LocalVisBackend", "force_init_env"]

_F = TypeVar("_F", bound="Callable[..., Any]")


def force_init_env(method: _F) -> _F:
    """Make ``method`` call the backend's ``_init_env()`` first, once (MMEngine's decorator)."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not getattr(self, "_env_initialized", False):
            self._init_env()
            self._env_initialized = True
        return method(self, *args, **kwargs)

    return cast("_F", wrapper)


class BaseVisBackend(metaclass=ABCMeta):
    """Base class of visualization backends; every ``add_*`` method does nothing here.

    Args:
        save_dir: Root folder for the files the backend writes (``None``: the backend writes no
            files, if it can work without).
    """

    def __init__(self, save_dir: str | None) -> None:
        self._save_dir = save_dir
        self._env_initialized = False

    @property
    @abstractmethod
    def experiment(self) -> Any:
        """The underlying object (SDK run, writer) for whatever the API does not cover."""

    @abstractmethod
    def _init_env(self) -> Any:
        """Set the backend up (called once, before the first recording)."""

    def add_config(self, config: Any, **kwargs: Any) -> None:  # noqa: B027
        """Record the config."""

    def add_graph(self, model: Any, data_batch: Sequence[dict[str, Any]], **kwargs: Any) -> None:  # noqa: B027
        """Record the model graph."""

    def add_image(self, name: str, image: Any, step: int = 0, **kwargs: Any) -> None:  # noqa: B027
        """Record an RGB ``uint8`` image of shape ``(H, W, 3)``."""

    def add_scalar(self, name: str, value: Any, step: int = 0, **kwargs: Any) -> None:  # noqa: B027
        """Record one scalar."""

    def add_scalars(  # noqa: B027
        self,
        scalar_dict: dict[str, Any],
        step: int = 0,
        file_path: str | None = None,
        **kwargs: Any,
    ) -> None:
        """Record several scalars (also into ``file_path`` where the backend writes files)."""

    def close(self) -> None:  # noqa: B027
        """Release what the backend opened."""


def _json_default(value: Any) -> Any:
    """Numbers hidden in tensors and numpy objects, as JSON can hold them (as ``fileio.dump``)."""
    from treadle.core.fileio.handlers import _json_default as fileio_json_default

    try:
        return fileio_json_default(value)
    except TypeError:
        raise TypeError(
            f"{type(value).__name__} cannot be written to scalars.json: {value!r}"
        ) from None


#: ``json.dumps(value, default=_json_default)``'s encoder, made once (``dumps`` makes one per call).
_ENCODER = json.JSONEncoder(default=_json_default)

#: How many scalar files a LocalVisBackend keeps open at most (``scalars.json``, the run's
#: ``<timestamp>.json`` and a few more).
_MAX_OPEN_FILES = 4
#: How many ``file_path`` names add_scalars remembers joined to ``save_dir``, at most.
_MAX_EXTRA_PATHS = 64


def _close_fds(fds: dict[str, int]) -> None:
    """Close the file descriptors of ``fds`` and empty it."""
    while fds:
        _, fd = fds.popitem()
        try:
            os.close(fd)
        except OSError:
            pass


def _close_oldest_fd(fds: dict[str, int]) -> None:
    """Close the descriptor of ``fds`` opened first."""
    fd = fds.pop(next(iter(fds)))
    try:
        os.close(fd)
    except OSError:
        pass


def _write_all(fd: int, data: bytes) -> None:
    """``os.write`` until every byte is written (a write may take only part of them)."""
    written = os.write(fd, data)
    if written < len(data):
        view = memoryview(data)[written:]
        while view:
            view = view[os.write(fd, view) :]


#: Binary mode on Windows (no newline translation by the OS; we write os.linesep ourselves).
_O_BINARY = getattr(os, "O_BINARY", 0)


def _is_local(path: str) -> bool:
    from treadle.core.fileio import parse_uri_scheme

    return parse_uri_scheme(path) == "local"


def _check_suffix(argument: str, value: str, suffix: str) -> None:
    if not isinstance(value, str) or value.rsplit(".", 1)[-1] != suffix:
        raise ValueError(f"{argument} must be a .{suffix} file name, got {value!r}")


class LocalVisBackend(BaseVisBackend):
    """Write scalars, the config and images under ``save_dir`` (MMEngine's file layout).

    - ``scalars.json``: one JSON object per line, ``{"loss": 0.5, ..., "step": 10}``;
    - ``config.py``: the config (``Config.dump``);
    - ``vis_image/<name>_<step>.png``: images.

    Local scalar files stay open between appends (in append mode, each line written with one
    unbuffered write, so a reader or a crash sees every line already added); :meth:`close`
    closes them, and a later append opens them again. ``save_dir`` may be any path or URI the
    file I/O layer serves; appending to a remote ``scalars.json`` rewrites the object, so prefer a
    local folder for long runs.

    Args:
        save_dir: The folder (the Visualizer passes ``<log_dir>/vis_data``).
        img_save_dir: Image folder, relative to ``save_dir``.
        config_save_file: Config file name (``.py``).
        scalar_save_file: Scalars file name (``.json``).

    Raises:
        ValueError: A file name has the wrong suffix.
    """

    def __init__(
        self,
        save_dir: str,
        img_save_dir: str = "vis_image",
        config_save_file: str = "config.py",
        scalar_save_file: str = "scalars.json",
    ) -> None:
        _check_suffix("config_save_file", config_save_file, "py")
        _check_suffix("scalar_save_file", scalar_save_file, "json")
        super().__init__(None if save_dir is None else os.fspath(save_dir))
        self._img_save_dir = img_save_dir
        self._config_save_file = config_save_file
        self._scalar_save_file = scalar_save_file
        self._init_files()

    def _init_files(self) -> None:
        # Open local files by path (closed by close(), or when the backend is collected), and
        # the paths of the extra files add_scalars was given, checked and joined.
        self._fds: dict[str, int] = {}
        self._fds_finalizer: weakref.finalize[Any, Any] | None = None
        self._extra_files: dict[str, str] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for key in ("_fds", "_fds_finalizer", "_extra_files"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_files()

    def _init_env(self) -> None:
        if self._save_dir is None:
            raise ValueError("LocalVisBackend needs a save_dir to write to")
        from treadle.core.fileio import join_path

        if _is_local(self._save_dir):
            os.makedirs(self._save_dir, exist_ok=True)
        self._img_save_dir = join_path(self._save_dir, self._img_save_dir)
        self._config_save_file = join_path(self._save_dir, self._config_save_file)
        self._scalar_save_file = join_path(self._save_dir, self._scalar_save_file)

    @property
    @force_init_env
    def experiment(self) -> LocalVisBackend:
        """The backend itself."""
        return self

    @force_init_env
    def add_config(self, config: Any, **kwargs: Any) -> None:
        """Write the config to ``config.py``.

        Args:
            config: A :class:`~treadle.core.config.Config` (or a dict, wrapped in one).
        """
        from treadle.core.config import Config

        if isinstance(config, dict) and not isinstance(config, Config):
            config = Config(dict(config))
        if not callable(getattr(config, "dump", None)):
            raise TypeError(f"config must be a Config, got {type(config).__name__}")
        config.dump(self._config_save_file)

    @force_init_env
    def add_image(self, name: str, image: Any, step: int = 0, **kwargs: Any) -> None:
        """Write ``image`` (RGB ``uint8``, ``(H, W, 3)``; grey and RGBA work too) as
        ``vis_image/<name>_<step>.png``."""
        from treadle.core.fileio import join_path, put
        from treadle.core.visualization.png import encode_png

        put(encode_png(image), join_path(self._img_save_dir, f"{name}_{step}.png"))

    @force_init_env
    def add_scalar(self, name: str, value: Any, step: int = 0, **kwargs: Any) -> None:
        """Append ``{name: value, "step": step}`` to ``scalars.json``."""
        self._dump({name: value, "step": step}, self._scalar_save_file)

    @force_init_env
    def add_scalars(
        self,
        scalar_dict: dict[str, Any],
        step: int = 0,
        file_path: str | None = None,
        **kwargs: Any,
    ) -> None:
        """Append ``scalar_dict`` (plus ``"step"`` unless it has one) to ``scalars.json``.

        Args:
            scalar_dict: Names and values (numbers, one-element tensors, numpy scalars).
            step: The step written when ``scalar_dict`` has no ``"step"``.
            file_path: Another ``.json`` file under ``save_dir`` to append the line to as well
                (the LoggerHook passes ``<timestamp>.json``).

        Raises:
            TypeError: ``scalar_dict`` is not a dict.
            ValueError: ``file_path`` is not a ``.json`` name or is ``scalars.json`` itself.
        """
        if not isinstance(scalar_dict, dict):
            raise TypeError(f"scalar_dict must be a dict, got {type(scalar_dict).__name__}")
        extra_file = None
        if file_path is not None:
            extra_file = self._extra_files.get(file_path)
            if extra_file is None:
                _check_suffix("file_path", file_path, "json")
                from treadle.core.fileio import join_path

                extra_file = join_path(
                    str(self._save_dir), file_path
                )  # _init_env checked it is set
                if len(self._extra_files) < _MAX_EXTRA_PATHS:
                    self._extra_files[file_path] = extra_file
            if extra_file == self._scalar_save_file:
                raise ValueError(
                    f"file_path {file_path!r} is the scalars file itself; choose another name"
                )
        if type(self)._dump is not LocalVisBackend._dump:  # a subclass writes its own way
            line = copy.copy(scalar_dict)
            line.setdefault("step", step)
            if extra_file is not None:
                self._dump(line, extra_file)
            self._dump(line, self._scalar_save_file)
            return
        if "step" in scalar_dict:
            text = _ENCODER.encode(scalar_dict) + "\n"  # only read: no copy needed
        else:
            text = _ENCODER.encode({**scalar_dict, "step": step}) + "\n"
        if extra_file is not None:
            self._append(text, extra_file)
        self._append(text, self._scalar_save_file)

    def _dump(self, value_dict: dict[str, Any], file_path: str) -> None:
        """Append one JSON line (MMEngine's ``json.dump`` spacing)."""
        self._append(_ENCODER.encode(value_dict) + "\n", file_path)

    def _append(self, text: str, file_path: str) -> None:
        """Append ``text`` to ``file_path``: local files through a kept descriptor."""
        fd = self._fds.get(file_path)
        if fd is None:
            if not _is_local(file_path):
                from treadle.core.fileio import exists, get_text, put_text

                previous = get_text(file_path) if exists(file_path) else ""
                put_text(previous + text, file_path)
                return
            fd = self._open(file_path)
        if os.linesep != "\n":  # what a text-mode file writes for "\n" (Windows)
            text = text.replace("\n", os.linesep)
        _write_all(fd, text.encode("utf-8"))

    def _open(self, file_path: str) -> int:
        """Open ``file_path`` for appending (as ``open(file_path, "a")``) and keep it open."""
        fds = self._fds
        if len(fds) >= _MAX_OPEN_FILES:  # many extra files: close the oldest
            _close_oldest_fd(fds)
        fd = os.open(file_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _O_BINARY, 0o666)
        fds[file_path] = fd
        if self._fds_finalizer is None or not self._fds_finalizer.alive:
            self._fds_finalizer = weakref.finalize(self, _close_fds, fds)
        return fd

    def close(self) -> None:
        """Close the scalar files kept open (they are reopened by the next append)."""
        _close_fds(self._fds)

"""MMEngine's logger: named, rank-aware, in MMEngine's line format.

A line on the terminal and in the log file reads (file timestamps carry the year)::

    2024/05/01 12:00:00 - treadle - INFO - Epoch(train) [1][10/100] lr: 1.0000e-02 ...

``ERROR`` lines add ``pathname - funcName - lineno`` before the message. The terminal handler
colors the level name (WARNING/ERROR blinking) only when stdout is a TTY.

Ranks: only rank 0 writes below ``ERROR`` to the terminal; other ranks write a log file only when
``distributed=True`` (or at ``DEBUG`` level), to a file named after host, device and rank. The
rank comes from :func:`set_rank` (the Runner calls it once the process group exists) or else from
the ``RANK`` / ``LOCAL_RANK`` environment variables that launchers set; ``torch.distributed`` is
never imported here.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from typing import TYPE_CHECKING, Any

from treadle.core.utils.manager import ManagerMixin

if TYPE_CHECKING:
    from collections.abc import Mapping

#: MMEngine's date formats: the terminal omits the year, the log file keeps it.
TERMINAL_DATEFMT = "%m/%d %H:%M:%S"
FILE_DATEFMT = "%Y/%m/%d %H:%M:%S"

_rank: int | None = None
_world_size: int | None = None


# ---------------------------------------------------------------------- rank


def set_rank(rank: int | None, world_size: int | None = None) -> None:
    """Tell the logging module this process's rank (``None`` returns to the environment).

    Terminal output of existing loggers follows the new rank at once; which log files exist is
    decided when a logger is created.

    Args:
        rank: The global rank.
        world_size: The number of processes; by default ``WORLD_SIZE`` from the environment.
    """
    global _rank, _world_size
    if rank is not None and rank < 0:
        raise ValueError(f"rank must be >= 0, got {rank}")
    _rank = rank
    _world_size = world_size


def _env_int(*names: str, default: int) -> int:
    for name in names:
        value = os.environ.get(name)
        if value:
            try:
                return int(value)
            except ValueError:
                continue
    return default


def get_rank() -> int:
    """The global rank: :func:`set_rank`'s value, else ``RANK``, else ``LOCAL_RANK``, else 0."""
    if _rank is not None:
        return _rank
    return _env_int("RANK", "LOCAL_RANK", default=0)


def get_world_size() -> int:
    """The world size: :func:`set_rank`'s value, else ``WORLD_SIZE``, else 1."""
    if _world_size is not None:
        return _world_size
    return _env_int("WORLD_SIZE", default=1)


def _device_id() -> str:
    """The local device index, as MMEngine puts it in per-rank log names (no torch import)."""
    local_rank = _env_int("LOCAL_RANK", default=0)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible:
        devices = [d.strip() for d in visible.split(",") if d.strip()]
        if local_rank < len(devices):
            return devices[local_rank]
    return str(local_rank)


def _host_info() -> str:
    """``user@host`` (empty when it cannot be found, e.g. in some containers)."""
    import getpass
    import socket

    try:
        return f"{getpass.getuser()}@{socket.gethostname()}"
    except Exception as exc:
        warnings.warn(f"Host or user not found: {exc}", stacklevel=2)
        return ""


# ---------------------------------------------------------------------- formatting and filters

# ANSI sequences equal to termcolor's colored(level, color, attrs=[...]) in MMEngine.
_RESET = "\033[0m"
_COLORS = {"ERROR": "31", "WARNING": "33", "INFO": "97", "DEBUG": "32"}
_BLINKING = frozenset({"ERROR", "WARNING"})


def _level_prefix(level: str, color: bool) -> str:
    if not color:
        return level
    blink = "\033[5m" if level in _BLINKING else ""
    return f"{blink}\033[4m\033[{_COLORS[level]}m{level}{_RESET}"


class TreadleFormatter(logging.Formatter):
    """MMEngine's line format, with an optionally colored level name.

    ``"%(asctime)s - %(name)s - %(levelname)s - %(message)s"``; ``ERROR`` records add
    ``%(pathname)s - %(funcName)s - %(lineno)d`` before the message, as MMEngine does.

    Args:
        color: Color the level name with ANSI codes (terminals only; never for files).
        datefmt: ``time.strftime`` format of ``asctime``.
    """

    def __init__(self, color: bool = False, datefmt: str | None = FILE_DATEFMT) -> None:
        super().__init__(datefmt=datefmt)
        base = "%(asctime)s - %(name)s - {} - %(message)s"
        self._formats = {
            logging.ERROR: logging.PercentStyle(
                "%(asctime)s - %(name)s - "
                + _level_prefix("ERROR", color)
                + " - %(pathname)s - %(funcName)s - %(lineno)d - %(message)s"
            ),
            logging.WARNING: logging.PercentStyle(base.format(_level_prefix("WARNING", color))),
            logging.INFO: logging.PercentStyle(base.format(_level_prefix("INFO", color))),
            logging.DEBUG: logging.PercentStyle(base.format(_level_prefix("DEBUG", color))),
        }
        self._default_style = logging.PercentStyle(
            "%(asctime)s - %(name)s - %(levelname)s - %(message)s"
        )
        # (second, datefmt, converter, text) of the last formatTime: records of the same second
        # share the text (time.strftime has no field finer than a second).
        self._time_cache: tuple[int, str, Any, str] | None = None

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """``logging.Formatter.formatTime``, computed once per second of ``record.created``."""
        if datefmt is None:  # the default format adds milliseconds
            return super().formatTime(record, datefmt)
        second = int(record.created)
        converter = self.converter
        cached = self._time_cache
        if (
            cached is not None
            and cached[0] == second
            and cached[1] == datefmt
            and cached[2] is converter
        ):
            return cached[3]
        text = super().formatTime(record, datefmt)
        self._time_cache = (second, datefmt, converter, text)
        return text

    def format(self, record: logging.LogRecord) -> str:
        """Format with the level's style (other levels, e.g. CRITICAL, use the plain one)."""
        # Each formatter owns its styles, so switching here is safe under the handler's lock.
        self._style = self._formats.get(record.levelno, self._default_style)
        self._fmt = self._style._fmt
        return super().format(record)


class FilterDuplicateWarning(logging.Filter):
    """Let each distinct WARNING message through once (MMEngine's filter); other levels pass.

    Args:
        name: The filter's name (logging.Filter semantics: records from that logger and below).
    """

    def __init__(self, name: str = "treadle") -> None:
        super().__init__(name)
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        """Return ``False`` for a WARNING whose message was seen before."""
        if record.levelno != logging.WARNING:
            return True
        key = str(record.msg)
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


class _RankZeroOrError(logging.Filter):
    """Terminal filter: every record on rank 0, only ERROR and above elsewhere.

    Decided per record, so :func:`set_rank` after the logger was made still takes effect.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or get_rank() == 0


class _StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A StreamHandler that writes to whatever ``sys.stdout`` is when a record is emitted.

    MMEngine binds the stream object at creation; following ``sys.stdout`` instead keeps a
    long-lived logger working under ``contextlib.redirect_stdout`` and pytest's capture.
    """

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self) -> Any:
        return sys.stdout


def _file_handler_classes() -> dict[str, type[logging.FileHandler]]:
    """``logging.handlers``' FileHandler subclasses by name, plus ``FileHandler`` itself."""
    import logging.handlers  # imports pickle and socket: only when a handler type is asked for

    classes: dict[str, type[logging.FileHandler]] = {"FileHandler": logging.FileHandler}
    for name in dir(logging.handlers):
        obj = getattr(logging.handlers, name)
        if isinstance(obj, type) and issubclass(obj, logging.FileHandler):
            classes[name] = obj
    return classes


def _level_number(level: int | str) -> int:
    if isinstance(level, int):
        return level
    number = logging.getLevelName(level.upper())
    if not isinstance(number, int):
        raise ValueError(
            f"Unknown log level {level!r}; use DEBUG, INFO, WARNING, ERROR or CRITICAL"
        )
    return number


# ---------------------------------------------------------------------- the logger


class TreadleLogger(logging.Logger, ManagerMixin):
    """A named, process-wide logger in MMEngine's format (MMEngine's ``MMLogger``).

    Get one with ``TreadleLogger.get_instance(name, ...)``; the same name returns the same
    logger (its handlers are made once), and ``get_current_instance()`` returns the most recently
    created one. Like MMEngine's, these loggers live outside :func:`logging.getLogger`'s tree:
    third-party logging configuration does not touch them, records do not propagate to the root
    logger, and a logger without handlers prints nothing (no "last resort" handler).

    The log file is written through a *local* path (``logging.FileHandler``). For a remote
    ``work_dir`` (``s3://…``), the Runner logs to a local file and copies it to the remote work
    dir through :mod:`treadle.core.fileio`.

    Args:
        name: The instance name (the ``get_instance`` key).
        logger_name: The ``name`` printed in each line; ``"treadle"`` by default (MMEngine prints
            ``"mmengine"``).
        log_file: Path of a local log file; ``None`` for terminal only. Parent directories are
            created.
        log_level: Level of the handlers (the logger itself lets everything through).
        file_mode: ``"w"`` (default, as MMEngine) or ``"a"``.
        distributed: Write a log file on every rank (named
            ``<stem>_<user@host>_device<id>_rank<rank><suffix>``), not only rank 0. Also implied
            by ``log_level="DEBUG"`` when the world size is above 1, as in MMEngine.
        file_handler_cfg: Use another file handler from :mod:`logging.handlers`:
            ``dict(type="RotatingFileHandler", maxBytes=..., backupCount=...)``.
    """

    #: ``get_current_instance()`` creates a logger of this name when none exists.
    _default_instance_name = "treadle"

    def __init__(
        self,
        name: str,
        logger_name: str = "treadle",
        log_file: str | os.PathLike[str] | None = None,
        log_level: int | str = "INFO",
        file_mode: str = "w",
        distributed: bool = False,
        file_handler_cfg: Mapping[str, Any] | None = None,
    ) -> None:
        logging.Logger.__init__(self, logger_name)
        ManagerMixin.__init__(self, name)
        level = _level_number(log_level)
        rank = get_rank()

        isatty = getattr(sys.stdout, "isatty", None)
        color = bool(isatty and isatty())  # decided once: color codes only for a terminal
        terminal = _StdoutHandler()
        terminal.setFormatter(TreadleFormatter(color=color, datefmt=TERMINAL_DATEFMT))
        terminal.setLevel(level)
        terminal.addFilter(_RankZeroOrError())
        terminal.addFilter(FilterDuplicateWarning(logger_name))
        self.handlers.append(terminal)

        self._log_file: str | None = None
        if log_file is not None:
            path = os.fspath(log_file)
            per_rank = (level <= logging.DEBUG or distributed) and get_world_size() > 1
            if per_rank:
                stem, suffix = os.path.splitext(os.path.basename(path))
                host = _host_info()
                host_part = f"_{host}" if host else ""
                path = os.path.join(
                    os.path.dirname(path),
                    f"{stem}{host_part}_device{_device_id()}_rank{rank}{suffix}",
                )
            if rank == 0 or per_rank:
                directory = os.path.dirname(path)
                if directory:
                    os.makedirs(directory, exist_ok=True)
                file_handler = self._make_file_handler(path, file_mode, file_handler_cfg)
                file_handler.setFormatter(TreadleFormatter(color=False, datefmt=FILE_DATEFMT))
                file_handler.setLevel(level)
                file_handler.addFilter(FilterDuplicateWarning(logger_name))
                self.handlers.append(file_handler)
                self._log_file = path

    @staticmethod
    def _make_file_handler(
        path: str, file_mode: str, cfg: Mapping[str, Any] | None
    ) -> logging.FileHandler:
        if cfg is None:
            return logging.FileHandler(path, file_mode, encoding="utf-8")
        options = dict(cfg)
        if "type" not in options:
            raise ValueError(f"file_handler_cfg needs a 'type' key, got {dict(cfg)!r}")
        handler_type = options.pop("type")
        classes = _file_handler_classes()
        cls = classes.get(str(handler_type))
        if cls is None:
            raise ValueError(
                f"Unknown file handler type {handler_type!r}; choose one of {sorted(classes)}"
            )
        options.setdefault("filename", path)
        return cls(**options)

    @property
    def log_file(self) -> str | None:
        """The local log file this process writes (after the per-rank renaming), if any."""
        return self._log_file

    def isEnabledFor(self, level: int) -> bool:
        """Whether a record of ``level`` would be written by one of the handlers.

        ``logging.Logger``'s rules (``disabled``, ``logging.disable``, the logger's level; not
        cached, so that ``logging.disable``, which clears only the caches of ``logging``'s own
        loggers, applies at once), and then a handler must accept the level: records that no
        handler takes are not even made (with ``log_level="WARNING"``, ``logger.info`` costs a
        comparison per handler). A logger with filters of its own always makes its records, for
        the filters to see them.
        """
        if self.disabled or self.manager.disable >= level or level < self.getEffectiveLevel():
            return False
        if self.filters:
            return True
        for handler in self.handlers:  # noqa: SIM110 - cheaper than any() with a generator
            if level >= handler.level:
                return True
        return False

    def callHandlers(self, record: logging.LogRecord) -> None:
        """Send a record to this logger's own handlers only (no propagation, no last resort)."""
        for handler in self.handlers:
            if record.levelno >= handler.level:
                handler.handle(record)

    def setLevel(self, level: int | str) -> None:
        """Set the logger's level (an int or a name such as ``"INFO"``).

        Unlike ``logging.Logger.setLevel``, there is no level cache to clear: :meth:`isEnabledFor`
        does not cache.
        """
        self.level = _level_number(level)


#: MMEngine's name for the same class, so code written for MMEngine keeps working.
MMLogger = TreadleLogger


def get_logger(name: str | None = None, **kwargs: Any) -> TreadleLogger:
    """Return a TreadleLogger: the named one (created with ``kwargs`` on first use) or the current.

    Args:
        name: Instance name; ``None`` for the current logger. A new logger prints ``name`` in its
            lines unless ``logger_name`` is given.
        **kwargs: :class:`TreadleLogger` arguments, used when the logger is created.
    """
    if name is None:
        return TreadleLogger.get_current_instance()
    if TreadleLogger.check_instance_created(name):
        return TreadleLogger.get_instance(name, **kwargs)
    kwargs.setdefault("logger_name", name)
    return TreadleLogger.get_instance(name, **kwargs)


def print_log(
    msg: object, logger: logging.Logger | str | None = None, level: int = logging.INFO
) -> None:
    """Print a message through a logger, MMEngine's ``print_log``.

    Args:
        msg: The message.
        logger: Where it goes:

            - ``None``: the built-in ``print``;
            - a :class:`logging.Logger`: that logger;
            - ``"silent"``: nowhere;
            - ``"current"``: the most recently created TreadleLogger (``"treadle"`` is created
              if there is none);
            - another string: the TreadleLogger with that instance name, which must exist.
        level: Logging level (for loggers).

    Raises:
        ValueError: ``logger`` names a TreadleLogger that was not created.
        TypeError: ``logger`` is of another type.
    """
    if logger is None:
        print(msg)
    elif isinstance(logger, logging.Logger):
        logger.log(level, msg)
    elif logger == "silent":
        pass
    elif logger == "current":
        TreadleLogger.get_current_instance().log(level, msg)
    elif isinstance(logger, str):
        if not TreadleLogger.check_instance_created(logger):
            raise ValueError(
                f"TreadleLogger {logger!r} has not been created; create it with "
                f"TreadleLogger.get_instance({logger!r}) or pass 'current', 'silent' or None"
            )
        TreadleLogger.get_instance(logger).log(level, msg)
    else:
        raise TypeError(
            "logger must be a logging.Logger, a logger instance name, 'silent', 'current' or "
            f"None, got {type(logger).__name__}"
        )

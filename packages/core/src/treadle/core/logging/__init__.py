"""Logging in MMEngine's format: :class:`TreadleLogger` (alias ``MMLogger``) and ``print_log``."""

from __future__ import annotations

from treadle.core.logging.logger import (
    FilterDuplicateWarning,
    MMLogger,
    TreadleFormatter,
    TreadleLogger,
    get_logger,
    get_rank,
    get_world_size,
    print_log,
    set_rank,
)

__all__ = [
    "FilterDuplicateWarning",
    "MMLogger",
    "TreadleFormatter",
    "TreadleLogger",
    "get_logger",
    "get_rank",
    "get_world_size",
    "print_log",
    "set_rank",
]

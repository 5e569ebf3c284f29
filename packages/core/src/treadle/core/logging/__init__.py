"""Logging in MMEngine's format: :class:`TreadleLogger` (alias ``MMLogger``) and ``print_log``,
the :class:`MessageHub` with its :class:`HistoryBuffer` scalars, and the :class:`LogProcessor`
that turns them into log lines.

Importing this package does not import torch.
"""

from __future__ import annotations

from treadle.core.logging.history_buffer import HistoryBuffer, flush_history_buffers
from treadle.core.logging.log_processor import LogProcessor
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
from treadle.core.logging.message_hub import MessageHub

__all__ = [
    "FilterDuplicateWarning",
    "HistoryBuffer",
    "LogProcessor",
    "MMLogger",
    "MessageHub",
    "TreadleFormatter",
    "TreadleLogger",
    "flush_history_buffers",
    "get_logger",
    "get_rank",
    "get_world_size",
    "print_log",
    "set_rank",
]

"""Small helpers shared by the built-in hooks."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

#: Metric names (or parts of names) where larger is better, MMEngine's defaults.
DEFAULT_GREATER_KEYS: tuple[str, ...] = (
    "acc",
    "top",
    "AR@",
    "auc",
    "precision",
    "mAP",
    "mDice",
    "mIoU",
    "mAcc",
    "aAcc",
)
#: Metric names (or parts of names) where smaller is better, MMEngine's defaults.
DEFAULT_LESS_KEYS: tuple[str, ...] = ("loss",)


def infer_rule(key: str, greater_keys: Iterable[str], less_keys: Iterable[str]) -> str | None:
    """Guess whether a metric improves by growing (``'greater'``) or shrinking (``'less'``).

    MMEngine's order, case-insensitive: an exact match in ``greater_keys``, then in
    ``less_keys``, then a ``greater_keys`` entry contained in ``key``, then a ``less_keys`` one.

    Returns:
        ``'greater'``, ``'less'``, or ``None`` when nothing matches.
    """
    key_lc = key.lower()
    greater = {k.lower() for k in greater_keys}
    less = {k.lower() for k in less_keys}
    if key_lc in greater:
        return "greater"
    if key_lc in less:
        return "less"
    if any(k in key_lc for k in greater):
        return "greater"
    if any(k in key_lc for k in less):
        return "less"
    return None


def _greater(x: Any, y: Any) -> bool:
    """``x > y`` as a bool: the ``'greater'`` rule's comparison."""
    return bool(x > y)


def _less(x: Any, y: Any) -> bool:
    """``x < y`` as a bool: the ``'less'`` rule's comparison."""
    return bool(x < y)


#: The ``rule`` names of CheckpointHook's ``save_best`` and EarlyStoppingHook, with their
#: comparisons (each hook keeps a copy as its ``rule_map``, which subclasses may change).
RULE_MAP: dict[str, Callable[[Any, Any], bool]] = {"greater": _greater, "less": _less}


def backend_args_from(
    file_client_args: dict[str, Any] | None, backend_args: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The storage backend's arguments, given as ``backend_args`` or MMEngine's deprecated
    ``file_client_args`` (which name the backend the same way); warns about the latter.

    Raises:
        ValueError: Both are given.
    """
    if file_client_args is None:
        return backend_args
    from treadle.core.logging import print_log

    print_log(
        '"file_client_args" will be deprecated in future. Please use "backend_args" instead',
        logger="current",
        level=logging.WARNING,
    )
    if backend_args is not None:
        raise ValueError('"file_client_args" and "backend_args" cannot be set together')
    return file_client_args


def resolve_out_dir(runner: Any, out_dir: str, backend_args: dict[str, Any] | None) -> str:
    """``out_dir`` joined with the last directory of ``runner.work_dir`` (MMEngine's rule for a
    hook's ``out_dir``), the way ``out_dir``'s storage backend joins paths.

    A hook calls this per run with the ``out_dir`` it was given, so that a second run does not
    join the name twice.
    """
    from treadle.core.fileio import join_path

    basename = os.path.basename(os.fspath(runner.work_dir).rstrip("/").rstrip(os.sep))
    return join_path(out_dir, basename, backend_args=backend_args)


def is_main_process(runner: Any) -> bool:
    """Whether this process is rank 0 (MMEngine's ``is_main_process``, asked of the runner)."""
    return bool(getattr(runner, "rank", 0) == 0)


def check_bool(value: object, name: str) -> None:
    """Raise ``TypeError`` naming ``name`` unless ``value`` is a bool."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, but got {type(value).__name__} {value!r}")


def check_int(value: object, name: str, minimum: int | None = None) -> None:
    """Raise ``TypeError``/``ValueError`` naming ``name`` unless ``value`` is an int ≥ ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, but got {type(value).__name__} {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, but got {value}")

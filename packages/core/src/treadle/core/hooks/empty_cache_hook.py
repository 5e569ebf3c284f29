"""``EmptyCacheHook``: release cached accelerator memory (MMEngine's hook)."""

from __future__ import annotations

from typing import Any

from treadle.core.hooks._utils import check_bool
from treadle.core.hooks.hook import DATA_BATCH, Hook

__all__ = ["EmptyCacheHook"]


def _empty_cache() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    elif torch.backends.mps.is_available():
        torch.mps.empty_cache()


class EmptyCacheHook(Hook):
    """Calls ``torch.cuda.empty_cache()`` (or MPS's) at the chosen points of every loop.

    Nothing happens without an accelerator.

    Args:
        before_epoch: Release before every epoch (train, val and test).
        after_epoch: Release after every epoch.
        after_iter: Release after every iteration (slow; for memory fragmentation problems).
    """

    priority = "NORMAL"

    def __init__(
        self, before_epoch: bool = False, after_epoch: bool = True, after_iter: bool = False
    ) -> None:
        check_bool(before_epoch, "before_epoch")
        check_bool(after_epoch, "after_epoch")
        check_bool(after_iter, "after_iter")
        self._do_before_epoch = before_epoch
        self._do_after_epoch = after_epoch
        self._do_after_iter = after_iter

    def _after_iter(
        self,
        runner: Any,
        batch_idx: int,
        data_batch: DATA_BATCH = None,
        outputs: Any = None,
        mode: str = "train",
    ) -> None:
        if self._do_after_iter:
            _empty_cache()

    def _before_epoch(self, runner: Any, mode: str = "train") -> None:
        if self._do_before_epoch:
            _empty_cache()

    def _after_epoch(self, runner: Any, mode: str = "train") -> None:
        if self._do_after_epoch:
            _empty_cache()

"""``SyncBuffersHook``: average the model's buffers across processes (MMEngine's hook)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from treadle.core.hooks.hook import Hook

if TYPE_CHECKING:
    from collections.abc import Iterable

    import torch

__all__ = ["SyncBuffersHook"]


class SyncBuffersHook(Hook):
    """All-reduces (mean) the model's floating-point buffers, such as BatchNorm's running stats.

    It runs after every training epoch and before every validation that did not directly follow
    one (iteration-based training), so that every rank evaluates the same statistics. Buffers are
    packed into one flat tensor per device and dtype, so each sync is one collective per group,
    through ``runner.strategy.all_reduce(tensor, op="mean")``. Integer buffers (BatchNorm's
    ``num_batches_tracked``) are counters equal on every rank and are left alone. With one process
    the hook does nothing.
    """

    priority = "NORMAL"

    def __init__(self) -> None:
        self.distributed = False
        # Whether the buffers were synced at the end of the train epoch that precedes this val.
        self.called_in_train = False

    def before_run(self, runner: Any) -> None:
        """Find out whether there is anything to sync."""
        self.distributed = bool(getattr(runner, "world_size", 1) > 1)

    def before_val_epoch(self, runner: Any) -> None:
        """Sync before validation unless the train epoch just did."""
        if self.distributed:
            if not self.called_in_train:
                _all_reduce_mean(runner.strategy, runner.model.buffers())
            self.called_in_train = False

    def after_train_epoch(self, runner: Any) -> None:
        """Sync at the end of every training epoch."""
        if self.distributed:
            _all_reduce_mean(runner.strategy, runner.model.buffers())
            self.called_in_train = True


def _all_reduce_mean(strategy: Any, tensors: Iterable[torch.Tensor]) -> None:
    """Average floating-point ``tensors`` across ranks in place, one collective per group."""
    import torch

    groups: dict[tuple[torch.device, torch.dtype], list[torch.Tensor]] = {}
    for tensor in tensors:
        if tensor.is_floating_point():
            groups.setdefault((tensor.device, tensor.dtype), []).append(tensor)
    for group in groups.values():
        flat = torch.cat([t.detach().reshape(-1) for t in group])
        strategy.all_reduce(flat, op="mean")
        offset = 0
        for tensor in group:
            n = tensor.numel()
            tensor.data.copy_(flat[offset : offset + n].view_as(tensor))
            offset += n

"""``DistSamplerSeedHook``: a new shuffle every epoch (MMEngine's hook)."""

from __future__ import annotations

from typing import Any

from treadle.core.hooks.hook import Hook

__all__ = ["DistSamplerSeedHook"]


class DistSamplerSeedHook(Hook):
    """Calls ``set_epoch(runner.epoch)`` on the train dataloader's sampler before every epoch.

    The sampler is ``dataloader.sampler`` when it has ``set_epoch``, else
    ``dataloader.batch_sampler.sampler`` (a batch sampler wrapping it); samplers without
    ``set_epoch`` (PyTorch's ``SequentialSampler``) are left alone.
    """

    priority = "NORMAL"

    def before_train_epoch(self, runner: Any) -> None:
        """Seed the sampler's shuffle with the epoch number."""
        from treadle.core.runner.loops import _set_epoch

        _set_epoch(runner.train_loop.dataloader, runner.epoch)

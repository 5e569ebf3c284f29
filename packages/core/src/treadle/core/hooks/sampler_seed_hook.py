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
        dataloader = runner.train_loop.dataloader
        sampler: Any = getattr(dataloader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(runner.epoch)
            return
        batch_sampler = getattr(dataloader, "batch_sampler", None)
        inner: Any = getattr(batch_sampler, "sampler", None)
        if hasattr(inner, "set_epoch"):
            inner.set_epoch(runner.epoch)

"""Hooks: the ``Hook`` base class and the built-in hooks (MMEngine's ``mmengine.hooks``).

The base class is imported eagerly (it imports nothing heavy); the built-in hooks are imported on
first access, so ``import treadle.core.hooks`` does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from treadle.core.hooks.hook import POINTS, Hook, Priority, get_priority, implemented_points
from treadle.core.utils.lazy import lazy_exports

if TYPE_CHECKING:
    from treadle.core.hooks.checkpoint_hook import CheckpointHook
    from treadle.core.hooks.early_stopping_hook import EarlyStoppingHook
    from treadle.core.hooks.ema_hook import EMAHook
    from treadle.core.hooks.empty_cache_hook import EmptyCacheHook
    from treadle.core.hooks.iter_timer_hook import IterTimerHook
    from treadle.core.hooks.logger_hook import LoggerHook
    from treadle.core.hooks.nonfinite_loss_hook import NonFiniteLossError, NonFiniteLossHook
    from treadle.core.hooks.param_scheduler_hook import ParamSchedulerHook
    from treadle.core.hooks.profiler_hook import ProfilerHook
    from treadle.core.hooks.progress_hook import ProgressHook
    from treadle.core.hooks.runtime_info_hook import RuntimeInfoHook
    from treadle.core.hooks.sampler_seed_hook import DistSamplerSeedHook
    from treadle.core.hooks.sync_buffer_hook import SyncBuffersHook

_WHERE: dict[str, str] = {
    "CheckpointHook": "checkpoint_hook",
    "DistSamplerSeedHook": "sampler_seed_hook",
    "EMAHook": "ema_hook",
    "EarlyStoppingHook": "early_stopping_hook",
    "EmptyCacheHook": "empty_cache_hook",
    "IterTimerHook": "iter_timer_hook",
    "LoggerHook": "logger_hook",
    "NonFiniteLossError": "nonfinite_loss_hook",
    "NonFiniteLossHook": "nonfinite_loss_hook",
    "ParamSchedulerHook": "param_scheduler_hook",
    "ProfilerHook": "profiler_hook",
    "ProgressHook": "progress_hook",
    "RuntimeInfoHook": "runtime_info_hook",
    "SyncBuffersHook": "sync_buffer_hook",
}

__all__ = [
    "POINTS",
    "CheckpointHook",
    "DistSamplerSeedHook",
    "EMAHook",
    "EarlyStoppingHook",
    "EmptyCacheHook",
    "Hook",
    "IterTimerHook",
    "LoggerHook",
    "NonFiniteLossError",
    "NonFiniteLossHook",
    "ParamSchedulerHook",
    "Priority",
    "ProfilerHook",
    "ProgressHook",
    "RuntimeInfoHook",
    "SyncBuffersHook",
    "get_priority",
    "implemented_points",
]


__getattr__, __dir__ = lazy_exports(__name__, _WHERE)

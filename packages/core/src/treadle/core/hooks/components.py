"""The hooks treadle-core registers, by import path (read by the built-in plugin).

Importing this module imports nothing (no torch): registration stays cheap.
"""

_H = "treadle.core.hooks"

#: Root-registry attribute name → {registered name: "module:Attr"}.
COMPONENTS: dict[str, dict[str, str]] = {
    "HOOKS": {
        "RuntimeInfoHook": f"{_H}.runtime_info_hook:RuntimeInfoHook",
        "IterTimerHook": f"{_H}.iter_timer_hook:IterTimerHook",
        "DistSamplerSeedHook": f"{_H}.sampler_seed_hook:DistSamplerSeedHook",
        "LoggerHook": f"{_H}.logger_hook:LoggerHook",
        "ParamSchedulerHook": f"{_H}.param_scheduler_hook:ParamSchedulerHook",
        "CheckpointHook": f"{_H}.checkpoint_hook:CheckpointHook",
        "EMAHook": f"{_H}.ema_hook:EMAHook",
        "EarlyStoppingHook": f"{_H}.early_stopping_hook:EarlyStoppingHook",
        "EmptyCacheHook": f"{_H}.empty_cache_hook:EmptyCacheHook",
        "SyncBuffersHook": f"{_H}.sync_buffer_hook:SyncBuffersHook",
        "ProfilerHook": f"{_H}.profiler_hook:ProfilerHook",
        "NonFiniteLossHook": f"{_H}.nonfinite_loss_hook:NonFiniteLossHook",
        "ProgressHook": f"{_H}.progress_hook:ProgressHook",
    },
}

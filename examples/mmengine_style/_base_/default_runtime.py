# Runtime settings shared by every experiment (what MMEngine projects keep in
# configs/_base_/default_runtime.py).
default_scope = "treadle"

default_hooks = dict(
    runtime_info=dict(type="RuntimeInfoHook"),
    timer=dict(type="IterTimerHook"),
    sampler_seed=dict(type="DistSamplerSeedHook"),
    logger=dict(type="LoggerHook", interval=20),
    param_scheduler=dict(type="ParamSchedulerHook"),
    checkpoint=dict(type="CheckpointHook", interval=1, max_keep_ckpts=2),
)
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend="nccl"))
log_processor = dict(window_size=20, by_epoch=True)
visualizer = dict(type="Visualizer", vis_backends=[dict(type="LocalVisBackend")])
log_level = "INFO"
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)

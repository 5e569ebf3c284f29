# Train a small CNN on scikit-learn's handwritten digits (bundled with scikit-learn, no download).
#
#   treadle train examples/digits/digits_cnn.py
#
# writes work_dirs/digits_cnn/: epoch_N.pth checkpoints, last_checkpoint, best_*.pth, and per run
# <timestamp>/<timestamp>.log and <timestamp>/vis_data/scalars.json. An MMEngine-style text config:
# `treadle train` puts this file's directory on sys.path, so custom_imports finds digits.py.

custom_imports = dict(imports=["digits"], allow_failed_imports=False)

model = dict(type="DigitsCNN", channels=(32, 64), hidden=128, dropout=0.25)

train_dataloader = dict(
    batch_size=32,
    num_workers=0,  # the data is 1797 tiny images held in memory: workers would only add latency
    sampler=dict(type="DefaultSampler", shuffle=True),
    collate_fn=dict(type="default_collate"),
    dataset=dict(type="DigitsDataset", split="train"),
)
val_dataloader = dict(
    batch_size=128,
    num_workers=0,
    sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="default_collate"),
    dataset=dict(type="DigitsDataset", split="val"),
)
test_dataloader = val_dataloader
val_evaluator = dict(type="Accuracy", topk=(1,))
test_evaluator = val_evaluator

train_cfg = dict(by_epoch=True, max_epochs=12, val_interval=1)
val_cfg = dict()
test_cfg = dict()

optim_wrapper = dict(optimizer=dict(type="Adam", lr=2e-3))
param_scheduler = [dict(type="CosineAnnealingLR", by_epoch=True, eta_min=1e-5)]

default_hooks = dict(
    logger=dict(type="LoggerHook", interval=15),
    checkpoint=dict(
        type="CheckpointHook",
        interval=1,
        max_keep_ckpts=3,
        save_best="accuracy/top1",
        rule="greater",
    ),
)
log_processor = dict(window_size=15, by_epoch=True)

randomness = dict(seed=0, deterministic=False)

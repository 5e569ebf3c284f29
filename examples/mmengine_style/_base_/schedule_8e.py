# Schedule: 8 epochs of SGD with momentum, cosine decay, validation after every epoch.
optim_wrapper = dict(type="OptimWrapper", optimizer=dict(type="SGD", lr=0.1, momentum=0.9))
param_scheduler = [dict(type="CosineAnnealingLR", by_epoch=True, eta_min=1e-4)]
train_cfg = dict(by_epoch=True, max_epochs=8, val_interval=1)
val_cfg = dict()
test_cfg = dict()

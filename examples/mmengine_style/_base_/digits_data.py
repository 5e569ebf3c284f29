# Data: scikit-learn's digits as 64-pixel vectors (FlatDigits is defined in digits_project.py).
train_dataloader = dict(
    batch_size=32,
    num_workers=0,
    sampler=dict(type="DefaultSampler", shuffle=True),
    collate_fn=dict(type="default_collate"),
    dataset=dict(type="FlatDigits", split="train"),
)
val_dataloader = dict(
    batch_size=128,
    num_workers=0,
    sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="default_collate"),
    dataset=dict(type="FlatDigits", split="val"),
)
test_dataloader = val_dataloader
val_evaluator = dict(type="Accuracy")
test_evaluator = val_evaluator

"""The data components treadle-core registers, by import path (read by the built-in plugin).

Importing this module imports nothing (no torch): registration stays cheap.
"""

_D = "treadle.core.dataset"

#: Root-registry attribute name → {registered name: "module:Attr"}.
COMPONENTS: dict[str, dict[str, str]] = {
    # MMEngine registers its dataset wrappers (not BaseDataset) and no TRANSFORMS.
    "DATASETS": {
        "ConcatDataset": f"{_D}.dataset_wrapper:ConcatDataset",
        "RepeatDataset": f"{_D}.dataset_wrapper:RepeatDataset",
        "ClassBalancedDataset": f"{_D}.dataset_wrapper:ClassBalancedDataset",
    },
    "DATA_SAMPLERS": {
        "DefaultSampler": f"{_D}.sampler:DefaultSampler",
        "InfiniteSampler": f"{_D}.sampler:InfiniteSampler",
    },
    "FUNCTIONS": {
        "pseudo_collate": f"{_D}.utils:pseudo_collate",
        "default_collate": f"{_D}.utils:default_collate",
        # Not registered by MMEngine; registered here so that
        # worker_init_fn=dict(type="worker_init_fn", ...) works in a dataloader config.
        "worker_init_fn": f"{_D}.utils:worker_init_fn",
    },
}

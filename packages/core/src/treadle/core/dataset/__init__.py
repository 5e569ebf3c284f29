"""Data: datasets, dataset wrappers, ``Compose``, samplers, collate functions and
``build_dataloader`` (MMEngine's ``mmengine.dataset``).

Names are imported on first access, so ``import treadle.core.dataset`` (and the light
:mod:`treadle.core.dataset.components` that registration reads) does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

# MMEngine's older name of the FUNCTIONS registry (the registry module is light).
from treadle.core.registry import FUNCTIONS as COLLATE_FUNCTIONS
from treadle.core.utils.lazy import lazy_exports

if TYPE_CHECKING:
    from treadle.core.dataset.base_dataset import BaseDataset, force_full_init
    from treadle.core.dataset.builder import build_dataloader
    from treadle.core.dataset.compose import Compose
    from treadle.core.dataset.dataset_wrapper import (
        ClassBalancedDataset,
        ConcatDataset,
        RepeatDataset,
    )
    from treadle.core.dataset.sampler import DefaultSampler, InfiniteSampler, skip_batches
    from treadle.core.dataset.utils import default_collate, pseudo_collate, worker_init_fn

_WHERE: dict[str, str] = {
    "BaseDataset": "base_dataset",
    "force_full_init": "base_dataset",
    "Compose": "compose",
    "ClassBalancedDataset": "dataset_wrapper",
    "ConcatDataset": "dataset_wrapper",
    "RepeatDataset": "dataset_wrapper",
    "build_dataloader": "builder",
    "DefaultSampler": "sampler",
    "InfiniteSampler": "sampler",
    "skip_batches": "sampler",
    "default_collate": "utils",
    "pseudo_collate": "utils",
    "worker_init_fn": "utils",
}

__all__ = [
    "COLLATE_FUNCTIONS",
    "BaseDataset",
    "ClassBalancedDataset",
    "Compose",
    "ConcatDataset",
    "DefaultSampler",
    "InfiniteSampler",
    "RepeatDataset",
    "build_dataloader",
    "default_collate",
    "force_full_init",
    "pseudo_collate",
    "skip_batches",
    "worker_init_fn",
]


__getattr__, __dir__ = lazy_exports(__name__, _WHERE)

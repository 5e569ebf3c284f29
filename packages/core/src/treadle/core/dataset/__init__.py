"""Data: samplers, collate functions and ``build_dataloader`` (MMEngine's ``mmengine.dataset``).

Names are imported on first access, so ``import treadle.core.dataset`` (and the light
:mod:`treadle.core.dataset.components` that registration reads) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from treadle.core.dataset.builder import build_dataloader
    from treadle.core.dataset.sampler import DefaultSampler, InfiniteSampler, skip_batches
    from treadle.core.dataset.utils import default_collate, pseudo_collate, worker_init_fn
    from treadle.core.registry import FUNCTIONS as COLLATE_FUNCTIONS

_WHERE: dict[str, str] = {
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
    "DefaultSampler",
    "InfiniteSampler",
    "build_dataloader",
    "default_collate",
    "pseudo_collate",
    "skip_batches",
    "worker_init_fn",
]


def __getattr__(name: str) -> Any:
    if name == "COLLATE_FUNCTIONS":  # MMEngine's older name of the FUNCTIONS registry
        from treadle.core.registry import FUNCTIONS

        globals()[name] = FUNCTIONS
        return FUNCTIONS
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])

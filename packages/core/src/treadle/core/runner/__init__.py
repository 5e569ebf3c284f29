"""The Runner, its loops and checkpoint I/O.

Names are imported on first access, so ``import treadle.core.runner`` (and the light
:mod:`treadle.core.runner.components` that registration reads) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from treadle.core.runner.loops import (
        BaseLoop,
        EpochBasedTrainLoop,
        IterBasedTrainLoop,
        TestLoop,
        ValLoop,
    )
    from treadle.core.runner.runner import Runner

_WHERE: dict[str, str] = {
    "BaseLoop": "loops",
    "EpochBasedTrainLoop": "loops",
    "IterBasedTrainLoop": "loops",
    "TestLoop": "loops",
    "ValLoop": "loops",
    "Runner": "runner",
}

__all__ = [
    "BaseLoop",
    "EpochBasedTrainLoop",
    "IterBasedTrainLoop",
    "Runner",
    "TestLoop",
    "ValLoop",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])

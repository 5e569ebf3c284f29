"""The Runner, its loops and checkpoint I/O.

Names are imported on first access, so ``import treadle.core.runner`` (and the light
:mod:`treadle.core.runner.components` that registration reads) does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from treadle.core.utils.lazy import lazy_exports

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


__getattr__, __dir__ = lazy_exports(__name__, _WHERE)

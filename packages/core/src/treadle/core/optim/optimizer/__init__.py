"""Optimizer wrappers and their construction from configs.

Names are imported on first access, so that importing this package (and its light
``components`` module) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from treadle.core.optim.optimizer.amp_optimizer_wrapper import AmpOptimWrapper
    from treadle.core.optim.optimizer.base import BaseOptimWrapper
    from treadle.core.optim.optimizer.builder import build_optim_wrapper
    from treadle.core.optim.optimizer.default_constructor import DefaultOptimWrapperConstructor
    from treadle.core.optim.optimizer.optimizer_wrapper import OptimWrapper
    from treadle.core.optim.optimizer.optimizer_wrapper_dict import OptimWrapperDict

__all__ = [
    "AmpOptimWrapper",
    "BaseOptimWrapper",
    "DefaultOptimWrapperConstructor",
    "OptimWrapper",
    "OptimWrapperDict",
    "build_optim_wrapper",
]

_LAZY = {
    "AmpOptimWrapper": "amp_optimizer_wrapper",
    "BaseOptimWrapper": "base",
    "DefaultOptimWrapperConstructor": "default_constructor",
    "OptimWrapper": "optimizer_wrapper",
    "OptimWrapperDict": "optimizer_wrapper_dict",
    "build_optim_wrapper": "builder",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])

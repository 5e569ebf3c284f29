"""Optimizer wrappers and their construction from configs.

Names are imported on first access, so that importing this package (and its light
``components`` module) does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from treadle.core.utils.lazy import lazy_exports

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


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)

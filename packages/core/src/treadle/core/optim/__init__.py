"""Optimization: optimizer wrappers, their constructors, and parameter schedulers.

MMEngine's ``mmengine.optim`` names. They are imported on first access:
``import treadle.core.optim`` alone imports neither torch nor the modules that define them, so
the light ``components`` modules below it can be read at plugin discovery; ``from treadle.core.optim import
OptimWrapper`` imports torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

# Name tables whose modules are imported on first access (no torch): their ``__all__`` says where
# this package's optimizer and scheduler names live.
from treadle.core.optim import optimizer as _optimizer
from treadle.core.optim import scheduler as _scheduler
from treadle.core.utils.lazy import lazy_exports

if TYPE_CHECKING:
    from treadle.core.optim.optimizer import (
        AmpOptimWrapper,
        BaseOptimWrapper,
        DefaultOptimWrapperConstructor,
        OptimWrapper,
        OptimWrapperDict,
        build_optim_wrapper,
    )
    from treadle.core.optim.scheduler import (
        INF,
        ConstantLR,
        ConstantMomentum,
        ConstantParamScheduler,
        CosineAnnealingLR,
        CosineAnnealingMomentum,
        CosineAnnealingParamScheduler,
        CosineRestartLR,
        CosineRestartMomentum,
        CosineRestartParamScheduler,
        ExponentialLR,
        ExponentialMomentum,
        ExponentialParamScheduler,
        LinearLR,
        LinearMomentum,
        LinearParamScheduler,
        LRSchedulerMixin,
        MomentumSchedulerMixin,
        MultiStepLR,
        MultiStepMomentum,
        MultiStepParamScheduler,
        OneCycleLR,
        OneCycleParamScheduler,
        OptimizerLike,
        ParamScheduler,
        PolyLR,
        PolyMomentum,
        PolyParamScheduler,
        ReduceOnPlateauLR,
        ReduceOnPlateauMomentum,
        ReduceOnPlateauParamScheduler,
        StepLR,
        StepMomentum,
        StepParamScheduler,
        _ParamScheduler,
    )
    from treadle.core.registry import (
        OPTIM_WRAPPER_CONSTRUCTORS,
        OPTIM_WRAPPERS,
        OPTIMIZERS,
    )

__all__ = [
    "INF",
    "OPTIMIZERS",
    "OPTIM_WRAPPERS",
    "OPTIM_WRAPPER_CONSTRUCTORS",
    "AmpOptimWrapper",
    "BaseOptimWrapper",
    "ConstantLR",
    "ConstantMomentum",
    "ConstantParamScheduler",
    "CosineAnnealingLR",
    "CosineAnnealingMomentum",
    "CosineAnnealingParamScheduler",
    "CosineRestartLR",
    "CosineRestartMomentum",
    "CosineRestartParamScheduler",
    "DefaultOptimWrapperConstructor",
    "ExponentialLR",
    "ExponentialMomentum",
    "ExponentialParamScheduler",
    "LRSchedulerMixin",
    "LinearLR",
    "LinearMomentum",
    "LinearParamScheduler",
    "MomentumSchedulerMixin",
    "MultiStepLR",
    "MultiStepMomentum",
    "MultiStepParamScheduler",
    "OneCycleLR",
    "OneCycleParamScheduler",
    "OptimWrapper",
    "OptimWrapperDict",
    "OptimizerLike",
    "ParamScheduler",
    "PolyLR",
    "PolyMomentum",
    "PolyParamScheduler",
    "ReduceOnPlateauLR",
    "ReduceOnPlateauMomentum",
    "ReduceOnPlateauParamScheduler",
    "StepLR",
    "StepMomentum",
    "StepParamScheduler",
    "_ParamScheduler",
    "build_optim_wrapper",
]

_LAZY: dict[str, str] = {
    **dict.fromkeys(
        ("OPTIMIZERS", "OPTIM_WRAPPERS", "OPTIM_WRAPPER_CONSTRUCTORS"), "treadle.core.registry"
    ),
    **dict.fromkeys(_optimizer.__all__, _optimizer.__name__),
    **dict.fromkeys(_scheduler.__all__, _scheduler.__name__),
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)

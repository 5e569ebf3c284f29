"""Parameter schedulers (learning rate, momentum, any optimizer hyper-parameter).

MMEngine 0.10.7's schedulers with the same names, arguments and state dicts. Names are imported
on first access (PEP 562), so reading :mod:`.components` at plugin discovery imports nothing
else; none of these modules imports torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from treadle.core.utils.lazy import lazy_exports

if TYPE_CHECKING:
    from treadle.core.optim.scheduler.lr_scheduler import (
        ConstantLR,
        CosineAnnealingLR,
        CosineRestartLR,
        ExponentialLR,
        LinearLR,
        LRSchedulerMixin,
        MultiStepLR,
        OneCycleLR,
        PolyLR,
        ReduceOnPlateauLR,
        StepLR,
    )
    from treadle.core.optim.scheduler.momentum_scheduler import (
        ConstantMomentum,
        CosineAnnealingMomentum,
        CosineRestartMomentum,
        ExponentialMomentum,
        LinearMomentum,
        MomentumSchedulerMixin,
        MultiStepMomentum,
        PolyMomentum,
        ReduceOnPlateauMomentum,
        StepMomentum,
    )
    from treadle.core.optim.scheduler.param_scheduler import (
        INF,
        ConstantParamScheduler,
        CosineAnnealingParamScheduler,
        CosineRestartParamScheduler,
        ExponentialParamScheduler,
        LinearParamScheduler,
        MultiStepParamScheduler,
        OneCycleParamScheduler,
        OptimizerLike,
        ParamScheduler,
        PolyParamScheduler,
        ReduceOnPlateauParamScheduler,
        StepParamScheduler,
        _ParamScheduler,
    )

__all__ = [
    "INF",
    "ConstantLR",
    "ConstantMomentum",
    "ConstantParamScheduler",
    "CosineAnnealingLR",
    "CosineAnnealingMomentum",
    "CosineAnnealingParamScheduler",
    "CosineRestartLR",
    "CosineRestartMomentum",
    "CosineRestartParamScheduler",
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
]

_WHERE: dict[str, str] = {
    **dict.fromkeys(
        (
            "ConstantLR",
            "CosineAnnealingLR",
            "CosineRestartLR",
            "ExponentialLR",
            "LRSchedulerMixin",
            "LinearLR",
            "MultiStepLR",
            "OneCycleLR",
            "PolyLR",
            "ReduceOnPlateauLR",
            "StepLR",
        ),
        "lr_scheduler",
    ),
    **dict.fromkeys(
        (
            "ConstantMomentum",
            "CosineAnnealingMomentum",
            "CosineRestartMomentum",
            "ExponentialMomentum",
            "LinearMomentum",
            "MomentumSchedulerMixin",
            "MultiStepMomentum",
            "PolyMomentum",
            "ReduceOnPlateauMomentum",
            "StepMomentum",
        ),
        "momentum_scheduler",
    ),
    **dict.fromkeys(
        (
            "ConstantParamScheduler",
            "CosineAnnealingParamScheduler",
            "CosineRestartParamScheduler",
            "ExponentialParamScheduler",
            "INF",
            "LinearParamScheduler",
            "MultiStepParamScheduler",
            "OneCycleParamScheduler",
            "OptimizerLike",
            "ParamScheduler",
            "PolyParamScheduler",
            "ReduceOnPlateauParamScheduler",
            "StepParamScheduler",
            "_ParamScheduler",
        ),
        "param_scheduler",
    ),
}

__getattr__, __dir__ = lazy_exports(__name__, _WHERE)

"""The parameter schedulers by import path, for lazy registration in PARAM_SCHEDULERS.

No imports: treadle-core's built-in plugin reads this table at discovery time and registers
each entry with ``register_lazy``, so nothing is imported until a config builds a scheduler.
"""

_PARAM = "treadle.core.optim.scheduler.param_scheduler"
_LR = "treadle.core.optim.scheduler.lr_scheduler"
_MOMENTUM = "treadle.core.optim.scheduler.momentum_scheduler"

COMPONENTS: dict[str, dict[str, str]] = {
    "PARAM_SCHEDULERS": {
        # Generic schedulers (any hyper-parameter, chosen by ``param_name``).
        **{
            name: f"{_PARAM}:{name}"
            for name in (
                "StepParamScheduler",
                "MultiStepParamScheduler",
                "ConstantParamScheduler",
                "ExponentialParamScheduler",
                "CosineAnnealingParamScheduler",
                "LinearParamScheduler",
                "PolyParamScheduler",
                "OneCycleParamScheduler",
                "CosineRestartParamScheduler",
                "ReduceOnPlateauParamScheduler",
            )
        },
        # Learning rate.
        **{
            name: f"{_LR}:{name}"
            for name in (
                "StepLR",
                "MultiStepLR",
                "ConstantLR",
                "ExponentialLR",
                "CosineAnnealingLR",
                "LinearLR",
                "PolyLR",
                "OneCycleLR",
                "CosineRestartLR",
                "ReduceOnPlateauLR",
            )
        },
        # Momentum (``betas[0]`` for Adam-style optimizers). MMEngine has no OneCycleMomentum.
        **{
            name: f"{_MOMENTUM}:{name}"
            for name in (
                "StepMomentum",
                "MultiStepMomentum",
                "ConstantMomentum",
                "ExponentialMomentum",
                "CosineAnnealingMomentum",
                "LinearMomentum",
                "PolyMomentum",
                "CosineRestartMomentum",
                "ReduceOnPlateauMomentum",
            )
        },
    }
}

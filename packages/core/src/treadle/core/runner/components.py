"""The Runner's registrable components, by import path (registered by the built-in plugin)."""

COMPONENTS: dict[str, dict[str, str]] = {
    "RUNNERS": {"Runner": "treadle.core.runner.runner:Runner"},
    "LOOPS": {
        "EpochBasedTrainLoop": "treadle.core.runner.loops:EpochBasedTrainLoop",
        "IterBasedTrainLoop": "treadle.core.runner.loops:IterBasedTrainLoop",
        "ValLoop": "treadle.core.runner.loops:ValLoop",
        "TestLoop": "treadle.core.runner.loops:TestLoop",
    },
    "STRATEGIES": {
        "SingleDeviceStrategy": "treadle.core.strategy.single_device:SingleDeviceStrategy",
    },
}

"""The root registries, REGISTRIES, the specialised build functions and the import budget."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest

import treadle.core.registry as registry_pkg
from treadle.core.registry import (
    FILE_BACKENDS,
    MODELS,
    PARAM_SCHEDULERS,
    REGISTRIES,
    ROOT_SCOPE,
    RUNNERS,
    Registries,
    Registry,
    build_from_cfg,
    build_model_from_cfg,
    build_runner_from_cfg,
    build_scheduler_from_cfg,
)

# MMEngine 0.10.7's root registries (mmengine/registry/root.py) and their names, plus ours.
ROOT_NAMES = {
    "RUNNERS": "runner",
    "RUNNER_CONSTRUCTORS": "runner constructor",
    "LOOPS": "loop",
    "HOOKS": "hook",
    "STRATEGIES": "strategy",
    "DATASETS": "dataset",
    "DATA_SAMPLERS": "data sampler",
    "TRANSFORMS": "transform",
    "MODELS": "model",
    "MODEL_WRAPPERS": "model_wrapper",
    "WEIGHT_INITIALIZERS": "weight initializer",
    "OPTIMIZERS": "optimizer",
    "OPTIM_WRAPPERS": "optim_wrapper",
    "OPTIM_WRAPPER_CONSTRUCTORS": "optimizer wrapper constructor",
    "PARAM_SCHEDULERS": "parameter scheduler",
    "METRICS": "metric",
    "EVALUATOR": "evaluator",
    "TASK_UTILS": "task util",
    "VISUALIZERS": "visualizer",
    "VISBACKENDS": "vis_backend",
    "LOG_PROCESSORS": "log_processor",
    "INFERENCERS": "inferencer",
    "FUNCTIONS": "function",
    "FILE_BACKENDS": "file backend",
}


def test_root_registries_match_mmengine():
    for attr, name in ROOT_NAMES.items():
        registry = getattr(registry_pkg, attr)
        assert isinstance(registry, Registry), attr
        assert registry.name == name
        assert registry.scope == ROOT_SCOPE == "treadle"
        assert registry.parent is None
        assert attr in registry_pkg.__all__
    assert MODELS.build_func is build_model_from_cfg
    assert RUNNERS.build_func is build_runner_from_cfg
    assert PARAM_SCHEDULERS.build_func is build_scheduler_from_cfg
    assert registry_pkg.OPTIMIZERS.build_func is build_from_cfg


def test_registries_object():
    assert isinstance(REGISTRIES, Registries)
    assert len(REGISTRIES) == len(ROOT_NAMES)
    assert REGISTRIES.MODELS is MODELS
    assert REGISTRIES.FILE_BACKENDS is FILE_BACKENDS
    assert REGISTRIES["MODELS"] is MODELS
    assert REGISTRIES["model"] is MODELS
    assert REGISTRIES["file backend"] is FILE_BACKENDS
    assert "vis_backend" in REGISTRIES
    assert "VISBACKENDS" in REGISTRIES
    assert "nope" not in REGISTRIES
    assert list(REGISTRIES) == [(attr, getattr(registry_pkg, attr)) for attr in ROOT_NAMES]
    with pytest.raises(KeyError, match="no root registry called 'nope'; known: RUNNERS"):
        REGISTRIES["nope"]


def test_first_lookup_loads_the_plugins_without_importing_targets():
    code = (
        "import sys\n"
        "from treadle.core.registry import FILE_BACKENDS\n"
        "assert 'local' not in FILE_BACKENDS.keys(), 'plugins loaded at import'\n"
        "assert 'local' in FILE_BACKENDS\n"
        "assert FILE_BACKENDS.is_lazy('local')\n"
        "assert 'treadle.core.fileio.backends.local' not in sys.modules\n"
        "assert FILE_BACKENDS.get('local').__name__ == 'LocalBackend'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, result.stderr


def test_import_does_not_import_torch():
    code = (
        "import sys, treadle.core.registry as r\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "r.Registry('x', scope='y').get('Nope')\n"
        "assert 'torch' not in sys.modules, 'torch imported by a lookup'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, result.stderr


# ---------------------------------------------------------------------------------------------
# Build functions
# ---------------------------------------------------------------------------------------------


def test_build_model_from_cfg_builds_sequential_from_a_list():
    with warnings.catch_warnings():
        # Without numpy installed, importing torch warns "Failed to initialize NumPy".
        warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
        import torch

    models = Registry("model", build_func=build_model_from_cfg, scope="t_root_models")
    models.register_module(name="Linear", module=torch.nn.Linear)
    models.register_module(name="ReLU", module=torch.nn.ReLU)

    single = models.build({"type": "Linear", "in_features": 2, "out_features": 3})
    assert isinstance(single, torch.nn.Linear)
    seq = models.build(
        [{"type": "Linear", "in_features": 2}, {"type": "Linear", "in_features": 4}],
        default_args={"out_features": 4},
    )
    assert isinstance(seq, torch.nn.Sequential)
    assert [(m.in_features, m.out_features) for m in seq] == [(2, 4), (4, 4)]
    assert isinstance(models.build([{"type": "ReLU"}])[0], torch.nn.ReLU)


def test_build_runner_from_cfg():
    runners = Registry("runner", build_func=build_runner_from_cfg, scope="t_root_runner")

    @runners.register_module()
    class Runner:
        def __init__(self, cfg: dict) -> None:
            self.cfg = cfg

        @classmethod
        def from_cfg(cls, cfg: dict) -> Runner:
            return cls(cfg)

    @runners.register_module()
    class CustomRunner(Runner):
        pass

    default = runners.build({"work_dir": "w"})
    assert type(default) is Runner
    assert default.cfg == {"work_dir": "w"}
    custom = runners.build({"runner_type": "CustomRunner", "work_dir": "w"})
    assert type(custom) is CustomRunner
    assert custom.cfg == {"runner_type": "CustomRunner", "work_dir": "w"}
    assert type(runners.build({"runner_type": CustomRunner})) is CustomRunner
    with pytest.raises(KeyError, match="Nope is not in the t_root_runner::runner registry"):
        runners.build({"runner_type": "Nope"})


def test_build_scheduler_from_cfg():
    schedulers = Registry(
        "parameter scheduler", build_func=build_scheduler_from_cfg, scope="t_root_sched"
    )

    @schedulers.register_module()
    class StepLR:
        def __init__(self, optimizer: str, step: int = 1, by_epoch: bool = True) -> None:
            self.optimizer = optimizer
            self.step = step
            self.how = "init"

        @classmethod
        def build_iter_from_epoch(cls, *, epoch_length: int, step: int = 1, **kwargs):
            obj = cls(step=step * epoch_length, **kwargs)
            obj.how = "converted"
            return obj

    plain = schedulers.build({"type": "StepLR", "step": 2}, default_args={"optimizer": "sgd"})
    assert (plain.how, plain.step, plain.optimizer) == ("init", 2, "sgd")
    # epoch_length is dropped when not converting.
    plain = schedulers.build(
        {"type": "StepLR"}, default_args={"optimizer": "sgd", "epoch_length": 10}
    )
    assert plain.how == "init"
    converted = schedulers.build(
        {"type": "StepLR", "step": 2, "convert_to_iter_based": True},
        default_args={"optimizer": "sgd", "epoch_length": 10},
    )
    assert (converted.how, converted.step) == ("converted", 20)
    with pytest.raises(ValueError, match="epoch_length"):
        schedulers.build(
            {"type": "StepLR", "convert_to_iter_based": True}, default_args={"optimizer": "sgd"}
        )
    with pytest.raises(ValueError, match="Only epoch-based"):
        schedulers.build(
            {"type": "StepLR", "convert_to_iter_based": True, "by_epoch": False},
            default_args={"optimizer": "sgd", "epoch_length": 10},
        )

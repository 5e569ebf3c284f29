"""treadle's root registries: MMEngine's list plus FILE_BACKENDS.

Their scope is ``"treadle"`` (``"mmengine"`` is accepted as another name for it), so that
OpenMMLab packages can hang their own registries below them with ``parent=MODELS`` and find our
components. Plugins add their components here through the ``register_components(registries)``
hook, which receives :data:`REGISTRIES`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from treadle.core.registry.build_functions import (
    build_model_from_cfg,
    build_runner_from_cfg,
    build_scheduler_from_cfg,
)
from treadle.core.registry.registry import ROOT_SCOPE, Registry

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "DATASETS",
    "DATA_SAMPLERS",
    "EVALUATOR",
    "FILE_BACKENDS",
    "FUNCTIONS",
    "HOOKS",
    "INFERENCERS",
    "LOG_PROCESSORS",
    "LOOPS",
    "METRICS",
    "MODELS",
    "MODEL_WRAPPERS",
    "OPTIMIZERS",
    "OPTIM_WRAPPERS",
    "OPTIM_WRAPPER_CONSTRUCTORS",
    "PARAM_SCHEDULERS",
    "REGISTRIES",
    "RUNNERS",
    "RUNNER_CONSTRUCTORS",
    "STRATEGIES",
    "TASK_UTILS",
    "TRANSFORMS",
    "VISBACKENDS",
    "VISUALIZERS",
    "WEIGHT_INITIALIZERS",
    "Registries",
]

#: Runners (``Runner`` and subclasses); built with ``runner_type`` and ``Runner.from_cfg``.
RUNNERS = Registry("runner", build_func=build_runner_from_cfg, scope=ROOT_SCOPE)
#: Runner constructors: how a runner is initialised.
RUNNER_CONSTRUCTORS = Registry("runner constructor", scope=ROOT_SCOPE)
#: Loops (``EpochBasedTrainLoop``, ``ValLoop``, …).
LOOPS = Registry("loop", scope=ROOT_SCOPE)
#: Hooks (``CheckpointHook``, …).
HOOKS = Registry("hook", scope=ROOT_SCOPE)
#: Strategies: how a model meets the hardware (single device, DDP, FSDP).
STRATEGIES = Registry("strategy", scope=ROOT_SCOPE)

#: Datasets.
DATASETS = Registry("dataset", scope=ROOT_SCOPE)
#: Data samplers.
DATA_SAMPLERS = Registry("data sampler", scope=ROOT_SCOPE)
#: Data transforms.
TRANSFORMS = Registry("transform", scope=ROOT_SCOPE)

#: Models (``nn.Module``); a list of configs builds an ``nn.Sequential``.
MODELS = Registry("model", build_func=build_model_from_cfg, scope=ROOT_SCOPE)
#: Model wrappers (``MMDistributedDataParallel``, …).
MODEL_WRAPPERS = Registry("model_wrapper", scope=ROOT_SCOPE)
#: Weight initialisers (``Uniform``, …).
WEIGHT_INITIALIZERS = Registry("weight initializer", scope=ROOT_SCOPE)

#: Optimizers (``SGD``, ``AdamW``, …).
OPTIMIZERS = Registry("optimizer", scope=ROOT_SCOPE)
#: Optimizer wrappers.
OPTIM_WRAPPERS = Registry("optim_wrapper", scope=ROOT_SCOPE)
#: Optimizer wrapper constructors (per-parameter options).
OPTIM_WRAPPER_CONSTRUCTORS = Registry("optimizer wrapper constructor", scope=ROOT_SCOPE)
#: Parameter schedulers; ``convert_to_iter_based`` builds with ``build_iter_from_epoch``.
PARAM_SCHEDULERS = Registry(
    "parameter scheduler", build_func=build_scheduler_from_cfg, scope=ROOT_SCOPE
)

#: Metrics.
METRICS = Registry("metric", scope=ROOT_SCOPE)
#: Evaluators.
EVALUATOR = Registry("evaluator", scope=ROOT_SCOPE)

#: Task-specific utilities (anchor generators, box coders, …).
TASK_UTILS = Registry("task util", scope=ROOT_SCOPE)

#: Visualizers.
VISUALIZERS = Registry("visualizer", scope=ROOT_SCOPE)
#: Visualization backends (local, wandb, tensorboard, neptune, …).
VISBACKENDS = Registry("vis_backend", scope=ROOT_SCOPE)

#: Log processors.
LOG_PROCESSORS = Registry("log_processor", scope=ROOT_SCOPE)

#: Inferencers.
INFERENCERS = Registry("inferencer", scope=ROOT_SCOPE)

#: Functions (collate functions, …).
FUNCTIONS = Registry("function", scope=ROOT_SCOPE)

#: File storage backends, by URI scheme (``local``, ``s3``, …). New in treadle.
FILE_BACKENDS = Registry("file backend", scope=ROOT_SCOPE)


class Registries:
    """All root registries in one object, as plugins receive them.

    Attributes are the module-level names (``registries.MODELS``). ``registries["MODELS"]`` and
    ``registries["model"]`` (the registry's name) both work; iterating yields
    ``(attribute name, registry)`` pairs (``("MODELS", MODELS)``) in MMEngine's order,
    FILE_BACKENDS last.
    """

    RUNNERS: Registry = RUNNERS
    RUNNER_CONSTRUCTORS: Registry = RUNNER_CONSTRUCTORS
    LOOPS: Registry = LOOPS
    HOOKS: Registry = HOOKS
    STRATEGIES: Registry = STRATEGIES
    DATASETS: Registry = DATASETS
    DATA_SAMPLERS: Registry = DATA_SAMPLERS
    TRANSFORMS: Registry = TRANSFORMS
    MODELS: Registry = MODELS
    MODEL_WRAPPERS: Registry = MODEL_WRAPPERS
    WEIGHT_INITIALIZERS: Registry = WEIGHT_INITIALIZERS
    OPTIMIZERS: Registry = OPTIMIZERS
    OPTIM_WRAPPERS: Registry = OPTIM_WRAPPERS
    OPTIM_WRAPPER_CONSTRUCTORS: Registry = OPTIM_WRAPPER_CONSTRUCTORS
    PARAM_SCHEDULERS: Registry = PARAM_SCHEDULERS
    METRICS: Registry = METRICS
    EVALUATOR: Registry = EVALUATOR
    TASK_UTILS: Registry = TASK_UTILS
    VISUALIZERS: Registry = VISUALIZERS
    VISBACKENDS: Registry = VISBACKENDS
    LOG_PROCESSORS: Registry = LOG_PROCESSORS
    INFERENCERS: Registry = INFERENCERS
    FUNCTIONS: Registry = FUNCTIONS
    FILE_BACKENDS: Registry = FILE_BACKENDS

    def __init__(self) -> None:
        self._by_attr: dict[str, Registry] = {
            attr: value for attr, value in vars(Registries).items() if isinstance(value, Registry)
        }
        self._by_name: dict[str, Registry] = {reg.name: reg for reg in self._by_attr.values()}

    def __getitem__(self, name: str) -> Registry:
        """The root registry called ``name`` (``"MODELS"`` or ``"model"``).

        Raises:
            KeyError: For an unknown name; the message lists the known ones.
        """
        registry = self._by_attr.get(name)
        if registry is None:  # (an empty Registry is falsy: no `or` here)
            registry = self._by_name.get(name)
        if registry is None:
            raise KeyError(f"no root registry called {name!r}; known: {', '.join(self._by_attr)}")
        return registry

    def __contains__(self, name: object) -> bool:
        return name in self._by_attr or name in self._by_name

    def __iter__(self) -> Iterator[tuple[str, Registry]]:
        return iter(self._by_attr.items())

    def __len__(self) -> int:
        return len(self._by_attr)

    def __repr__(self) -> str:
        return f"Registries({', '.join(self._by_attr)})"


#: The single :class:`Registries` instance.
REGISTRIES = Registries()

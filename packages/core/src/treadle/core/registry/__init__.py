"""Registries: names mapped to classes and functions, built from config dicts.

MMEngine's registry semantics (scopes, parent/child trees, ``scope.Name`` keys, ``_scope_`` and
the default scope, ``register_module`` and ``build``) plus lazy registration by import path and
errors that say where they looked. See :mod:`treadle.core.registry.registry`.
"""

from treadle.core.registry.build_functions import (
    build_from_cfg,
    build_model_from_cfg,
    build_runner_from_cfg,
    build_scheduler_from_cfg,
)
from treadle.core.registry.default_scope import DefaultScope, init_default_scope
from treadle.core.registry.registry import ROOT_SCOPE, SCOPE_ALIASES, Registry, RegistryKeyError
from treadle.core.registry.root import (
    DATA_SAMPLERS,
    DATASETS,
    EVALUATOR,
    FILE_BACKENDS,
    FUNCTIONS,
    HOOKS,
    INFERENCERS,
    LOG_PROCESSORS,
    LOOPS,
    METRICS,
    MODEL_WRAPPERS,
    MODELS,
    OPTIM_WRAPPER_CONSTRUCTORS,
    OPTIM_WRAPPERS,
    OPTIMIZERS,
    PARAM_SCHEDULERS,
    REGISTRIES,
    RUNNER_CONSTRUCTORS,
    RUNNERS,
    STRATEGIES,
    TASK_UTILS,
    TRANSFORMS,
    VISBACKENDS,
    VISUALIZERS,
    WEIGHT_INITIALIZERS,
    Registries,
)

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
    "ROOT_SCOPE",
    "RUNNERS",
    "RUNNER_CONSTRUCTORS",
    "SCOPE_ALIASES",
    "STRATEGIES",
    "TASK_UTILS",
    "TRANSFORMS",
    "VISBACKENDS",
    "VISUALIZERS",
    "WEIGHT_INITIALIZERS",
    "DefaultScope",
    "Registries",
    "Registry",
    "RegistryKeyError",
    "build_from_cfg",
    "build_model_from_cfg",
    "build_runner_from_cfg",
    "build_scheduler_from_cfg",
    "init_default_scope",
]

"""treadle-core's own plugin: the built-in components, registered through the same hooks as any
third-party plugin (see :mod:`treadle.core.hookspecs`).

Each area of core lists its components in a ``components.py`` that imports nothing, so loading
this plugin imports no torch: a component's module is imported when a config first asks for it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from treadle.core.hookspecs import hookimpl

if TYPE_CHECKING:
    from treadle.core.registry import Registries

#: The modules whose ``COMPONENTS`` tables core registers, in this order.
COMPONENT_TABLES = (
    "treadle.core.runner.components",
    "treadle.core.hooks.components",
    "treadle.core.model.components",
    "treadle.core.optim.optimizer.components",
    "treadle.core.optim.scheduler.components",
    "treadle.core.dataset.components",
    "treadle.core.evaluator.components",
    "treadle.core.logging.components",
    "treadle.core.visualization.components",
)


@hookimpl
def register_components(registries: Registries) -> None:
    """Register core's file backend and every component table, lazily by import path."""
    registries.FILE_BACKENDS.register_lazy(
        "local", "treadle.core.fileio.backends.local:LocalBackend"
    )
    for module_name in COMPONENT_TABLES:
        table: dict[str, dict[str, str]] = importlib.import_module(module_name).COMPONENTS
        for registry_name, entries in table.items():
            registry = registries[registry_name]
            for name, target in entries.items():
                registry.register_lazy(name, target)

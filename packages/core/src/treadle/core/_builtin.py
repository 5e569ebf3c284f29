"""treadle-core's own plugin: the built-in components, registered through the same hooks as any
third-party plugin (see :mod:`treadle.core.hookspecs`).

Everything is registered by import path, so loading this plugin imports nothing heavy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from treadle.core.hookspecs import hookimpl

if TYPE_CHECKING:
    from treadle.core.registry import Registries


@hookimpl
def register_components(registries: Registries) -> None:
    """Register core's file backends (more components arrive with the Runner)."""
    registries.FILE_BACKENDS.register_lazy(
        "local", "treadle.core.fileio.backends.local:LocalBackend"
    )

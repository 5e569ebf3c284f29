"""Lazy re-exports for package ``__init__`` modules (PEP 562).

A package lists where each public name lives; the module holding it is imported on first
access. So importing the package, or a light submodule such as its ``components.py`` table that
plugin discovery reads, imports nothing heavy (no torch)::

    __getattr__, __dir__ = lazy_exports(__name__, {"Evaluator": "evaluator", ...})
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, where: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Return a module ``__getattr__`` and ``__dir__`` that import names on first access.

    Args:
        package: The package's ``__name__``.
        where: Public name → the module that defines it: a submodule name relative to
            ``package`` (``"evaluator"``), or an absolute module path under the same top-level
            package (``"treadle.core.registry"``), for names re-exported from elsewhere.

    Returns:
        ``(__getattr__, __dir__)`` to assign at module level. A fetched name is cached in the
        package's namespace, so later accesses cost nothing.
    """

    absolute = package.split(".")[0] + "."

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        path = module if module.startswith(absolute) else f"{package}.{module}"
        value = getattr(importlib.import_module(path), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *where})

    return __getattr__, __dir__

"""Importing modules named in configs and locating installed packages.

``import_modules_from_strings`` is what a config's ``custom_imports`` calls (MMEngine's
function of the same name); ``get_installed_path`` finds the folder of an installed package
without importing it, which is how ``pkg::path`` config bases are resolved.
"""

from __future__ import annotations

import importlib
import importlib.util
import os.path as osp
import warnings
from typing import TYPE_CHECKING, overload

if TYPE_CHECKING:
    from types import ModuleType


@overload
def import_modules_from_strings(
    imports: str, allow_failed_imports: bool = False
) -> ModuleType | None: ...


@overload
def import_modules_from_strings(
    imports: list[str], allow_failed_imports: bool = False
) -> list[ModuleType | None]: ...


@overload
def import_modules_from_strings(imports: None, allow_failed_imports: bool = False) -> None: ...


def import_modules_from_strings(
    imports: str | list[str] | None, allow_failed_imports: bool = False
) -> ModuleType | list[ModuleType | None] | None:
    """Import modules given by dotted names.

    Args:
        imports: One module name or a list of them. ``None`` or an empty value imports nothing.
        allow_failed_imports: If True, a module that fails to import is reported with a
            ``UserWarning`` and returned as ``None``; otherwise the ``ImportError`` is raised.

    Returns:
        The imported module for a single name, a list of modules (``None`` for failures when
        allowed) for a list, or ``None`` when nothing was asked for.

    Raises:
        TypeError: ``imports`` is neither a string nor a list of strings.
        ImportError: A module failed to import and ``allow_failed_imports`` is False; the
            original error is chained.

    Examples:
        >>> osp, sys = import_modules_from_strings(["os.path", "sys"])
    """
    if not imports:
        return None
    single = isinstance(imports, str)
    names: list[str] = [imports] if isinstance(imports, str) else imports
    if not isinstance(names, list):
        raise TypeError(f"custom_imports must be a list but got type {type(names)}")
    imported: list[ModuleType | None] = []
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"{name} is of type {type(name)} and cannot be imported.")
        try:
            module: ModuleType | None = importlib.import_module(name)
        except ImportError as exc:
            if not allow_failed_imports:
                raise ImportError(f"Failed to import {name}: {exc}") from exc
            warnings.warn(f"{name} failed to import and is ignored.", UserWarning, stacklevel=2)
            module = None
        imported.append(module)
    return imported[0] if single else imported


def get_installed_path(package: str) -> str:
    """Return the folder of an installed (or importable) package, without importing it.

    ``package`` may be an import name (``mmdet``) or a distribution name whose top-level
    module differs (``mmsegmentation`` → ``mmseg``).

    Args:
        package: Import name or distribution name.

    Returns:
        Absolute path of the package's folder.

    Raises:
        ModuleNotFoundError: Neither an importable module nor an installed distribution has
            that name.
        RuntimeError: The name is a namespace package, which has no single folder.
    """
    spec = importlib.util.find_spec(package) if "." not in package else None
    if spec is None:
        module = _module_of_distribution(package)
        if module is not None:
            spec = importlib.util.find_spec(module)
    if spec is None:
        raise ModuleNotFoundError(
            f"{package} is not installed, please install {package} manually", name=package
        )
    if spec.origin is None or spec.origin == "namespace":
        raise RuntimeError(
            f"{package} is a namespace package, which is invalid for get_installed_path"
        )
    return osp.dirname(osp.abspath(spec.origin))


def _module_of_distribution(distribution: str) -> str | None:
    """Return the first top-level module of an installed distribution, or None."""
    from importlib import metadata

    try:
        dist = metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        return None
    top_level = (dist.read_text("top_level.txt") or "").split()
    public = [name for name in top_level if not name.startswith("_")]
    if public or top_level:
        return (public or top_level)[0]
    for file in dist.files or ():
        parts = file.parts
        if len(parts) == 2 and parts[1] == "__init__.py":
            return parts[0]
    return None

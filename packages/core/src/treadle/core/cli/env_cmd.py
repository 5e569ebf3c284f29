"""``treadle env``: versions of Python, torch, treadle and its plugins, for bug reports."""

from __future__ import annotations

import platform
import sys
from importlib import metadata
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse


def add_parsers(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> dict[str, argparse.ArgumentParser]:
    """Add the ``env`` command; return its parser by command name."""
    parser = subparsers.add_parser("env", help="print versions of Python, torch and treadle")
    parser.set_defaults(func=_run)
    return {"env": parser}


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def collect_env() -> dict[str, str]:
    """Return the environment facts ``treadle env`` prints, in order."""
    info: dict[str, str] = {
        "sys.platform": sys.platform,
        "Python": sys.version.replace("\n", " "),
        "platform": platform.platform(),
    }
    for dist in ("treadle-core", "torch", "pluggy", "pyyaml", "fsspec", "numpy"):
        info[dist] = _version(dist)
    try:
        import torch

        info["torch CUDA available"] = str(torch.cuda.is_available())
        if torch.cuda.is_available():
            info["torch CUDA"] = str(torch.version.cuda)
            info["GPU 0"] = torch.cuda.get_device_name(0)
        info["torch threads"] = str(torch.get_num_threads())
    except ImportError:
        pass
    from treadle.core.plugins import list_plugins

    for plugin in list_plugins():
        if plugin.distribution and plugin.distribution != "treadle-core":
            info[f"plugin {plugin.name}"] = (
                f"{plugin.distribution} {plugin.version} [{plugin.status}]"
            )
    return info


def _run(args: argparse.Namespace) -> int:
    for key, value in collect_env().items():
        print(f"{key}: {value}")
    return 0

"""Loading weights into a module the MMEngine way, for :class:`~treadle.core.model.PretrainedInit`.

MMEngine's ``load_state_dict`` differs from :meth:`torch.nn.Module.load_state_dict` in one way
that matters for fine-tuning: with ``strict=False`` a tensor whose shape does not match (a new
classification head) is skipped and reported instead of raising. Files are read with
``torch.load(weights_only=True)`` through :func:`treadle.core.fileio.get_local_path`, so any
storage backend works and no pickled code runs.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, cast

import torch

from treadle.core.logging import get_rank, print_log
from treadle.core.model.utils import is_model_wrapper

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from torch import nn

#: Model-zoo schemes of MMEngine that need a network lookup table treadle does not ship.
_MODEL_ZOO_SCHEMES = ("torchvision://", "open-mmlab://", "openmmlab://", "mmcls://", "modelzoo://")


def load_state_dict(
    module: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    strict: bool = False,
    logger: logging.Logger | str | None = None,
) -> None:
    """Load ``state_dict`` into ``module``, reporting mismatches (MMEngine's ``load_state_dict``).

    Missing keys (except BatchNorm's ``num_batches_tracked``), unexpected keys and shape
    mismatches are collected; with ``strict`` they raise, otherwise they are logged as one warning
    (on rank 0) and the matching tensors are loaded. Model wrappers (DDP, …) are looked through.

    Args:
        module: The module to load into.
        state_dict: Names to tensors.
        strict: Raise on any mismatch instead of warning.
        logger: Where the warning goes (see :func:`~treadle.core.logging.print_log`).

    Raises:
        RuntimeError: ``strict`` and the keys or shapes do not match.
    """
    missing: list[str] = []
    unexpected: list[str] = []
    errors: list[str] = []
    metadata = getattr(state_dict, "_metadata", None)

    def load(mod: nn.Module, local: dict[str, torch.Tensor], prefix: str) -> None:
        if is_model_wrapper(mod):
            mod = cast("nn.Module", mod.module)
        local_metadata = {} if metadata is None else metadata.get(prefix[:-1], {})
        mod._load_from_state_dict(local, prefix, local_metadata, True, missing, unexpected, errors)
        for name, child in mod._modules.items():
            if child is not None:
                child_prefix = f"{prefix}{name}."
                load(
                    child,
                    {k: v for k, v in local.items() if k.startswith(child_prefix)},
                    child_prefix,
                )
        incompatible = torch.nn.modules.module._IncompatibleKeys(missing, unexpected)
        for hook in mod._load_state_dict_post_hooks.values():
            if hook(mod, incompatible) is not None:
                raise RuntimeError(
                    "load_state_dict post hooks must change missing/unexpected keys in place and "
                    "return None"
                )

    load(module, dict(state_dict), "")
    missing = [key for key in missing if "num_batches_tracked" not in key]
    if unexpected:
        errors.append(f"unexpected key in source state_dict: {', '.join(unexpected)}\n")
    if missing:
        errors.append(f"missing keys in source state_dict: {', '.join(missing)}\n")
    if errors and get_rank() == 0:
        message = "\n".join(["The model and loaded state dict do not match exactly\n", *errors])
        if strict:
            raise RuntimeError(message)
        print_log(message, logger=logger, level=logging.WARNING)


def load_checkpoint_file(filename: str, map_location: Any = None) -> Any:
    """Read a checkpoint with ``torch.load(weights_only=True)`` from a path or URI.

    Raises:
        FileNotFoundError: A local file does not exist.
        ValueError: ``filename`` is a model-zoo URI (``torchvision://…``), which treadle does not
            resolve.
        RuntimeError: The file holds objects beyond tensors and plain containers.
    """
    from treadle.core.fileio import get_local_path

    name = os.fspath(filename)
    if name.startswith(_MODEL_ZOO_SCHEMES):
        raise ValueError(
            f"cannot load checkpoint {name!r}: model-zoo URIs "
            f"({', '.join(_MODEL_ZOO_SCHEMES)}) are not supported; download the file and give its "
            "path or URL"
        )
    if "://" not in name:
        name = os.path.expanduser(name)
        if not os.path.isfile(name):
            raise FileNotFoundError(f"checkpoint {name!r} can not be found")
    with get_local_path(name) as local_path:
        try:
            return torch.load(local_path, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as exc:
            raise RuntimeError(
                f"cannot load checkpoint {name!r} with torch.load(weights_only=True): it holds "
                "objects other than tensors and plain containers (see the chained error); save "
                "only the state dict, or convert the file"
            ) from exc


def _state_dict_of(checkpoint: Any, filename: str) -> Any:
    if not isinstance(checkpoint, dict):
        raise RuntimeError(f"No state_dict found in checkpoint file {filename}")
    return checkpoint.get("state_dict", checkpoint)


def load_checkpoint(
    model: nn.Module,
    filename: str,
    map_location: Any = None,
    strict: bool = False,
    logger: logging.Logger | str | None = None,
    revise_keys: Sequence[tuple[str, str]] = ((r"^module\.", ""),),
) -> Any:
    """Load a checkpoint file into ``model`` (MMEngine's ``load_checkpoint`` for files and URIs).

    The weights are ``checkpoint["state_dict"]`` when the file holds a dict with that key,
    otherwise the whole dict. Each ``(pattern, replacement)`` of ``revise_keys`` is applied to the
    keys with :func:`re.sub` (by default a leading ``module.`` is stripped).

    Returns:
        The loaded checkpoint.
    """
    checkpoint = load_checkpoint_file(filename, map_location)
    state_dict = _state_dict_of(checkpoint, filename)
    metadata = getattr(state_dict, "_metadata", OrderedDict())
    for pattern, replacement in revise_keys:
        state_dict = OrderedDict(
            (re.sub(pattern, replacement, k), v) for k, v in state_dict.items()
        )
    state_dict._metadata = metadata
    load_state_dict(model, state_dict, strict, logger)
    return checkpoint


def load_checkpoint_with_prefix(
    prefix: str, filename: str, map_location: Any = None
) -> dict[str, torch.Tensor]:
    """The weights under ``prefix`` in a checkpoint file, with the prefix removed.

    Raises:
        ValueError: No key starts with ``prefix`` (``"."`` is appended when missing).
    """
    state_dict = _state_dict_of(load_checkpoint_file(filename, map_location), filename)
    if not prefix.endswith("."):
        prefix += "."
    selected = {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}
    if not selected:
        raise ValueError(f"no key of checkpoint {filename!r} starts with prefix {prefix!r}")
    return selected

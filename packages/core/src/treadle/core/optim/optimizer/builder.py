"""``build_optim_wrapper``: from a config to an optimizer wrapper, through the registries."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from treadle.core.registry import OPTIM_WRAPPER_CONSTRUCTORS

if TYPE_CHECKING:
    from torch import nn

    from treadle.core.optim.optimizer.optimizer_wrapper import OptimWrapper

__all__ = ["build_optim_wrapper"]


def build_optim_wrapper(model: nn.Module, cfg: dict[str, Any]) -> OptimWrapper:
    """Build the optimizer wrapper that ``cfg`` describes for ``model``.

    ``cfg`` is the ``optim_wrapper`` section of a config: the wrapper's ``type`` (default
    ``"OptimWrapper"``, from ``OPTIM_WRAPPERS``) and arguments, its ``optimizer`` (from
    ``OPTIMIZERS``: every ``torch.optim`` optimizer and those plugins add), and optionally
    ``constructor`` (default ``"DefaultOptimWrapperConstructor"``, from
    ``OPTIM_WRAPPER_CONSTRUCTORS``) and ``paramwise_cfg`` (given to the constructor).

    Args:
        model: The model to optimize.
        cfg: The config (a dict or ConfigDict; it is not modified).

    Returns:
        The optimizer wrapper.

    Example:
        >>> import torch
        >>> wrapper = build_optim_wrapper(
        ...     torch.nn.Linear(2, 2),
        ...     dict(optimizer=dict(type="AdamW", lr=1e-3), clip_grad=dict(max_norm=1.0)),
        ... )
        >>> type(wrapper).__name__, type(wrapper.optimizer).__name__
        ('OptimWrapper', 'AdamW')
    """
    optim_wrapper_cfg = copy.deepcopy(cfg)
    if not isinstance(optim_wrapper_cfg, dict):
        raise TypeError(f"optim_wrapper config should be a dict, but got {type(cfg).__name__}")
    constructor_type = optim_wrapper_cfg.pop("constructor", "DefaultOptimWrapperConstructor")
    paramwise_cfg = optim_wrapper_cfg.pop("paramwise_cfg", None)
    constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(
        {
            "type": constructor_type,
            "optim_wrapper_cfg": optim_wrapper_cfg,
            "paramwise_cfg": paramwise_cfg,
        }
    )
    optim_wrapper: OptimWrapper = constructor(model)
    return optim_wrapper

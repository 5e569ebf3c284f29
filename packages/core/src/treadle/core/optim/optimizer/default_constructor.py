"""Per-parameter optimizer options: :class:`DefaultOptimWrapperConstructor`."""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from treadle.core.logging import print_log
from treadle.core.registry import OPTIM_WRAPPERS, OPTIMIZERS
from treadle.core.registry.build_functions import _lookup

if TYPE_CHECKING:
    from torch import nn

    from treadle.core.optim.optimizer.optimizer_wrapper import OptimWrapper

__all__ = ["DefaultOptimWrapperConstructor"]

#: The ``paramwise_cfg`` options this constructor understands.
PARAMWISE_OPTIONS = (
    "custom_keys",
    "bias_lr_mult",
    "bias_decay_mult",
    "norm_decay_mult",
    "dwconv_decay_mult",
    "flat_decay_mult",
    "dcn_offset_lr_mult",
    "bypass_duplicate",
)

# mmcv's deformable convolutions, recognised by class name and module (mmcv is never imported).
_DCN_CLASS_NAMES = frozenset({"DeformConv2d", "ModulatedDeformConv2d"})


def _is_dcn(module: nn.Module) -> bool:
    """Whether ``module`` is one of mmcv's deformable convolutions (or a subclass)."""
    return any(
        cls.__name__ in _DCN_CLASS_NAMES and cls.__module__.split(".")[0] == "mmcv"
        for cls in type(module).__mro__
    )


@dataclass
class _Walk:
    """What one :meth:`DefaultOptimWrapperConstructor.add_params` walk has seen so far."""

    seen: set[int]
    #: ``custom_keys`` in match order: longest first, ties alphabetical.
    sorted_keys: list[str] = field(default_factory=list)
    frozen: list[str] = field(default_factory=list)
    matched_keys: set[str] = field(default_factory=set)


class DefaultOptimWrapperConstructor:
    """Builds an optimizer wrapper, with per-parameter learning rate and weight decay.

    Without ``paramwise_cfg`` every parameter shares the optimizer's settings. With it, each
    parameter gets its own group; the options (MMEngine's, with the same precedence) are:

    - ``custom_keys`` (dict): ``{key: dict(lr_mult=..., decay_mult=..., ...)}``. A parameter
      whose full name (``backbone.layer1.conv.weight``) contains ``key`` gets
      ``lr = base_lr * lr_mult`` and, when the optimizer has a ``weight_decay``,
      ``weight_decay = base_wd * decay_mult`` (both multipliers default to 1); every entry of the
      dict is also copied into the group. The longest matching key wins, ties go to the
      alphabetically first, and a matched parameter ignores the options below.
    - ``bias_lr_mult`` (float): multiplies the lr of biases (except those of normalization
      layers and of deformable convolutions' offset layers).
    - ``bias_decay_mult`` (float): multiplies the weight decay of biases (except those of
      normalization layers and deformable convolutions).
    - ``norm_decay_mult`` (float): multiplies the weight decay of normalization layers' weights
      and biases (BatchNorm, SyncBatchNorm, InstanceNorm, GroupNorm, LayerNorm).
    - ``dwconv_decay_mult`` (float): multiplies the weight decay of depthwise ``Conv2d`` layers
      (``in_channels == groups``).
    - ``flat_decay_mult`` (float): multiplies the weight decay of the other one-dimensional
      parameters.
    - ``dcn_offset_lr_mult`` (float): multiplies the lr of the offset layers (``conv_offset``) of
      mmcv's deformable convolutions; it replaces ``bias_lr_mult`` there.
    - ``bypass_duplicate`` (bool): skip parameters already added (shared between modules) instead
      of letting the optimizer reject them. Defaults to False.

    For weight decay the first that applies wins: norm, bias, depthwise conv, flat. Weight-decay
    options need ``weight_decay`` in the optimizer config; lr options need ``lr``. Parameters with
    ``requires_grad=False`` are left out when ``paramwise_cfg`` is given.

    Args:
        optim_wrapper_cfg: The wrapper config: ``optimizer`` (required, a config with ``type``)
            plus the wrapper's own arguments and optionally ``type`` (default
            ``"OptimWrapper"``).
        paramwise_cfg: The per-parameter options above.

    Raises:
        TypeError: A config is not a dict.
        ValueError: ``optimizer`` is missing, or an option needs an ``lr`` / ``weight_decay``
            that the optimizer config does not set.

    Example:
        >>> import torch
        >>> model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.LayerNorm(2))
        >>> constructor = DefaultOptimWrapperConstructor(
        ...     dict(optimizer=dict(type="SGD", lr=0.1, weight_decay=1e-4)),
        ...     paramwise_cfg=dict(norm_decay_mult=0.0, custom_keys={"0.": dict(lr_mult=0.5)}),
        ... )
        >>> [(g["lr"], g["weight_decay"]) for g in constructor(model).optimizer.param_groups]
        [(0.05, 0.0001), (0.05, 0.0001), (0.1, 0.0), (0.1, 0.0)]
    """

    def __init__(
        self, optim_wrapper_cfg: dict[str, Any], paramwise_cfg: dict[str, Any] | None = None
    ) -> None:
        if not isinstance(optim_wrapper_cfg, dict):
            raise TypeError(
                f"optim_wrapper_cfg should be a dict, but got {type(optim_wrapper_cfg).__name__}"
            )
        if "optimizer" not in optim_wrapper_cfg:
            raise ValueError(
                "optim_wrapper_cfg must contain an 'optimizer' config, e.g. "
                "optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)); got keys "
                f"{sorted(optim_wrapper_cfg)}"
            )
        self.optim_wrapper_cfg = optim_wrapper_cfg.copy()
        self.optimizer_cfg: dict[str, Any] = self.optim_wrapper_cfg.pop("optimizer")
        if not isinstance(self.optimizer_cfg, dict):
            raise TypeError(
                "optim_wrapper_cfg['optimizer'] should be a dict with a 'type', but got "
                f"{type(self.optimizer_cfg).__name__}"
            )
        self.paramwise_cfg: dict[str, Any] = {} if paramwise_cfg is None else paramwise_cfg
        self.base_lr: float | None = self.optimizer_cfg.get("lr", None)
        self.base_wd: float | None = self.optimizer_cfg.get("weight_decay", None)
        self._walk: _Walk | None = None
        self._validate_cfg()

    def _validate_cfg(self) -> None:
        """Check ``paramwise_cfg`` against the optimizer config."""
        if not isinstance(self.paramwise_cfg, dict):
            raise TypeError(
                f"paramwise_cfg should be None or a dict, but got {type(self.paramwise_cfg)}"
            )
        custom_keys = self.paramwise_cfg.get("custom_keys", {})
        if not isinstance(custom_keys, dict):
            raise TypeError(
                "paramwise_cfg.custom_keys must be a dict of {key: dict(lr_mult=..., "
                f"decay_mult=...)}}, but got {type(custom_keys).__name__}"
            )
        for key, options in custom_keys.items():
            if not isinstance(options, dict):
                raise TypeError(
                    f"paramwise_cfg.custom_keys[{key!r}] must be a dict (lr_mult, decay_mult, "
                    f"...), but got {type(options).__name__}"
                )
            if self.base_wd is None and "decay_mult" in options:
                raise ValueError(
                    f"paramwise_cfg.custom_keys[{key!r}] sets decay_mult, but the optimizer "
                    "config has no weight_decay (base_wd should not be None)"
                )
        if custom_keys and self.base_lr is None:
            raise ValueError(
                "paramwise_cfg.custom_keys needs the optimizer config to set lr (base_lr should "
                "not be None)"
            )
        for option in ("bias_lr_mult", "dcn_offset_lr_mult"):
            if option in self.paramwise_cfg and self.base_lr is None:
                raise ValueError(
                    f"paramwise_cfg.{option} needs the optimizer config to set lr (base_lr "
                    "should not be None)"
                )
        for option in ("bias_decay_mult", "norm_decay_mult", "dwconv_decay_mult"):
            if option in self.paramwise_cfg and self.base_wd is None:
                raise ValueError(
                    f"paramwise_cfg.{option} needs the optimizer config to set weight_decay "
                    "(base_wd should not be None)"
                )
        if type(self) is DefaultOptimWrapperConstructor:
            # Subclasses (layer-wise decay constructors, ...) read options of their own.
            unknown = sorted(set(self.paramwise_cfg) - set(PARAMWISE_OPTIONS))
            if unknown:
                print_log(
                    f"paramwise_cfg options {unknown} are not used by "
                    f"DefaultOptimWrapperConstructor (it knows {list(PARAMWISE_OPTIONS)})",
                    logger="current",
                    level=logging.WARNING,
                )

    def add_params(
        self,
        params: list[dict[str, Any]],
        module: nn.Module,
        prefix: str = "",
        is_dcn_module: bool | float | None = None,
    ) -> None:
        """Append one parameter group per parameter of ``module`` (recursively) to ``params``.

        Children are added through ``self.add_params``, so a subclass that overrides it sees
        every module, as in MMEngine.

        Args:
            params: The parameter groups, modified in place.
            module: The module whose parameters to add.
            prefix: The module's name in the model (``""`` for the model itself).
            is_dcn_module: Whether ``module`` is a child of a deformable convolution.
        """
        walk: _Walk | None = getattr(self, "_walk", None)
        owner = walk is None
        if walk is None:
            custom_keys = self.paramwise_cfg.get("custom_keys", {})
            walk = self._walk = _Walk(
                {id(p) for group in params for p in group["params"]},
                # Longest key first; among keys of equal length, alphabetical order.
                sorted_keys=sorted(sorted(custom_keys), key=len, reverse=True),
            )
        try:
            self._add_module_params(params, module, prefix, is_dcn_module, walk)
            child_is_dcn = _is_dcn(module)
            for child_name, child in module.named_children():
                child_prefix = f"{prefix}.{child_name}" if prefix else child_name
                self.add_params(params, child, prefix=child_prefix, is_dcn_module=child_is_dcn)
        finally:
            if owner:
                self._walk = None
        if owner:
            self._report(walk)

    def _add_module_params(
        self,
        params: list[dict[str, Any]],
        module: nn.Module,
        prefix: str,
        is_dcn_module: bool | float | None,
        walk: _Walk,
    ) -> None:
        """Add the parameters ``module`` holds itself (not its children's)."""
        from torch import nn
        from torch.nn.modules.batchnorm import _BatchNorm
        from torch.nn.modules.instancenorm import _InstanceNorm

        paramwise_cfg = self.paramwise_cfg
        custom_keys: dict[str, dict[str, Any]] = paramwise_cfg.get("custom_keys", {})
        sorted_keys = walk.sorted_keys
        bias_lr_mult = paramwise_cfg.get("bias_lr_mult", None)
        bias_decay_mult = paramwise_cfg.get("bias_decay_mult", None)
        norm_decay_mult = paramwise_cfg.get("norm_decay_mult", None)
        dwconv_decay_mult = paramwise_cfg.get("dwconv_decay_mult", None)
        flat_decay_mult = paramwise_cfg.get("flat_decay_mult", None)
        bypass_duplicate = paramwise_cfg.get("bypass_duplicate", False)
        dcn_offset_lr_mult = paramwise_cfg.get("dcn_offset_lr_mult", None)
        base_lr, base_wd = self.base_lr, self.base_wd

        is_norm = isinstance(module, (_BatchNorm, _InstanceNorm, nn.GroupNorm, nn.LayerNorm))
        is_dwconv = isinstance(module, nn.Conv2d) and module.in_channels == module.groups

        for name, param in module.named_parameters(recurse=False):
            full_name = f"{prefix}.{name}" if prefix else name
            if bypass_duplicate and id(param) in walk.seen:
                print_log(
                    f"{full_name} is a duplicate; it is skipped since bypass_duplicate=True",
                    logger="current",
                    level=logging.DEBUG,
                )
                continue
            if not param.requires_grad:
                walk.frozen.append(full_name)
                continue
            group: dict[str, Any] = {"params": [param]}
            # MMEngine matches keys against f"{prefix}.{name}", also at the top level (".name").
            match_name = f"{prefix}.{name}"
            key = next((k for k in sorted_keys if k in match_name), None)
            if key is not None:
                walk.matched_keys.add(key)
                assert base_lr is not None  # checked by _validate_cfg
                options = custom_keys[key]
                group["lr"] = base_lr * options.get("lr_mult", 1.0)
                if base_wd is not None:
                    group["weight_decay"] = base_wd * options.get("decay_mult", 1.0)
                group.update(options)
            else:
                if name == "bias" and not (is_norm or is_dcn_module) and bias_lr_mult is not None:
                    assert base_lr is not None
                    group["lr"] = base_lr * bias_lr_mult
                if (
                    "conv_offset" in prefix
                    and is_dcn_module
                    and dcn_offset_lr_mult is not None
                    and isinstance(module, nn.Conv2d)
                ):
                    assert base_lr is not None
                    group["lr"] = base_lr * dcn_offset_lr_mult
                if base_wd is not None:
                    if is_norm and norm_decay_mult is not None:
                        group["weight_decay"] = base_wd * norm_decay_mult
                    elif name == "bias" and not is_dcn_module and bias_decay_mult is not None:
                        group["weight_decay"] = base_wd * bias_decay_mult
                    elif is_dwconv and dwconv_decay_mult is not None:
                        group["weight_decay"] = base_wd * dwconv_decay_mult
                    elif param.ndim == 1 and not is_dcn_module and flat_decay_mult is not None:
                        group["weight_decay"] = base_wd * flat_decay_mult
            params.append(group)
            walk.seen.add(id(param))
            if len(group) > 1:
                settings = ", ".join(f"{k}={v}" for k, v in group.items() if k != "params")
                print_log(
                    f"paramwise_options -- {full_name}: {settings}",
                    logger="current",
                    level=logging.DEBUG,
                )

    def _report(self, walk: _Walk) -> None:
        """Log what a walk over the model left out."""
        frozen = walk.frozen
        if frozen:
            shown = ", ".join(frozen[:10])
            if len(frozen) > 10:
                shown += ", ..."
            print_log(
                f"{len(frozen)} parameters with requires_grad=False are not given to the "
                f"optimizer: {shown}",
                logger="current",
                level=logging.INFO,
            )
        unused = [
            key for key in self.paramwise_cfg.get("custom_keys", {}) if key not in walk.matched_keys
        ]
        if unused:
            print_log(
                f"paramwise_cfg.custom_keys {unused} apply to no parameter (no parameter name "
                "contains them, or a longer or alphabetically earlier key wins)",
                logger="current",
                level=logging.DEBUG,
            )

    def __call__(self, model: nn.Module) -> OptimWrapper:
        """Build the optimizer and its wrapper for ``model``.

        Args:
            model: The model (a wrapper with a ``module`` attribute, such as DDP, is unwrapped).

        Returns:
            The optimizer wrapper, built through ``OPTIM_WRAPPERS`` with the optimizer built
            through ``OPTIMIZERS``.
        """
        # As in MMEngine, anything with a `module` attribute (DDP and other wrappers) is unwrapped;
        # tests/core/test_optim_constructor.py pins this.
        model = cast("nn.Module", getattr(model, "module", model))
        optim_wrapper_cfg = self.optim_wrapper_cfg.copy()
        optim_wrapper_cfg.setdefault("type", "OptimWrapper")
        optimizer_cfg = self.optimizer_cfg.copy()
        if "type" not in optimizer_cfg:
            raise ValueError(
                "the optimizer config needs a 'type' (e.g. 'SGD', 'AdamW'), got "
                f"{dict(optimizer_cfg)!r}"
            )
        optimizer_cls = optimizer_cfg["type"]
        if isinstance(optimizer_cls, str):
            # Resolved once, where OPTIMIZERS.build would look (honouring `_scope_`); the class
            # itself then goes to the build below.
            with OPTIMIZERS.switch_scope_and_registry(optimizer_cfg.get("_scope_")) as registry:
                optimizer_cls = _lookup(optimizer_cls, registry)
            optimizer_cfg["type"] = optimizer_cls
        # Most optimizers take `params`; some (colossalai's HybridAdam) `model_params`.
        first_arg_name = next(iter(inspect.signature(optimizer_cls).parameters))
        if not self.paramwise_cfg:
            optimizer_cfg[first_arg_name] = model.parameters()
        else:
            params: list[dict[str, Any]] = []
            self.add_params(params, model)
            optimizer_cfg[first_arg_name] = params
        optimizer = OPTIMIZERS.build(optimizer_cfg)
        optim_wrapper: OptimWrapper = OPTIM_WRAPPERS.build(
            optim_wrapper_cfg, default_args={"optimizer": optimizer}
        )
        return optim_wrapper

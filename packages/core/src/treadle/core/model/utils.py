"""Model helpers: batch stacking with padding, dict merging, model-wrapper detection, SyncBN
conversion and a finder for parameters left out of the graph (MMEngine's ``mmengine.model.utils``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from treadle.core.logging import print_log

if TYPE_CHECKING:
    from collections.abc import Sequence

    from treadle.core.registry import Registry

__all__ = [
    "calls_forward_only",
    "convert_sync_batchnorm",
    "detect_anomalous_params",
    "is_model_wrapper",
    "merge_dict",
    "revert_sync_batchnorm",
    "stack_batch",
    "unwrap_model",
]


def stack_batch(
    tensor_list: Sequence[torch.Tensor], pad_size_divisor: int = 1, pad_value: float = 0
) -> torch.Tensor:
    """Stack tensors of one rank into a batch, padding them at the end of every dimension but the
    first (the channels) to the largest size in the batch, rounded up to ``pad_size_divisor``.

    The padding goes right/bottom (after the data), as MMEngine's ``stack_batch`` does; when no
    tensor needs padding they are stacked as they are.

    Args:
        tensor_list: The tensors, all with the same number of dimensions.
        pad_size_divisor: Every padded dimension (all but the first) becomes a multiple of it.
        pad_value: The value written into the padding.

    Returns:
        A tensor of shape ``(len(tensor_list), C, *max_sizes)``.

    Raises:
        TypeError: ``tensor_list`` is not a list or tuple of tensors.
        ValueError: It is empty, the tensors differ in rank, or ``pad_size_divisor`` is not a
            positive integer.
    """
    if not isinstance(tensor_list, (list, tuple)):
        raise TypeError(f"tensor_list must be a list of tensors, but got {type(tensor_list)}")
    if not tensor_list:
        raise ValueError("tensor_list must not be empty")
    if not all(isinstance(t, torch.Tensor) for t in tensor_list):
        kinds = sorted({type(t).__name__ for t in tensor_list})
        raise TypeError(f"tensor_list must hold only tensors, but got {kinds}")
    if isinstance(pad_size_divisor, bool) or not isinstance(pad_size_divisor, int):
        raise TypeError(f"pad_size_divisor must be an int, but got {type(pad_size_divisor)}")
    if pad_size_divisor < 1:
        raise ValueError(f"pad_size_divisor must be >= 1, but got {pad_size_divisor}")
    ranks = [t.dim() for t in tensor_list]
    if len(set(ranks)) != 1:
        raise ValueError(
            f"all tensors in tensor_list must have the same number of dimensions, but got {ranks}"
        )
    shapes = [tuple(t.shape) for t in tensor_list]
    ndim = ranks[0]
    # The first dimension (channels) is never padded; every other one is padded to the largest
    # size in the batch, rounded up to a multiple of pad_size_divisor.
    targets = [max(s[d] for s in shapes) for d in range(ndim)]
    for d in range(1, ndim):
        targets[d] = -(-targets[d] // pad_size_divisor) * pad_size_divisor
    if all(s[1:] == tuple(targets[1:]) for s in shapes):
        return torch.stack(list(tensor_list))
    padded = []
    for tensor, shape in zip(tensor_list, shapes, strict=True):
        # F.pad takes (left, right) pairs from the last dimension backwards; pad only "right".
        pad: list[int] = []
        for d in range(ndim - 1, 0, -1):
            pad += [0, targets[d] - shape[d]]
        padded.append(F.pad(tensor, pad, value=pad_value) if any(pad) else tensor)
    return torch.stack(padded)


def merge_dict(*args: dict[str, Any]) -> dict[str, Any]:
    """Merge dicts into a new one (later ones win), a ``torch.fx``-friendly ``dict.update``.

    Models traced with ``torch.fx.symbolic_trace`` cannot call ``dict.update``; this function is
    wrapped with ``torch.fx.wrap`` so tracing keeps it as a leaf call.

    Raises:
        TypeError: An argument is not a dict.
    """
    merged: dict[str, Any] = {}
    for i, item in enumerate(args):
        if not isinstance(item, dict):
            raise TypeError(f"merge_dict arguments must be dicts, but argument {i} is {type(item)}")
        merged.update(item)
    return merged


# torch.fx keeps calls to wrapped functions as leaves when tracing (wrap must run at module level).
torch.fx.wrap("merge_dict")


def detect_anomalous_params(loss: torch.Tensor, model: nn.Module) -> None:
    """Log (at ERROR level) every trainable parameter of ``model`` that ``loss`` does not use.

    Useful to find the parameters that make DDP complain about unused parameters.
    """
    in_graph: set[torch.Tensor] = set()
    seen: set[Any] = set()
    stack = [loss.grad_fn]
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        variable = getattr(fn, "variable", None)
        if variable is not None:
            in_graph.add(variable)
        stack.extend(parent for parent, _ in fn.next_functions)
    for name, param in model.named_parameters():
        if param.requires_grad and param not in in_graph:
            print_log(
                f"{name} with shape {param.size()} is not in the computational graph \n",
                logger="current",
                level=logging.ERROR,
            )


def _call_internals() -> tuple[Any, Any] | None:
    """``(torch.nn.modules.module, torch._C._is_tracing)``: what ``nn.Module.__call__`` consults
    besides the module itself; None when this torch does not have all of it (or calls modules
    another way), and :func:`calls_forward_only` then always answers False."""
    from torch.nn.modules import module as torch_module

    is_tracing = getattr(torch._C, "_is_tracing", None)
    probe = nn.Module()
    if (
        is_tracing is None
        or nn.Module.__call__ is not getattr(nn.Module, "_wrapped_call_impl", None)
        or not all(hasattr(torch_module, name) for name in _GLOBAL_HOOKS)
        or not all(hasattr(probe, name) for name in _MODULE_HOOKS)
        or not hasattr(probe, "_compiled_call_impl")
    ):
        return None
    return torch_module, is_tracing


_GLOBAL_HOOKS = (
    "_global_backward_pre_hooks",
    "_global_backward_hooks",
    "_global_forward_hooks",
    "_global_forward_pre_hooks",
)
_MODULE_HOOKS = ("_backward_hooks", "_backward_pre_hooks", "_forward_hooks", "_forward_pre_hooks")
_CALL_INTERNALS = _call_internals()
_MODULE_CALL = nn.Module.__call__
_MODULE_CALL_IMPL = nn.Module._call_impl


def calls_forward_only(module: nn.Module, other: nn.Module | None = None) -> bool:
    """Whether ``module(*args, **kwargs)`` would only return ``module.forward(*args, **kwargs)``
    (and, given ``other``, whether the same holds for ``other`` too).

    That is torch's own shortcut in ``nn.Module.__call__`` (``_call_impl``) when nothing else is
    there to run. Code on the per-iteration path (``BaseModel.train_step``) asks this and then
    calls ``forward`` itself, without ``__call__``'s two Python frames and argument repacking;
    everything else behaves the same. Asking for two modules at once (the model and its data
    preprocessor) looks at torch's global hooks and tracing state once.

    False whenever ``__call__`` would do more: forward or backward hooks on the module or
    registered for all modules, a ``module.compile()``-d call, JIT tracing, a class that
    overrides ``__call__`` or ``_call_impl``, or a torch whose module internals are not the ones
    checked here (then always).
    """
    internals = _CALL_INTERNALS
    if internals is None:
        return False
    if other is None:
        other = module
    torch_module, is_tracing = internals
    cls, other_cls = type(module), type(other)
    return not (
        cls.__call__ is not _MODULE_CALL
        or cls._call_impl is not _MODULE_CALL_IMPL
        or other_cls.__call__ is not _MODULE_CALL
        or other_cls._call_impl is not _MODULE_CALL_IMPL
        or module._compiled_call_impl is not None
        or module._forward_pre_hooks
        or module._forward_hooks
        or module._backward_pre_hooks
        or module._backward_hooks
        or other._compiled_call_impl is not None
        or other._forward_pre_hooks
        or other._forward_hooks
        or other._backward_pre_hooks
        or other._backward_hooks
        or torch_module._global_forward_pre_hooks
        or torch_module._global_forward_hooks
        or torch_module._global_backward_pre_hooks
        or torch_module._global_backward_hooks
        or is_tracing()
    )


def _registered_wrapper(cls: type, registry: Registry) -> bool:
    lazy = registry.lazy_targets
    names = {f"{c.__module__}:{c.__qualname__}" for c in cls.__mro__}
    for key in registry.keys():  # noqa: SIM118 (a Registry is not iterable)
        if key in lazy:
            if lazy[key] in names:
                return True
            continue
        obj = registry.get(key)
        if isinstance(obj, type) and issubclass(cls, obj):
            return True
    return any(_registered_wrapper(cls, child) for child in registry.children.values())


def is_model_wrapper(model: object) -> bool:
    """Whether ``model`` is a model wrapper (DDP, DataParallel, or a class in ``MODEL_WRAPPERS``).

    Lazily registered wrappers are recognised by their import path, without importing them.
    """
    if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
        return True
    from treadle.core.registry import MODEL_WRAPPERS

    return _registered_wrapper(type(model), MODEL_WRAPPERS)


def unwrap_model(model: nn.Module) -> nn.Module:
    """Return the model inside any model wrappers around ``model`` (``model`` itself if none).

    A wrapper is what :func:`is_model_wrapper` recognises (DDP, DataParallel, or a class in
    ``MODEL_WRAPPERS``); nested wrappers are peeled one after the other through their
    ``module`` attribute. A module that merely has a ``module`` attribute is not unwrapped.
    """
    while is_model_wrapper(model):
        inner = getattr(model, "module", None)
        if not isinstance(inner, nn.Module):
            break
        model = inner
    return model


class _BatchNormXd(nn.modules.batchnorm._BatchNorm):
    """A BatchNorm that accepts inputs of any rank (what SyncBN layers turn back into)."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        return


def _copy_bn_state(
    src: nn.modules.batchnorm._BatchNorm, dst: nn.modules.batchnorm._BatchNorm
) -> None:
    if src.affine:
        with torch.no_grad():
            dst.weight = src.weight
            dst.bias = src.bias
    dst.running_mean = src.running_mean
    dst.running_var = src.running_var
    dst.num_batches_tracked = src.num_batches_tracked
    dst.training = src.training
    if hasattr(src, "qconfig"):
        dst.qconfig = src.qconfig


def revert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """Turn every ``torch.nn.SyncBatchNorm`` in ``module`` into a plain BatchNorm (any rank).

    Returns:
        The converted module (``module`` itself unless it is a SyncBatchNorm).
    """
    output = module
    if isinstance(module, nn.SyncBatchNorm):
        output = _BatchNormXd(
            module.num_features,
            module.eps,
            module.momentum,
            module.affine,
            module.track_running_stats,
        )
        _copy_bn_state(module, output)
    for name, child in module.named_children():
        try:
            output.add_module(name, revert_sync_batchnorm(child))
        except Exception:
            print_log(
                f"Failed to convert {child} from SyncBN to BN!",
                logger="current",
                level=logging.WARNING,
            )
    return output


def convert_sync_batchnorm(module: nn.Module, implementation: str = "torch") -> nn.Module:
    """Turn every BatchNorm in ``module`` into ``torch.nn.SyncBatchNorm``.

    Args:
        module: The module to convert.
        implementation: Only ``"torch"`` (MMEngine's ``"mmcv"`` needs mmcv, which treadle does
            not support).

    Returns:
        The converted module (``module`` itself unless it is a BatchNorm).

    Raises:
        ValueError: ``implementation`` is not ``"torch"``.
    """
    if implementation != "torch":
        raise ValueError(f'implementation must be "torch", but got {implementation!r}')
    output = module
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        output = nn.SyncBatchNorm(
            module.num_features,
            module.eps,
            module.momentum,
            module.affine,
            module.track_running_stats,
        )
        _copy_bn_state(module, output)
    for name, child in module.named_children():
        output.add_module(name, convert_sync_batchnorm(child, implementation))
    return output

"""Weight initialisation: functional helpers, the initializer classes built from ``init_cfg``
(registered in ``WEIGHT_INITIALIZERS`` as ``Constant``, ``Xavier``, ``Normal``, ``TruncNormal``,
``Uniform``, ``Kaiming``, ``Caffe2Xavier`` and ``Pretrained``) and :func:`initialize`.

Semantics follow MMEngine's ``mmengine.model.weight_init``:

- an initializer with ``layer`` touches the submodules (the module itself included) whose class
  name, or the name of one of its direct base classes, is in ``layer``; without ``layer`` it
  touches nothing, unless it was built for an ``override`` entry, where it initialises the whole
  named submodule;
- ``bias_prob`` sets the bias to ``-log((1 - p) / p)`` (:func:`bias_init_with_prob`);
- ``override`` (a dict or list of dicts with ``name``) re-initialises ``module.<name>``: with only
  ``name`` it reuses the outer config (without ``layer``), otherwise it needs its own ``type``.

Example:
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Conv1d(3, 1, 3), nn.Linear(1, 2))
    >>> initialize(model, [dict(type="Constant", layer="Conv1d", val=1),
    ...                    dict(type="Constant", layer="Linear", val=2)])
"""

from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from treadle.core.logging import print_log

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "BaseInit",
    "Caffe2XavierInit",
    "ConstantInit",
    "KaimingInit",
    "NormalInit",
    "PretrainedInit",
    "TruncNormalInit",
    "UniformInit",
    "XavierInit",
    "bias_init_with_prob",
    "caffe2_xavier_init",
    "constant_init",
    "initialize",
    "kaiming_init",
    "normal_init",
    "trunc_normal_",
    "trunc_normal_init",
    "uniform_init",
    "update_init_info",
    "xavier_init",
]


def _weight(module: nn.Module) -> torch.Tensor | None:
    weight = getattr(module, "weight", None)
    return weight if isinstance(weight, torch.Tensor) else None


def _fill_bias(module: nn.Module, bias: float) -> None:
    tensor = getattr(module, "bias", None)
    if isinstance(tensor, torch.Tensor):
        nn.init.constant_(tensor, bias)


def _check_distribution(distribution: str) -> None:
    if distribution not in ("uniform", "normal"):
        raise ValueError(f'distribution must be "uniform" or "normal", but got {distribution!r}')


# ---------------------------------------------------------------------------------------------
# Functional helpers: fill a module's ``weight`` and ``bias`` (those that exist and are not None)
# ---------------------------------------------------------------------------------------------


def constant_init(module: nn.Module, val: float, bias: float = 0) -> None:
    """Fill ``module.weight`` with ``val`` and ``module.bias`` with ``bias``."""
    weight = _weight(module)
    if weight is not None:
        nn.init.constant_(weight, val)
    _fill_bias(module, bias)


def xavier_init(
    module: nn.Module, gain: float = 1, bias: float = 0, distribution: str = "normal"
) -> None:
    """Xavier/Glorot-initialise ``module.weight`` (``"normal"`` or ``"uniform"``), fill the bias."""
    _check_distribution(distribution)
    weight = _weight(module)
    if weight is not None:
        if distribution == "uniform":
            nn.init.xavier_uniform_(weight, gain=gain)
        else:
            nn.init.xavier_normal_(weight, gain=gain)
    _fill_bias(module, bias)


def normal_init(module: nn.Module, mean: float = 0, std: float = 1, bias: float = 0) -> None:
    """Draw ``module.weight`` from N(mean, std²), fill the bias."""
    weight = _weight(module)
    if weight is not None:
        nn.init.normal_(weight, mean, std)
    _fill_bias(module, bias)


def trunc_normal_(
    tensor: torch.Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0
) -> torch.Tensor:
    """Fill ``tensor`` in place from N(mean, std²) truncated to ``[a, b]`` and return it.

    Uses inverse-CDF sampling: uniform values between the CDFs of ``a`` and ``b`` mapped through
    the inverse normal CDF (best when ``a <= mean <= b``).
    """
    return nn.init.trunc_normal_(tensor, mean, std, a, b)


def trunc_normal_init(
    module: nn.Module,
    mean: float = 0,
    std: float = 1,
    a: float = -2,
    b: float = 2,
    bias: float = 0,
) -> None:
    """Draw ``module.weight`` from N(mean, std²) truncated to ``[a, b]``, fill the bias."""
    weight = _weight(module)
    if weight is not None:
        trunc_normal_(weight, mean, std, a, b)
    _fill_bias(module, bias)


def uniform_init(module: nn.Module, a: float = 0, b: float = 1, bias: float = 0) -> None:
    """Draw ``module.weight`` from U(a, b), fill the bias."""
    weight = _weight(module)
    if weight is not None:
        nn.init.uniform_(weight, a, b)
    _fill_bias(module, bias)


def kaiming_init(
    module: nn.Module,
    a: float = 0,
    mode: str = "fan_out",
    nonlinearity: str = "relu",
    bias: float = 0,
    distribution: str = "normal",
) -> None:
    """Kaiming/He-initialise ``module.weight`` (``"normal"`` or ``"uniform"``), fill the bias.

    Note the default ``mode="fan_out"`` (MMEngine's; PyTorch defaults to ``"fan_in"``).
    """
    _check_distribution(distribution)
    weight = _weight(module)
    if weight is not None:
        if distribution == "uniform":
            nn.init.kaiming_uniform_(weight, a=a, mode=mode, nonlinearity=nonlinearity)  # type: ignore[arg-type]
        else:
            nn.init.kaiming_normal_(weight, a=a, mode=mode, nonlinearity=nonlinearity)  # type: ignore[arg-type]
    _fill_bias(module, bias)


def caffe2_xavier_init(module: nn.Module, bias: float = 0) -> None:
    """Caffe2's ``XavierFill``: ``kaiming_uniform_`` with ``a=1``, ``fan_in``, ``leaky_relu``."""
    kaiming_init(
        module, a=1, mode="fan_in", nonlinearity="leaky_relu", bias=bias, distribution="uniform"
    )


def bias_init_with_prob(prior_prob: float) -> float:
    """The bias that makes a sigmoid output ``prior_prob``: ``-log((1 - p) / p)``.

    Raises:
        ValueError: ``prior_prob`` is not strictly between 0 and 1.
    """
    if not 0 < prior_prob < 1:
        raise ValueError(f"prior_prob must be in (0, 1), but got {prior_prob}")
    return float(-math.log((1 - prior_prob) / prior_prob))


# ---------------------------------------------------------------------------------------------
# Bookkeeping of which initializer touched each parameter (used by BaseModule.init_weights)
# ---------------------------------------------------------------------------------------------


def update_init_info(module: nn.Module, init_info: str) -> None:
    """Record ``init_info`` for every parameter of ``module`` whose value changed.

    Works on the ``_params_init_info`` table that :meth:`BaseModule.init_weights` attaches to
    every submodule of the top-level module while it runs: a parameter whose mean differs from
    the recorded one gets the new description.

    Raises:
        RuntimeError: ``module`` has no ``_params_init_info``, or one of its parameters is not in
            it (parameters must not be added or replaced inside ``init_weights``).
    """
    table = getattr(module, "_params_init_info", None)
    if table is None:
        raise RuntimeError(f"Can not find `_params_init_info` in {type(module).__name__}")
    for name, param in module.named_parameters():
        if param not in table:
            raise RuntimeError(
                f"Found a new Parameter named `{name}` while running `init_weights` of "
                f"`{type(module).__name__}`. Please do not add or replace parameters in "
                "`init_weights`."
            )
        mean_value = param.data.mean().cpu()
        if table[param]["tmp_mean_value"] != mean_value:
            table[param]["init_info"] = init_info
            table[param]["tmp_mean_value"] = mean_value


# ---------------------------------------------------------------------------------------------
# Initializer classes (built from init_cfg through WEIGHT_INITIALIZERS)
# ---------------------------------------------------------------------------------------------


def _bases_names(module: nn.Module) -> list[str]:
    return [base.__name__ for base in type(module).__bases__]


class BaseInit:
    """Base of the initializers: the shared ``bias``, ``bias_prob`` and ``layer`` arguments.

    Args:
        bias: The value to fill biases with.
        bias_prob: When given, biases get :func:`bias_init_with_prob` of it instead of ``bias``.
        layer: Class name(s) of the layers to initialise; a submodule matches when its class
            name or the name of one of its direct base classes is listed.

    Raises:
        TypeError: An argument has the wrong type.
    """

    def __init__(
        self,
        *,
        bias: float = 0,
        bias_prob: float | None = None,
        layer: str | list[str] | None = None,
    ) -> None:
        #: Set by :func:`initialize` for ``override`` entries: initialise every submodule.
        self.wholemodule = False
        if not isinstance(bias, (int, float)):
            raise TypeError(f"bias must be a number, but got {type(bias)}")
        if bias_prob is not None and not isinstance(bias_prob, float):
            raise TypeError(f"bias_prob must be a float, but got {type(bias_prob)}")
        if layer is None:
            layer = []
        elif not isinstance(layer, (str, list)):
            raise TypeError(f"layer must be a str or a list of str, but got {type(layer)}")
        self.bias: float = bias_init_with_prob(bias_prob) if bias_prob is not None else bias
        self.layer: list[str] = [layer] if isinstance(layer, str) else list(layer)

    def _init_module(self, module: nn.Module) -> None:
        """Initialise one (sub)module; subclasses call their functional helper here."""
        raise NotImplementedError

    def _matches(self, module: nn.Module) -> bool:
        if self.wholemodule:
            return True
        if not self.layer:
            return False
        return not set(self.layer).isdisjoint([type(module).__name__, *_bases_names(module)])

    def __call__(self, module: nn.Module) -> None:
        """Initialise the matching submodules of ``module`` (``module`` included)."""

        def visit(m: nn.Module) -> None:
            if self._matches(m):
                self._init_module(m)

        module.apply(visit)
        if hasattr(module, "_params_init_info"):
            update_init_info(module, init_info=self._get_init_info())

    def _get_init_info(self) -> str:
        return f"{type(self).__name__}, bias={self.bias}"


class ConstantInit(BaseInit):
    """Fill weights with ``val`` and biases with ``bias`` (``type="Constant"``).

    Args:
        val: The weight value.
        **kwargs: ``bias``, ``bias_prob``, ``layer`` (see :class:`BaseInit`).
    """

    def __init__(self, val: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.val = val

    def _init_module(self, module: nn.Module) -> None:
        constant_init(module, self.val, self.bias)

    def _get_init_info(self) -> str:
        return f"{type(self).__name__}: val={self.val}, bias={self.bias}"


class XavierInit(BaseInit):
    """Xavier/Glorot initialisation (``type="Xavier"``).

    Args:
        gain: Scaling factor.
        distribution: ``"normal"`` or ``"uniform"``.
        **kwargs: ``bias``, ``bias_prob``, ``layer`` (see :class:`BaseInit`).
    """

    def __init__(self, gain: float = 1, distribution: str = "normal", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        _check_distribution(distribution)
        self.gain = gain
        self.distribution = distribution

    def _init_module(self, module: nn.Module) -> None:
        xavier_init(module, self.gain, self.bias, self.distribution)

    def _get_init_info(self) -> str:
        return (
            f"{type(self).__name__}: gain={self.gain}, distribution={self.distribution}, "
            f"bias={self.bias}"
        )


class NormalInit(BaseInit):
    """Weights from N(mean, std²) (``type="Normal"``).

    Args:
        mean: Mean of the distribution.
        std: Standard deviation of the distribution.
        **kwargs: ``bias``, ``bias_prob``, ``layer`` (see :class:`BaseInit`).
    """

    def __init__(self, mean: float = 0, std: float = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mean = mean
        self.std = std

    def _init_module(self, module: nn.Module) -> None:
        normal_init(module, self.mean, self.std, self.bias)

    def _get_init_info(self) -> str:
        return f"{type(self).__name__}: mean={self.mean}, std={self.std}, bias={self.bias}"


class TruncNormalInit(BaseInit):
    """Weights from N(mean, std²) truncated to ``[a, b]`` (``type="TruncNormal"``).

    Args:
        mean: Mean of the distribution.
        std: Standard deviation of the distribution.
        a: Lower cutoff.
        b: Upper cutoff.
        **kwargs: ``bias``, ``bias_prob``, ``layer`` (see :class:`BaseInit`).
    """

    def __init__(
        self, mean: float = 0, std: float = 1, a: float = -2, b: float = 2, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.mean = mean
        self.std = std
        self.a = a
        self.b = b

    def _init_module(self, module: nn.Module) -> None:
        trunc_normal_init(module, self.mean, self.std, self.a, self.b, self.bias)

    def _get_init_info(self) -> str:
        return (
            f"{type(self).__name__}: a={self.a}, b={self.b}, mean={self.mean}, std={self.std}, "
            f"bias={self.bias}"
        )


class UniformInit(BaseInit):
    """Weights from U(a, b) (``type="Uniform"``).

    Args:
        a: Lower bound.
        b: Upper bound.
        **kwargs: ``bias``, ``bias_prob``, ``layer`` (see :class:`BaseInit`).
    """

    def __init__(self, a: float = 0, b: float = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.a = a
        self.b = b

    def _init_module(self, module: nn.Module) -> None:
        uniform_init(module, self.a, self.b, self.bias)

    def _get_init_info(self) -> str:
        return f"{type(self).__name__}: a={self.a}, b={self.b}, bias={self.bias}"


class KaimingInit(BaseInit):
    """Kaiming/He initialisation (``type="Kaiming"``).

    Args:
        a: Negative slope of the rectifier after the layer (``leaky_relu`` only).
        mode: ``"fan_in"`` or ``"fan_out"`` (the default, as in MMEngine).
        nonlinearity: The ``torch.nn.functional`` name of the nonlinearity.
        distribution: ``"normal"`` or ``"uniform"``.
        **kwargs: ``bias``, ``bias_prob``, ``layer`` (see :class:`BaseInit`).
    """

    def __init__(
        self,
        a: float = 0,
        mode: str = "fan_out",
        nonlinearity: str = "relu",
        distribution: str = "normal",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        _check_distribution(distribution)
        if mode not in ("fan_in", "fan_out"):
            raise ValueError(f'mode must be "fan_in" or "fan_out", but got {mode!r}')
        self.a = a
        self.mode = mode
        self.nonlinearity = nonlinearity
        self.distribution = distribution

    def _init_module(self, module: nn.Module) -> None:
        kaiming_init(module, self.a, self.mode, self.nonlinearity, self.bias, self.distribution)

    def _get_init_info(self) -> str:
        return (
            f"{type(self).__name__}: a={self.a}, mode={self.mode}, "
            f"nonlinearity={self.nonlinearity}, distribution ={self.distribution}, "
            f"bias={self.bias}"
        )


class Caffe2XavierInit(KaimingInit):
    """Caffe2's ``XavierFill`` (``type="Caffe2Xavier"``): Kaiming uniform, ``a=1``, ``fan_in``,
    ``leaky_relu``.

    Args:
        **kwargs: ``bias``, ``bias_prob``, ``layer`` (see :class:`BaseInit`).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            a=1, mode="fan_in", nonlinearity="leaky_relu", distribution="uniform", **kwargs
        )


class PretrainedInit:
    """Load weights from a checkpoint file (``type="Pretrained"``).

    The file is read with ``torch.load(weights_only=True)`` through
    :func:`treadle.core.fileio.get_local_path` (local paths and any URI a file backend serves).
    Its weights are ``checkpoint["state_dict"]`` when present, else the whole dict. Loading is
    non-strict: missing, unexpected and mis-shaped keys are logged as a warning and skipped.
    :class:`BaseModule` applies it after every other initializer and after the children's.

    Args:
        checkpoint: Path or URI of the checkpoint.
        prefix: Load only the keys under this prefix (e.g. ``"backbone."``), with the prefix
            removed; otherwise a leading ``module.`` is stripped from every key.
        map_location: ``torch.load``'s ``map_location``.
    """

    def __init__(
        self, checkpoint: str, prefix: str | None = None, map_location: Any = "cpu"
    ) -> None:
        self.checkpoint = checkpoint
        self.prefix = prefix
        self.map_location = map_location
        self.wholemodule = False

    def __call__(self, module: nn.Module) -> None:
        """Load the checkpoint into ``module``."""
        from treadle.core.runner.checkpoint import (
            _load_checkpoint_with_prefix,
            load_checkpoint,
            load_state_dict,
        )

        if self.prefix is None:
            print_log(f"load model from: {self.checkpoint}", logger="current")
            load_checkpoint(
                module,
                self.checkpoint,
                map_location=self.map_location,
                strict=False,
                logger="current",
            )
        else:
            print_log(f"load {self.prefix} in model from: {self.checkpoint}", logger="current")
            state_dict = _load_checkpoint_with_prefix(
                self.prefix, self.checkpoint, map_location=self.map_location
            )
            load_state_dict(module, state_dict, strict=False, logger="current")
        if hasattr(module, "_params_init_info"):
            update_init_info(module, init_info=self._get_init_info())

    def _get_init_info(self) -> str:
        return f"{type(self).__name__}: load from {self.checkpoint}"


# ---------------------------------------------------------------------------------------------
# initialize(): apply init_cfg to a module
# ---------------------------------------------------------------------------------------------


def _build_initializer(cfg: dict[str, Any]) -> Callable[[nn.Module], None]:
    from treadle.core.registry import WEIGHT_INITIALIZERS, build_from_cfg

    initializer: Callable[[nn.Module], None] = build_from_cfg(cfg, WEIGHT_INITIALIZERS)
    return initializer


def _initialize(module: nn.Module, cfg: dict[str, Any], wholemodule: bool = False) -> None:
    initializer = _build_initializer(cfg)
    # An override entry has no `layer`: it initialises the whole named submodule.
    initializer.wholemodule = wholemodule  # type: ignore[attr-defined]
    initializer(module)


def _initialize_override(
    module: nn.Module, override: dict[str, Any] | list[dict[str, Any]], cfg: dict[str, Any]
) -> None:
    if not isinstance(override, (dict, list)):
        raise TypeError(f"override must be a dict or a list of dict, but got {type(override)}")
    for entry in [override] if isinstance(override, dict) else override:
        if not isinstance(entry, dict):
            raise TypeError(f"each override entry must be a dict, but got {type(entry)}")
        sub_cfg = copy.deepcopy(entry)
        name = sub_cfg.pop("name", None)
        if name is None:
            raise ValueError(f'`override` must contain the key "name", but got {entry}')
        if not sub_cfg:
            # Only a name: initialise that submodule with the outer config.
            sub_cfg.update(cfg)
        elif "type" not in sub_cfg:
            raise ValueError(f'`override` needs a "type" key besides "name", but got {entry}')
        target = getattr(module, name, None)
        if not isinstance(target, nn.Module):
            raise RuntimeError(
                f"{type(module).__name__} has no submodule {name!r}, but override is {entry}"
            )
        _initialize(target, sub_cfg, wholemodule=True)


def initialize(module: nn.Module, init_cfg: dict[str, Any] | list[dict[str, Any]]) -> None:
    """Initialise ``module`` from one init config or a list of them, in order.

    Each config is built through ``WEIGHT_INITIALIZERS`` (``type`` names an initializer or is a
    class) and applied to ``module``; then its ``override`` entries re-initialise the named
    submodules. The configs are copied, never modified (one config may serve many modules).

    Args:
        module: The module to initialise.
        init_cfg: ``dict(type=..., layer=..., override=..., **args)`` or a list of them.

    Raises:
        TypeError: ``init_cfg`` or ``override`` has the wrong type.
        ValueError: An ``override`` entry has no ``name``, or other keys but no ``type``.
        RuntimeError: An ``override`` names a submodule that does not exist.

    Example:
        >>> initialize(model, dict(type="Constant", val=1, bias=2, layer="Conv2d",
        ...                        override=dict(type="Constant", name="reg", val=3, bias=4)))
    """
    if not isinstance(init_cfg, (dict, list)):
        raise TypeError(f"init_cfg must be a dict or a list of dict, but got {type(init_cfg)}")
    for cfg in [init_cfg] if isinstance(init_cfg, dict) else init_cfg:
        if not isinstance(cfg, dict):
            raise TypeError(f"each init_cfg entry must be a dict, but got {type(cfg)}")
        cfg = copy.deepcopy(cfg)
        override = cfg.pop("override", None)
        _initialize(module, cfg)
        if override is not None:
            cfg.pop("layer", None)
            _initialize_override(module, override, cfg)

"""``BaseModule``: ``torch.nn.Module`` with ``init_cfg``-driven weight initialisation, and its
``Sequential``/``ModuleList``/``ModuleDict`` variants (MMEngine's ``mmengine.model.base_module``).
"""

from __future__ import annotations

import copy
import logging
from abc import ABCMeta
from collections import defaultdict
from typing import TYPE_CHECKING, Any, cast

from torch import nn

from treadle.core.logging import TreadleLogger, get_rank, print_log
from treadle.core.model.utils import is_model_wrapper
from treadle.core.model.weight_init import PretrainedInit, initialize, update_init_info

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = ["BaseModule", "ModuleDict", "ModuleList", "Sequential"]

InitCfg = dict[str, Any] | list[dict[str, Any]] | None


def _is_pretrained(cfg: dict[str, Any]) -> bool:
    kind = cfg.get("type")
    return kind == "Pretrained" or kind is PretrainedInit


class BaseModule(nn.Module, metaclass=ABCMeta):
    """``torch.nn.Module`` with weight initialisation from ``init_cfg``.

    :meth:`init_weights` applies ``init_cfg`` (see :func:`~treadle.core.model.initialize`) to
    this module, then calls ``init_weights`` of every child that has one and has not run it yet
    (children with their own ``init_cfg`` override what the parent did to them), then loads
    ``Pretrained`` configs last so that pretrained weights win. Each module initialises once:
    :attr:`is_init` turns true, and a second call only logs a warning.

    While the top-level call runs, every submodule shares a ``_params_init_info`` table recording
    which initializer last changed each parameter; it is logged at the end (to the file handlers
    of the current logger when there are any) and removed.

    Args:
        init_cfg: An init config dict or a list of them; copied.
    """

    def __init__(self, init_cfg: InitCfg = None) -> None:
        super().__init__()
        self._is_init = False
        self.init_cfg = copy.deepcopy(init_cfg)

    @property
    def is_init(self) -> bool:
        """Whether :meth:`init_weights` has run on this module."""
        return self._is_init

    @is_init.setter
    def is_init(self, value: bool) -> None:
        self._is_init = value

    def init_weights(self) -> None:
        """Initialise this module and its children (see the class docstring)."""
        top_level = not hasattr(self, "_params_init_info")
        if top_level:
            table: defaultdict[nn.Parameter, dict[str, Any]] = defaultdict(dict)
            for param in self.parameters():
                table[param]["init_info"] = (
                    "The value is the same before and after calling `init_weights` of "
                    f"{type(self).__name__} "
                )
                table[param]["tmp_mean_value"] = param.data.mean().cpu()
            # One table shared by every submodule, so that changes at any level are recorded.
            for module in self.modules():
                module.__dict__["_params_init_info"] = table

        name = type(self).__name__
        if not self._is_init:
            pretrained_cfgs: list[dict[str, Any]] = []
            if self.init_cfg:
                print_log(
                    f"initialize {name} with init_cfg {self.init_cfg}",
                    logger="current",
                    level=logging.DEBUG,
                )
                cfgs = [self.init_cfg] if isinstance(self.init_cfg, dict) else self.init_cfg
                if not isinstance(cfgs, list):
                    raise TypeError(
                        f"init_cfg of {name} must be a dict or a list of dict, but got "
                        f"{type(self.init_cfg)}"
                    )
                other_cfgs: list[dict[str, Any]] = []
                for cfg in cfgs:
                    if not isinstance(cfg, dict):
                        raise TypeError(
                            f"init_cfg entries of {name} must be dicts, but got {type(cfg)}"
                        )
                    (pretrained_cfgs if _is_pretrained(cfg) else other_cfgs).append(cfg)
                initialize(self, other_cfgs)

            for child in self.children():
                if is_model_wrapper(child) and not hasattr(child, "init_weights"):
                    child = cast("nn.Module", child.module)
                if hasattr(child, "init_weights") and not getattr(child, "is_init", False):
                    cast("Any", child).init_weights()
                    # The child may override init_weights; record what it changed.
                    update_init_info(
                        child,
                        init_info=(
                            f"Initialized by user-defined `init_weights` in {type(child).__name__} "
                        ),
                    )
            if pretrained_cfgs:
                initialize(self, pretrained_cfgs)
            self._is_init = True
        else:
            print_log(
                f"init_weights of {name} has been called more than once.",
                logger="current",
                level=logging.WARNING,
            )

        if top_level:
            self._dump_init_info()
            for module in self.modules():
                del module._params_init_info

    def _dump_init_info(self) -> None:
        """Log how each parameter was initialised (rank 0 only).

        Written straight to the file handlers of the current logger when it has any (so the
        console stays quiet), else logged at INFO level.
        """
        if get_rank() != 0:
            return
        logger = TreadleLogger.get_current_instance()
        table: dict[nn.Parameter, dict[str, Any]] = self.__dict__["_params_init_info"]
        lines = [
            f"\n{name} - {param.shape}: \n{table[param]['init_info']} \n"
            for name, param in self.named_parameters()
        ]
        file_handlers = [h for h in logger.handlers if isinstance(h, logging.FileHandler)]
        for handler in file_handlers:
            if handler.stream is None:  # a FileHandler opened with delay=True
                handler.stream = handler._open()
            handler.stream.write("Name of parameter - Initialization information\n")
            handler.stream.write("".join(lines))
            handler.stream.flush()
        if not file_handlers:
            for line in lines:
                logger.info(line)

    def __repr__(self) -> str:
        text = super().__repr__()
        if self.init_cfg:
            text += f"\ninit_cfg={self.init_cfg}"
        return text


class Sequential(BaseModule, nn.Sequential):
    """``torch.nn.Sequential`` with its own ``init_cfg``.

    Args:
        *args: The modules, in order.
        init_cfg: Init config for the container.
    """

    def __init__(self, *args: nn.Module, init_cfg: InitCfg = None) -> None:
        BaseModule.__init__(self, init_cfg)
        nn.Sequential.__init__(self, *args)


class ModuleList(BaseModule, nn.ModuleList):
    """``torch.nn.ModuleList`` with its own ``init_cfg``.

    Args:
        modules: The modules.
        init_cfg: Init config for the container.
    """

    def __init__(
        self, modules: Iterable[nn.Module] | None = None, init_cfg: InitCfg = None
    ) -> None:
        BaseModule.__init__(self, init_cfg)
        nn.ModuleList.__init__(self, modules)


class ModuleDict(BaseModule, nn.ModuleDict):
    """``torch.nn.ModuleDict`` with its own ``init_cfg``.

    Args:
        modules: A mapping (or iterable of pairs) of names to modules.
        init_cfg: Init config for the container.
    """

    def __init__(
        self,
        modules: Mapping[str, nn.Module] | Iterable[tuple[str, nn.Module]] | None = None,
        init_cfg: InitCfg = None,
    ) -> None:
        BaseModule.__init__(self, init_cfg)
        nn.ModuleDict.__init__(self, modules)  # type: ignore[arg-type]

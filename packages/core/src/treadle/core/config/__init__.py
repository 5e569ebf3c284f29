"""The MMEngine config language: text-style and pure-Python (lazy import) configs.

Public API::

    from treadle.core.config import Config, ConfigDict, DictAction, read_base
    cfg = Config.fromfile("configs/faster-rcnn_r50_fpn_1x_coco.py")
    cfg.merge_from_dict({"model.backbone.depth": 101})
    cfg.dump("work_dir/config.py")
"""

from treadle.core.config.config import Config
from treadle.core.config.config_dict import ConfigDict
from treadle.core.config.dict_action import DictAction
from treadle.core.config.errors import ConfigParsingError
from treadle.core.config.lazy import LazyAttr, LazyObject, read_base

__all__ = [
    "Config",
    "ConfigDict",
    "ConfigParsingError",
    "DictAction",
    "LazyAttr",
    "LazyObject",
    "read_base",
]

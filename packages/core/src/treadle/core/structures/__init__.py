"""Data structures passed between datasets, models, metrics and visualizers (MMEngine's
``mmengine.structures``): :class:`BaseDataElement`, :class:`InstanceData`, :class:`LabelData`,
:class:`PixelData`.

Names are imported on first access, so ``import treadle.core.structures`` does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from treadle.core.utils.lazy import lazy_exports

if TYPE_CHECKING:
    from treadle.core.structures.base_data_element import BaseDataElement
    from treadle.core.structures.instance_data import InstanceData
    from treadle.core.structures.label_data import LabelData
    from treadle.core.structures.pixel_data import PixelData

_WHERE: dict[str, str] = {
    "BaseDataElement": "base_data_element",
    "InstanceData": "instance_data",
    "LabelData": "label_data",
    "PixelData": "pixel_data",
}

__all__ = ["BaseDataElement", "InstanceData", "LabelData", "PixelData"]


__getattr__, __dir__ = lazy_exports(__name__, _WHERE)

"""Visualization: the :class:`Visualizer` fanning out to vis backends, and the local backend.

Names are imported on first access: importing this package (or the ``components.py`` table that
plugin discovery reads) does not import torch, numpy or any tracker SDK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from treadle.core.utils.lazy import lazy_exports

if TYPE_CHECKING:
    from treadle.core.visualization.plot import plot_curves
    from treadle.core.visualization.png import encode_png
    from treadle.core.visualization.vis_backend import (
        BaseVisBackend,
        LocalVisBackend,
        force_init_env,
    )
    from treadle.core.visualization.visualizer import Visualizer

__all__ = [
    "BaseVisBackend",
    "LocalVisBackend",
    "Visualizer",
    "encode_png",
    "force_init_env",
    "plot_curves",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "BaseVisBackend": "vis_backend",
        "LocalVisBackend": "vis_backend",
        "force_init_env": "vis_backend",
        "Visualizer": "visualizer",
        "encode_png": "png",
        "plot_curves": "plot",
    },
)

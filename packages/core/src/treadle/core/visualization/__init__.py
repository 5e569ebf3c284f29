"""Visualization: the :class:`Visualizer` fanning out to vis backends, and the local backend.

Importing this package does not import torch, numpy or any tracker SDK.
"""

from __future__ import annotations

from treadle.core.visualization.png import encode_png
from treadle.core.visualization.vis_backend import BaseVisBackend, LocalVisBackend, force_init_env
from treadle.core.visualization.visualizer import Visualizer

__all__ = ["BaseVisBackend", "LocalVisBackend", "Visualizer", "encode_png", "force_init_env"]

"""Strategies: how a model meets the hardware (see :class:`Strategy`)."""

from treadle.core.strategy.base import Strategy
from treadle.core.strategy.single_device import SingleDeviceStrategy, default_device

__all__ = ["SingleDeviceStrategy", "Strategy", "default_device"]

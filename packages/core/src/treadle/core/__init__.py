"""treadle-core: the kernel of the treadle training engine."""

from treadle.core.version import __version__

__all__ = ["__version__"]

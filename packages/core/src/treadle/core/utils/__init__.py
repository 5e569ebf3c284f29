"""Small utilities shared by the kernel's modules."""

from treadle.core.utils.manager import ManagerMeta, ManagerMixin

__all__ = ["ManagerMeta", "ManagerMixin"]

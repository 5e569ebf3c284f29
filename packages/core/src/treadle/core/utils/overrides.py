"""Which methods a subclass keeps: the question per-iteration fast paths ask once per class."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["keeps_methods"]


def keeps_methods(cls: type, base: type, names: Iterable[str]) -> bool:
    """Whether ``cls`` still has ``base``'s attributes ``names`` (methods or properties): no class
    between them overrides one.

    A fast path that writes those methods out inline may be taken only then; classes ask this in
    ``__init_subclass__`` and keep the answer as a class flag.
    """
    return all(getattr(cls, name) is getattr(base, name) for name in names)

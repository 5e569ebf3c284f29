"""Questions about a runner's state that components outside the runner ask (no heavy imports)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["train_loop_built"]


def train_loop_built(runner: Any) -> bool:
    """Whether the runner's train loop exists, without building it.

    MMEngine's Runner builds its train loop lazily on first access of ``train_loop`` /
    ``epoch`` / ``iter``; a hook that only wants a step number during a val/test-only run must not
    trigger that. A runner without the private ``_train_loop`` attribute is asked directly.
    """
    try:
        loop = runner._train_loop
    except AttributeError:
        return True
    return loop is not None and not isinstance(loop, Mapping)

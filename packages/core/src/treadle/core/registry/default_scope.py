"""The process-wide default scope (MMEngine's ``DefaultScope`` and ``init_default_scope``).

The default scope names the registry tree branch that ``build`` looks in first: a Runner created
with ``default_scope='mmdet'`` makes ``MODELS.build(dict(type='RetinaNet'))`` search mmdet's child
registry of MODELS, then its parents. A config's ``_scope_`` key overrides it for one build
(:meth:`DefaultScope.overwrite_default_scope`).
"""

from __future__ import annotations

import itertools
import logging
from collections import OrderedDict
from contextlib import contextmanager
from typing import TYPE_CHECKING

from treadle.core.utils.manager import ManagerMixin

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["DefaultScope", "init_default_scope"]

logger = logging.getLogger("treadle.registry")

# Unique instance names for temporary and forced scopes (MMEngine uses time.time(), and sleeps).
_counter = itertools.count()


class DefaultScope(ManagerMixin):
    """The scope of the current task, reachable from anywhere in the process.

    Internal code that cannot reach the Runner (a dataset building its transforms, a model
    building its heads) still builds from the right registries: the most recently created
    instance is the current default scope.

    Args:
        name: The instance's name (ManagerMixin).
        scope_name: The scope, e.g. ``"mmdet"``. ``"mmengine"`` means treadle's root scope.

    Examples:
        >>> DefaultScope.get_instance("task", scope_name="mmdet")
        >>> DefaultScope.get_current_instance().scope_name
        'mmdet'
    """

    def __init__(self, name: str, scope_name: str) -> None:
        super().__init__(name)
        if not isinstance(scope_name, str):
            raise TypeError(f"scope_name should be a string, but got {scope_name!r}")
        self._scope_name = scope_name

    @property
    def scope_name(self) -> str:
        """The scope this instance stands for."""
        return self._scope_name

    @classmethod
    def get_current_instance(cls) -> DefaultScope | None:  # type: ignore[override]
        """Return the most recently created default scope, or ``None`` when there is none.

        Unlike other managed classes this never raises: having no default scope is normal.
        """
        instances = cls._instance_dict
        if not instances:
            return None
        current: DefaultScope = next(reversed(instances.values()))
        return current

    @classmethod
    @contextmanager
    def overwrite_default_scope(cls, scope_name: str | None) -> Iterator[None]:
        """Make ``scope_name`` the default scope inside the ``with`` block.

        ``None`` changes nothing. On exit the table of instances is restored as it was, so
        default scopes created inside the block are dropped too (as in MMEngine).

        Args:
            scope_name: The scope to switch to, or ``None``.
        """
        if scope_name is None:
            yield
            return
        saved = OrderedDict(cls._instance_dict)
        cls.get_instance(f"overwrite-{next(_counter)}", scope_name=scope_name)
        try:
            yield
        finally:
            instances = cls._instance_dict
            instances.clear()
            instances.update(saved)


def init_default_scope(scope: str) -> None:
    """Make ``scope`` the current default scope.

    Creates the instance called ``scope`` when it does not exist yet. When it exists but another
    scope is current, a new instance is created (and a warning logged), as MMEngine does.

    Args:
        scope: The scope name, e.g. ``"mmdet"``.
    """
    current = DefaultScope.get_current_instance()
    if current is None or not DefaultScope.check_instance_created(scope):
        DefaultScope.get_instance(scope, scope_name=scope)
        return
    if current.scope_name != scope:
        logger.warning(
            'The current default scope "%s" is not "%s"; init_default_scope makes "%s" the '
            "current default scope.",
            current.scope_name,
            scope,
            scope,
        )
        DefaultScope.get_instance(f"{scope}-{next(_counter)}", scope_name=scope)

"""Named, process-wide instances (MMEngine's ``ManagerMixin``).

A class that mixes in :class:`ManagerMixin` keeps a table of its instances by name:
``get_instance(name, **kwargs)`` creates one on first use and returns the same object afterwards;
``get_current_instance()`` returns the most recently created or fetched one. The Logger,
the Visualizer, the MessageHub and the DefaultScope are managed this way.
"""

from __future__ import annotations

import threading
import warnings
from collections import OrderedDict
from typing import Any, ClassVar, TypeVar

_T = TypeVar("_T", bound="ManagerMixin")

_lock = threading.RLock()


class ManagerMeta(type):
    """Metaclass that gives every managed class its own instance table.

    It also checks that ``__init__`` accepts ``name``, since the table is keyed by it.
    """

    def __init__(cls, *args: Any) -> None:
        cls._instance_dict: OrderedDict[str, Any] = OrderedDict()
        # Only an __init__ defined by this class needs checking; inherited ones were checked.
        init: Any = cls.__dict__.get("__init__")
        code = getattr(init, "__code__", None)
        if code is not None and "name" not in code.co_varnames[: code.co_argcount]:
            raise AttributeError(
                f"{cls.__name__}.__init__ must accept a `name` argument to be managed by "
                "ManagerMixin"
            )
        super().__init__(*args)


class ManagerMixin(metaclass=ManagerMeta):
    """Gives a class named global instances.

    Args:
        name: The instance's name, unique within its class.
    """

    _instance_dict: OrderedDict[str, Any]
    #: The instance :meth:`get_current_instance` creates (with no arguments) when none exists;
    #: ``None``: it raises instead.
    _default_instance_name: ClassVar[str | None] = None

    def __init__(self, name: str = "", **kwargs: Any) -> None:
        if not isinstance(name, str):
            raise TypeError(f"{type(self).__name__} needs a string name, got {name!r}")
        self._instance_name = name

    @classmethod
    def get_instance(cls: type[_T], name: str, **kwargs: Any) -> _T:
        """Return the instance called ``name``, creating it with ``kwargs`` on first use.

        Args:
            name: The instance's name.
            **kwargs: Constructor arguments, used only when the instance is created.

        Returns:
            The named instance. As in MMEngine, fetching an existing instance does not make it
            the current one; creating one does.
        """
        with _lock:
            table = cls._instance_dict
            if name not in table:
                table[name] = cls(name=name, **kwargs)
            elif kwargs:
                warnings.warn(
                    f"{cls.__name__} instance {name!r} already exists; get_instance ignores "
                    f"the arguments {sorted(kwargs)}",
                    stacklevel=2,
                )
            instance: _T = table[name]
            return instance

    @classmethod
    def get_current_instance(cls: type[_T]) -> _T:
        """Return the most recently created instance.

        When none exists yet, a class that sets ``_default_instance_name`` gets one of that name
        (built with no other arguments).

        Raises:
            RuntimeError: When no instance of this class exists yet and it has no default name.
        """
        with _lock:
            if not cls._instance_dict:
                if cls._default_instance_name is not None:
                    return cls.get_instance(cls._default_instance_name)
                raise RuntimeError(
                    f"No instance of {cls.__name__} exists yet; create one with "
                    f"{cls.__name__}.get_instance(name)"
                )
            instance: _T = next(reversed(cls._instance_dict.values()))
            return instance

    @classmethod
    def check_instance_created(cls, name: str) -> bool:
        """Return whether an instance called ``name`` exists."""
        return name in cls._instance_dict

    @property
    def instance_name(self) -> str:
        """The name this instance is registered under."""
        return self._instance_name

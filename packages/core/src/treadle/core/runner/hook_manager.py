"""The Runner's plugin manager: lifecycle hooks called through pluggy in MMEngine's order.

Each Runner owns one :class:`RunnerHookManager`. It accepts three kinds of hook:

- :class:`~treadle.core.hooks.Hook` subclasses written the MMEngine way: exactly the points the
  subclass overrides become hook implementations (see
  :func:`~treadle.core.hooks.hook.implemented_points`), so the base class registers nothing;
- any object or module with ``@hookimpl``-decorated lifecycle functions (discovered plugins too);
- both carry a priority: the ``priority`` attribute, a name or a number (``NORMAL`` by default).

pluggy calls the implementation registered last first, so hooks are (re-)registered in descending
``(priority, insertion index)`` order: the call order is ascending priority, first come first among
equals, for ``before_*`` and ``after_*`` points alike (MMEngine's rule).

:meth:`RunnerHookManager.call` is the hot path (twice per training iteration). pluggy stays the
registry: it validates implementations and orders them. While its default executor is in place
and no implementation is a wrapper, ``call`` runs the very implementations pluggy would run, in
pluggy's order, without ``HookCaller.__call__``'s per-call bookkeeping (about 1 µs per call plus
0.5 µs per implementation). With tracing (``TREADLE_TRACE_HOOKS``), call monitoring or a wrapper,
every call goes through pluggy itself.
"""

from __future__ import annotations

from typing import Any

import pluggy

from treadle.core.hooks.hook import POINTS, Hook, get_priority, implemented_points
from treadle.core.hookspecs import LIFECYCLE_HOOKS
from treadle.core.plugins import new_plugin_manager

_LIFECYCLE = frozenset(LIFECYCLE_HOOKS)
#: pluggy's default executor; any other (tracing, monitoring) means: call through pluggy.
_DEFAULT_EXEC = pluggy.PluginManager("treadle")._inner_hookexec
_Plan = tuple[tuple[Any, tuple[str, ...] | None, tuple[str, ...]], ...]
_IMPL_OPTS: pluggy.HookimplOpts = {
    "wrapper": False,
    "hookwrapper": False,
    "optionalhook": False,
    "tryfirst": False,
    "trylast": False,
    "specname": None,
}


class _Manager(pluggy.PluginManager):
    """Treats a Hook subclass's overridden lifecycle methods as implementations."""

    def parse_hookimpl_opts(self, plugin: Any, name: str) -> pluggy.HookimplOpts | None:
        opts = super().parse_hookimpl_opts(plugin, name)
        if (
            opts is None
            and isinstance(plugin, Hook)
            and name in _LIFECYCLE
            and name in _implemented(plugin)
        ):
            return dict(_IMPL_OPTS)  # type: ignore[return-value]
        return opts


_points_cache: dict[type, frozenset[str]] = {}


def _implemented(hook: Hook) -> frozenset[str]:
    cls = type(hook)
    points = _points_cache.get(cls)
    if points is None:
        points = _points_cache[cls] = frozenset(implemented_points(hook, POINTS))
    return points


class RunnerHookManager:
    """The hooks of one Runner, called in priority order.

    Attributes:
        hook: pluggy's hook relay: ``manager.hook.after_train_iter(runner=…, …)``.
    """

    def __init__(self) -> None:
        self._pm: pluggy.PluginManager = new_plugin_manager(_Manager)
        self.hook = self._pm.hook
        self._entries: list[tuple[int, int, object]] = []  # (priority, index, hook)
        self._next_index = 0
        self._plans: dict[str, _Plan | None] = {}
        #: ``{point: (spec argument order, functions)}`` for the points whose implementations
        #: all take the spec's arguments in its order (see :meth:`_note_direct`).
        self._direct: dict[str, tuple[tuple[str, ...], tuple[Any, ...]]] = {}

    def register(self, hook: object, priority: int | str | None = None) -> None:
        """Add ``hook`` with ``priority`` (default: its ``priority`` attribute, else NORMAL).

        Raises:
            ValueError: When ``hook`` is already registered, or its priority is invalid.
            TypeError: When ``hook`` implements no lifecycle point.
        """
        if any(entry is hook for _, _, entry in self._entries):
            raise ValueError(f"hook {hook!r} is registered twice")
        if not implemented_points(hook, POINTS) and not has_lifecycle_hookimpls(hook):
            raise TypeError(
                f"{type(hook).__name__} implements no lifecycle point; a hook overrides at least "
                f"one of: {', '.join(POINTS)}"
            )
        value = priority if priority is not None else getattr(hook, "priority", "NORMAL")
        number = get_priority(value)
        if isinstance(hook, Hook):
            hook.priority = value  # MMEngine keeps the resolved priority on the hook
        self._entries.append((number, self._next_index, hook))
        self._next_index += 1
        self._reregister()

    def call(self, name: str, kwargs: dict[str, Any]) -> None:
        """Call every implementation of the lifecycle point ``name`` with ``kwargs``.

        Raises:
            TypeError: When ``kwargs`` lacks an argument an implementation takes.
        """
        direct = self._direct.get(name)
        if direct is not None and self._pm._inner_hookexec is _DEFAULT_EXEC:
            # Every implementation takes every argument of the point, in the spec's order:
            # positional calls, without a keyword dict per implementation.
            order, functions = direct
            try:
                args = tuple(map(kwargs.__getitem__, order))
            except KeyError:  # an argument with a default left out: by keyword
                for function in functions:
                    function(**kwargs)
                return
            for function in functions:
                function(*args)
            return
        if self._pm._inner_hookexec is not _DEFAULT_EXEC:
            getattr(self.hook, name)(**kwargs)
            return
        try:
            plan = self._plans[name]
        except KeyError:
            plan = self._plans[name] = self._plan(name)
            self._note_direct(name, plan)
        if plan is None:
            getattr(self.hook, name)(**kwargs)
            return
        for function, argnames, kwargnames in plan:
            if argnames is None:  # takes every argument of the point: pass them as they are
                function(**kwargs)
                continue
            # pluggy's calling convention: required arguments by position, arguments with a
            # default by keyword when the caller gave them.
            try:
                required = [kwargs[argname] for argname in argnames]
            except KeyError as exc:
                raise TypeError(
                    f"hook point {name!r} called without the argument {exc.args[0]!r}, which "
                    f"{getattr(function, '__qualname__', function)!r} takes"
                ) from None
            if kwargnames:
                function(*required, **{k: kwargs[k] for k in kwargnames if k in kwargs})
            else:
                function(*required)

    def _note_direct(self, name: str, plan: _Plan | None) -> None:
        """Keep ``(spec order, functions)`` for ``name`` when every implementation takes every
        argument of the spec as its parameters in the spec's order (MMEngine's Hook methods)."""
        spec = getattr(self.hook, name).spec
        if plan is None or spec is None:
            return
        order = tuple(spec.argnames) + tuple(spec.kwargnames)
        for function, argnames, _ in plan:
            impl_order = _parameter_order(function)
            if argnames is not None or impl_order != order:
                return
        self._direct[name] = (order, tuple(function for function, _, _ in plan))

    def _plan(self, name: str) -> _Plan | None:
        """The (function, argnames) pluggy would call for ``name``, in its order; None when the
        point needs pluggy itself (a wrapper among the implementations)."""
        caller = getattr(self.hook, name)
        impls = caller.get_hookimpls()
        if any(impl.wrapper or impl.hookwrapper for impl in impls):
            return None
        spec = caller.spec
        spec_args = set(spec.argnames) | set(spec.kwargnames) if spec is not None else None
        plan: list[tuple[Any, tuple[str, ...] | None, tuple[str, ...]]] = []
        for impl in reversed(impls):
            takes = set(impl.argnames) | set(impl.kwargnames)
            if takes == spec_args:
                plan.append((impl.function, None, ()))
            else:
                plan.append((impl.function, tuple(impl.argnames), tuple(impl.kwargnames)))
        return tuple(plan)

    def _reregister(self) -> None:
        self._plans.clear()
        self._direct.clear()
        for _, _, hook in self._entries:
            if self._pm.is_registered(hook):
                self._pm.unregister(hook)
        for _, index, hook in sorted(self._entries, reverse=True, key=lambda e: e[:2]):
            self._pm.register(hook, name=f"{type(hook).__name__}#{index}")

    @property
    def hooks(self) -> list[object]:
        """The hooks in call order."""
        return [hook for _, _, hook in sorted(self._entries, key=lambda e: e[:2])]

    def priorities(self) -> list[tuple[int, object]]:
        """``(priority, hook)`` in call order."""
        return [(number, hook) for number, _, hook in sorted(self._entries, key=lambda e: e[:2])]


def _parameter_order(function: Any) -> tuple[str, ...] | None:
    """The names of ``function``'s parameters that can be given by position (``self`` of a
    bound method excluded); None when it has ``*args``/``**kwargs`` or is not introspectable."""
    import inspect

    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return None
    names = []
    for parameter in parameters:
        if parameter.kind not in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            return None
        names.append(parameter.name)
    return tuple(names)


def has_lifecycle_hookimpls(obj: object) -> bool:
    """Whether ``obj`` (a module, class or instance) has ``@hookimpl`` lifecycle functions."""
    return any(
        getattr(getattr(obj, name, None), "treadle_impl", None) is not None
        for name in LIFECYCLE_HOOKS
    )

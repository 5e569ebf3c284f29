"""The Runner's plugin manager: lifecycle hooks called through pluggy in MMEngine's order.

Each Runner owns one :class:`RunnerHookManager`. It accepts three kinds of hook:

- :class:`~treadle.core.hooks.Hook` subclasses written the MMEngine way: exactly the points the
  subclass overrides become hook implementations (see
  :func:`~treadle.core.hooks.hook.implemented_points`), so the base class registers nothing;
- any object or module with ``@hookimpl``-decorated lifecycle functions (discovered plugins too);
- both carry a priority: the ``priority`` attribute, a name or a number (``NORMAL`` by default).

pluggy calls the implementation registered last first, so hooks are (re-)registered in descending
``(priority, insertion index)`` order: the call order is ascending priority, first come first among
equals, for ``before_*`` and ``after_*`` points alike (MMEngine's rule). :meth:`RunnerHookManager.
register` only records the hook; pluggy is brought up to date (every hook re-registered once) the
next time it is read, so that registering ``n`` hooks costs ``n`` pluggy registrations, not
``n²/2``.

:meth:`RunnerHookManager.call` is the hot path (twice per training iteration). pluggy stays the
registry: it validates implementations and orders them. While its default executor is in place
and no implementation is a wrapper, ``call`` runs the very implementations pluggy would run, in
pluggy's order, without ``HookCaller.__call__``'s per-call bookkeeping (about 1 µs per call plus
0.5 µs per implementation). With tracing (``TREADLE_TRACE_HOOKS``), call monitoring or a wrapper,
every call goes through pluggy itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import pluggy

from treadle.core.hooks.hook import POINTS, Hook, get_priority, implemented_points
from treadle.core.hookspecs import LIFECYCLE_HOOKS
from treadle.core.plugins import new_plugin_manager

if TYPE_CHECKING:
    from collections.abc import Collection

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


class _Positional(NamedTuple):
    """A plan whose implementations all take the spec's arguments in the spec's order."""

    order: tuple[str, ...]
    functions: tuple[Any, ...]


class _Manager(pluggy.PluginManager):
    """Treats a Hook subclass's overridden lifecycle methods as implementations, and tells its
    :class:`RunnerHookManager` when call monitoring (tracing) starts or stops."""

    _on_monitoring_change: Any = None

    def add_hookcall_monitoring(self, before: Any, after: Any) -> Any:
        undo = super().add_hookcall_monitoring(before, after)
        self._monitoring_changed()

        def undo_and_tell() -> None:
            undo()
            self._monitoring_changed()

        return undo_and_tell

    def _monitoring_changed(self) -> None:
        if self._on_monitoring_change is not None:
            self._on_monitoring_change()

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


def _defined_in(cls: type, name: str) -> type | None:
    """The class of ``cls``'s MRO whose own namespace holds ``name``."""
    return next((klass for klass in cls.__mro__ if name in vars(klass)), None)


def _speaks_for(owner: object, function: Any) -> bool:
    """Whether ``owner``'s ``idle_points`` was written with ``function`` (its bound method) in
    view: defined in the class that defines ``function`` or in a subclass of it. A subclass that
    overrides a point's method but not ``idle_points`` is called there regardless."""
    idle_cls = _defined_in(type(owner), "idle_points")
    impl_cls = _defined_in(type(owner), getattr(function, "__name__", ""))
    return idle_cls is None or impl_cls is None or issubclass(idle_cls, impl_cls)


def _busy(
    functions: tuple[Any, ...], point: str, runner: Any, idle: dict[int, Collection[str]]
) -> tuple[Any, ...]:
    """``functions`` but the methods of hooks whose ``idle_points(runner)`` name ``point``."""
    kept = []
    for function in functions:
        owner = getattr(function, "__self__", None)
        ask = getattr(owner, "idle_points", None)
        if ask is not None and _speaks_for(owner, function):
            points = idle.get(id(owner))
            if points is None:
                points = idle[id(owner)] = ask(runner)
            if point in points:
                continue
        kept.append(function)
    return tuple(kept)


class RunnerHookManager:
    """The hooks of one Runner, called in priority order.

    Attributes:
        hook: pluggy's hook relay: ``manager.hook.after_train_iter(runner=…, …)``.
    """

    def __init__(self) -> None:
        self._pluggy: pluggy.PluginManager = new_plugin_manager(_Manager)
        self._entries: list[tuple[int, int, object]] = []  # (priority, index, hook)
        self._next_index = 0
        #: Whether hooks were registered since pluggy was last brought up to date.
        self._dirty = False
        self._plans: dict[str, _Positional | _Plan | None] = {}
        #: What the train loops call at ``before_train_iter`` and ``after_train_iter``: the
        #: ``(before, after)`` functions of :meth:`train_iter_functions`, ``False`` when those
        #: points must go through :meth:`call`, ``None`` until :meth:`train_iter_functions`
        #: decides. Reset when a hook is registered, when call monitoring (tracing) starts or
        #: stops, and at the start of each training epoch (:meth:`forget_train_iter_plan`).
        self.train_iter_plan: tuple[tuple[Any, ...], tuple[Any, ...]] | Literal[False] | None = None
        self._pluggy._on_monitoring_change = self.forget_train_iter_plan

    def register(self, hook: object, priority: int | str | None = None) -> None:
        """Add ``hook`` with ``priority`` (default: its ``priority`` attribute, else NORMAL).

        pluggy takes (and validates) the hook when it is next read: at the next hook call, or
        through :attr:`hook`.

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
        # pluggy is re-registered when next read (sync); the plans built from it are stale now.
        self._dirty = True
        self._plans.clear()
        self.forget_train_iter_plan()

    @property
    def _pm(self) -> pluggy.PluginManager:
        """The pluggy manager, with every registered hook in it."""
        self.sync()
        return self._pluggy

    @property
    def hook(self) -> Any:
        """pluggy's hook relay (every registered hook in it)."""
        self.sync()
        return self._pluggy.hook

    def sync(self) -> None:
        """Bring pluggy up to date with the hooks registered since it was last read."""
        if self._dirty:
            self._reregister()

    def call(self, name: str, kwargs: dict[str, Any]) -> None:
        """Call every implementation of the lifecycle point ``name`` with ``kwargs``.

        Raises:
            TypeError: When ``kwargs`` lacks an argument an implementation takes.
        """
        if self._pluggy._inner_hookexec is not _DEFAULT_EXEC:
            getattr(self.hook, name)(**kwargs)
            return
        plan = self._cached_plan(name)
        if plan is None:
            getattr(self.hook, name)(**kwargs)
            return
        if isinstance(plan, _Positional):
            # Every implementation takes the spec's arguments in the spec's order: positional
            # calls, without a keyword dict per implementation.
            try:
                args = tuple(map(kwargs.__getitem__, plan.order))
            except KeyError:  # an argument with a default left out: by keyword
                for function in plan.functions:
                    function(**kwargs)
                return
            for function in plan.functions:
                function(*args)
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

    def train_iter_functions(self, runner: Any) -> tuple[tuple[Any, ...], tuple[Any, ...]] | None:
        """``(before, after)``: the implementations of ``before_train_iter`` and
        ``after_train_iter`` for the train loops to call by position, in the spec's argument
        order, without a :meth:`call` per point; kept in :attr:`train_iter_plan`.

        A hook's implementation is left out when the hook's ``idle_points(runner)`` (see
        :meth:`Hook.idle_points <treadle.core.hooks.Hook.idle_points>`) names that point.

        None when either point must go through :meth:`call` (pluggy tracing or monitoring, a
        wrapper, or an implementation that takes other arguments).
        """
        if self._pluggy._inner_hookexec is not _DEFAULT_EXEC:
            self.train_iter_plan = False
            return None
        before, after = (
            self._cached_plan("before_train_iter"),
            self._cached_plan("after_train_iter"),
        )
        if not (isinstance(before, _Positional) and isinstance(after, _Positional)):
            self.train_iter_plan = False
            return None
        idle: dict[int, Collection[str]] = {}  # per hook object, asked once
        functions = (
            _busy(before.functions, "before_train_iter", runner, idle),
            _busy(after.functions, "after_train_iter", runner, idle),
        )
        self.train_iter_plan = functions
        return functions

    def forget_train_iter_plan(self) -> None:
        """Forget :attr:`train_iter_plan`: it is decided again (hooks asked for their idle
        points again) at the next training iteration. The train loops call this at each
        epoch's start."""
        self.train_iter_plan = None

    def _cached_plan(self, name: str) -> _Positional | _Plan | None:
        try:
            return self._plans[name]
        except KeyError:
            plan = self._plans[name] = self._plan(name)
            return plan

    def _plan(self, name: str) -> _Positional | _Plan | None:
        """The implementations pluggy would call for ``name``, in its order: a
        :class:`_Positional` plan when all take the spec's arguments in its order (MMEngine's
        Hook methods), else ``(function, argnames, kwargnames)`` triples; None when the point
        needs pluggy itself (a wrapper among the implementations)."""
        caller = getattr(self.hook, name)
        impls = caller.get_hookimpls()
        if any(impl.wrapper or impl.hookwrapper for impl in impls):
            return None
        spec = caller.spec
        if spec is not None:
            order = tuple(spec.argnames) + tuple(spec.kwargnames)
            if all(tuple(impl.argnames) + tuple(impl.kwargnames) == order for impl in impls):
                return _Positional(order, tuple(impl.function for impl in reversed(impls)))
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
        """Register every hook with pluggy again, in descending ``(priority, index)`` order.

        Raises:
            pluggy.PluginValidationError: A hook's implementations do not match the hook
                specifications. That hook is dropped (the others are registered at the next
                read), so the manager stays usable, e.g. for ``on_exception``.
        """
        self._dirty = False
        self._plans.clear()
        self.forget_train_iter_plan()
        pm = self._pluggy
        for _, _, hook in self._entries:
            if pm.is_registered(hook):
                pm.unregister(hook)
        for _, index, hook in sorted(self._entries, reverse=True, key=lambda e: e[:2]):
            try:
                pm.register(hook, name=f"{type(hook).__name__}#{index}")
            except Exception:
                self._entries = [entry for entry in self._entries if entry[2] is not hook]
                self._dirty = True
                raise

    @property
    def hooks(self) -> list[object]:
        """The hooks in call order."""
        return [hook for _, _, hook in sorted(self._entries, key=lambda e: e[:2])]

    def priorities(self) -> list[tuple[int, object]]:
        """``(priority, hook)`` in call order."""
        return [(number, hook) for number, _, hook in sorted(self._entries, key=lambda e: e[:2])]


def has_lifecycle_hookimpls(obj: object) -> bool:
    """Whether ``obj`` (a module, class or instance) has ``@hookimpl`` lifecycle functions."""
    return any(
        getattr(getattr(obj, name, None), "treadle_impl", None) is not None
        for name in LIFECYCLE_HOOKS
    )

"""Plugin discovery: the process-level plugin manager.

Plugins are Python distributions that declare an entry point in the ``treadle.plugins`` group::

    [project.entry-points."treadle.plugins"]
    logger-wandb = "treadle.logger.wandb.plugin"

The target is a module (or any object) with :data:`~treadle.core.hookspecs.hookimpl`-decorated
functions. :func:`load_plugins` scans the group once per process, imports each target defensively
and registers it with one :class:`pluggy.PluginManager`; the built-in plugin
(``treadle.core._builtin``) goes through the same hooks first. A plugin that fails to import, or whose
registration hook raises, is recorded with its distribution, version and an install hint, reported
once on the ``treadle`` logger, and skipped; the error surfaces again only when a config asks for a
component the registries do not have (see :func:`describe_failures`).

Environment switches:

- ``TREADLE_DISABLE_PLUGIN_AUTOLOAD=1``: do not scan entry points (the built-in plugin still loads).
- ``TREADLE_DISABLED_PLUGINS=a,b``: skip these plugins, by entry point or distribution name.
- ``TREADLE_TRACE_HOOKS=1``: print every hook call and its result to stderr.

Each Runner builds its own manager with :func:`new_plugin_manager`; this module's manager is only for
process-level discovery and the registration hooks.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, overload

import pluggy

from treadle.core import hookspecs

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

    from treadle.core.registry import Registry

__all__ = [
    "BUILTIN_PLUGIN_NAME",
    "ENTRY_POINT_GROUP",
    "PluginInfo",
    "describe_failures",
    "list_plugins",
    "load_plugins",
    "loaded_plugins",
    "new_plugin_manager",
    "register_plugin",
]

ENTRY_POINT_GROUP = "treadle.plugins"
BUILTIN_PLUGIN_NAME = "builtin"
_BUILTIN_MODULE = "treadle.core._builtin"

_TRUE = {"1", "true", "yes", "on"}

logger = logging.getLogger("treadle.plugins")


@dataclass
class PluginInfo:
    """What discovery found out about one plugin.

    Attributes:
        name: The entry point name (``logger-wandb``), or ``builtin`` for core's own plugin.
        target: What the entry point points at (``treadle.logger.wandb.plugin``).
        distribution: The distribution that declared it, when known.
        version: That distribution's version, when known.
        status: ``loaded``, ``failed``, ``disabled`` or ``duplicate``.
        error: One line saying what went wrong, for ``failed`` and ``duplicate``.
        hint: What to do about it, for ``failed``.
        components: What the plugin registered, by registry name (only root registries are seen).
    """

    name: str
    target: str
    distribution: str | None = None
    version: str | None = None
    status: str = "loaded"
    error: str | None = None
    hint: str | None = None
    components: dict[str, list[str]] = field(default_factory=dict)
    exception: BaseException | None = field(default=None, repr=False, compare=False)

    def describe(self) -> str:
        """Return a one-line description: name, distribution, version, status and error."""
        dist = f"{self.distribution} {self.version}" if self.distribution else self.target
        text = f"{self.name} ({dist}): {self.status}"
        if self.error:
            text += f": {self.error}"
        if self.hint:
            text += f". {self.hint}"
        return text


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def _env_list(name: str) -> set[str]:
    return {part.strip() for part in os.environ.get(name, "").split(",") if part.strip()}


def _trace_writer(message: str) -> None:
    sys.stderr.write(f"[treadle hooks] {message}")


_PM = TypeVar("_PM", bound=pluggy.PluginManager)


@overload
def new_plugin_manager() -> pluggy.PluginManager: ...


@overload
def new_plugin_manager(manager_class: type[_PM]) -> _PM: ...


def new_plugin_manager(manager_class: type[Any] = pluggy.PluginManager) -> Any:
    """Return a fresh plugin manager that knows treadle's hook specifications.

    Tracing is switched on when ``TREADLE_TRACE_HOOKS`` is set. Runners build theirs with this.

    Args:
        manager_class: The class to instantiate, a :class:`pluggy.PluginManager` subclass.
    """
    pm = manager_class(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    if _env_flag("TREADLE_TRACE_HOOKS"):
        pm.trace.root.setwriter(_trace_writer)
        pm.enable_tracing()
    return pm


class _ProcessPlugins:
    """The process-level manager and what discovery recorded."""

    def __init__(self) -> None:
        self.manager = new_plugin_manager()
        self.infos: dict[str, PluginInfo] = {}


_state: _ProcessPlugins | None = None
_lock = threading.RLock()


def _root_registries() -> list[tuple[str, Registry]]:
    from treadle.core.registry import REGISTRIES

    return list(REGISTRIES)


def _snapshot(registries: list[tuple[str, Registry]]) -> dict[str, set[str]]:
    return {name: set(reg.keys()) for name, reg in registries}


def _diff(
    before: dict[str, set[str]], registries: list[tuple[str, Registry]]
) -> dict[str, list[str]]:
    added: dict[str, list[str]] = {}
    for name, reg in registries:
        new = set(reg.keys()) - before[name]
        if new:
            added[name] = sorted(new)
    return added


def _install_hint(info: PluginInfo, exc: BaseException) -> str:
    missing = getattr(exc, "name", None) if isinstance(exc, ImportError) else None
    dist = info.distribution or info.name
    if missing and not (info.target == missing or info.target.startswith(missing + ".")):
        return (
            f"it needs the module {missing!r}, which is not installed: "
            f"`pip install --upgrade {dist}` installs its dependencies, or set "
            f"TREADLE_DISABLED_PLUGINS={info.name} to silence this"
        )
    if isinstance(exc, ImportError):
        return (
            f"the distribution looks broken or half-installed: `pip install --force-reinstall "
            f"{dist}`, or set TREADLE_DISABLED_PLUGINS={info.name} to silence this"
        )
    return (
        f"report it to the maintainers of {dist}, or set TREADLE_DISABLED_PLUGINS={info.name} "
        "to skip it"
    )


def _register(
    state: _ProcessPlugins,
    info: PluginInfo,
    plugin: object,
    registries: list[tuple[str, Registry]],
) -> None:
    """Register ``plugin``; its historic ``register_components`` runs during ``register``."""
    before = _snapshot(registries)
    try:
        state.manager.register(plugin, name=info.name)
    except Exception as exc:
        # Undo what the plugin registered before it failed, so no half-registered plugin remains.
        if state.manager.is_registered(plugin):
            state.manager.unregister(plugin)
        for reg_name, reg in registries:
            for key in set(reg.keys()) - before[reg_name]:
                reg.unregister(key)
        _record_failure(info, exc, "its register_components hook raised")
        return
    info.components = _diff(before, registries)


def _record_failure(info: PluginInfo, exc: BaseException, what: str) -> None:
    info.status = "failed"
    info.exception = exc
    info.error = f"{what}: {type(exc).__name__}: {exc}"
    info.hint = _install_hint(info, exc)
    logger.warning("treadle plugin %s", info.describe())


def _entry_points() -> list[EntryPoint]:
    from importlib.metadata import entry_points

    return sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)


def _load_entry_point(
    state: _ProcessPlugins,
    ep: EntryPoint,
    disabled: set[str],
    registries: list[tuple[str, Registry]],
) -> None:
    dist = ep.dist
    info = PluginInfo(
        name=ep.name,
        target=ep.value,
        distribution=dist.name if dist is not None else None,
        version=dist.version if dist is not None else None,
    )
    known = state.infos.get(ep.name)
    if known is not None:
        if known.distribution != info.distribution or known.target != info.target:
            info.status = "duplicate"
            info.error = (
                f"the name {ep.name!r} is already taken by {known.distribution or known.target}; "
                "this one is ignored"
            )
            logger.warning("treadle plugin %s", info.describe())
            state.infos[f"{ep.name} ({info.distribution})"] = info
        return
    state.infos[ep.name] = info
    if ep.name in disabled or (info.distribution and info.distribution in disabled):
        info.status = "disabled"
        return
    try:
        plugin = ep.load()
    except Exception as exc:
        _record_failure(info, exc, f"importing {ep.value!r} failed")
        return
    _register(state, info, plugin, registries)


def load_plugins() -> pluggy.PluginManager:
    """Discover and register every plugin, once per process.

    Cheap after the first call. The registries call it on their first lookup; the CLI and the
    Runner call it explicitly.

    Returns:
        The process-level plugin manager.
    """
    global _state
    state = _state
    if state is not None:
        return state.manager
    with _lock:
        if _state is not None:
            return _state.manager
        state = _ProcessPlugins()
        _state = state  # set first: registry lookups made by plugins must not recurse into here
        from treadle.core.registry import REGISTRIES

        registries = list(REGISTRIES)
        # Historic call first, with no plugin yet: every plugin registered from now on gets its
        # register_components call at registration, one plugin at a time.
        state.manager.hook.register_components.call_historic(kwargs={"registries": REGISTRIES})

        import importlib

        builtin = PluginInfo(
            name=BUILTIN_PLUGIN_NAME,
            target=_BUILTIN_MODULE,
            distribution="treadle-core",
            version=_core_version(),
        )
        state.infos[BUILTIN_PLUGIN_NAME] = builtin
        _register(state, builtin, importlib.import_module(_BUILTIN_MODULE), registries)
        if builtin.status == "failed":  # a bug in core itself: never hide it
            raise RuntimeError(f"treadle's built-in plugin failed: {builtin.error}") from (
                builtin.exception
            )

        if not _env_flag("TREADLE_DISABLE_PLUGIN_AUTOLOAD"):
            disabled = _env_list("TREADLE_DISABLED_PLUGINS")
            for ep in _entry_points():
                _load_entry_point(state, ep, disabled, registries)
        return state.manager


def _core_version() -> str:
    from treadle.core.version import __version__

    return __version__


def register_plugin(plugin: Any, name: str | None = None) -> PluginInfo:
    """Register a plugin object by hand (a module or an object with hook implementations).

    Its ``register_components`` hook runs at once (the hook is historic). Unlike discovery, a
    failure here raises: the caller asked for this plugin explicitly.

    Args:
        plugin: The plugin: a module, class or instance with ``hookimpl``-decorated functions.
        name: Its name; defaults to the module's or the class's name.

    Returns:
        What was recorded about it.

    Raises:
        ValueError: When a plugin of that name is already registered.
    """
    load_plugins()
    assert _state is not None
    plugin_name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
    with _lock:
        if plugin_name in _state.infos and _state.infos[plugin_name].status == "loaded":
            raise ValueError(f"a treadle plugin named {plugin_name!r} is already registered")
        info = PluginInfo(name=plugin_name, target=getattr(plugin, "__name__", repr(plugin)))
        _state.infos[plugin_name] = info
        _register(_state, info, plugin, _root_registries())
        if info.status == "failed":
            raise RuntimeError(f"treadle plugin {info.describe()}") from info.exception
        return info


def loaded_plugins() -> list[tuple[str, object]]:
    """Return ``(name, plugin)`` for every loaded plugin, the built-in one first."""
    pm = load_plugins()
    return [(name, plugin) for name, plugin in pm.list_name_plugin() if plugin is not None]


def list_plugins() -> list[PluginInfo]:
    """Return what discovery recorded about every plugin, the built-in one first."""
    load_plugins()
    assert _state is not None
    return list(_state.infos.values())


def describe_failures() -> str:
    """Return a message listing the plugins that failed to load, or ``""`` when none did.

    The registries append it to their "not in the registry" errors, since a missing component
    is often provided by a plugin that could not be imported.
    """
    if _state is None:
        return ""
    failed = [info for info in _state.infos.values() if info.status == "failed"]
    if not failed:
        return ""
    lines = "\n".join(f"  - {info.describe()}" for info in failed)
    return f"These treadle plugins failed to load and may provide it:\n{lines}"

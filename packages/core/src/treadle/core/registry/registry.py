"""The :class:`Registry`: names mapped to classes and functions, built from config dicts.

MMEngine 0.10.7 semantics, so that OpenMMLab code and configs work unchanged:

- A registry has a ``scope`` (by default the top-level package of the module that creates it,
  e.g. ``mmdet``) and may have a ``parent``; children are found by scope.
- ``get("Name")`` searches the registry, then its parents. ``get("scope.Name")`` searches the
  registry itself when ``scope`` is its own, else its direct child of that scope, else (when the
  scope is the root's or one of the root's direct children) the root with the full key. A key
  that is none of these but a dotted import path (``"torch.nn.Linear"``) is imported.
- ``build`` goes through ``build_func`` (:func:`~treadle.core.registry.build_from_cfg`), which
  honours ``_scope_`` in the config and the process-wide
  :class:`~treadle.core.registry.DefaultScope`; those search the *whole* tree (depth first) for a
  registry of that scope.

treadle's own root registries have the scope ``"treadle"``. ``"mmengine"`` is another spelling of
it (:data:`SCOPE_ALIASES`): ``type="mmengine.Foo"``, ``_scope_="mmengine"`` and
``default_scope="mmengine"`` all mean the root registries, and a registry created with (or inferring)
the scope ``"mmengine"`` gets the scope ``"treadle"``.

What treadle adds:

- Lazy entries (:meth:`Registry.register_lazy`): a name mapped to ``"pkg.module:Attr"``, imported on
  first ``get``/``build`` and then cached like any entry. ``in``, ``len`` and :meth:`Registry.keys`
  never import them; :attr:`Registry.module_dict` imports them all.
- Import failures are never hidden: a lazy target or a ``locations`` module that fails to import
  raises :class:`ImportError` chained to the original error, naming the registry, the key and the
  target. (MMEngine lets ``locations`` errors through unexplained, and logs other failures at
  debug level.)
- A missing type raises :class:`RegistryKeyError` saying where it looked, what names are close,
  where else the name exists, and what to try.
- The first lookup in the process loads the plugins (:func:`treadle.core.plugins.load_plugins`).
"""

from __future__ import annotations

import importlib
import sys
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from treadle.core.registry.default_scope import DefaultScope

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, KeysView, Sequence
    from types import FrameType

__all__ = ["ROOT_SCOPE", "SCOPE_ALIASES", "Registry", "RegistryKeyError"]

#: The scope of treadle's root registries.
ROOT_SCOPE = "treadle"

#: Other spellings of scopes. ``"mmengine"`` (what OpenMMLab configs and code say) means the root.
SCOPE_ALIASES: dict[str, str] = {"mmengine": ROOT_SCOPE}

#: pip distributions of OpenMMLab scopes whose name differs from, or is, the scope (for hints).
_SCOPE_TO_DISTRIBUTION: dict[str, str] = {
    "mmcls": "mmcls",
    "mmdet": "mmdet",
    "mmdet3d": "mmdet3d",
    "mmseg": "mmsegmentation",
    "mmaction": "mmaction2",
    "mmtrack": "mmtrack",
    "mmpose": "mmpose",
    "mmedit": "mmedit",
    "mmocr": "mmocr",
    "mmgen": "mmgen",
    "mmfewshot": "mmfewshot",
    "mmrazor": "mmrazor",
    "mmflow": "mmflow",
    "mmhuman3d": "mmhuman3d",
    "mmrotate": "mmrotate",
    "mmselfsup": "mmselfsup",
    "mmyolo": "mmyolo",
    "mmpretrain": "mmpretrain",
    "mmagic": "mmagic",
}

_F = TypeVar("_F", bound="Callable[..., Any]")

# ---------------------------------------------------------------------------------------------
# Process-wide state
# ---------------------------------------------------------------------------------------------

# Plugins load on the first lookup in the process. `_plugins_done` is read on every get() (one
# global load); `_plugins_started` stops recursion when a plugin looks something up while loading.
_plugins_done = False
_plugins_started = False
_plugins_lock = threading.RLock()

# Scopes whose `<scope>.registry` module get()/build() already tried to import (once per process).
_scope_imports_tried: set[str] = set()


def _load_plugins_once() -> None:
    global _plugins_done, _plugins_started
    with _plugins_lock:  # other threads wait here until the plugins are in
        if _plugins_started:
            return
        _plugins_started = True
        try:
            from treadle.core.plugins import load_plugins

            load_plugins()
        finally:
            _plugins_done = True


def _normalize_scope(scope: str) -> str:
    return SCOPE_ALIASES.get(scope, scope)


def _import_scope_registry(scope: str) -> None:
    """Import ``<scope>.registry`` so that the scope's registries join the tree (as MMEngine).

    Tried once per scope and process. A failure is not raised here: the lookup may still succeed.
    When it does not, the error message imports it again to say why (see ``_scope_import_error``).
    """
    _scope_imports_tried.add(scope)
    if scope == ROOT_SCOPE or not scope.isidentifier():
        return
    try:
        importlib.import_module(f"{scope}.registry")
    except (ImportError, AttributeError):
        pass


def _scope_import_error(scope: str) -> BaseException | None:
    """Import ``<scope>.registry`` again and return the error, ``None`` when it imports."""
    if scope == ROOT_SCOPE or not scope.isidentifier():
        return None
    try:
        importlib.import_module(f"{scope}.registry")
    except Exception as exc:
        return exc
    return None


def _object_from_dotted(key: str) -> Any:
    """Return the object at the import path ``key`` (``"torch.nn.Linear"``), ``None`` if absent.

    MMEngine's fallback for keys such as ``"mmengine.model.BaseModel"`` that lazy-import configs
    dump. Modules are imported one level at a time; a module attribute that is not itself a module
    wins over a submodule of the same name. Errors other than ImportError while importing raise.
    """
    obj, failure = _import_dotted(key)
    if failure is not None and not isinstance(failure, (ImportError, AttributeError)):
        raise RuntimeError(f"Failed to get {key}: {type(failure).__name__}: {failure}") from failure
    return obj


def _import_dotted(key: str) -> tuple[Any, BaseException | None]:
    parts = key.split(".")
    try:
        obj: Any = importlib.import_module(parts[0])
    except Exception as exc:
        return None, exc
    module_name = parts[0]
    index = 1
    # Descend through modules while the next part is not a (non-module) attribute.
    while index < len(parts):
        attr = getattr(obj, parts[index], None)
        if attr is not None and not isinstance(attr, type(sys)):
            break
        module_name = f"{module_name}.{parts[index]}"
        try:
            obj = importlib.import_module(module_name)
        except Exception as exc:
            return None, exc
        index += 1
    for part in parts[index:]:
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            return None, exc
    return obj, None


def _where(obj: Any) -> str:
    """Where a registered object comes from, for messages."""
    if isinstance(obj, _LazyEntry):
        return f"lazy target {obj.target!r}"
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if module and qualname:
        return f"{module}.{qualname}"
    return repr(obj)


class RegistryKeyError(KeyError):
    """A :class:`KeyError` whose message prints as written (``KeyError`` quotes its message)."""

    def __str__(self) -> str:
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class _LazyEntry:
    """A registry entry not imported yet: ``target`` is ``"pkg.module:Attr"``."""

    __slots__ = ("attr", "module", "names", "target")

    def __init__(self, target: str, names: list[str]) -> None:
        self.target = target
        self.module, _, self.attr = target.partition(":")
        self.names = names

    def matches(self, obj: Any) -> bool:
        """Whether ``obj`` is plausibly what the target names (same name, related module).

        Used when a lazily registered module is imported and registers itself with a decorator,
        or when an object already registered eagerly is registered again lazily.
        """
        if getattr(obj, "__name__", None) != self.attr.rpartition(".")[2]:
            return False
        obj_module = getattr(obj, "__module__", None) or ""
        return (
            obj_module == self.module
            or obj_module.startswith(self.module + ".")
            or self.module.startswith(obj_module + ".")
        )

    def __repr__(self) -> str:
        return f"<lazy {self.target}>"


def _check_target(target: object) -> str:
    if not isinstance(target, str):
        raise TypeError(f'target must be a string "pkg.module:Attr", but got {target!r}')
    module, sep, attr = target.partition(":")
    ok = (
        sep == ":"
        and all(part.isidentifier() for part in module.split("."))
        and all(part.isidentifier() for part in attr.split("."))
    )
    if not ok:
        raise ValueError(
            f'lazy target must look like "pkg.module:Attr" (Attr may be dotted), got {target!r}'
        )
    return target


def _check_names(name: object, what: str) -> list[str] | None:
    if name is None:
        return None
    if isinstance(name, str):
        return [name]
    if isinstance(name, (list, tuple)) and all(isinstance(n, str) for n in name):
        return list(name)
    raise TypeError(f"{what} must be None, a str, or a sequence of str, but got {type(name)}")


class Registry:
    """A registry maps names to classes or functions, and builds objects from config dicts.

    Args:
        name: The registry's name (``"model"``), shown in messages.
        build_func: Builds an object from a config; called as
            ``build_func(cfg, *args, **kwargs, registry=self)``. Defaults to the parent's, or to
            :func:`~treadle.core.registry.build_from_cfg`.
        parent: The parent registry: names missing here are looked up there.
        scope: The scope, the key by which other registries reach this one. Defaults to the
            top-level package of the module that creates the registry (``mmdet`` for a registry
            created in ``mmdet.registry``). ``"mmengine"`` becomes ``"treadle"``.
        locations: Modules imported on the first lookup, so that the components they register are
            there without an explicit import.

    Examples:
        >>> MODELS = Registry("model", scope="toy")
        >>> @MODELS.register_module()
        ... class ResNet:
        ...     def __init__(self, depth: int) -> None:
        ...         self.depth = depth
        >>> MODELS.build(dict(type="ResNet", depth=50)).depth
        50
        >>> MODELS.register_lazy("Wandb", "treadle.logger.wandb.backend:WandbVisBackend")
    """

    # Bumped whenever any registry gains a child, so cached scope searches know to redo.
    _tree_version = 0

    def __init__(
        self,
        name: str,
        build_func: Callable[..., Any] | None = None,
        parent: Registry | None = None,
        scope: str | None = None,
        locations: Sequence[str] | None = None,
    ) -> None:
        from treadle.core.registry.build_functions import build_from_cfg

        if not isinstance(name, str):
            raise TypeError(f"name must be a str, but got {type(name)}")
        self._name = name
        self._module_dict: dict[str, Any] = {}
        self._children: dict[str, Registry] = {}
        self._locations: list[str] = list(locations or [])
        self._imported = not self._locations
        if scope is None:
            scope = self._infer_scope_from(sys._getframe(1))
        elif not isinstance(scope, str):
            raise TypeError(f"scope must be a str, but got {type(scope)}")
        self._scope = _normalize_scope(scope)
        # Scope searches from this registry when it is a root: scope -> registry (None: absent).
        self._scope_cache: dict[str, Registry | None] = {}
        self._scope_cache_version = -1
        self._warned_scopes: set[str] = set()

        self.parent: Registry | None = None
        if parent is not None:
            if not isinstance(parent, Registry):
                raise TypeError(f"parent must be a Registry, but got {type(parent)}")
            parent._add_child(self)
            self.parent = parent
        self._root: Registry = self if parent is None else parent._root

        self.build_func: Callable[..., Any]
        if build_func is not None:
            self.build_func = build_func
        elif parent is not None:
            self.build_func = parent.build_func
        else:
            self.build_func = build_from_cfg

    # -----------------------------------------------------------------------------------------
    # Scope
    # -----------------------------------------------------------------------------------------

    @staticmethod
    def _infer_scope_from(frame: FrameType | None) -> str:
        # Skip the __init__ of Registry subclasses that call super().__init__().
        while (
            frame is not None
            and frame.f_code.co_name == "__init__"
            and isinstance(frame.f_locals.get("self"), Registry)
        ):
            frame = frame.f_back
        module_name = frame.f_globals.get("__name__") if frame is not None else None
        if not isinstance(module_name, str) or not module_name:
            return ROOT_SCOPE
        return module_name.split(".", 1)[0]

    @staticmethod
    def infer_scope() -> str:
        """Return the top-level package of the module that calls this (the default scope).

        Returns:
            ``"mmdet"`` when called from ``mmdet.models.foo``; ``"treadle"`` when it cannot tell.
        """
        return _normalize_scope(Registry._infer_scope_from(sys._getframe(1)))

    @staticmethod
    def split_scope_key(key: str) -> tuple[str | None, str]:
        """Split ``"scope.Name"`` at the first dot.

        Returns:
            ``("mmdet", "ResNet")`` for ``"mmdet.ResNet"``; ``(None, "ResNet")`` for ``"ResNet"``.
        """
        index = key.find(".")
        if index == -1:
            return None, key
        return key[:index], key[index + 1 :]

    @property
    def name(self) -> str:
        """The registry's name."""
        return self._name

    @property
    def scope(self) -> str:
        """The registry's scope."""
        return self._scope

    @property
    def children(self) -> dict[str, Registry]:
        """Direct children, by scope."""
        return self._children

    @property
    def root(self) -> Registry:
        """The root of this registry's tree."""
        return self._root

    @property
    def locations(self) -> list[str]:
        """Modules imported on the first lookup."""
        return list(self._locations)

    def _get_root_registry(self) -> Registry:
        return self._root

    def _add_child(self, registry: Registry) -> None:
        if registry.scope in self._children:
            raise ValueError(
                f"the {self._scope}::{self._name} registry already has a child of scope "
                f"{registry.scope!r} ({self._children[registry.scope].name!r}); give the new "
                f"registry {registry.name!r} another scope"
            )
        self._children[registry.scope] = registry
        Registry._tree_version += 1

    def _search_child(self, scope: str) -> Registry | None:
        """Depth-first search of this registry and its descendants for ``scope``."""
        scope = _normalize_scope(scope)
        if self._scope == scope:
            return self
        for child in self._children.values():
            found = child._search_child(scope)
            if found is not None:
                return found
        return None

    def _registry_for_scope(self, scope_name: str) -> Registry:
        """The registry of ``scope_name`` in this tree; ``self`` when the tree has none."""
        scope = _normalize_scope(scope_name)
        if scope not in _scope_imports_tried:
            _import_scope_registry(scope)
        root = self._root
        if root._scope_cache_version != Registry._tree_version:
            root._scope_cache = {}
            root._scope_cache_version = Registry._tree_version
        try:
            found = root._scope_cache[scope]
        except KeyError:
            found = root._scope_cache[scope] = root._search_child(scope)
        if found is not None:
            return found
        if scope not in root._warned_scopes:
            root._warned_scopes.add(scope)
            import logging

            logging.getLogger("treadle.registry").warning(
                'No registry of scope "%s" in the "%s" registry tree; building from the %s::%s '
                "registry instead. Check the scope, and that the package defining it is "
                "installed and its registries imported.",
                scope_name,
                root.name,
                self._scope,
                self._name,
            )
        return self

    def _default_scope_registry(self) -> Registry:
        """The registry that ``build`` uses now: the default scope's in this tree, else self."""
        instances = DefaultScope._instance_dict
        if not instances:
            return self
        current: DefaultScope = next(reversed(instances.values()))
        return self._registry_for_scope(current.scope_name)

    @contextmanager
    def switch_scope_and_registry(self, scope: str | None) -> Iterator[Registry]:
        """Switch the default scope to ``scope`` for the block and yield its registry.

        The registry of the (new) default scope is searched for in the whole tree, depth first
        from the root. When there is no default scope, or no registry of that scope, this registry
        itself is yielded (the latter with a warning, once per scope).

        Args:
            scope: The scope to switch to; ``None`` keeps the current default scope.

        Yields:
            The registry to build from.
        """
        with DefaultScope.overwrite_default_scope(scope):
            yield self._default_scope_registry()

    # -----------------------------------------------------------------------------------------
    # Registration
    # -----------------------------------------------------------------------------------------

    def _register_module(
        self, module: Any, module_name: str | Sequence[str] | None = None, force: bool = False
    ) -> None:
        if not callable(module):
            raise TypeError(f"module must be Callable, but got {type(module)}")
        names = _check_names(module_name, "name")
        if names is None:
            names = [module.__name__]
        table = self._module_dict
        if not force:
            for name in names:
                existing = table.get(name)
                if existing is None or existing is module:
                    continue
                if isinstance(existing, _LazyEntry) and existing.matches(module):
                    continue  # the lazily registered module, imported and registering itself
                raise RegistryKeyError(
                    f"{name} is already registered in the {self._scope}::{self._name} registry "
                    f"at {_where(existing)}; pass force=True to replace it"
                )
        for name in names:
            table[name] = module

    def register_module(
        self,
        name: str | Sequence[str] | None = None,
        force: bool = False,
        module: Any = None,
    ) -> Any:
        """Register a class or function, as a decorator or as a call.

        Args:
            name: The name(s) to register under; a list gives aliases. Defaults to
                ``module.__name__``.
            force: Replace an existing entry of the same name instead of raising.
            module: The object to register now (call form). When ``None``, a decorator is
                returned.

        Returns:
            ``module`` in the call form, else a decorator that registers and returns its argument.

        Raises:
            KeyError: When a name is taken and ``force`` is false.
            TypeError: When ``module`` is not callable, or ``name``/``force`` have the wrong type.

        Examples:
            >>> @MODELS.register_module(name=["ResNet", "resnet"])
            ... class ResNet: ...
            >>> MODELS.register_module(module=ResNet, name="ResNetV1")
        """
        if not isinstance(force, bool):
            raise TypeError(f"force must be a boolean, but got {type(force)}")
        _check_names(name, "name")
        if module is not None:
            self._register_module(module, name, force)
            return module

        def _register(obj: _F) -> _F:
            self._register_module(obj, name, force)
            return obj

        return _register

    def register_lazy(self, name: str | Sequence[str], target: str, force: bool = False) -> None:
        """Register ``name`` for the object at ``target`` without importing it.

        The target is imported on the first ``get``/``build`` of the name and then cached like an
        ordinary entry. If the target module registers the object itself when imported (with
        :meth:`register_module`), that is not a conflict.

        Args:
            name: The name(s); a list gives aliases.
            target: ``"pkg.module:Attr"``; ``Attr`` may be dotted (``"pkg.mod:Outer.Inner"``).
            force: Replace an existing entry of the same name instead of raising.

        Raises:
            KeyError: When a name is taken (by something else) and ``force`` is false.
            ValueError: When ``target`` is not of the form ``"pkg.module:Attr"``.
        """
        if not isinstance(force, bool):
            raise TypeError(f"force must be a boolean, but got {type(force)}")
        names = _check_names(name, "name")
        if not names:
            raise TypeError("register_lazy needs at least one name")
        entry = _LazyEntry(_check_target(target), names)
        table = self._module_dict
        keep: set[str] = set()
        if not force:
            for n in names:
                existing = table.get(n)
                if existing is None:
                    continue
                if isinstance(existing, _LazyEntry):
                    if existing.target == entry.target:
                        keep.add(n)  # the same registration again
                        continue
                elif entry.matches(existing):
                    keep.add(n)  # already imported and registered eagerly
                    continue
                raise RegistryKeyError(
                    f"{n} is already registered in the {self._scope}::{self._name} registry at "
                    f"{_where(existing)}; pass force=True to replace it with {target!r}"
                )
        for n in names:
            if n not in keep:
                table[n] = entry

    def unregister(self, name: str) -> None:
        """Remove ``name`` from this registry.

        Raises:
            KeyError: When the name is not registered here.
        """
        try:
            del self._module_dict[name]
        except KeyError:
            raise RegistryKeyError(
                f"{name} is not in the {self._scope}::{self._name} registry"
            ) from None

    # -----------------------------------------------------------------------------------------
    # Lookup
    # -----------------------------------------------------------------------------------------

    def import_from_location(self) -> None:
        """Import this registry's ``locations`` (once; retried while an import fails).

        Raises:
            ImportError: When a location fails to import, chained to the original error.
        """
        if self._imported:
            return
        for location in self._locations:
            try:
                importlib.import_module(location)
            except Exception as exc:
                raise ImportError(
                    f"The {self._scope}::{self._name} registry could not import its location "
                    f"{location!r}: {type(exc).__name__}: {exc}. The components registered there "
                    "are unavailable until the import succeeds."
                ) from exc
        self._imported = True

    def _locate(self, key: str, trail: list[Registry] | None = None) -> tuple[Registry, str] | None:
        """Find the registry holding ``key`` (MMEngine's search order), without importing lazies.

        Args:
            key: ``"Name"`` or ``"scope.Name"``.
            trail: When given, every registry whose names were looked at is appended.

        Returns:
            The registry and the name inside it, or ``None``.
        """
        if not self._imported:
            self.import_from_location()
        index = key.find(".")
        if index == -1:
            scope = None
            real_key = key
        else:
            scope = _normalize_scope(key[:index])
            real_key = key[index + 1 :]
        if scope is None or scope == self._scope:
            if trail is not None:
                trail.append(self)
            if real_key in self._module_dict:
                return self, real_key
            if scope is None:
                parent = self.parent
                while parent is not None:
                    if not parent._imported:
                        parent.import_from_location()
                    if trail is not None:
                        trail.append(parent)
                    if real_key in parent._module_dict:
                        return parent, real_key
                    parent = parent.parent
            return None
        if scope not in _scope_imports_tried:
            _import_scope_registry(scope)
        child = self._children.get(scope)
        if child is not None:
            return child._locate(real_key, trail)
        root = self._root
        if scope == root._scope or scope in root._children:
            return root._locate(key, trail)
        return None

    def _resolve(self, name: str, entry: _LazyEntry) -> Any:
        """Import a lazy entry's target and store the object under all of the entry's names."""
        try:
            obj: Any = importlib.import_module(entry.module)
        except Exception as exc:
            missing = getattr(exc, "name", None) if isinstance(exc, ImportError) else None
            detail = f"{type(exc).__name__}: {exc}"
            if missing and missing != entry.module and not entry.module.startswith(missing + "."):
                detail += f" (the module {missing!r} it needs is not installed)"
            raise ImportError(
                f"The {self._scope}::{self._name} registry could not import {name!r} from its "
                f"lazy target {entry.target!r}: {detail}",
                name=entry.module,
            ) from exc
        try:
            for part in entry.attr.split("."):
                obj = getattr(obj, part)
        except AttributeError as exc:
            raise ImportError(
                f"The {self._scope}::{self._name} registry could not import {name!r} from its "
                f"lazy target {entry.target!r}: the module {entry.module!r} has no attribute "
                f"{entry.attr!r}",
                name=entry.module,
            ) from exc
        table = self._module_dict
        current = table.get(name)
        if current is not None and not isinstance(current, _LazyEntry):
            obj = current  # the import registered it eagerly (or someone forced a replacement)
        for alias in entry.names:
            if table.get(alias) is entry:
                table[alias] = obj
        return obj

    def get(self, key: str) -> Any:
        """Return the class or function registered as ``key``, or ``None`` when absent.

        ``key`` is ``"Name"`` (this registry, then its parents), ``"scope.Name"`` (see the module
        docstring for the search order) or a dotted import path (``"torch.nn.Linear"``).

        Args:
            key: The name to look up.

        Returns:
            The registered object, or ``None``.

        Raises:
            ImportError: When the entry is lazy and its target fails to import, or one of the
                ``locations`` searched fails to import (chained to the original error).
            TypeError: When ``key`` is not a string.
        """
        if not _plugins_done:
            _load_plugins_once()
        if not isinstance(key, str):
            raise TypeError(f"The key argument of `Registry.get` must be a str, got {type(key)}")
        if self._imported and "." not in key:  # fast path: a plain name found here
            obj = self._module_dict.get(key)
            if obj is not None:
                if type(obj) is _LazyEntry:
                    return self._resolve(key, obj)
                return obj
        found = self._locate(key)
        if found is not None:
            registry, name = found
            obj = registry._module_dict[name]
            if type(obj) is _LazyEntry:
                return registry._resolve(name, obj)
            return obj
        if "." in key:
            return _object_from_dotted(key)
        return None

    def __contains__(self, key: object) -> bool:
        """Whether ``key`` resolves to an entry (searched like :meth:`get`).

        Lazy targets are not imported, and dotted import paths are not tried.
        """
        if not _plugins_done:
            _load_plugins_once()
        return isinstance(key, str) and self._locate(key) is not None

    def __len__(self) -> int:
        """The number of names registered here (lazy ones included, parents excluded)."""
        return len(self._module_dict)

    def keys(self) -> KeysView[str]:
        """The names registered here, lazy ones included; imports nothing."""
        return self._module_dict.keys()

    def is_lazy(self, name: str) -> bool:
        """Whether ``name`` is registered here and its target not imported yet."""
        return isinstance(self._module_dict.get(name), _LazyEntry)

    @property
    def lazy_targets(self) -> dict[str, str]:
        """The names not imported yet, mapped to their ``"pkg.module:Attr"`` targets."""
        return {
            name: obj.target for name, obj in self._module_dict.items() if type(obj) is _LazyEntry
        }

    @property
    def module_dict(self) -> dict[str, Any]:
        """Names to objects. Reading it imports every lazy target (use :meth:`keys` to avoid it).

        Raises:
            ImportError: When a lazy target fails to import.
        """
        table = self._module_dict
        for name, obj in list(table.items()):
            # An alias of an entry resolved earlier in this loop is already an object.
            if isinstance(obj, _LazyEntry) and isinstance(table.get(name), _LazyEntry):
                self._resolve(name, obj)
        return self._module_dict

    # -----------------------------------------------------------------------------------------
    # Building
    # -----------------------------------------------------------------------------------------

    def build(self, cfg: Any, *args: Any, **kwargs: Any) -> Any:
        """Build an object from ``cfg`` with :attr:`build_func`.

        Args:
            cfg: A dict (or ConfigDict) with a ``type`` key.
            *args: Passed on to ``build_func``.
            **kwargs: Passed on to ``build_func`` (e.g. ``default_args``).

        Returns:
            The object built.
        """
        return self.build_func(cfg, *args, **kwargs, registry=self)

    # -----------------------------------------------------------------------------------------
    # Explaining failures
    # -----------------------------------------------------------------------------------------

    def _missing_key_error(self, key: str) -> RegistryKeyError:
        """The error for a ``type`` that :meth:`get` did not find, with its cause chained."""
        import difflib

        trail: list[Registry] = []
        try:
            self._locate(key, trail)
        except ImportError:  # pragma: no cover - get() raised it first
            pass
        scope, real_key = self.split_scope_key(key)
        scope = _normalize_scope(scope) if scope is not None else None
        cause: BaseException | None = None
        lines = [f"{key} is not in the {self._scope}::{self._name} registry."]

        searched = " -> ".join(f"{r.scope}::{r.name}" for r in trail)
        if searched:
            lines.append(f"  Searched: {searched}.")
        current = DefaultScope.get_current_instance()
        if current is not None:
            where = self._root._search_child(current.scope_name)
            if where is None:
                lines.append(
                    f"  Default scope: {current.scope_name!r}, but no registry of that scope is "
                    f"in the {self._root.name!r} registry tree, so {self._scope}::{self._name} "
                    "was used."
                )
            else:
                lines.append(f"  Default scope: {current.scope_name!r}.")

        # Close names among the registries searched.
        by_lower: dict[str, list[str]] = {}
        for registry in trail:
            for candidate in registry._module_dict:
                by_lower.setdefault(candidate.lower(), []).append(
                    candidate if registry is trail[0] else f"{registry.scope}.{candidate}"
                )
        close: list[str] = []
        for match in difflib.get_close_matches(real_key.lower(), list(by_lower), n=5, cutoff=0.6):
            close.extend(by_lower[match])
        if close:
            lines.append(f"  Close matches: {', '.join(close[:5])}.")

        # The same name elsewhere in the tree: say how to reach it from here.
        elsewhere = [r for r in _walk(self._root) if real_key in r._module_dict and r not in trail]
        if elsewhere:
            spots = ", ".join(f"{r.scope}::{r.name}" for r in elsewhere[:5])
            first = elsewhere[0].scope
            how = f"set _scope_='{first}' in the config"
            try:
                if self._locate(f"{first}.{real_key}") is not None:
                    how = f"write type='{first}.{real_key}' or {how}"
            except ImportError:  # pragma: no cover - a location of that registry is broken
                pass
            lines.append(f"  {real_key} is registered in {spots}: {how}.")

        hints: list[str] = []
        if scope is not None and scope != self._scope:
            holder = self._root._search_child(scope)
            if holder is None:
                error = _scope_import_error(scope)
                missing = getattr(error, "name", None) if isinstance(error, ImportError) else None
                known = ", ".join(sorted({r.scope for r in _walk(self._root)}))
                hint = (
                    f"No registry of scope {scope!r} is in the {self._root.name!r} registry tree "
                    f"(scopes: {known})."
                )
                if missing == scope:
                    dist = _SCOPE_TO_DISTRIBUTION.get(scope, scope)
                    hints.append(
                        f"{hint} The package {scope!r} is not installed: `pip install {dist}`."
                    )
                elif error is None:
                    hints.append(
                        f"{hint} {scope}.registry was imported but added none; are its registries "
                        "children of treadle's root registries?"
                    )
                elif missing != f"{scope}.registry":  # a registry module that fails to import
                    hints.append(
                        f"{hint} Importing {scope}.registry failed: {type(error).__name__}: {error}."
                    )
                    cause = error
            elif holder not in trail:
                hints.append(
                    f"The scope {scope!r} belongs to the {holder.scope}::{holder.name} registry, "
                    "which a 'scope.Name' key reaches only from its parent or when it is a direct "
                    f"child of the root; set _scope_={scope!r} in the config instead."
                )
        if "." in key:
            _obj, failure = _import_dotted(key)
            missing = getattr(failure, "name", None) if isinstance(failure, ImportError) else None
            probing = isinstance(missing, str) and (key == missing or key.startswith(missing + "."))
            if failure is not None and not isinstance(failure, AttributeError) and not probing:
                hints.append(
                    f"Importing {key!r} as a dotted path failed: {type(failure).__name__}: {failure}."
                )
                cause = cause or failure
        from treadle.core.plugins import describe_failures

        failures = describe_failures()
        if failures:
            hints.append(failures.replace("\n", "\n    "))
        hints.append(
            f"If {real_key} is your own class, import the module that defines it before building: "
            "list it in the config's custom_imports (custom_imports = dict(imports=['my_pkg.my_"
            "module'], allow_failed_imports=False)) or in the registry's locations."
        )
        hints.append(
            "If a plugin provides it, install the plugin; `treadle plugins` lists the plugins "
            "found and what they register."
        )
        lines.append("Hints:")
        lines.extend(f"  - {hint}" for hint in hints)
        error_out = RegistryKeyError("\n".join(lines))
        error_out.__cause__ = cause
        return error_out

    # -----------------------------------------------------------------------------------------
    # Display
    # -----------------------------------------------------------------------------------------

    def __repr__(self) -> str:
        """A plain table of the names and what they map to (lazy targets are not imported)."""
        rows = [(name, _where(obj)) for name, obj in sorted(self._module_dict.items())]
        title = (
            f"Registry of {self._name} (scope {self._scope!r}, {len(rows)} "
            f"{'entry' if len(rows) == 1 else 'entries'})"
        )
        if not rows:
            return title
        width = max(4, *(len(name) for name, _ in rows))
        lines = [title, f"  {'Name'.ljust(width)}  Object", f"  {'-' * width}  {'-' * 6}"]
        lines.extend(f"  {name.ljust(width)}  {where}" for name, where in rows)
        return "\n".join(lines)


def _walk(registry: Registry) -> Iterator[Registry]:
    """The registry and its descendants, depth first."""
    yield registry
    for child in registry.children.values():
        yield from _walk(child)

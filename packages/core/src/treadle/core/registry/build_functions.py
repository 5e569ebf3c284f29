"""Build functions: turn a config dict into an object, through a :class:`Registry`.

:func:`build_from_cfg` is every registry's default ``build_func``. The root registries use the
specialised ones as MMEngine does: MODELS :func:`build_model_from_cfg` (a list of configs gives a
``torch.nn.Sequential``), RUNNERS :func:`build_runner_from_cfg` (``runner_type`` and
``Runner.from_cfg``), PARAM_SCHEDULERS :func:`build_scheduler_from_cfg`
(``convert_to_iter_based``).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from treadle.core.registry.registry import Registry
from treadle.core.utils.manager import ManagerMixin

if TYPE_CHECKING:
    import torch.nn

__all__ = [
    "build_from_cfg",
    "build_model_from_cfg",
    "build_runner_from_cfg",
    "build_scheduler_from_cfg",
]


def _copy_cfg(cfg: Any, what: str = "cfg") -> dict[str, Any]:
    """A shallow ``dict`` copy of a dict, ConfigDict or Config (anything with ``items()``)."""
    if isinstance(cfg, dict):
        return dict(cfg)
    items = getattr(cfg, "items", None)
    if callable(items) and hasattr(cfg, "__contains__"):
        return dict(items())
    raise TypeError(f"{what} should be a dict, ConfigDict or Config, but got {type(cfg)}")


def _check_registry(registry: object) -> None:
    if not isinstance(registry, Registry):
        raise TypeError(f"registry must be a treadle Registry object, but got {type(registry)}")


def _merge_defaults(args: dict[str, Any], default_args: Any) -> None:
    if default_args is None:
        return
    for name, value in _copy_cfg(default_args, "default_args").items():
        args.setdefault(name, value)


def _lookup(obj_type: Any, registry: Registry) -> Any:
    """The class or function that ``type`` names (a string) or is (a callable)."""
    if isinstance(obj_type, str):
        obj_cls = registry.get(obj_type)
        if obj_cls is None:
            raise registry._missing_key_error(obj_type)
        return obj_cls
    if callable(obj_type):
        return obj_type
    raise TypeError(f"type must be a str or valid type, but got {type(obj_type)}")


def _with_context(exc: Exception, obj_cls: Any, registry: Registry) -> Exception | None:
    """``exc`` again, its message prefixed with what was being built; ``None`` if impossible.

    The same exception type is kept, so callers' ``except`` clauses still match, and instance
    attributes are copied over. Exceptions whose meaning lives in constructor arguments
    (``OSError`` and its ``errno``, ``UnicodeDecodeError``, …) or that ignore their message get
    ``None``: the caller re-raises the original, with a note where Python supports notes.
    """
    name = getattr(obj_cls, "__name__", None) or repr(obj_cls)
    kind = "class" if isinstance(obj_cls, type) else "callable"
    module = getattr(obj_cls, "__module__", None) or "?"
    prefix = (
        f"{kind} `{name}` in {module} (built by the {registry.scope}::{registry.name} registry)"
    )
    new: Exception | None = None
    if not isinstance(exc, OSError):
        message = f"{prefix}: {exc}"
        try:
            if isinstance(exc, ImportError):
                new = type(exc)(message, name=exc.name, path=exc.path)
            else:
                new = type(exc)(message)
            new.__dict__.update(exc.__dict__)
        except Exception:
            new = None
    if new is not None and type(new) is type(exc) and prefix in str(new):
        return new
    if sys.version_info >= (3, 11):
        exc.add_note(f"while building {prefix}")
    return None


def _instantiate(obj_cls: Any, args: dict[str, Any], registry: Registry) -> Any:
    try:
        if isinstance(obj_cls, type) and issubclass(obj_cls, ManagerMixin):
            return obj_cls.get_instance(**args)
        return obj_cls(**args)
    except Exception as exc:
        new = _with_context(exc, obj_cls, registry)
        if new is None:
            raise
        raise new from exc


def build_from_cfg(cfg: Any, registry: Registry, default_args: Any = None) -> Any:
    """Build an object from a config dict, or call a function with it.

    ``type`` (in ``cfg``, else in ``default_args``) names the class or function in ``registry``,
    or is the class or function itself; the other keys are its keyword arguments, ``cfg``
    winning over ``default_args``. ``_scope_`` in ``cfg`` switches the default scope (and with it
    the registry) while the object is built. A class that mixes in ``ManagerMixin`` is built with
    ``get_instance``.

    Args:
        cfg: A dict, ConfigDict or Config with (unless ``default_args`` has it) a ``type`` key.
        registry: The registry to look ``type`` up in.
        default_args: Defaults for the keyword arguments.

    Returns:
        The object built (or what the function returned).

    Raises:
        KeyError: When there is no ``type``, or the registry does not know it
            (:class:`~treadle.core.registry.RegistryKeyError`, which says where it looked, the
            close names and what to try).
        TypeError: When an argument has the wrong type.
        ImportError: When a lazy entry or a registry location fails to import.
        Exception: What the constructor raised, its message prefixed with the class and registry.

    Examples:
        >>> build_from_cfg(dict(type="ResNet", depth=50), MODELS)
    """
    args = _copy_cfg(cfg)
    if "type" not in args and (default_args is None or "type" not in default_args):
        from treadle.core.registry.registry import RegistryKeyError

        raise RegistryKeyError(
            f'`cfg` or `default_args` must contain the key "type", but got {cfg}\n{default_args}'
        )
    _check_registry(registry)
    _merge_defaults(args, default_args)
    scope = args.pop("_scope_", None)
    if scope is None:
        # No switch: the current default scope (if any) picks the registry.
        target = registry._default_scope_registry()
        return _instantiate(_lookup(args.pop("type"), target), args, target)
    with registry.switch_scope_and_registry(scope) as target:
        return _instantiate(_lookup(args.pop("type"), target), args, target)


def build_model_from_cfg(cfg: Any, registry: Registry, default_args: Any = None) -> Any:
    """Build a model from a config, or a ``torch.nn.Sequential`` from a list of configs.

    Args:
        cfg: A config dict, or a list of them.
        registry: The registry to build from (MODELS or a child).
        default_args: Defaults for every module's arguments.

    Returns:
        The module built; for a list, the modules wrapped in ``torch.nn.Sequential``.
    """
    if isinstance(cfg, list):
        import torch.nn

        modules: list[torch.nn.Module] = [
            build_from_cfg(item, registry, default_args) for item in cfg
        ]
        return torch.nn.Sequential(*modules)
    return build_from_cfg(cfg, registry, default_args)


def build_runner_from_cfg(cfg: Any, registry: Registry) -> Any:
    """Build a Runner: ``runner_type`` (default ``"Runner"``) names the class, built by its
    ``from_cfg(cfg)``.

    Args:
        cfg: The whole run config; ``runner_type`` stays in it, ``_scope_`` is honoured.
        registry: The RUNNERS registry (or a child).

    Returns:
        The Runner.
    """
    _check_registry(registry)
    args = _copy_cfg(cfg)
    scope = args.pop("_scope_", None)
    with registry.switch_scope_and_registry(scope) as target:
        runner_cls = _lookup(args.get("runner_type", "Runner"), target)
        if not isinstance(runner_cls, type):
            raise TypeError(f"runner_type must name a class, but got {runner_cls!r}")
        return runner_cls.from_cfg(args)  # type: ignore[attr-defined]


def build_scheduler_from_cfg(cfg: Any, registry: Registry, default_args: Any = None) -> Any:
    """Build a parameter scheduler, by its constructor or by ``build_iter_from_epoch``.

    With ``convert_to_iter_based=True`` in the config, the class's ``build_iter_from_epoch``
    builds it (``default_args`` must then give ``epoch_length``, and the scheduler must be
    epoch-based). Otherwise ``epoch_length`` is dropped and :func:`build_from_cfg` builds it.

    Args:
        cfg: The scheduler config.
        registry: The PARAM_SCHEDULERS registry (or a child).
        default_args: Defaults, usually ``optimizer`` and ``epoch_length``.

    Returns:
        The scheduler.
    """
    _check_registry(registry)
    args = _copy_cfg(cfg)
    _merge_defaults(args, default_args)
    scope = args.pop("_scope_", None)
    with registry.switch_scope_and_registry(scope) as target:
        if args.pop("convert_to_iter_based", False):
            if "epoch_length" not in args or not args.get("by_epoch", True):
                raise ValueError(
                    "Only epoch-based parameter schedulers can be converted to iteration-based "
                    f"ones, and `epoch_length` must be given; got {args}"
                )
            if "type" not in args:
                raise KeyError('the scheduler config must contain the key "type"')
            scheduler_cls = _lookup(args.pop("type"), target)
            return scheduler_cls.build_iter_from_epoch(**args)
        args.pop("epoch_length", None)
        return build_from_cfg(args, target)

"""Pure-Python ("new style") configs: ``with read_base():`` and lazily imported objects.

A pure-Python config is ordinary Python that an IDE can navigate::

    from mmengine.config import read_base      # or: from treadle.core.config import read_base

    with read_base():
        from .._base_.models.resnet50 import *  # base configs, loaded now
        from .._base_.schedules.sgd import optim_wrapper

    import torch.nn as nn
    from torch.optim import SGD

    model.update(act=nn.ReLU)                   # base values are ConfigDict-like, change in place
    optim_wrapper.optimizer.type = SGD

Parsing follows MMEngine 0.10.7 (``Config._parse_lazy_import`` and ``ImportTransformer``):

- Imports inside ``with read_base():`` name base config files (relative to the file, or
  ``pkg.configs.x`` inside an installed package). Each base is parsed (recursively) before the
  file runs; its variables are copied (every dict becomes a fresh ConfigDict-like dict, every
  list/tuple a fresh one) and bound to the imported names, so the file may change them in place.
- Every other import of a module outside the standard library becomes a :class:`LazyObject`
  (``import torch.nn as nn``, ``from torch.optim import SGD``, ``import torch``) and attribute
  access on one gives a :class:`LazyAttr`; nothing is imported until ``build()`` is called.
  Standard-library imports stay real imports (decided by ``sys.stdlib_module_names``, not by
  MMEngine's install-path heuristic, which misfires in virtual environments).
- The result holds the file's variables except dunder names, modules and ``read_base``;
  names bound by import statements (here and in every base) are reported separately, because
  ``Config.to_dict()`` / ``dump()`` leave them out while attribute access still finds them.

Each file is parsed, transformed and compiled once per process (cached by path, size and
modification time); the compiled code runs with the real file name, so tracebacks point at the
config's own lines.
"""

from __future__ import annotations

import ast
import copy
import difflib
import importlib
import importlib.util
import os
import os.path as osp
import sys
import threading
import types
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from treadle.core.config.errors import ConfigParsingError

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

__all__ = [
    "LazyAttr",
    "LazyObject",
    "is_lazy_style",
    "parse_lazy_config",
    "parse_lazy_config_with_imports",
    "read_base",
]

BASE_KEY = "_base_"

# Names the generated code uses; dunder names never reach the parsed result.
_LAZY_FACTORY = "__lazy_object__"
_API_FACTORY = "__config_api__"

# Standard-library test: the top-level module name, as Python itself lists it.
_STDLIB_NAMES = frozenset(sys.stdlib_module_names) | frozenset(sys.builtin_module_names)

# Config modules whose names a config imports for real (``read_base`` above all).
# ``mmengine.config`` is served by treadle's own config package, so MMEngine configs load
# without MMEngine installed.
_CONFIG_API_MODULES = ("treadle.core.config", "mmengine.config")

# Compiled configs kept per process (a few KiB each).
_CACHE_SIZE = 1024


# --------------------------------------------------------------------------------------------
# Lazy objects
# --------------------------------------------------------------------------------------------


def _is_dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


def _reraise_build_error(exc: BaseException, message: str) -> NoReturn:
    """Raise ``message`` as an exception of ``exc``'s type (ImportError where that fails)."""
    new: BaseException
    try:
        if isinstance(exc, ImportError):
            new = type(exc)(message, name=exc.name, path=exc.path)
        else:
            new = type(exc)(message)
    except Exception:
        new = ImportError(message)
    raise new from exc


def _where(location: str | None) -> str:
    return f" (imported at {location})" if location else ""


class LazyObject:
    """A module, or an object of a module, imported by a config but not imported yet.

    The parser turns the imports of a pure-Python config into lazy objects::

        import torch.nn as nn          ->  nn = LazyObject('torch.nn')
        from torch.optim import SGD    ->  SGD = LazyObject('torch.optim', 'SGD')
        import mmdet.models; import mmdet
                                       ->  mmdet = LazyObject(['mmdet.models', 'mmdet'])

    Args:
        module: The module to import, or several modules of one top-level package (an absolute
            ``import a.b`` binds ``a`` after importing ``a.b``).
        imported: The name imported from ``module`` (``from module import imported``).
        location: Where the import was written, ``"<file>, line <n>"``; build errors name it.

    Raises:
        TypeError: ``module`` is not a string or a non-empty sequence of strings, or
            ``imported`` is not a string or None.
    """

    __slots__ = ("_imported", "_module", "location")

    _module: str | list[str]
    _imported: str | None
    location: str | None

    def __init__(
        self,
        module: str | Sequence[str],
        imported: str | None = None,
        location: str | None = None,
    ) -> None:
        if isinstance(module, str):
            mod: str | list[str] = module
        elif (
            isinstance(module, (list, tuple)) and module and all(isinstance(m, str) for m in module)
        ):
            mod = list(module)
        else:
            raise TypeError(
                f"LazyObject module must be a str or a non-empty list of str, got {module!r}"
            )
        if imported is not None and not isinstance(imported, str):
            raise TypeError(f"LazyObject imported must be a str or None, got {imported!r}")
        self._module = mod
        self._imported = imported
        self.location = location

    @property
    def module(self) -> str:
        """The module the object comes from (the top-level package for ``import a.b``)."""
        if isinstance(self._module, str):
            return self._module
        return self._module[0].partition(".")[0]

    @property
    def dump_str(self) -> str:
        """The string MMEngine writes for this object in ``to_dict()``, ``pretty_text`` and dumps.

        MMEngine joins ``module`` and its own short name, so ``from torch.optim import SGD``
        gives ``"torch.optim.SGD"`` but ``import torch.nn as nn`` gives ``"torch.nn.torch.nn"``
        (sic); this property reproduces that string exactly. ``str()`` gives the clean path.
        """
        short = self._imported if self._imported is not None else self.module
        return f"{self.module}.{short}"

    def build(self) -> Any:
        """Import and return the object.

        Returns:
            The imported module or object.

        Raises:
            ImportError: The module cannot be imported or has no such attribute; the message
                names the config file and line of the import. Other errors raised while
                importing keep their type and get the same message.
        """
        if isinstance(self._module, str):
            try:
                module = importlib.import_module(self._module)
            except Exception as e:
                _reraise_build_error(
                    e, f"Failed to import {self._module}{_where(self.location)}: {e}"
                )
            if self._imported is None:
                return module
            try:
                return getattr(module, self._imported)
            except AttributeError:
                raise ImportError(
                    f"Failed to import {self._imported} from {self._module}"
                    f"{_where(self.location)}: module {self._module!r} has no attribute "
                    f"{self._imported!r}",
                    name=self._module,
                ) from None
        try:
            for name in self._module:
                importlib.import_module(name)
            return importlib.import_module(self.module)
        except Exception as e:
            _reraise_build_error(e, f"Failed to import {self.module}{_where(self.location)}: {e}")

    def __getattr__(self, name: str) -> LazyAttr:
        if _is_dunder(name) or name in LazyObject.__slots__:
            raise AttributeError(name)
        return LazyAttr(name, self)

    def __call__(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise RuntimeError(
            f"{self} is imported lazily by the config{_where(self.location)} and cannot be "
            "called while the config is parsed; call .build() to import it"
        )

    def _key(self) -> tuple[Any, ...]:
        mod = self._module if isinstance(self._module, str) else tuple(self._module)
        return (mod, self._imported)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LazyObject):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash((LazyObject, *self._key()))

    def __deepcopy__(self, memo: dict[int, Any]) -> LazyObject:
        return LazyObject(copy.copy(self._module), self._imported, self.location)

    def __reduce__(self) -> tuple[Any, ...]:
        return (LazyObject, (self._module, self._imported, self.location))

    def __str__(self) -> str:
        if self._imported is not None:
            return f"{self.module}.{self._imported}"
        return self.module

    def __repr__(self) -> str:
        return f"<LazyObject {self}>"


class LazyAttr:
    """An attribute of a :class:`LazyObject` (or of another ``LazyAttr``), not imported yet.

    ``nn.Linear`` in a config whose ``nn`` is ``LazyObject('torch.nn')`` is
    ``LazyAttr('Linear', nn)``; ``str()`` gives ``"torch.nn.Linear"`` and ``build()`` imports
    ``torch.nn`` and returns ``torch.nn.Linear``. Chains (``torch.nn.Conv2d``) nest.

    Args:
        name: The attribute name.
        source: The object the attribute is taken from.
        location: Where the source was imported, ``"<file>, line <n>"``; defaults to the
            source's location.
    """

    __slots__ = ("_module", "location", "name", "source")

    name: str
    source: LazyObject | LazyAttr
    location: str | None
    _module: str

    def __init__(
        self, name: str, source: LazyObject | LazyAttr, location: str | None = None
    ) -> None:
        if not isinstance(source, (LazyObject, LazyAttr)):
            raise TypeError(f"LazyAttr source must be a LazyObject or LazyAttr, got {source!r}")
        self.name = name
        self.source = source
        # The dotted path of what the attribute is read from ("torch.nn" for nn.Linear).
        self._module = str(source)
        self.location = location if location is not None else source.location

    @property
    def module(self) -> str:
        """The dotted path of the object the attribute is read from."""
        return self._module

    @property
    def dump_str(self) -> str:
        """The string MMEngine writes for this attribute (the full dotted path)."""
        return f"{self._module}.{self.name}"

    def build(self) -> Any:
        """Import the source and return the attribute.

        Returns:
            The attribute's value.

        Raises:
            ImportError: The source cannot be imported or has no such attribute; the message
                names the config file and line of the import.
        """
        obj = self.source.build()
        try:
            return getattr(obj, self.name)
        except AttributeError:
            raise ImportError(
                f"Failed to import {self}{_where(self.location)}: {self._module!r} has no "
                f"attribute {self.name!r}"
            ) from None

    def __getattr__(self, name: str) -> LazyAttr:
        if _is_dunder(name) or name in LazyAttr.__slots__:
            raise AttributeError(name)
        return LazyAttr(name, self)

    def __call__(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise RuntimeError(
            f"{self} is imported lazily by the config{_where(self.location)} and cannot be "
            "called while the config is parsed; call .build() to import it"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LazyAttr):
            return NotImplemented
        return self.name == other.name and self.source == other.source

    def __hash__(self) -> int:
        return hash((LazyAttr, self.name, self.source))

    def __deepcopy__(self, memo: dict[int, Any]) -> LazyAttr:
        return LazyAttr(self.name, copy.deepcopy(self.source, memo), self.location)

    def __reduce__(self) -> tuple[Any, ...]:
        return (LazyAttr, (self.name, self.source, self.location))

    def __str__(self) -> str:
        return f"{self._module}.{self.name}"

    def __repr__(self) -> str:
        return f"<LazyAttr {self}>"


@contextmanager
def read_base() -> Iterator[None]:
    """Mark the imports of base configs in a pure-Python config.

    Only meaningful to the config parser, which loads every ``from ... import ...`` inside the
    block as a base config file and binds its variables; run as plain Python it does nothing.

    Example::

        with read_base():
            from .._base_.default_runtime import *
            from .._base_.models.retinanet import model
    """
    yield


# --------------------------------------------------------------------------------------------
# Parse-time ConfigDict
# --------------------------------------------------------------------------------------------


def _remake_sequence(seq: list[Any] | tuple[Any, ...], items: Iterator[Any]) -> Any:
    if isinstance(seq, tuple) and hasattr(seq, "_fields"):  # a namedtuple
        return type(seq)(*items)
    return type(seq)(items)


class _ParseDict(dict[Any, Any]):
    """What a config sees of a base config's dicts while it is parsed.

    It behaves like MMEngine's ``ConfigDict`` (an ``addict.Dict``) in lazy mode: attribute
    access, dicts assigned into it become ``_ParseDict``, ``update`` merges nested dicts, a
    missing key raises ``KeyError``, lazy objects are not built. The parser turns every
    ``_ParseDict`` into a plain dict before returning.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    @classmethod
    def _hook(cls, item: Any) -> Any:
        if type(item) in (dict, OrderedDict):
            return cls(item)
        if isinstance(item, (list, tuple)):
            return _remake_sequence(item, (cls._hook(elem) for elem in item))
        return item

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, self._hook(value))

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"'ConfigDict' object has no attribute '{name}'") from None

    def __setattr__(self, name: str, value: Any) -> None:
        if hasattr(type(self), name):
            # MMEngine's message comes from addict, hence "Dict".
            raise AttributeError(f"'Dict' object attribute '{name}' is read-only")
        self[name] = value

    def __delattr__(self, name: str) -> None:
        del self[name]

    def update(self, *args: Any, **kwargs: Any) -> None:
        """Update recursively: a dict value merges into an existing dict value."""
        if len(args) > 1:
            raise TypeError(f"update expected at most 1 positional argument, got {len(args)}")
        other: dict[Any, Any] = {}
        if args:
            src = args[0]
            other.update(dict.items(src) if isinstance(src, dict) else src)
        other.update(kwargs)
        for key, value in other.items():
            current = dict.get(self, key)
            if key in self and isinstance(current, dict) and isinstance(value, dict):
                current.update(value)
            else:
                self[key] = value

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key in self:
            return self[key]
        self[key] = default
        return default

    def pop(self, key: Any, default: Any = None) -> Any:
        return super().pop(key, default)

    def copy(self) -> _ParseDict:
        other = type(self)()
        for key, value in dict.items(self):
            other[key] = value
        return other

    __copy__ = copy

    def deepcopy(self) -> _ParseDict:
        return copy.deepcopy(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> _ParseDict:
        other = type(self)()
        memo[id(self)] = other
        for key, value in dict.items(self):
            other[copy.deepcopy(key, memo)] = copy.deepcopy(value, memo)
        return other

    # ``|`` copies the left operand's nested dicts (addict converts them into new dicts).
    def __or__(self, other: Any) -> Any:
        if not isinstance(other, dict):
            return NotImplemented
        new: _ParseDict = _to_parse(self)
        new.update(other)
        return new

    def __ror__(self, other: Any) -> Any:
        if not isinstance(other, dict):
            return NotImplemented
        new: _ParseDict = _to_parse(other)
        new.update(self)
        return new

    def __ior__(self, other: Any) -> _ParseDict:
        self.update(other)
        return self

    def to_dict(self) -> dict[Any, Any]:
        """Plain dicts, lazy objects as the strings MMEngine's ``ConfigDict.to_dict`` gives."""
        result: dict[Any, Any] = _to_plain(self, lazy_to_str=True)
        return result


def _to_parse(value: Any) -> Any:
    """Copy a base's value for a child: dicts become fresh ``_ParseDict``, sequences fresh."""
    if isinstance(value, dict):
        new = _ParseDict()
        for key, item in dict.items(value):
            dict.__setitem__(new, key, _to_parse(item))
        return new
    if isinstance(value, (list, tuple)):
        return _remake_sequence(value, (_to_parse(item) for item in value))
    return value


def _to_plain(value: Any, lazy_to_str: bool = False) -> Any:
    """Copy a value with every dict as a plain dict (lazy objects kept or as dump strings)."""
    if isinstance(value, dict):
        return {key: _to_plain(item, lazy_to_str) for key, item in dict.items(value)}
    if isinstance(value, (list, tuple)):
        return _remake_sequence(value, (_to_plain(item, lazy_to_str) for item in value))
    if lazy_to_str and isinstance(value, (LazyObject, LazyAttr)):
        return value.dump_str
    return value


# --------------------------------------------------------------------------------------------
# Style detection
# --------------------------------------------------------------------------------------------


def _is_stdlib(module: str) -> bool:
    return module.partition(".")[0] in _STDLIB_NAMES


def _is_config_api(module: str) -> bool:
    return any(module == m or module.startswith(m + ".") for m in _CONFIG_API_MODULES)


def _is_read_base_call(expr: ast.expr) -> bool:
    return (
        isinstance(expr, ast.Call)
        and isinstance(expr.func, ast.Name)
        and expr.func.id == "read_base"
        and not expr.args
        and not expr.keywords
    )


def _is_base_assign(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Name)
        and node.targets[0].id == BASE_KEY
    )


def is_lazy_style(tree: ast.Module) -> bool:
    """Whether a parsed ``.py`` config is a pure-Python (lazy import) config.

    The nodes are visited in ``ast.walk`` order, as MMEngine does; the first decisive one wins:
    ``_base_ = ...`` means text style; ``with read_base():``, a relative import or an import of
    a module outside the standard library (``sys.stdlib_module_names``) means pure-Python
    style. Imports from ``mmengine.config`` and ``from mmengine import Config`` decide nothing,
    as in MMEngine; ``from treadle.core.config import read_base`` marks pure-Python style.

    Args:
        tree: The config's module AST.

    Returns:
        True for a pure-Python config, False for a text-style one.
    """
    for node in ast.walk(tree):
        if _is_base_assign(node):
            return False
        if isinstance(node, ast.With):
            if node.items and _is_read_base_call(node.items[0].context_expr):
                return True
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                return True
            module = node.module
            if module is None or (
                module == "mmengine" and [a.name for a in node.names] == ["Config"]
            ):
                continue
            if not (_is_stdlib(module) or module.startswith("mmengine.config")):
                return True
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if not (_is_stdlib(alias.name) or alias.name.startswith("mmengine.config")):
                    return True
    return False


# --------------------------------------------------------------------------------------------
# Transformation and compilation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _BaseImport:
    """One ``from <base> import ...`` inside ``with read_base():``."""

    key: str  # the module as written, dots included: "..models.x"
    level: int
    module: str
    names: tuple[tuple[str, str | None], ...]
    lineno: int


@dataclass(frozen=True)
class _Compiled:
    code: types.CodeType
    base_imports: tuple[_BaseImport, ...]
    imported: frozenset[str]
    text_style_line: int | None  # line of a top-level ``_base_ = ...``


def _fail(filename: str, lineno: int, message: str) -> NoReturn:
    raise ConfigParsingError(f"{filename}, line {lineno}: {message}")


def _lazy_call(args: list[ast.expr]) -> ast.Call:
    return ast.Call(func=ast.Name(id=_LAZY_FACTORY, ctx=ast.Load()), args=args, keywords=[])


def _assign(name: str, value: ast.expr, like: ast.AST) -> ast.Assign:
    """``name = value`` placed at ``like``'s position (every new node gets a location)."""
    node = ast.Assign(targets=[ast.Name(id=name, ctx=ast.Store())], value=value)
    for new in ast.walk(node):
        ast.copy_location(new, like)
    return node


def _const(value: str | None) -> ast.Constant:
    return ast.Constant(value=value)


class _ImportLazifier(ast.NodeTransformer):
    """Rewrites the imports of one config file (everything but ``with read_base():``)."""

    def __init__(self, filename: str, base_keys: set[str]) -> None:
        self.filename = filename
        self.base_keys = base_keys
        self.imported: set[str] = set()
        # ``from <base> import x`` outside ``with read_base()`` (MMEngine binds these too).
        self.late_base_imports: list[_BaseImport] = []
        self.top_level: set[int] = set()

    def _loc(self, lineno: int) -> str:
        return f"{self.filename}, line {lineno}"

    def visit_With(self, node: ast.With) -> ast.AST:
        if any(_is_read_base_call(item.context_expr) for item in node.items):
            _fail(
                self.filename,
                node.lineno,
                "`with read_base():` must be a top-level statement of the config",
            )
        self.generic_visit(node)
        return node

    def visit_ImportFrom(self, node: ast.ImportFrom) -> Any:
        key = "." * node.level + (node.module or "")
        if key in self.base_keys:
            # A base config read in `with read_base():` imported again elsewhere: MMEngine
            # binds such top-level imports from the base too.
            if id(node) not in self.top_level:
                _fail(
                    self.filename,
                    node.lineno,
                    f"base config `{key}` may only be imported at the top level of the config",
                )
            names = tuple((a.name, a.asname) for a in node.names)
            self.late_base_imports.append(
                _BaseImport(key, node.level, node.module or "", names, node.lineno)
            )
            return None
        if node.level:
            _fail(
                self.filename,
                node.lineno,
                f"relative import `from {key} import ...` outside `with read_base():`; "
                "base configs must be imported inside `with read_base():`",
            )
        module = node.module or ""
        for alias in node.names:
            if alias.name == "*":
                _fail(
                    self.filename,
                    node.lineno,
                    f"`from {module} import *` is only allowed for base configs inside "
                    "`with read_base():`",
                )
        if _is_config_api(module):
            nodes = []
            for alias in node.names:
                target = alias.asname or alias.name
                self.imported.add(target)
                lineno = getattr(alias, "lineno", node.lineno)
                call = ast.Call(
                    func=ast.Name(id=_API_FACTORY, ctx=ast.Load()),
                    args=[_const(alias.name), _const(self._loc(lineno))],
                    keywords=[],
                )
                nodes.append(_assign(target, call, node))
            return nodes
        if _is_stdlib(module):
            self.imported.update(alias.asname or alias.name for alias in node.names)
            return node
        nodes = []
        for alias in node.names:
            target = alias.asname or alias.name
            self.imported.add(target)
            lineno = getattr(alias, "lineno", node.lineno)
            call = _lazy_call([_const(module), _const(alias.name), _const(self._loc(lineno))])
            nodes.append(_assign(target, call, node))
        return nodes

    def visit_Import(self, node: ast.Import) -> Any:
        # Top-level ``import a.b`` without ``as`` is gathered by the caller; what arrives here
        # is nested, or has ``as``.
        nodes: list[ast.stmt] = []
        for alias in node.names:
            lineno = getattr(alias, "lineno", node.lineno)
            if _is_stdlib(alias.name):
                if alias.asname is not None:
                    self.imported.add(alias.asname)
                nodes.append(ast.copy_location(ast.Import(names=[alias]), node))
            elif alias.asname is not None:
                self.imported.add(alias.asname)
                call = _lazy_call([_const(alias.name), _const(None), _const(self._loc(lineno))])
                nodes.append(_assign(alias.asname, call, node))
            else:
                top = alias.name.partition(".")[0]
                self.imported.add(top)
                names = ast.List(elts=[_const(alias.name)], ctx=ast.Load())
                call = _lazy_call([names, _const(None), _const(self._loc(lineno))])
                nodes.append(_assign(top, call, node))
        return nodes


def _read_base_imports(filename: str, node: ast.With) -> list[_BaseImport]:
    if len(node.items) != 1 or node.items[0].optional_vars is not None:
        _fail(filename, node.lineno, "use `with read_base():` alone, without `as` or other items")
    imports = []
    for stmt in node.body:
        if not isinstance(stmt, ast.ImportFrom):
            _fail(
                filename,
                stmt.lineno,
                "only `from ... import ...` of base configs may appear inside `with read_base():`",
            )
        if stmt.module is None:
            _fail(
                filename,
                stmt.lineno,
                "`from . import x` is not supported inside `with read_base():`; "
                "write `from .x import *` (or the names you need)",
            )
        names = tuple((a.name, a.asname) for a in stmt.names)
        key = "." * stmt.level + stmt.module
        imports.append(_BaseImport(key, stmt.level, stmt.module, names, stmt.lineno))
    return imports


def _may_import(lines: list[str], node: ast.stmt) -> bool:
    """Whether the source of a statement could hold an import or a ``with`` to check."""
    end = node.end_lineno or node.lineno
    return any("import" in line or "with" in line for line in lines[node.lineno - 1 : end])


def _compile(filename: str, source: str) -> _Compiled:
    try:
        tree = ast.parse(source, filename)
    except SyntaxError as e:
        _raise_syntax_error(filename, e)

    text_style_line = next((node.lineno for node in tree.body if _is_base_assign(node)), None)
    base_imports: list[_BaseImport] = []
    for node in tree.body:
        if isinstance(node, ast.With):
            if not _is_read_base_call(node.items[0].context_expr):
                _fail(
                    filename,
                    node.lineno,
                    "only the `with read_base():` context manager may be used at the top "
                    "level of a config",
                )
            base_imports.extend(_read_base_imports(filename, node))

    # Python's own line breaks only (str.splitlines also breaks at \x0c, \u2028, ...).
    lines = source.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    lazifier = _ImportLazifier(filename, {b.key for b in base_imports})
    lazifier.top_level = {id(node) for node in tree.body}
    # Absolute ``import a.b`` at the top level: one LazyObject per top-level package.
    gathered: dict[str, tuple[list[str], int]] = {}
    body: list[ast.stmt] = []
    for node in tree.body:
        if isinstance(node, ast.With):
            continue
        if isinstance(node, ast.Import):
            kept = []
            for alias in node.names:
                if alias.asname is None and not _is_stdlib(alias.name):
                    top = alias.name.partition(".")[0]
                    lineno = getattr(alias, "lineno", node.lineno)
                    gathered.setdefault(top, ([], lineno))[0].append(alias.name)
                else:
                    kept.append(alias)
            if not kept:
                continue
            node.names = kept
        if not isinstance(node, ast.ImportFrom) and not _may_import(lines, node):
            body.append(node)  # nothing to rewrite inside: skip the walk
            continue
        new = lazifier.visit(node)
        if isinstance(new, list):
            body.extend(new)
        elif new is not None:
            body.append(new)

    # MMEngine binds gathered imports before anything else runs; keep the docstring and
    # ``from __future__`` imports first so that the code still compiles.
    insert_at = 0
    while insert_at < len(body):
        stmt = body[insert_at]
        is_docstring = (
            insert_at == 0
            and isinstance(stmt, ast.Expr)
            and isinstance(stmt.value, ast.Constant)
            and isinstance(stmt.value.value, str)
        )
        if not (is_docstring or (isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__")):
            break
        insert_at += 1
    first = tree.body[0] if tree.body else tree
    for top, (names, lineno) in gathered.items():
        elts: list[ast.expr] = [_const(name) for name in names]
        call = _lazy_call(
            [
                ast.List(elts=elts, ctx=ast.Load()),
                _const(None),
                _const(f"{filename}, line {lineno}"),
            ]
        )
        body.insert(insert_at, _assign(top, call, first))
    tree.body = body
    try:
        code = compile(tree, filename, "exec", dont_inherit=True)
    except SyntaxError as e:
        _raise_syntax_error(filename, e)
    imported = frozenset(lazifier.imported | gathered.keys())
    return _Compiled(
        code=code,
        base_imports=(*base_imports, *lazifier.late_base_imports),
        imported=imported,
        text_style_line=text_style_line,
    )


def _raise_syntax_error(filename: str, e: SyntaxError) -> NoReturn:
    """Re-raise a config's syntax error with the file and line in the message (both styles)."""
    details = (e.filename or filename, e.lineno, e.offset, e.text, e.end_lineno, e.end_offset)
    raise SyntaxError(
        f"There are syntax errors in config file {filename}, line {e.lineno or 0}: {e.msg}",
        details,
    ) from e


_cache: OrderedDict[tuple[str, int, int], _Compiled] = OrderedDict()
_cache_lock = threading.Lock()


def _load(filename: str, text: str | None = None) -> _Compiled:
    """The compiled config, from the cache when the file has not changed.

    ``text`` is the file's content when the caller has already read it (it is then not read
    again); the cache is looked up first all the same.
    """
    try:
        st = os.stat(filename)
    except FileNotFoundError:
        raise FileNotFoundError(f"config file {filename} does not exist") from None
    key = (filename, st.st_mtime_ns, st.st_size)
    with _cache_lock:
        compiled = _cache.get(key)
        if compiled is not None:
            _cache.move_to_end(key)
            return compiled
    if text is None:
        with open(filename, encoding="utf-8") as f:
            text = f.read()
    compiled = _compile(filename, text)
    with _cache_lock:
        _cache[key] = compiled
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return compiled


# --------------------------------------------------------------------------------------------
# Execution
# --------------------------------------------------------------------------------------------


def _config_api(name: str, location: str) -> Any:
    """What ``from treadle.core.config import name`` (or mmengine.config) gives a config."""
    own = {"read_base": read_base, "LazyObject": LazyObject, "LazyAttr": LazyAttr}
    if name in own:
        return own[name]
    api = importlib.import_module("treadle.core.config")
    try:
        return getattr(api, name)
    except AttributeError:
        raise ConfigParsingError(
            f"{location}: cannot import {name!r}: treadle.core.config has no such name"
        ) from None


def _resolve_base(filename: str, base: _BaseImport) -> str:
    """The file of a base config module, or a ConfigParsingError naming what was tried."""
    rel = base.module.replace(".", "/") + ".py"
    if base.level:
        ups = [".."] * (base.level - 1)
        path = osp.join(osp.dirname(filename), *ups, rel)
        if osp.isfile(path):
            return path
        _fail(
            filename,
            base.lineno,
            f"base config `{base.key}` imported in `with read_base():` not found: "
            f"{osp.normpath(path)} does not exist",
        )
    package, _, rest = base.module.partition(".")
    if not rest:
        _fail(
            filename,
            base.lineno,
            f"`{base.module}` is a package, not a base config; import a config module of it, "
            f"e.g. `from {base.module}.configs.x import *`",
        )
    spec = importlib.util.find_spec(package)
    if spec is None:
        _fail(
            filename,
            base.lineno,
            f"base config `{base.key}` imported in `with read_base():` not found: "
            f"package {package!r} is not installed",
        )
    roots = list(spec.submodule_search_locations or [])
    if not roots and spec.origin:
        roots = [osp.dirname(spec.origin)]
    tried = []
    for root in roots:
        path = osp.join(root, rest.replace(".", "/") + ".py")
        if osp.isfile(path):
            return path
        tried.append(path)
    _fail(
        filename,
        base.lineno,
        f"base config `{base.key}` imported in `with read_base():` not found: "
        f"tried {', '.join(tried) or 'no location of package ' + repr(package)}",
    )


def _parse_file(
    filename: str,
    chain: tuple[str, ...],
    importer: tuple[str, int] | None,
    text: str | None = None,
) -> tuple[dict[str, Any], set[str]]:
    """Run one config; return its variables (dunder names dropped) and its imported names."""
    compiled = _load(filename, text)
    if compiled.text_style_line is not None:
        if importer is not None:
            _fail(
                importer[0],
                importer[1],
                f"`with read_base():` imports {filename}, a text-style config (`_base_ = ...` "
                f"at line {compiled.text_style_line}); mixing pure-Python and text-style "
                "configs in one inheritance chain is not supported",
            )
        _fail(
            filename,
            compiled.text_style_line,
            "`_base_ = ...` in a pure-Python config (one with `with read_base():` or lazy "
            "imports); mixing pure-Python and text-style configs is not supported",
        )

    chain = (*chain, osp.abspath(filename))
    imported = set(compiled.imported)
    base_vars: dict[str, dict[str, Any]] = {}
    for base in compiled.base_imports:
        if base.key in base_vars:
            continue
        path = _resolve_base(filename, base)
        if osp.abspath(path) in chain:
            cycle = " -> ".join([*chain, osp.abspath(path)])
            _fail(filename, base.lineno, f"circular base config import: {cycle}")
        variables, base_imported = _parse_file(path, chain, (filename, base.lineno))
        imported |= base_imported
        base_vars[base.key] = {key: _to_parse(value) for key, value in variables.items()}

    namespace: dict[str, Any] = {
        "__file__": filename,
        _LAZY_FACTORY: LazyObject,
        _API_FACTORY: _config_api,
    }
    for base in compiled.base_imports:
        variables = base_vars[base.key]
        for name, asname in base.names:
            if name == "*":
                namespace.update(variables)
                continue
            if name not in variables:
                close = difflib.get_close_matches(
                    name, [k for k in variables if isinstance(k, str)]
                )
                hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
                _fail(
                    filename,
                    base.lineno,
                    f"cannot import {name!r} from base config `{base.key}` "
                    f"({_resolve_base(filename, base)}): it defines no such variable{hint}",
                )
            namespace[asname or name] = variables[name]

    exec(compiled.code, namespace)
    variables = {key: value for key, value in namespace.items() if not key.startswith("__")}
    return variables, imported


def parse_lazy_config_with_imports(
    filename: str, text: str | None = None
) -> tuple[dict[str, Any], set[str]]:
    """Parse a pure-Python config; also return the names its import statements bound.

    Args:
        filename: Path of the ``.py`` config.
        text: The file's content, when the caller has already read it; read otherwise.

    Returns:
        The variables as :func:`parse_lazy_config` returns them, and the names bound by import
        statements in the file and in all its bases (MMEngine's ``_imported_names``;
        ``Config.to_dict()``, ``pretty_text`` and ``dump()`` leave these out). Names bound from
        base configs by ``with read_base():`` are variables, not imported names.

    Raises:
        FileNotFoundError: ``filename`` does not exist.
        SyntaxError: A file of the chain is not valid Python (file and line in the message).
        ConfigParsingError: A structural problem: missing base, bad ``read_base`` block,
            ``import *`` of a non-config module, text-style base, circular bases, ...
    """
    variables, imported = _parse_file(filename, (), None, text)
    result = {
        key: _to_plain(value)
        for key, value in variables.items()
        if not isinstance(value, types.ModuleType) and value is not read_base
    }
    return result, imported


def parse_lazy_config(filename: str) -> dict[str, Any]:
    """Parse a pure-Python config into a plain dict of its variables.

    Base configs named in ``with read_base():`` are loaded first and bound; other imports of
    non-standard-library modules become :class:`LazyObject` / :class:`LazyAttr`. The result
    holds every variable except dunder names, modules and ``read_base``, with every dict as a
    plain ``dict`` (lists and tuples keep their type). Variables bound by import statements
    are included (``nn``, ``SGD``); see :func:`parse_lazy_config_with_imports` for their names.

    Args:
        filename: Path of the ``.py`` config.

    Returns:
        The config's variables.

    Raises:
        FileNotFoundError: ``filename`` does not exist.
        SyntaxError: A file of the chain is not valid Python (file and line in the message).
        ConfigParsingError: A structural problem (the message names the file and line).
    """
    return parse_lazy_config_with_imports(filename)[0]

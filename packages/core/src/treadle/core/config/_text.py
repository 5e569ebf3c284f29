"""Reading text-style config files: ``.py`` with ``_base_``, ``.yaml``/``.yml`` and ``.json``.

This is MMEngine's ``Config._file2dict`` re-done for speed and clearer errors. Per file:

1. Read the text once. When it contains ``{{`` substitute, in MMEngine's order, the predefined
   variables (``{{fileDirname}}`` …), environment variables (``{{$NAME:default}}``, also the
   quoted form ``{{'$NAME:default'}}`` that splices a literal) and turn ``{{_base_.a.b}}``
   references into placeholder strings.
2. Parse once (``ast.parse`` with the real filename, or YAML/JSON), read ``_base_`` and load
   every base recursively (relative paths, or ``pkg::path`` from an installed package's
   ``.mim/configs/``; external bases get ``_scope_``). Sibling bases may not share a key.
3. Execute a ``.py`` file directly (no temp files) with the merged bases bound to ``_base_``,
   so ``_base_.model.backbone`` works and in-place changes reach the merge. Functions, modules
   and dunder names are dropped.
4. Pop ``_deprecation_`` (warn), replace placeholders by the referenced base values and merge
   the file's dict into its bases: dicts merge, everything else replaces, ``_delete_=True``
   replaces a base dict (and is kept where there was nothing to replace, as in MMEngine).

The result of every file is a tree of fresh ``ConfigDict``/list/tuple containers.
"""

from __future__ import annotations

import ast
import json
import os
import os.path as osp
import re
import types
import warnings
from typing import TYPE_CHECKING, Any

from treadle.core.config.config_dict import DELETE_KEY, ConfigDict, to_config_tree
from treadle.core.config.errors import ConfigParsingError
from treadle.core.config.lazy import (
    BASE_KEY,
    _is_base_assign,
    _raise_syntax_error,
    is_lazy_style,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

DEPRECATION_KEY = "_deprecation_"
SUPPORTED_SUFFIXES = (".py", ".json", ".yaml", ".yml")

_PREDEFINED_RE = re.compile(
    r"\{\{\s*(fileDirname|fileBasenameNoExtension|fileBasename|fileExtname)\s*\}\}"
)
_ENV_RE = re.compile(r"\{\{['\"]?\s*\$(\w+)\s*:\s*(\S*?)\s*['\"]?\}\}")
_BASE_VAR_RE = re.compile(r"\{\{\s*" + BASE_KEY + r"\.([\w\.]+)\s*\}\}")


def yaml_loader() -> Any:
    """The YAML loader class used for configs: libyaml's full loader when available.

    That is what MMEngine uses, so YAML tags such as ``!!python/tuple`` load the same.
    """
    import yaml

    return getattr(yaml, "CLoader", yaml.Loader)


class _Loaded:
    """What loading one file (with its bases) produced."""

    __slots__ = ("cfg", "env", "texts")

    def __init__(self, cfg: ConfigDict, texts: list[str], env: dict[str, str]) -> None:
        self.cfg = cfg
        self.texts = texts
        self.env = env


class _Source:
    """One config file after substitution and parsing."""

    __slots__ = ("base_vars", "data", "env", "filename", "raw", "text", "tree")

    def __init__(self, filename: str, raw: str) -> None:
        self.filename = filename
        self.raw = raw
        self.text = raw
        self.env: dict[str, str] = {}
        self.base_vars: dict[str, str] = {}
        self.tree: ast.Module | None = None
        self.data: Any = None


def check_suffix(filename: str) -> str:
    """Return the suffix of ``filename`` or raise ``OSError`` for unsupported formats."""
    suffix = osp.splitext(filename)[1]
    if suffix not in SUPPORTED_SUFFIXES:
        raise OSError(
            f"Only py/yml/yaml/json type are supported now! Got {suffix or 'no suffix'!r} "
            f"for {filename}"
        )
    return suffix


def read_text(filename: str) -> str:
    """Read a config file as UTF-8 text."""
    with open(filename, encoding="utf-8") as handle:
        return handle.read()


def substitute(
    source: _Source, use_predefined_variables: bool, use_environment_variables: bool
) -> None:
    """Apply predefined-, environment- and base-variable substitution to ``source.text``."""
    text = source.text
    if "{{" not in text:
        return
    filename = source.filename
    if use_predefined_variables:
        basename = osp.basename(filename)
        values = {
            "fileDirname": osp.dirname(filename),
            "fileBasename": basename,
            "fileBasenameNoExtension": osp.splitext(basename)[0],
            "fileExtname": osp.splitext(filename)[1],
        }
        values = {key: value.replace("\\", "/") for key, value in values.items()}
        text = _PREDEFINED_RE.sub(lambda match: values[match.group(1)], text)
    if use_environment_variables:
        env = source.env

        def env_value(match: re.Match[str]) -> str:
            name, value = match.group(1), match.group(2)
            if name in os.environ:
                value = os.environ[name]
                env[name] = value
                _log_env_use(name, value)
            if not value:
                raise KeyError(
                    f"`{name}` cannot be found in `os.environ`. Please set `{name}` in "
                    f"environment or give a default value. (config file {filename}, "
                    f"line {text.count(chr(10), 0, match.start()) + 1})"
                )
            return value

        text = _ENV_RE.sub(env_value, text)
    base_vars = source.base_vars
    placeholders: dict[str, str] = {}

    def base_placeholder(match: re.Match[str]) -> str:
        dotted = match.group(1)
        placeholder = placeholders.get(dotted)
        if placeholder is None:
            placeholder = f"_{dotted}_{os.urandom(3).hex()}"
            placeholders[dotted] = placeholder
            base_vars[placeholder] = dotted
        return f'"{placeholder}"'

    source.text = _BASE_VAR_RE.sub(base_placeholder, text)


def _log_env_use(name: str, value: str) -> None:
    from treadle.core.logging import print_log

    print_log(
        f"Using env variable `{name}` with value of {value} to replace item in config.",
        logger="current",
    )


def parse_python(text: str, filename: str) -> ast.Module:
    """Parse config source; a syntax error names the file and the line."""
    try:
        return ast.parse(text, filename)
    except SyntaxError as exc:
        _raise_syntax_error(filename, exc)


def parse_data(text: str, filename: str, suffix: str) -> Any:
    """Parse YAML or JSON config text; an error names the file, line and column."""
    if suffix == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigParsingError(
                f"Failed to parse JSON config file {filename}, line {exc.lineno}, "
                f"column {exc.colno}: {exc.msg}"
            ) from exc
    import yaml

    try:
        return yaml.load(text, Loader=yaml_loader())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigParsingError(
            f"Failed to parse YAML config file {filename}{where}: {problem}"
        ) from exc


_MAY_BE_LAZY_RE = re.compile(r"\bimport\b|\bwith\b")


def may_be_lazy(text: str) -> bool:
    """Cheap pre-check: a file without the words ``import`` and ``with`` is text style.

    A pure-Python config needs an import or a ``with`` statement, and both need their keyword
    in the source; this spares the full AST walk for most base files.
    """
    return _MAY_BE_LAZY_RE.search(text) is not None


class TextConfigLoader:
    """Loads one text-style config file and its whole ``_base_`` tree.

    Args:
        use_predefined_variables: Substitute ``{{fileDirname}}`` and friends.
        use_environment_variables: Substitute ``{{$NAME:default}}``.
        lazy_import: ``None`` checks that no base is a pure-Python config; ``False`` reads
            every ``.py`` base as text style without checking.
    """

    def __init__(
        self,
        use_predefined_variables: bool = True,
        use_environment_variables: bool = True,
        lazy_import: bool | None = None,
    ) -> None:
        self.use_predefined_variables = use_predefined_variables
        self.use_environment_variables = use_environment_variables
        self.lazy_import = lazy_import

    def load(self, filename: str, source: _Source | None = None) -> _Loaded:
        """Load ``filename`` (absolute path); ``source`` is its already-read text, if any."""
        return self._load(filename, [], source, None)

    def prepare(self, filename: str) -> _Source:
        """Read, substitute and parse one file."""
        source = _Source(filename, read_text(filename))
        substitute(source, self.use_predefined_variables, self.use_environment_variables)
        suffix = osp.splitext(filename)[1]
        if suffix == ".py":
            source.tree = parse_python(source.text, filename)
        else:
            source.data = parse_data(source.text, filename, suffix)
        return source

    # -- one file ---------------------------------------------------------------------------

    def _load(
        self,
        filename: str,
        chain: list[str],
        source: _Source | None,
        referrer: tuple[str, int | None] | None,
    ) -> _Loaded:
        if filename in chain:
            cycle = " -> ".join([*chain[chain.index(filename) :], filename])
            raise ConfigParsingError(f"Circular _base_ inheritance: {cycle}")
        if source is None:
            check_suffix(filename)
            source = self.prepare(filename)
        chain = [*chain, filename]

        # Bases.
        if source.tree is not None:
            tree = source.tree
            if (
                referrer is not None
                and self.lazy_import is None
                and may_be_lazy(source.text)
                and is_lazy_style(tree)
            ):
                raise ConfigParsingError(
                    "The configuration file type in the inheritance chain must match: "
                    f"{filename} is a pure-Python (lazy import) config, but it is a _base_ of "
                    f"the text-style config {referrer[0]}"
                    + (f", line {referrer[1]}" if referrer[1] else "")
                    + ". Use `with read_base():` imports in a pure-Python config instead."
                )
            bases, base_line = self._python_bases(tree, filename)
        else:
            if source.data is None:
                source.data = {}
            if not isinstance(source.data, dict):
                raise ConfigParsingError(
                    f"The config file {filename} must contain a mapping at the top level, "
                    f"got {type(source.data).__name__}"
                )
            bases = _normalize_bases(source.data.get(BASE_KEY, []), filename, None)
            base_line = None

        base_cfg = ConfigDict()
        texts: list[str] = []
        env: dict[str, str] = dict(source.env)
        owners: dict[Any, str] = {}
        for base in bases:
            path, scope = _resolve_base(base, filename, base_line)
            loaded = self._load(path, chain, None, (filename, base_line))
            texts.extend(loaded.texts)
            env.update(loaded.env)
            duplicates = dict.keys(base_cfg) & dict.keys(loaded.cfg)
            if duplicates:
                detail = "; ".join(
                    f"{key!r} in {owners[key]} and {path}" for key in sorted(duplicates, key=str)
                )
                raise KeyError(
                    "Duplicate key is not allowed among bases. Duplicate keys: "
                    f"{set(duplicates)} ({detail}; bases of {filename})"
                )
            cfg_b = _add_scope(loaded.cfg, scope) if scope is not None else loaded.cfg
            for key in dict.keys(cfg_b):
                owners[key] = path
            dict.update(base_cfg, cfg_b)

        # The file's own values.
        if source.tree is not None:
            own = self._execute(source.tree, filename, base_cfg)
        else:
            own = dict(source.data)
            own.pop(BASE_KEY, None)

        if DELETE_KEY in own:
            raise ConfigParsingError(
                f"`{DELETE_KEY}` is a key inside a dict (`model = dict({DELETE_KEY}=True, ...)`), "
                f"not a top-level variable; found at the top level of {filename}"
                + _line_suffix(source, [DELETE_KEY])
            )
        if DEPRECATION_KEY in own:
            _warn_deprecated(filename, own.pop(DEPRECATION_KEY))
        if source.base_vars:
            own = _substitute_base_vars(own, source.base_vars, base_cfg, filename)

        merged = _merge(own, base_cfg, source, (), skip_delete=False)
        for key in [k for k in dict.keys(merged) if isinstance(k, str) and k.startswith("__")]:
            dict.__delitem__(merged, key)
        texts.append(filename + "\n" + source.raw)
        return _Loaded(merged, texts, env)

    @staticmethod
    def _python_bases(tree: ast.Module, filename: str) -> tuple[list[str], int | None]:
        """Read the first top-level ``_base_ = ...`` and drop all of them from ``tree``."""
        first: ast.Assign | None = None
        body: list[ast.stmt] = []
        for stmt in tree.body:
            if _is_base_assign(stmt):
                if first is None:
                    first = stmt  # type: ignore[assignment]
            else:
                body.append(stmt)
        if first is None:
            return [], None
        tree.body = body
        try:
            value = eval(compile(ast.Expression(body=first.value), filename, "eval"), {})
        except Exception as exc:
            raise ConfigParsingError(
                f"Cannot evaluate `_base_` in {filename}, line {first.lineno}: {exc}"
            ) from exc
        return _normalize_bases(value, filename, first.lineno), first.lineno

    @staticmethod
    def _execute(tree: ast.Module, filename: str, base_cfg: ConfigDict) -> dict[Any, Any]:
        code = compile(tree, filename, "exec")
        namespace: dict[str, Any] = {BASE_KEY: base_cfg}
        exec(code, namespace)
        own: dict[Any, Any] = {}
        for key, value in namespace.items():
            if key == BASE_KEY or (isinstance(key, str) and key.startswith("__")):
                continue
            if isinstance(value, (types.FunctionType, types.ModuleType)):
                continue
            own[key] = value
        return own


def _normalize_bases(value: Any, filename: str, lineno: int | None) -> list[str]:
    bases = list(value) if isinstance(value, (list, tuple)) else [value]
    for base in bases:
        if not isinstance(base, str):
            raise ConfigParsingError(
                f"`_base_` must be a path or a list of paths, got {base!r} in {filename}"
                + (f", line {lineno}" if lineno else "")
            )
    return bases


def _resolve_base(base: str, filename: str, lineno: int | None) -> tuple[str, str | None]:
    """Return the absolute path of a base and the scope to add (``pkg`` for ``pkg::path``)."""
    where = f"{filename}" + (f", line {lineno}" if lineno else "")
    if "::" in base:
        from treadle.core.utils.imports import get_installed_path

        scope, _, relative = base.partition("::")
        if not scope or not relative or "::" in relative:
            raise ConfigParsingError(
                f"External base {base!r} in {where} must look like "
                "'package::relative/path.py' (e.g. 'mmdet::_base_/models/retinanet_r50_fpn.py')"
            )
        try:
            package_dir = get_installed_path(scope)
        except (ModuleNotFoundError, RuntimeError) as exc:
            raise ModuleNotFoundError(
                f"{scope} is not installed, please install {scope} manually "
                f"(needed for the base {base!r} in {where})",
                name=scope,
            ) from exc
        path = osp.join(package_dir, ".mim", "configs", relative)
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'Base config "{base}" referenced by {where} does not exist: tried {path}'
            )
        return osp.abspath(path), scope
    path = osp.abspath(osp.expanduser(osp.join(osp.dirname(filename), base)))
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'Base config "{base}" referenced by {where} does not exist: tried {path}'
        )
    check_suffix(path)
    return path, None


def _add_scope(cfg: Any, scope: str, has_scope: bool = True) -> Any:
    """Copy of a base's dict with ``_scope_`` on its outermost dicts that have ``type``."""
    if isinstance(cfg, dict):
        out = ConfigDict()
        add_here = has_scope and "type" in cfg
        for key, value in dict.items(cfg):
            dict.__setitem__(out, key, _add_scope(value, scope, has_scope and not add_here))
        if add_here and dict.get(out, "_scope_") is None:
            dict.__setitem__(out, "_scope_", scope)
        return out
    if isinstance(cfg, list):
        return [_add_scope(item, scope, has_scope) for item in cfg]
    if isinstance(cfg, tuple):
        return tuple([_add_scope(item, scope, has_scope) for item in cfg])
    return cfg


def _warn_deprecated(filename: str, info: Any) -> None:
    message = f"The config file {filename} will be deprecated in the future."
    if isinstance(info, dict):
        if "expected" in info:
            message += f" Please use {info['expected']} instead."
        if "reference" in info:
            message += f" More information can be found at {info['reference']}"
    warnings.warn(message, DeprecationWarning, stacklevel=4)


def _substitute_base_vars(
    own: dict[Any, Any], base_vars: dict[str, str], base_cfg: ConfigDict, filename: str
) -> dict[Any, Any]:
    """Replace ``{{_base_.x}}`` placeholder strings by the referenced base values."""
    resolved: dict[str, Any] = {}

    def lookup(placeholder: str) -> Any:
        if placeholder in resolved:
            return resolved[placeholder]
        dotted = base_vars[placeholder]
        value: Any = base_cfg
        for part in dotted.split("."):
            try:
                if isinstance(value, (list, tuple)) and part.isdigit():
                    value = value[int(part)]
                else:
                    value = value[part]
            except (KeyError, IndexError, TypeError):
                raise KeyError(
                    f"{{{{_base_.{dotted}}}}} in {filename} does not exist in its bases "
                    f"(no {part!r})"
                ) from None
        resolved[placeholder] = value
        return value

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            return lookup(value) if value in base_vars else value
        kind = type(value)
        if kind is dict or kind is ConfigDict:
            return {key: walk(item) for key, item in dict.items(value)}
        if kind is list:
            return [walk(item) for item in value]
        if kind is tuple:
            return tuple([walk(item) for item in value])
        return value

    return {key: walk(value) for key, value in own.items()}


def _merge(
    child: dict[Any, Any],
    base: dict[Any, Any],
    source: _Source,
    path: tuple[Any, ...],
    skip_delete: bool,
) -> ConfigDict:
    """Merge ``child`` into a copy of ``base`` (MMEngine's ``_merge_a_into_b``)."""
    out = ConfigDict()
    dict.update(out, base)
    for key, value in dict.items(child):
        if skip_delete and key == DELETE_KEY:
            continue
        if isinstance(value, dict) and key in out:
            delete = dict.get(value, DELETE_KEY, False)
            if not isinstance(delete, bool):
                raise TypeError(
                    f"`{DELETE_KEY}` must be True or False, got {delete!r} for key "
                    f"{_dotted((*path, key))!r} in {source.filename}"
                    + _line_suffix(source, [*path, key, DELETE_KEY])
                )
            if delete:
                dict.__setitem__(
                    out,
                    key,
                    to_config_tree({k: v for k, v in dict.items(value) if k != DELETE_KEY}),
                )
                continue
            current = dict.__getitem__(out, key)
            if not isinstance(current, dict):
                shown = {k: v for k, v in dict.items(value) if k != DELETE_KEY}
                raise TypeError(
                    f"{key}={shown} in child config cannot inherit from base because {key} is "
                    f"a dict in the child config but is of type {type(current)} in base "
                    f"config. You may set `{DELETE_KEY}=True` to ignore the base config. "
                    f"(key {_dotted((*path, key))!r} in {source.filename}"
                    + _line_suffix(source, [*path, key])
                    + ")"
                )
            dict.__setitem__(out, key, _merge(value, current, source, (*path, key), True))
        else:
            dict.__setitem__(out, key, to_config_tree(value))
    return out


def _dotted(path: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in path)


def _line_suffix(source: _Source, path: list[Any]) -> str:
    line = locate_key(source, path)
    return f", line {line}" if line is not None else ""


def locate_key(source: _Source, path: list[Any]) -> int | None:
    """Best-effort line number (1-based) where ``path`` is set in the file; error paths only."""
    try:
        if source.filename.endswith(".py"):
            return _locate_in_python(parse_python(source.text, source.filename), path)
        import yaml

        return _locate_in_yaml(yaml.compose(source.text), path)
    except Exception:
        return None


def _locate_in_python(tree: ast.Module, path: list[Any]) -> int | None:
    line: int | None = None
    node: ast.expr | None = None
    for stmt in tree.body:
        targets: list[ast.expr] = []
        if isinstance(stmt, ast.Assign):
            targets = stmt.targets
        elif isinstance(stmt, (ast.AnnAssign, ast.AugAssign)):
            targets = [stmt.target]
        if any(isinstance(t, ast.Name) and t.id == path[0] for t in targets):
            line, node = stmt.lineno, stmt.value  # type: ignore[attr-defined]
    for key in path[1:]:
        found: ast.expr | None = None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            for keyword in node.keywords:
                if keyword.arg == key:
                    found = keyword.value
        elif isinstance(node, ast.Dict):
            for key_node, value_node in zip(node.keys, node.values, strict=False):
                if isinstance(key_node, ast.Constant) and key_node.value == key:
                    found = value_node
        if found is None:
            break
        node, line = found, found.lineno
    return line


def _locate_in_yaml(node: Any, path: list[Any]) -> int | None:
    import yaml

    line: int | None = None
    for key in path:
        if not isinstance(node, yaml.MappingNode):
            break
        for key_node, value_node in _pairs(node):
            if str(key_node.value) == str(key):
                line, node = key_node.start_mark.line + 1, value_node
                break
        else:
            break
    return line


def _pairs(node: Any) -> Iterator[tuple[Any, Any]]:
    yield from node.value

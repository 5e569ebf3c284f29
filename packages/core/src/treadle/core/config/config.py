"""``Config``: a config file (or dict) with its text, filename and helpers around it.

``Config.fromfile`` reads both dialects of the MMEngine config language. The style of a
``.py`` file is decided from its AST: ``with read_base():`` or an import of a module outside the
standard library (``sys.stdlib_module_names``) means pure-Python (lazy import) style, handled
by :mod:`treadle.core.config.lazy`; everything else — and every ``.yaml``/``.json`` file — is
text style, handled by :mod:`treadle.core.config._text`.
"""

from __future__ import annotations

import copy
import os.path as osp
import sys
import warnings
from argparse import ArgumentParser
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from treadle.core.config._pretty import format_config
from treadle.core.config._text import (
    TextConfigLoader,
    _Source,
    check_suffix,
    may_be_lazy,
    parse_python,
    substitute,
)
from treadle.core.config.config_dict import ConfigDict, to_config_tree
from treadle.core.config.errors import ConfigParsingError
from treadle.core.config.lazy import is_lazy_style

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

RESERVED_KEYS = ("filename", "text", "pretty_text", "env_variables")


class Config:
    """A config: a :class:`ConfigDict` plus the file it came from.

    Values are reachable as attributes and items (``cfg.model.type``, ``cfg["model"]``);
    every other attribute (``get``, ``keys``, ``items``, ``pop``, …) is the ``ConfigDict``'s.

    Args:
        cfg_dict: The config values. Defaults to an empty config.
        cfg_text: The source text; read from ``filename`` when not given.
        filename: The file the config came from.
        env_variables: Environment variables that were substituted while reading.
        format_python_code: Accepted for MMEngine compatibility; ``pretty_text`` is always
            formatted by treadle's own formatter.

    Raises:
        TypeError: ``cfg_dict`` is not a dict.
        KeyError: ``cfg_dict`` uses a reserved key (``filename``, ``text``, ``pretty_text``,
            ``env_variables``).

    Examples:
        >>> cfg = Config(dict(a=1, b=dict(b1=[0, 1])))
        >>> cfg.b.b1
        [0, 1]
    """

    _cfg_dict: ConfigDict
    _filename: str | None
    _text: str
    _env_variables: dict[str, str]
    _format_python_code: bool
    _imported_names: set[str]

    def __init__(
        self,
        cfg_dict: dict[Any, Any] | None = None,
        cfg_text: str | None = None,
        filename: str | Path | None = None,
        env_variables: dict[str, str] | None = None,
        format_python_code: bool = True,
    ) -> None:
        filename = str(filename) if isinstance(filename, Path) else filename
        if cfg_dict is None:
            cfg_dict = {}
        elif not isinstance(cfg_dict, dict):
            raise TypeError(f"cfg_dict must be a dict, but got {type(cfg_dict)}")
        for key in cfg_dict:
            if key in RESERVED_KEYS:
                raise KeyError(f"{key} is reserved for config file")
        if not isinstance(cfg_dict, ConfigDict):
            cfg_dict = ConfigDict(cfg_dict)
        set_ = object.__setattr__
        set_(self, "_cfg_dict", cfg_dict)
        set_(self, "_filename", filename)
        set_(self, "_format_python_code", format_python_code)
        if "_imported_names" not in self.__dict__:
            set_(self, "_imported_names", set())
        if cfg_text:
            text = cfg_text
        elif filename:
            with open(filename, encoding="utf-8") as handle:
                text = handle.read()
        else:
            text = ""
        set_(self, "_text", text)
        set_(self, "_env_variables", {} if env_variables is None else env_variables)

    # -- construction -----------------------------------------------------------------------

    @staticmethod
    def fromfile(
        filename: str | Path,
        use_predefined_variables: bool = True,
        import_custom_modules: bool = True,
        use_environment_variables: bool = True,
        lazy_import: bool | None = None,
        format_python_code: bool = True,
    ) -> Config:
        """Read a config file (``.py``, ``.yaml``/``.yml`` or ``.json``) and all its bases.

        Args:
            filename: Path of the config file.
            use_predefined_variables: Substitute ``{{fileDirname}}``, ``{{fileBasename}}``,
                ``{{fileBasenameNoExtension}}`` and ``{{fileExtname}}``.
            import_custom_modules: Import the modules listed in ``custom_imports``.
            use_environment_variables: Substitute ``{{$NAME:default}}``.
            lazy_import: ``True`` reads the file as a pure-Python config, ``False`` as a
                text-style config; ``None`` decides from the file's AST.
            format_python_code: Kept for MMEngine compatibility.

        Returns:
            The config.

        Raises:
            FileNotFoundError: The file or one of its bases does not exist.
            SyntaxError: A ``.py`` file has a syntax error (the message names file and line).
            ConfigParsingError: A YAML/JSON file does not parse, the inheritance chain mixes
                styles or is circular, or ``_base_``/``_delete_`` is misused.
            KeyError: Sibling bases define the same key, or a ``{{_base_.x}}`` reference or an
                environment variable without default cannot be resolved.
            TypeError: A dict in a file would merge into a non-dict base value.
            ImportError: A ``custom_imports`` module failed to import.
        """
        filename = str(filename) if isinstance(filename, Path) else filename
        path = osp.abspath(osp.expanduser(filename))
        if not osp.isfile(path):
            raise FileNotFoundError(f'file "{path}" does not exist')
        suffix = check_suffix(path)
        loader = TextConfigLoader(use_predefined_variables, use_environment_variables, lazy_import)
        source: _Source | None = None
        if suffix == ".py" and lazy_import is not False:
            source = loader.prepare(path)
            assert source.tree is not None
            if lazy_import or (may_be_lazy(source.text) and is_lazy_style(source.tree)):
                return Config._fromfile_lazy(filename, path, source.raw, format_python_code)
        loaded = loader.load(path, source)
        cfg_dict = loaded.cfg
        if import_custom_modules and cfg_dict.get("custom_imports", None):
            _import_custom_modules(cfg_dict["custom_imports"], path)
        return Config(
            cfg_dict,
            cfg_text="\n".join(loaded.texts),
            filename=filename,
            env_variables=loaded.env,
            format_python_code=format_python_code,
        )

    @staticmethod
    def _fromfile_lazy(filename: str, path: str, text: str, format_python_code: bool) -> Config:
        """Read a pure-Python config; ``text`` is the file's content, already read."""
        from treadle.core.config.lazy import parse_lazy_config_with_imports

        ConfigDict.lazy = True
        try:
            raw, imported = parse_lazy_config_with_imports(path, text=text)
            cfg_dict = to_config_tree(raw)
        finally:
            ConfigDict.lazy = False
        cfg = Config(
            cfg_dict, cfg_text=text, filename=filename, format_python_code=format_python_code
        )
        object.__setattr__(cfg, "_imported_names", set(imported))
        return cfg

    @staticmethod
    def fromstring(cfg_str: str, file_format: str) -> Config:
        """Build a config from text, without writing a file.

        ``_base_`` paths are resolved relative to the current directory and
        ``{{fileDirname}}`` is the current directory. The returned config has no filename.

        Args:
            cfg_str: Config text.
            file_format: ``.py``, ``.json``, ``.yaml`` or ``.yml``.

        Returns:
            The config.

        Raises:
            OSError: Unsupported ``file_format``.
        """
        if file_format not in (".py", ".json", ".yaml", ".yml"):
            raise OSError("Only py/yml/yaml/json type are supported now!")
        if file_format != ".py" and "dict(" in cfg_str:
            warnings.warn('Please check "file_format", the file format may be .py', stacklevel=2)
        pseudo = osp.join(osp.abspath("."), f"<string>{file_format}")
        loader = TextConfigLoader()
        source = _Source(pseudo, cfg_str)
        substitute(source, True, True)
        if file_format == ".py":
            source.tree = parse_python(source.text, pseudo)
            if is_lazy_style(source.tree):
                raise ConfigParsingError(
                    "Config.fromstring does not support pure-Python (lazy import) configs; "
                    "write the text to a file and use Config.fromfile"
                )
        else:
            from treadle.core.config._text import parse_data

            source.data = parse_data(source.text, pseudo, file_format)
        loaded = loader.load(pseudo, source)
        cfg_dict = loaded.cfg
        if cfg_dict.get("custom_imports", None):
            _import_custom_modules(cfg_dict["custom_imports"], pseudo)
        return Config(cfg_dict, cfg_text=cfg_str, env_variables=loaded.env)

    # -- properties -------------------------------------------------------------------------

    @property
    def filename(self) -> str | None:
        """The file the config was read from (as given), or None."""
        return self._filename

    @property
    def text(self) -> str:
        """The source text: every file of the inheritance chain, each after its path."""
        return self._text

    @property
    def env_variables(self) -> dict[str, str]:
        """Environment variables used while reading the file."""
        return self._env_variables

    @property
    def pretty_text(self) -> str:
        """The config as Python source that loads back to the same dict."""
        return format_config(self.to_dict())

    # -- dict-like access -------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"Config (path: {self.filename}): {self._cfg_dict.__repr__()}"

    def __len__(self) -> int:
        return len(self._cfg_dict)

    def __getattr__(self, name: str) -> Any:
        if name == "_cfg_dict":  # during unpickling/copy before state is set
            raise AttributeError(name)
        return getattr(self._cfg_dict, name)

    def __getitem__(self, name: Any) -> Any:
        return self._cfg_dict[name]

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, dict):
            value = ConfigDict(value)
        self._cfg_dict.__setattr__(name, value)

    def __setitem__(self, name: Any, value: Any) -> None:
        if isinstance(value, dict):
            value = ConfigDict(value)
        self._cfg_dict[name] = value

    def __delattr__(self, name: str) -> None:
        delattr(self._cfg_dict, name)

    def __delitem__(self, name: Any) -> None:
        del self._cfg_dict[name]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._cfg_dict)

    def __contains__(self, name: object) -> bool:
        return name in self._cfg_dict

    def __dir__(self) -> Iterable[str]:
        return [*super().__dir__(), *self._cfg_dict.__dir__()]

    # -- copies and pickling ----------------------------------------------------------------

    def __getstate__(
        self,
    ) -> tuple[ConfigDict, str | None, str, dict[str, str], bool, set[str]]:
        return (
            self._cfg_dict,
            self._filename,
            self._text,
            self._env_variables,
            self._format_python_code,
            self._imported_names,
        )

    def __setstate__(
        self, state: tuple[ConfigDict, str | None, str, dict[str, str], bool, set[str]]
    ) -> None:
        names = (
            "_cfg_dict",
            "_filename",
            "_text",
            "_env_variables",
            "_format_python_code",
            "_imported_names",
        )
        for name, value in zip(names, state, strict=False):
            object.__setattr__(self, name, value)

    def __deepcopy__(self, memo: dict[int, Any]) -> Config:
        other = type(self).__new__(type(self))
        memo[id(self)] = other
        for key, value in self.__dict__.items():
            object.__setattr__(other, key, copy.deepcopy(value, memo))
        return other

    def __copy__(self) -> Config:
        other = type(self).__new__(type(self))
        other.__dict__.update(self.__dict__)
        object.__setattr__(other, "_cfg_dict", self._cfg_dict.copy())
        return other

    copy = __copy__

    # -- conversion, dump, merge ------------------------------------------------------------

    def _to_lazy_dict(self, keep_imported: bool = False) -> dict[Any, Any]:
        """Plain-dict copy keeping lazy objects unbuilt (imported names dropped by default)."""
        result = self._cfg_dict._to_lazy_dict()
        if not keep_imported and self._imported_names:
            result = {k: v for k, v in result.items() if k not in self._imported_names}
        return result

    def to_dict(self, keep_imported: bool = False) -> dict[Any, Any]:
        """Return the config as plain dicts; tuples stay tuples.

        Lazily imported objects (pure-Python configs) become their import strings, as in
        MMEngine.

        Args:
            keep_imported: Keep names that a pure-Python config only imported.
        """
        result = self._cfg_dict.to_dict()
        if not keep_imported and self._imported_names:
            result = {k: v for k, v in result.items() if k not in self._imported_names}
        return result

    @overload
    def dump(self, file: None = None, file_format: str | None = None) -> str: ...

    @overload
    def dump(self, file: str | Path, file_format: str | None = None) -> None: ...

    def dump(self, file: str | Path | None = None, file_format: str | None = None) -> str | None:
        """Write the config to ``file`` or return it as text.

        The format follows the suffix: ``.py`` (``pretty_text``), ``.json``, ``.yaml``/``.yml``
        or ``.pkl``/``.pickle``. Without ``file`` the format of :attr:`filename` is used (Python
        when there is none). Tuples survive ``.py``, YAML and pickle; JSON turns them into lists.

        Args:
            file: Target path or URI (written through :func:`treadle.core.fileio.put_text`).
            file_format: ``py``, ``json``, ``yaml``/``yml`` or ``pkl`` to override the format the
                suffix (or :attr:`filename`) implies. Not in MMEngine.

        Returns:
            The text when ``file`` is None, else None.
        """
        file = str(file) if isinstance(file, Path) else file
        wanted = file_format.lstrip(".").lower() if file_format else None
        if file is None:
            if wanted is None:
                if self.filename is None or self.filename.endswith(".py"):
                    return self.pretty_text
                wanted = self.filename.rsplit(".", 1)[-1]
            if wanted == "py":
                return self.pretty_text
            return _dump_text(self.to_dict(), wanted)
        suffix = file.rsplit(".", 1)[-1].lower() if "." in osp.basename(file) else ""
        suffix = wanted or suffix
        if suffix in ("pkl", "pickle"):
            import pickle

            from treadle.core.fileio import put

            put(pickle.dumps(self.to_dict()), file)
            return None
        text = self.pretty_text if suffix == "py" else _dump_text(self.to_dict(), suffix)
        from treadle.core.fileio import put_text

        put_text(text, file)
        return None

    def merge_from_dict(self, options: dict[str, Any], allow_list_keys: bool = True) -> None:
        """Merge ``--cfg-options``-style values into the config.

        Keys are dotted paths (``model.backbone.depth``); with ``allow_list_keys`` a numeric
        part indexes a list or tuple (``train_pipeline.0.type``). Dict values merge into dict
        values (``_delete_=True`` replaces instead); other values replace.

        Args:
            options: Mapping of dotted keys to values.
            allow_list_keys: Allow numeric parts to index lists and tuples.

        Raises:
            KeyError: A list index is out of range.
            TypeError: A dict would merge into a value that is not a dict (or list).

        Examples:
            >>> cfg = Config(dict(model=dict(backbone=dict(type="ResNet"))))
            >>> cfg.merge_from_dict({"model.backbone.depth": 50})
            >>> cfg.model.backbone
            {'type': 'ResNet', 'depth': 50}
        """
        option_cfg: dict[str, Any] = {}
        for full_key, value in options.items():
            node = option_cfg
            parts = full_key.split(".")
            for part in parts[:-1]:
                node = node.setdefault(part, ConfigDict())
            node[parts[-1]] = value
        merged = _merge_options(option_cfg, self._cfg_dict, allow_list_keys, ())
        object.__setattr__(self, "_cfg_dict", merged)

    @staticmethod
    def diff(cfg1: str | Config, cfg2: str | Config) -> str:
        """Unified diff of the ``pretty_text`` of two configs (or config files)."""
        first = Config.fromfile(cfg1) if isinstance(cfg1, str) else cfg1
        second = Config.fromfile(cfg2) if isinstance(cfg2, str) else cfg2
        import difflib

        lines = difflib.unified_diff(
            first.pretty_text.split("\n"), second.pretty_text.split("\n"), lineterm=""
        )
        return "\n".join(lines)

    @staticmethod
    def auto_argparser(description: str | None = None) -> tuple[ArgumentParser, Config]:
        """Build an argument parser with one option per config value (experimental)."""
        partial = ArgumentParser(description=description)
        partial.add_argument("config", help="config file path")
        cfg = Config.fromfile(partial.parse_known_args()[0].config)
        parser = ArgumentParser(description=description)
        parser.add_argument("config", help="config file path")
        add_args(parser, cfg.to_dict())
        return parser, cfg


def add_args(parser: ArgumentParser, cfg: dict[Any, Any], prefix: str = "") -> ArgumentParser:
    """Add one ``--key`` option per config value to ``parser`` (MMEngine's ``add_args``)."""
    for key, value in cfg.items():
        name = "--" + prefix + str(key)
        if isinstance(value, str):
            parser.add_argument(name)
        elif isinstance(value, bool):
            parser.add_argument(name, action="store_true")
        elif isinstance(value, int):
            parser.add_argument(name, type=int)
        elif isinstance(value, float):
            parser.add_argument(name, type=float)
        elif isinstance(value, dict):
            add_args(parser, value, prefix + str(key) + ".")
        elif isinstance(value, (list, tuple)) and value:
            parser.add_argument(name, type=type(value[0]), nargs="+")
    return parser


def _dump_text(cfg: dict[Any, Any], suffix: str) -> str:
    if suffix == "json":
        import json

        from treadle.core.fileio.handlers import _json_default

        return json.dumps(cfg, indent=4, default=_json_default) + "\n"
    if suffix in ("yaml", "yml"):
        import yaml

        dumper: Any = getattr(yaml, "CDumper", yaml.Dumper)
        text: str = yaml.dump(cfg, Dumper=dumper, sort_keys=False)
        return text
    raise OSError(f"Cannot dump a config as {suffix!r}: use .py, .json, .yaml/.yml or .pkl")


def _merge_options(a: dict[Any, Any], b: Any, allow_list_keys: bool, path: tuple[Any, ...]) -> Any:
    """MMEngine's ``_merge_a_into_b`` with list keys; returns a new container."""
    from treadle.core.config.config_dict import DELETE_KEY

    if isinstance(b, tuple) and allow_list_keys:
        return tuple(_merge_options(a, list(b), allow_list_keys, path))
    out: Any = list(b) if isinstance(b, list) else ConfigDict(b)
    setitem = out.__setitem__
    for key, value in a.items():
        here = (*path, key)
        if allow_list_keys and isinstance(out, list) and isinstance(key, str) and key.isdigit():
            index = int(key)
            if len(out) <= index:
                raise KeyError(f"Index {index} exceeds the length of list {out}")
            if isinstance(value, dict) and isinstance(out[index], (dict, list, tuple)):
                out[index] = _merge_options(value, out[index], allow_list_keys, here)
            else:
                out[index] = to_config_tree(value)
        elif isinstance(out, list):
            raise TypeError(
                f"Cannot set key {'.'.join(map(str, here))!r}: "
                f"{'.'.join(map(str, path)) or 'the value'} is a list; use a numeric index"
            )
        elif isinstance(value, dict):
            if key in out and not value.pop(DELETE_KEY, False):
                allowed: tuple[type, ...] = (dict, list, tuple) if allow_list_keys else (dict,)
                current = dict.__getitem__(out, key)
                if not isinstance(current, allowed):
                    raise TypeError(
                        f"{key}={value} in child config cannot inherit from base because {key} "
                        f"is a dict in the child config but is of type {type(current)} in base "
                        f"config. You may set `{DELETE_KEY}=True` to ignore the base config. "
                        f"(key {'.'.join(map(str, here))!r})"
                    )
                setitem(key, _merge_options(value, current, allow_list_keys, here))
            else:
                setitem(key, to_config_tree(value))
        else:
            setitem(key, value)
    return out


def _import_custom_modules(custom_imports: Any, filename: str) -> None:
    from treadle.core.utils.imports import import_modules_from_strings

    try:
        import_modules_from_strings(**custom_imports)
    except ImportError as exc:
        paths = "".join(f"\n    {entry}" for entry in sys.path)
        raise ImportError(
            f"Failed to import custom modules from {custom_imports} (custom_imports of "
            f"{filename}), the current sys.path is: {paths}\nYou should set `PYTHONPATH` to "
            "make `sys.path` include the directory which contains your custom module"
        ) from exc

"""Pure-Python configs (treadle.core.config.lazy) against MMEngine 0.10.7's results.

golden.txt was produced by real MMEngine (fixtures/configs/lazy/make_golden.py); these tests
need neither MMEngine nor torch.
"""

from __future__ import annotations

import ast
import copy
import os
import pickle
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

from treadle.core.config.errors import ConfigParsingError
from treadle.core.config.lazy import (
    LazyAttr,
    LazyObject,
    is_lazy_style,
    parse_lazy_config,
    parse_lazy_config_with_imports,
    read_base,
)

LAZY = Path(__file__).parent / "fixtures" / "configs" / "lazy"
ERRORS = LAZY / "errors"
GOLDEN: dict = ast.literal_eval((LAZY / "golden.txt").read_text(encoding="utf-8"))


def _tagged(value, dump=False):
    """The golden file's form: lazy objects as tagged tuples (or MMEngine's dump strings)."""
    if isinstance(value, dict):
        assert type(value) is dict, f"not a plain dict: {type(value)}"
        return {k: _tagged(v, dump) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_tagged(v, dump) for v in value)
    if isinstance(value, (LazyObject, LazyAttr)):
        return value.dump_str if dump else (f"<{type(value).__name__}>", str(value))
    if isinstance(value, types.FunctionType):
        return ("<function>", value.__name__)
    return value


def _parse(rel):
    return parse_lazy_config_with_imports(str(LAZY / rel))


# --------------------------------------------------------------------------------------------
# Results equal MMEngine's
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rel", sorted(GOLDEN))
def test_variables_match_mmengine(rel):
    variables, _ = _parse(rel)
    assert _tagged(variables) == GOLDEN[rel]["cfg_dict"]


@pytest.mark.parametrize("rel", sorted(GOLDEN))
def test_imported_names_match_mmengine(rel):
    _, imported = _parse(rel)
    assert sorted(imported) == GOLDEN[rel]["imported_names"]


@pytest.mark.parametrize("rel", sorted(GOLDEN))
def test_to_dict_view_matches_mmengine_strings(rel):
    # What MMEngine's Config.to_dict() gives: imported names left out, lazy objects as
    # MMEngine's strings (LazyObject/LazyAttr.dump_str).
    variables, imported = _parse(rel)
    public = {k: v for k, v in variables.items() if k not in imported}
    assert _tagged(public, dump=True) == GOLDEN[rel]["to_dict"]


def test_parse_lazy_config_is_the_variables():
    path = str(LAZY / "toy" / "child.py")
    assert _tagged(parse_lazy_config(path)) == GOLDEN["toy/child.py"]["cfg_dict"]


def test_result_types_and_dropped_names():
    variables, imported = _parse("toy/child.py")
    assert type(variables["model"]) is dict
    assert type(variables["model"]["backbone"]) is dict
    assert type(variables["model"]["backbone"]["out_indices"]) is tuple
    assert type(variables["param_scheduler"][1]) is dict
    # dunder names, modules (copy, osp) and read_base are gone; a single underscore stays
    assert not [k for k in variables if k.startswith("__")]
    assert "copy" not in variables
    assert "osp" not in variables
    assert "read_base" not in variables
    assert "read_base" in imported
    assert variables["_private_note"] == "kept"
    # stdlib imports are real: `from math import pi` is a float, not a LazyObject
    assert variables["pi"] == pytest.approx(3.141592653589793)
    assert callable(variables["scale"])
    assert variables["scale"](2) == 4


def test_lazy_values_and_their_strings():
    variables, _ = _parse("toy/child.py")
    assert variables["nn"] == LazyObject("torch.nn")
    assert str(variables["nn"]) == "torch.nn"
    assert variables["nn"].dump_str == "torch.nn.torch.nn"  # MMEngine's string, sic
    assert variables["SGD"] == LazyObject("torch.optim", "SGD")
    assert str(variables["Adam"]) == "torch.optim.AdamW"
    linear = variables["model"]["head"]["type"]
    assert isinstance(linear, LazyAttr)
    assert str(linear) == "torch.nn.Linear"
    assert linear.dump_str == "torch.nn.Linear"
    loss = variables["model"]["loss"]  # torch.nn.CrossEntropyLoss via `import torch`
    assert isinstance(loss.source, LazyAttr)
    assert str(loss) == "torch.nn.CrossEntropyLoss"
    assert variables["torch"] == LazyObject(["torch"])


def test_locations_name_file_and_line():
    variables, _ = _parse("toy/child.py")
    child = str(LAZY / "toy" / "child.py")
    assert variables["Adam"].location == f"{child}, line 12"
    assert variables["nn"].location == f"{child}, line 11"
    # `import numpy` + `import numpy.random` gather into one object located at the first
    assert variables["numpy"].location == f"{child}, line 9"
    # an attribute keeps where its source was imported
    assert variables["model"]["neck"]["act"].location == f"{child}, line 11"
    base = str(LAZY / "toy" / ".." / "_base_" / "schedules" / "sgd_1x.py")
    assert variables["SGD"].location == f"{base}, line 1"


def test_child_changes_do_not_leak_into_bases_or_later_parses():
    before = _parse("toy/base_toy.py")[0]
    _parse("toy/child.py")
    _parse("toy/deep/grandchild.py")
    again = _parse("toy/base_toy.py")[0]
    assert _tagged(again) == _tagged(before) == GOLDEN["toy/base_toy.py"]["cfg_dict"]
    # results are independent objects
    again["model"]["backbone"]["depth"] = 0
    assert _parse("toy/base_toy.py")[0]["model"]["backbone"]["depth"] == 34


def test_base_values_are_copied_per_variable():
    # In the base, train_dataloader holds train_pipeline; the child appends to train_pipeline
    # only (MMEngine copies every base variable separately).
    variables, _ = _parse("toy/child.py")
    assert variables["train_pipeline"][-1] == {"type": "RandomFlip", "prob": 0.5}
    assert len(variables["train_dataloader"]["dataset"]["pipeline"]) == 3


def test_future_import_and_docstring_stay_first(tmp_path):
    variables, imported = parse_lazy_config_with_imports(str(LAZY / "future_import.py"))
    assert str(variables["linear"]) == "torch.nn.Linear"
    assert "annotations" in imported
    assert "annotations" in variables


def test_parsing_imports_neither_torch_nor_the_lazy_modules():
    code = textwrap.dedent(
        f"""
        import sys
        from treadle.core.config.lazy import parse_lazy_config
        parse_lazy_config({str(LAZY / "toy" / "deep" / "grandchild.py")!r})
        parse_lazy_config({str(LAZY / "no_base.py")!r})
        bad = [m for m in ("torch", "numpy", "mmengine") if m in sys.modules]
        assert not bad, bad
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_absolute_base_in_installed_package(tmp_path, monkeypatch):
    pkg = tmp_path / "lazyfixture_pkg"
    (pkg / "configs" / "_base_").mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise RuntimeError('the package must not be imported')\n")
    (pkg / "configs" / "_base_" / "runtime.py").write_text(
        "log_level = 'INFO'\nhooks = dict(a=1)\n"
    )
    ns = tmp_path / "lazyfixture_ns" / "configs"  # a namespace package (no __init__.py)
    ns.mkdir(parents=True)
    (ns / "model.py").write_text("from torch import nn\nmodel = dict(type=nn.Linear)\n")
    child = tmp_path / "child.py"
    child.write_text(
        "from treadle.core.config import read_base\n"
        "with read_base():\n"
        "    from lazyfixture_pkg.configs._base_.runtime import *\n"
        "    from lazyfixture_ns.configs.model import model\n"
        "hooks.update(b=2)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    variables = parse_lazy_config(str(child))
    assert variables["log_level"] == "INFO"
    assert variables["hooks"] == {"a": 1, "b": 2}
    assert str(variables["model"]["type"]) == "torch.nn.Linear"
    assert "lazyfixture_pkg" not in sys.modules


def test_changed_file_is_parsed_again(tmp_path):
    cfg = tmp_path / "cfg.py"
    cfg.write_text("import torch\nvalue = 1\n")
    assert parse_lazy_config(str(cfg))["value"] == 1
    cfg.write_text("import torch\nvalue = 22\n")
    stat = cfg.stat()
    os.utime(cfg, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert parse_lazy_config(str(cfg))["value"] == 22


def test_imports_nested_in_blocks_are_lazy_too(tmp_path):
    cfg = tmp_path / "cfg.py"
    cfg.write_text(
        "import torch\n"
        "if True:\n"
        "    import torch.distributed\n"
        "    import torch.nn as tnn\n"
        "    from torch.optim import SGD\n"
        "    import json\n"
        "def make():\n"
        "    from torch import nn\n"
        "    return nn\n"
        "import os, yaml\n"
        "a = tnn.Linear\n"
        "made = make()\n"
        "dumps = json.dumps\n"
        "y = yaml.safe_load\n"
    )
    variables, imported = parse_lazy_config_with_imports(str(cfg))
    assert variables["torch"] == LazyObject(["torch.distributed"])
    assert str(variables["a"]) == "torch.nn.Linear"
    assert variables["made"] == LazyObject("torch", "nn")
    assert variables["dumps"].__module__ == "json"
    assert variables["y"].build() is __import__("yaml").safe_load
    assert {"tnn", "SGD", "torch", "yaml", "nn"} <= imported
    assert "os" not in variables
    assert "json" not in variables


def test_config_api_imports_are_real_names(tmp_path):
    cfg = tmp_path / "cfg.py"
    cfg.write_text(
        "from mmengine.config import read_base as rb, LazyObject\n"
        "obj = LazyObject('yaml', 'safe_load')\n"
        "same = rb\n"
    )
    variables, imported = parse_lazy_config_with_imports(str(cfg))
    assert variables["obj"].build() is __import__("yaml").safe_load
    assert "same" not in variables  # read_base is dropped under any name
    assert {"rb", "LazyObject"} <= imported


# --------------------------------------------------------------------------------------------
# LazyObject / LazyAttr
# --------------------------------------------------------------------------------------------


def test_lazy_object_build_and_attributes():
    import yaml
    import yaml.nodes

    assert LazyObject("yaml").build() is yaml
    assert LazyObject("yaml", "safe_load").build() is yaml.safe_load
    assert LazyObject(["yaml.nodes", "yaml"]).build() is yaml
    attr = LazyObject("yaml").nodes.ScalarNode
    assert isinstance(attr, LazyAttr)
    assert attr.name == "ScalarNode"
    assert attr.module == "yaml.nodes"
    assert str(attr) == "yaml.nodes.ScalarNode"
    assert attr.build() is yaml.nodes.ScalarNode
    assert LazyObject(["yaml.nodes"]).module == "yaml"
    assert str(LazyObject(("yaml.nodes", "yaml"))) == "yaml"
    assert LazyObject(["yaml.nodes"]).dump_str == "yaml.yaml"
    assert LazyObject("yaml", "dump").dump_str == "yaml.dump"
    assert repr(LazyObject("a.b", "C")) == "<LazyObject a.b.C>"
    assert repr(attr) == "<LazyAttr yaml.nodes.ScalarNode>"


def test_lazy_objects_copy_pickle_compare():
    obj = LazyObject("torch.optim", "SGD", "cfg.py, line 3")
    attr = LazyObject("torch.nn", location="cfg.py, line 1").Linear.weight
    for value in (obj, attr):
        for clone in (copy.deepcopy(value), copy.copy(value), pickle.loads(pickle.dumps(value))):
            assert clone == value
            assert clone is not value
            assert hash(clone) == hash(value)
            assert str(clone) == str(value)
            assert clone.location == value.location
    assert attr.location == "cfg.py, line 1"
    assert obj != LazyObject("torch.optim", "Adam")
    assert obj != "torch.optim.SGD"
    assert LazyObject(["a.b", "a"]) != LazyObject(["a"])
    assert attr != LazyObject("torch.nn").Linear.bias
    assert copy.deepcopy({"t": [obj]})["t"][0] == obj


def test_lazy_object_dunder_lookups_are_not_attributes():
    obj = LazyObject("torch")
    with pytest.raises(AttributeError):
        obj.__wrapped__
    with pytest.raises(AttributeError):
        obj.Linear.__signature__
    assert not hasattr(obj, "__html__")


def test_lazy_object_validates_arguments():
    with pytest.raises(TypeError, match="non-empty list of str"):
        LazyObject(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="non-empty list of str"):
        LazyObject([])
    with pytest.raises(TypeError, match="imported must be a str"):
        LazyObject("torch", 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="LazyAttr source"):
        LazyAttr("x", "torch")  # type: ignore[arg-type]


def test_build_errors_name_the_import_location():
    variables = parse_lazy_config(str(ERRORS / "build_failures.py"))
    where = f"{ERRORS / 'build_failures.py'}, line"
    with pytest.raises(ModuleNotFoundError) as info:
        variables["missing_module"].build()
    assert "treadle_no_such_package_xyz.models" in str(info.value)
    assert f"{where} 3" in str(info.value)
    with pytest.raises(ImportError) as info:
        variables["missing_name"].build()
    assert "NoSuchThing" in str(info.value)
    assert f"{where} 4" in str(info.value)
    with pytest.raises(ImportError) as info:
        variables["missing_attr"].build()
    assert "yaml.no_such_attr" in str(info.value)
    assert f"{where} 1" in str(info.value)
    import yaml
    import yaml.nodes

    assert variables["good"].build() is yaml.safe_load
    assert variables["good_attr"].build() is yaml.safe_dump
    assert variables["good_module"].build() is yaml.nodes.ScalarNode


def test_build_error_of_a_failing_module_keeps_its_type(tmp_path, monkeypatch):
    (tmp_path / "lazyfixture_broken.py").write_text("raise ValueError('broken on import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match=r"lazyfixture_broken \(imported at cfg.py, line 2\)"):
        LazyObject("lazyfixture_broken", None, "cfg.py, line 2").build()
    with pytest.raises(ValueError, match="broken on import"):
        LazyObject(["lazyfixture_broken"]).build()


def test_calling_a_lazy_object_in_a_config_explains():
    with pytest.raises(RuntimeError) as info:
        parse_lazy_config(str(ERRORS / "call_lazy.py"))
    assert "torch.optim.SGD" in str(info.value)
    assert f"{ERRORS / 'call_lazy.py'}, line 1" in str(info.value)
    assert ".build()" in str(info.value)
    with pytest.raises(RuntimeError, match=r"torch\.nn\.Linear"):
        LazyObject("torch.nn").Linear(3, 4)


def test_read_base_is_a_no_op_context_manager():
    with read_base() as value:
        pass
    assert value is None


# --------------------------------------------------------------------------------------------
# is_lazy_style
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("", False),
        ("a = 1", False),
        ("import os\nimport os.path as osp\nfrom collections import OrderedDict", False),
        ("import json, math", False),
        ("from __future__ import annotations\nx = 1", False),
        ("_base_ = ['a.py']\nx = 1", False),
        ("_base_ = 'a.py'\nimport torch", False),
        ("import torch\n_base_ = 'a.py'", True),
        ("with read_base():\n    from .a import *", True),
        ("import torch", True),
        ("import os, yaml", True),
        ("from torch.optim import SGD", True),
        ("from . import a", True),
        ("from .a import b", True),
        ("def f():\n    import torch", True),
        ("from mmengine.config import read_base", False),
        ("from mmengine import Config", False),
        ("from treadle.core.config import read_base", True),
        ("with open('x') as f:\n    pass", False),
    ],
)
def test_is_lazy_style(source, expected):
    assert is_lazy_style(ast.parse(source)) is expected


def test_is_lazy_style_on_fixtures():
    for rel in GOLDEN:
        assert is_lazy_style(ast.parse((LAZY / rel).read_text())), rel
    assert not is_lazy_style(ast.parse((ERRORS / "mixed" / "text_base.py").read_text()))


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


def _error(rel, kind=ConfigParsingError):
    with pytest.raises(kind) as info:
        parse_lazy_config(str(ERRORS / rel))
    return str(info.value)


def test_syntax_error_names_file_and_line():
    with pytest.raises(SyntaxError) as info:
        parse_lazy_config(str(ERRORS / "syntax_error.py"))
    assert info.value.filename == str(ERRORS / "syntax_error.py")
    assert info.value.lineno in (3, 4, 5)
    assert f"{ERRORS / 'syntax_error.py'}, line {info.value.lineno}" in str(info.value)


def test_syntax_error_in_a_base_names_the_base():
    with pytest.raises(SyntaxError) as info:
        parse_lazy_config(str(ERRORS / "base_syntax_error.py"))
    assert info.value.filename.endswith("syntax_error.py")
    assert "base_syntax_error" not in info.value.filename


def test_compile_error_names_file_and_line():
    with pytest.raises(SyntaxError) as info:
        parse_lazy_config(str(ERRORS / "compile_error.py"))
    assert f"{ERRORS / 'compile_error.py'}, line 3" in str(info.value)
    assert "outside function" in str(info.value)


def test_missing_base_names_importer_line_and_path():
    message = _error("missing_base.py")
    assert f"{ERRORS / 'missing_base.py'}, line 5" in message
    assert "`.._base_.models.no_such_model`" in message
    assert str(LAZY / "_base_" / "models" / "no_such_model.py") in message


def test_missing_package_base():
    message = _error("missing_package_base.py")
    assert f"{ERRORS / 'missing_package_base.py'}, line 4" in message
    assert "'treadle_no_such_package_xyz' is not installed" in message


def test_missing_module_in_installed_package_lists_tried_path(tmp_path, monkeypatch):
    (tmp_path / "lazyfixture_pkg2" / "configs").mkdir(parents=True)
    (tmp_path / "lazyfixture_pkg2" / "__init__.py").write_text("")
    cfg = tmp_path / "cfg.py"
    cfg.write_text("with read_base():\n    from lazyfixture_pkg2.configs.nope import *\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigParsingError) as info:
        parse_lazy_config(str(cfg))
    assert f"{cfg}, line 2" in str(info.value)
    assert str(tmp_path / "lazyfixture_pkg2" / "configs/nope.py") in str(info.value)


def test_package_is_not_a_base():
    message = _error("package_as_base.py")
    assert f"{ERRORS / 'package_as_base.py'}, line 4" in message
    assert "`yaml` is a package, not a base config" in message


def test_missing_name_in_base_suggests():
    message = _error("missing_name.py")
    assert f"{ERRORS / 'missing_name.py'}, line 4" in message
    assert "'optim_wraper'" in message
    assert "did you mean 'optim_wrapper'" in message
    assert "sgd_1x.py" in message


def test_mixing_styles_names_both_files():
    message = _error("mixed/child.py")
    assert f"{ERRORS / 'mixed' / 'child.py'}, line 4" in message
    assert str(ERRORS / "mixed" / "text_base.py") in message
    assert "line 1" in message
    assert "mixing pure-Python and text-style configs" in message


def test_base_key_in_a_pure_python_config():
    message = _error("mixed/both_in_one.py")
    assert f"{ERRORS / 'mixed' / 'both_in_one.py'}, line 6" in message
    assert "mixing pure-Python and text-style configs is not supported" in message


@pytest.mark.parametrize(
    ("rel", "line", "text"),
    [
        ("star_lazy.py", 1, "`from torch.nn import *` is only allowed for base configs"),
        ("star_stdlib.py", 1, "`from os.path import *` is only allowed for base configs"),
        ("bad_with.py", 3, "only the `with read_base():` context manager"),
        ("read_base_stmt.py", 5, "only `from ... import ...` of base configs"),
        ("read_base_import.py", 4, "only `from ... import ...` of base configs"),
        ("read_base_from_dot.py", 4, "`from . import x` is not supported"),
        ("read_base_as.py", 3, "without `as`"),
        ("nested_read_base.py", 4, "must be a top-level statement"),
        ("relative_outside.py", 1, "relative import `from .._base_.default_runtime import ...`"),
        ("bad_api_import.py", 1, "cannot import 'NoSuchConfigThing'"),
    ],
)
def test_structural_errors_name_file_and_line(rel, line, text):
    message = _error(rel)
    assert f"{ERRORS / rel}, line {line}" in message
    assert text in message


def test_circular_bases():
    message = _error("circular_a.py")
    assert "circular base config import" in message
    assert "circular_a.py -> " in message
    assert "circular_b.py -> " in message


def test_runtime_error_traceback_points_into_the_config():
    with pytest.raises(NameError) as info:
        parse_lazy_config(str(ERRORS / "runtime_error.py"))
    frames = [(entry.path, entry.lineno + 1) for entry in info.traceback]
    assert (ERRORS / "runtime_error.py", 4) in [(Path(p), n) for p, n in frames]


def test_missing_file():
    with pytest.raises(FileNotFoundError, match=r"no_such_config\.py"):
        parse_lazy_config(str(LAZY / "no_such_config.py"))


def test_base_imported_again_outside_read_base(tmp_path):
    (tmp_path / "base.py").write_text("import torch\nmodel = dict(depth=1)\nlr = 0.1\n")
    cfg = tmp_path / "cfg.py"
    cfg.write_text(
        "with read_base():\n"
        "    from .base import model\n"
        "from .base import lr as base_lr\n"
        "model.depth = 2\n"
    )
    variables, imported = parse_lazy_config_with_imports(str(cfg))
    assert variables == {"model": {"depth": 2}, "base_lr": 0.1}
    assert imported == {"torch"}  # a base's imports count as imported names of the child
    nested = tmp_path / "nested.py"
    nested.write_text(
        "with read_base():\n    from .base import model\nif True:\n    from .base import lr\n"
    )
    with pytest.raises(ConfigParsingError, match=r"nested.py, line 4: base config `.base`"):
        parse_lazy_config(str(nested))


def test_multiple_read_base_blocks(tmp_path):
    # MMEngine reads only the first block; treadle reads them all.
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "b.py").write_text("y = 2\n")
    cfg = tmp_path / "cfg.py"
    cfg.write_text(
        "with read_base():\n    from .a import *\nz = 3\nwith read_base():\n    from .b import y\n"
    )
    assert parse_lazy_config(str(cfg)) == {"x": 1, "y": 2, "z": 3}


def test_unusual_line_breaks_do_not_hide_imports(tmp_path):
    # str.splitlines() would count \x0c and \u2028 as line breaks; Python does not.
    cfg = tmp_path / "cfg.py"
    cfg.write_text(
        "a = '\x0c\u2028'\nif True:\n    import torch.nn as nn\nx = nn.Linear\n", encoding="utf-8"
    )
    assert str(parse_lazy_config(str(cfg))["x"]) == "torch.nn.Linear"

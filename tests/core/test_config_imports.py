"""treadle.core.utils.imports: custom_imports and package lookup."""

import json
import os.path as osp
import sys

import pytest

from treadle.core.utils.imports import get_installed_path, import_modules_from_strings


def test_import_modules_from_strings():
    assert import_modules_from_strings(None) is None
    assert import_modules_from_strings([]) is None
    assert import_modules_from_strings("json") is json
    assert import_modules_from_strings(["json", "os.path"]) == [json, osp]


def test_failed_imports():
    with pytest.raises(ImportError, match="Failed to import treadle_no_such_module") as info:
        import_modules_from_strings(["treadle_no_such_module"])
    assert isinstance(info.value.__cause__, ImportError)
    with pytest.warns(UserWarning, match="treadle_no_such_module failed to import and is ignored"):
        result = import_modules_from_strings(
            ["json", "treadle_no_such_module"], allow_failed_imports=True
        )
    assert result == [json, None]


def test_bad_types():
    with pytest.raises(TypeError, match="custom_imports must be a list"):
        import_modules_from_strings(("json",))
    with pytest.raises(TypeError, match="cannot be imported"):
        import_modules_from_strings([1])


def test_get_installed_path(tmp_path, monkeypatch):
    assert get_installed_path("json") == osp.dirname(json.__file__)
    pkg = tmp_path / "treadle_fake_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("raise RuntimeError('must not be imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert get_installed_path("treadle_fake_pkg") == str(pkg)
    assert "treadle_fake_pkg" not in sys.modules
    # a distribution name that differs from its module: pyyaml -> yaml
    import yaml

    assert get_installed_path("PyYAML") == osp.dirname(yaml.__file__)
    with pytest.raises(ModuleNotFoundError, match="treadle_missing_pkg is not installed"):
        get_installed_path("treadle_missing_pkg")


def test_namespace_package(tmp_path, monkeypatch):
    (tmp_path / "treadle_ns_pkg").mkdir()
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(RuntimeError, match="namespace package"):
        get_installed_path("treadle_ns_pkg")

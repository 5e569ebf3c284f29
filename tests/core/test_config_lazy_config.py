"""Config.fromfile on pure-Python configs: MMEngine's results, lazy objects built on access."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest
import yaml
import yaml.nodes

from treadle.core.config import Config, ConfigDict, LazyAttr, LazyObject

LAZY = Path(__file__).parent / "fixtures" / "configs" / "lazy"
GOLDEN: dict = ast.literal_eval((LAZY / "golden.txt").read_text(encoding="utf-8"))


def _tagged(value):
    if isinstance(value, dict):
        return {k: _tagged(v) for k, v in dict.items(value)}
    if isinstance(value, (list, tuple)):
        return type(value)(_tagged(v) for v in value)
    if isinstance(value, (LazyObject, LazyAttr)):
        return (f"<{type(value).__name__}>", str(value))
    if isinstance(value, types.FunctionType):
        return ("<function>", value.__name__)
    return value


@pytest.mark.parametrize("rel", sorted(GOLDEN))
def test_fromfile_matches_mmengine(rel):
    cfg = Config.fromfile(LAZY / rel)
    assert _tagged(cfg._to_lazy_dict(keep_imported=True)) == GOLDEN[rel]["cfg_dict"]
    assert _tagged(cfg.to_dict()) == GOLDEN[rel]["to_dict"]
    assert sorted(cfg._imported_names) == GOLDEN[rel]["imported_names"]
    assert isinstance(cfg._cfg_dict, ConfigDict)


def test_attribute_access_builds_lazy_objects(tmp_path):
    cfg_file = tmp_path / "cfg.py"
    cfg_file.write_text(
        "import yaml\n"
        "import yaml.nodes\n"
        "from yaml import safe_load\n"
        "loader = dict(type=safe_load, node=yaml.nodes.ScalarNode, items=[safe_load])\n"
    )
    cfg = Config.fromfile(cfg_file)
    assert cfg.loader.type is yaml.safe_load
    assert cfg.loader["node"] is yaml.nodes.ScalarNode
    assert cfg.loader.get("type") is yaml.safe_load
    assert cfg.safe_load is yaml.safe_load  # imported names stay reachable
    assert cfg.yaml is yaml
    # kept lazy inside containers and in the plain views
    assert cfg.loader["items"] == [LazyObject("yaml", "safe_load")]
    assert cfg.to_dict() == {
        "loader": {
            "type": "yaml.safe_load",
            "node": "yaml.nodes.ScalarNode",
            "items": ["yaml.safe_load"],
        }
    }


def test_fromfile_does_not_import_torch():
    code = textwrap.dedent(
        f"""
        import sys
        from treadle.core.config import Config
        cfg = Config.fromfile({str(LAZY / "toy" / "deep" / "grandchild.py")!r})
        cfg.to_dict()
        cfg.model["backbone"]["depth"]
        assert "torch" not in sys.modules
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("rel", ["toy/child_named.py", "no_base.py", "toy/override_order.py"])
def test_dump_reloads_to_the_same_dict(rel, tmp_path):
    cfg = Config.fromfile(LAZY / rel)
    out = tmp_path / "dumped.py"
    cfg.dump(out)
    assert Config.fromfile(out).to_dict() == cfg.to_dict()

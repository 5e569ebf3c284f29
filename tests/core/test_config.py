"""Config, ConfigDict and text-style config files: features, API and error paths."""

import ast
import copy
import json
import pickle
import subprocess
import sys
import textwrap
import traceback
from pathlib import Path

import pytest
import yaml

from treadle.core.config import Config, ConfigDict, ConfigParsingError, LazyObject

ROOT = Path(__file__).parent / "fixtures" / "configs" / "text"
FEATURES = ROOT / "features"
ERRORS = ROOT / "errors"
FASTER = ROOT / "faster_rcnn" / "faster-rcnn_r50_fpn_1x_coco.py"


def _write(path: Path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return str(path)


def _all_configdicts(value):
    """Every mapping inside ``value`` (through lists and tuples) is a ConfigDict."""
    if isinstance(value, dict):
        return type(value) is ConfigDict and all(_all_configdicts(v) for v in dict.values(value))
    if isinstance(value, (list, tuple)):
        return all(_all_configdicts(v) for v in value)
    return True


def _no_configdicts(value):
    if isinstance(value, dict):
        return type(value) is dict and all(_no_configdicts(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(_no_configdicts(v) for v in value)
    return True


def _detuple(value):
    if isinstance(value, dict):
        return {k: _detuple(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_detuple(v) for v in value]
    return value


@pytest.fixture
def fake_mmdet(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "pkg_root"))
    yield
    sys.modules.pop("mmdet", None)


# --------------------------------------------------------------------------------------------
# ConfigDict
# --------------------------------------------------------------------------------------------


class TestConfigDict:
    def test_nested_dicts_become_configdicts_also_inside_lists_and_tuples(self):
        cfg = ConfigDict(a={"b": [{"c": 1}, ({"d": 2},)]}, e={"f": {"g": 3}})
        assert _all_configdicts(cfg)
        assert cfg.a.b[0].c == 1
        assert cfg.a.b[1][0].d == 2
        assert isinstance(cfg.a.b[1], tuple)
        cfg.h = {"i": [{"j": 1}]}
        cfg["k"] = ({"l": 2},)
        assert cfg.h.i[0].j == 1
        assert cfg.k[0].l == 2

    def test_missing_attribute_and_key(self):
        cfg = ConfigDict(learning_rate=0.1, momentum=0.9)
        with pytest.raises(
            AttributeError, match=r"no attribute 'learning_rat'\. Did you mean 'learning_rate'"
        ):
            cfg.learning_rat
        with pytest.raises(
            AttributeError, match=r"no attribute 'zzz'\. Keys: 'learning_rate', 'momentum'"
        ):
            cfg.zzz
        with pytest.raises(KeyError):
            cfg["zzz"]
        assert not hasattr(cfg, "_private_probe")
        assert getattr(cfg, "zzz", "default") == "default"

    def test_dict_method_names_are_read_only_attributes(self):
        cfg = ConfigDict()
        with pytest.raises(AttributeError, match="read-only"):
            cfg.items = 1
        cfg["items"] = 1
        assert cfg["items"] == 1
        assert callable(cfg.items)

    def test_mmengine_quirks_pop_get_items_values(self):
        cfg = ConfigDict(a=1, b={"c": 2})
        assert cfg.pop("missing") is None
        assert cfg.get("missing", 5) == 5
        assert cfg.items() == [("a", 1), ("b", {"c": 2})]
        assert cfg.values() == [1, {"c": 2}]
        assert list(cfg) == ["a", "b"]
        assert cfg.pop("a") == 1
        assert "a" not in cfg

    def test_update_merges_nested_dicts(self):
        cfg = ConfigDict(model={"backbone": {"depth": 50, "style": "pytorch"}}, x=1)
        cfg.update({"model": {"backbone": {"depth": 101}}, "y": [{"z": 1}]}, x=2)
        assert cfg.model.backbone == {"depth": 101, "style": "pytorch"}
        assert cfg.x == 2
        assert isinstance(cfg.y[0], ConfigDict)

    def test_setdefault_returns_the_stored_value(self):
        cfg = ConfigDict()
        cfg.setdefault("a", {}).update(b=1)
        assert cfg.a.b == 1

    def test_to_dict_gives_plain_types_and_keeps_tuples(self):
        cfg = ConfigDict(a={"b": ({"c": 1}, [{"d": 2}])}, e={1: "x"})
        plain = cfg.to_dict()
        assert plain == {"a": {"b": ({"c": 1}, [{"d": 2}])}, "e": {1: "x"}}
        assert _no_configdicts(plain)
        assert isinstance(plain["a"]["b"], tuple)

    def test_copy_deepcopy_pickle(self):
        cfg = ConfigDict(a={"b": [1, 2]})
        shallow = cfg.copy()
        assert type(shallow) is ConfigDict
        assert shallow.a is cfg.a
        deep = copy.deepcopy(cfg)
        deep.a.b.append(3)
        assert cfg.a.b == [1, 2]
        assert cfg.deepcopy() == cfg
        loaded = pickle.loads(pickle.dumps(cfg))
        assert loaded == cfg
        assert _all_configdicts(loaded)

    def test_equality_and_merge(self):
        cfg = ConfigDict(a=1, b={"c": 2})
        assert cfg == {"a": 1, "b": {"c": 2}}
        assert cfg != {"a": 1}
        assert cfg == ConfigDict(a=1, b={"c": 2})
        assert (cfg == 3) is False
        cfg.merge({"b": {"d": 3}, "e": {"_delete_": True, "f": 1}})
        assert cfg.to_dict() == {"a": 1, "b": {"c": 2, "d": 3}, "e": {"f": 1}}
        cfg.merge({"b": {"_delete_": True, "g": 4}})
        assert cfg.to_dict() == {"a": 1, "b": {"g": 4}, "e": {"f": 1}}

    def test_or_operators_and_dir(self):
        cfg = ConfigDict(a={"b": 1})
        merged = cfg | {"a": {"c": 2}}
        assert isinstance(merged, ConfigDict)
        assert merged.a == {"b": 1, "c": 2}
        assert ({"z": 1} | cfg) == {"z": 1, "a": {"b": 1}}
        cfg |= {"d": 1}
        assert cfg.d == 1
        assert "a" in dir(cfg)
        assert "keys" in dir(cfg)

    def test_lazy_values_build_on_access_and_stay_strings_in_to_dict(self):
        cfg = ConfigDict(fn=LazyObject("json", "dumps"), nested={"mod": LazyObject("json")})
        assert cfg.fn is json.dumps
        assert cfg["fn"] is json.dumps
        assert cfg.get("fn") is json.dumps
        assert cfg.nested.mod is json
        assert dict(cfg.items())["fn"] is json.dumps
        assert cfg.to_dict() == {"fn": "json.dumps", "nested": {"mod": "json.json"}}
        assert isinstance(cfg._to_lazy_dict()["fn"], LazyObject)
        assert isinstance(pickle.loads(pickle.dumps(cfg))._to_lazy_dict()["fn"], LazyObject)


# --------------------------------------------------------------------------------------------
# Config object
# --------------------------------------------------------------------------------------------


class TestConfigObject:
    def test_construction_and_dict_access(self):
        cfg = Config({"a": 1, "b": {"c": [{"d": 2}]}})
        assert cfg.a == 1
        assert cfg["b"].c[0].d == 2
        assert len(cfg) == 2
        assert list(cfg) == ["a", "b"]
        assert "a" in cfg
        assert cfg.get("x", 3) == 3
        assert set(cfg.keys()) == {"a", "b"}
        assert cfg.filename is None
        assert cfg.text == ""
        assert cfg.env_variables == {}
        assert repr(cfg) == "Config (path: None): {'a': 1, 'b': {'c': [{'d': 2}]}}"
        cfg.e = {"f": 1}
        cfg["g"] = {"h": 2}
        assert isinstance(cfg.e, ConfigDict)
        assert isinstance(cfg.g, ConfigDict)
        del cfg["g"]
        del cfg.e
        assert "g" not in cfg
        assert "e" not in cfg
        assert dict(**cfg) == {"a": 1, "b": {"c": [{"d": 2}]}}

    def test_rejects_non_dicts_and_reserved_keys(self):
        with pytest.raises(TypeError, match="cfg_dict must be a dict"):
            Config([1, 2])
        for key in ("filename", "text", "pretty_text", "env_variables"):
            with pytest.raises(KeyError, match=f"{key} is reserved"):
                Config({key: 1})

    def test_missing_attribute_names_the_key(self):
        cfg = Config({"model": 1})
        with pytest.raises(AttributeError, match=r"no attribute 'modle'\. Did you mean 'model'"):
            cfg.modle

    def test_pickle_copy_deepcopy(self):
        cfg = Config.fromfile(FASTER)
        loaded = pickle.loads(pickle.dumps(cfg))
        assert loaded.to_dict() == cfg.to_dict()
        assert (loaded.filename, loaded.text, loaded.env_variables) == (
            cfg.filename,
            cfg.text,
            cfg.env_variables,
        )
        deep = copy.deepcopy(cfg)
        deep.model.backbone.depth = 101
        assert cfg.model.backbone.depth == 50
        assert deep.filename == cfg.filename
        shallow = cfg.copy()
        shallow.new_key = 1
        assert "new_key" not in cfg
        assert shallow.model is cfg.model


# --------------------------------------------------------------------------------------------
# Text-style files
# --------------------------------------------------------------------------------------------


class TestTextStyle:
    def test_multi_base_config(self):
        cfg = Config.fromfile(FASTER)
        assert cfg.filename == str(FASTER)
        assert cfg.model.backbone.out_indices == (0, 1, 2, 3)
        assert cfg.train_dataloader.dataset.pipeline[2].scale == (1333, 800)
        assert cfg.test_dataloader == cfg.val_dataloader
        assert cfg.optim_wrapper.optimizer.lr == 0.02
        assert _all_configdicts(cfg._cfg_dict)
        # text: every file of the chain, bases first and in order, each after its path
        order = [
            "_base_/models/faster-rcnn_r50_fpn.py",
            "_base_/datasets/coco_detection.py",
            "_base_/schedules/schedule_1x.py",
            "_base_/default_runtime.py",
            "faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py",
        ]
        positions = [cfg.text.index(str((ROOT / rel).resolve()) + "\n") for rel in order]
        assert positions == sorted(positions)
        assert "num_classes=80" in cfg.text

    def test_path_objects_and_relative_paths(self, monkeypatch):
        monkeypatch.chdir(ROOT)
        cfg = Config.fromfile(Path("faster_rcnn/faster-rcnn_r101_fpn_1x_coco.py"))
        assert cfg.filename == "faster_rcnn/faster-rcnn_r101_fpn_1x_coco.py"
        assert cfg.model.backbone.depth == 101
        assert cfg.model.backbone.init_cfg.checkpoint == "torchvision://resnet101"
        assert cfg.model.backbone.num_stages == 4

    def test_six_level_chain_over_py_yaml_json(self):
        cfg = Config.fromfile(ROOT / "chain" / "level6.py")
        assert cfg.levels == [f"level{i}" for i in range(1, 7)]
        assert cfg.model.backbone == {"type": "ViT", "arch": "b", "img_size": 224}
        assert cfg.model.head == {
            "num_classes": 1000,
            "loss": {"type": "CrossEntropyLoss", "loss_weight": 1.0},
        }
        assert cfg.num_classes == 100
        assert cfg.head_copy == {"num_classes": 100}
        assert cfg.work_dir == "./work_dirs/level6"
        assert cfg.log_level == "DEBUG"

    def test_delete_key(self):
        cfg = Config.fromfile(FEATURES / "delete.py").to_dict()
        assert cfg["model"] == {"type": "New", "x": 1}
        assert cfg["model2"]["backbone"] == {"type": "Swin", "depth": (2, 2, 6, 2)}
        assert cfg["scheduler"] == {}
        # `_delete_=False` is consumed; the dict merges.
        assert cfg["optimizer"] == {"type": "SGD", "lr": 0.02, "momentum": 0.9}
        # Kept where there was no base value to delete, as MMEngine does.
        assert cfg["model3"]["neck"] == {"_delete_": True, "c": 1}
        assert cfg["new_key"] == {"_delete_": True, "a": 1, "nested": {"_delete_": True, "b": 2}}
        # Non-dict values replace dicts.
        assert cfg["as_list"] == [1, 2, 3]
        assert cfg["as_scalar"] is None

    def test_base_values_in_python(self):
        cfg = Config.fromfile(FEATURES / "base_value.py")
        assert cfg.model.backbone.depth == 101
        assert cfg.optim.lr == 0.1  # changed in place through _base_
        assert cfg.lr2 == 0.2
        assert [p.type for p in cfg.pipeline] == ["Load", "Pack", "Extra"]
        assert cfg.pipeline[0].scale == (2, 2)
        assert cfg.num_classes == 81
        assert cfg.head.num_classes == 5
        assert cfg.depth_list == [101, 101]
        assert cfg.sizes == [2, 3]
        assert cfg.has_optim is True

    def test_results_share_no_containers(self):
        cfg = Config.fromfile(FEATURES / "base_ref.py")
        cfg.train_dataloader.dataset.pipeline[0].type = "Changed"
        assert cfg.train_pipeline[0].type == "Load"

    @pytest.mark.parametrize("name", ["base_ref.py", "base_ref.yaml", "base_ref.json"])
    def test_base_references(self, name):
        cfg = Config.fromfile(FEATURES / name)
        pipeline = [{"type": "Load"}, {"type": "Resize", "scale": (1333, 800)}]
        assert cfg.train_dataloader.dataset.pipeline == pipeline
        assert isinstance(cfg.train_dataloader.dataset.pipeline[1].scale, tuple)
        assert cfg.lr == 0.02

    def test_base_reference_to_missing_key(self):
        with pytest.raises(KeyError, match=r"\{\{_base_.model.nope\}\} in .*bad_ref.py .*'nope'"):
            Config.fromfile(ERRORS / "bad_ref.py")

    def test_predefined_variables_per_file(self):
        cfg = Config.fromfile(FEATURES / "predefined.py")
        assert cfg.work_dir == "./work_dirs/predefined"
        assert cfg.here == str(FEATURES.resolve()).replace("\\", "/")
        assert cfg.file_info == {"base": "predefined.py", "ext": ".py"}
        assert cfg.base_name == "predefined_base"
        yaml_cfg = Config.fromfile(FEATURES / "predefined.yaml")
        assert yaml_cfg.work_dir == "./work_dirs/predefined"
        assert yaml_cfg.ext == ".yaml"
        off = Config.fromfile(FEATURES / "predefined.py", use_predefined_variables=False)
        assert off.work_dir == "./work_dirs/{{ fileBasenameNoExtension }}"

    def test_environment_variables(self, monkeypatch):
        monkeypatch.setenv("TREADLE_TEST_DATA_ROOT", "/mnt/x")
        monkeypatch.delenv("TREADLE_TEST_WORKERS", raising=False)
        monkeypatch.delenv("TREADLE_TEST_UNSET_BATCH", raising=False)
        monkeypatch.delenv("TREADLE_TEST_UNSET_NAME", raising=False)
        cfg = Config.fromfile(FEATURES / "env.py")
        assert cfg.data_root == "/mnt/x/images"
        assert cfg.workers == 4
        assert cfg.batch == 16
        assert cfg.name == "fallback"
        assert cfg.env_variables == {"TREADLE_TEST_DATA_ROOT": "/mnt/x"}
        monkeypatch.setenv("TREADLE_TEST_WORKERS", "12")
        cfg = Config.fromfile(FEATURES / "env.yaml")
        assert cfg.workers == 12
        assert cfg.data_root == "/mnt/x/ann"
        assert cfg.env_variables == {
            "TREADLE_TEST_DATA_ROOT": "/mnt/x",
            "TREADLE_TEST_WORKERS": "12",
        }

    def test_environment_variables_can_be_disabled(self, tmp_path, monkeypatch):
        monkeypatch.setenv("TREADLE_TEST_X", "1")
        path = _write(tmp_path / "c.py", "a = '{{$TREADLE_TEST_X:0}}'\n")
        assert Config.fromfile(path).a == "1"
        assert Config.fromfile(path, use_environment_variables=False).a == "{{$TREADLE_TEST_X:0}}"

    def test_environment_variable_without_default(self, monkeypatch):
        monkeypatch.delenv("TREADLE_TEST_SURELY_UNSET", raising=False)
        with pytest.raises(KeyError, match=r"TREADLE_TEST_SURELY_UNSET.*missing_env.py, line 1"):
            Config.fromfile(ERRORS / "missing_env.py")

    def test_deprecation_warning(self):
        with pytest.warns(DeprecationWarning, match="will be deprecated") as record:
            cfg = Config.fromfile(FEATURES / "deprecated_child.py")
        message = str(record[0].message)
        assert "deprecated.py will be deprecated" in message
        assert "Please use faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py instead" in message
        assert "https://github.com/open-mmlab/mmdetection/pull/1" in message
        assert cfg.to_dict() == {"a": 1, "b": 2}

    def test_custom_imports(self, tmp_path, monkeypatch):
        _write(tmp_path / "treadle_test_custom_mod.py", "import sys\nsys.treadle_custom = True\n")
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.delattr(sys, "treadle_custom", raising=False)
        path = _write(
            tmp_path / "cfg.py", "custom_imports = dict(imports=['treadle_test_custom_mod'])\n"
        )
        Config.fromfile(path, import_custom_modules=False)
        assert not hasattr(sys, "treadle_custom")
        Config.fromfile(path)
        assert sys.treadle_custom is True
        sys.modules.pop("treadle_test_custom_mod", None)

    def test_custom_imports_failure(self):
        with pytest.raises(
            ImportError, match=r"treadle_surely_missing_module.*bad_custom_import.py.*sys.path"
        ) as info:
            Config.fromfile(ERRORS / "bad_custom_import.py")
        assert isinstance(info.value.__cause__, ImportError)

    def test_functions_modules_and_dunders_are_dropped(self):
        cfg = Config.fromfile(FEATURES / "misc.py")
        for name in ("os", "osp", "join", "helper", "square", "__hidden", "__version__"):
            assert name not in cfg
        assert cfg._private == 2
        assert cfg.doubled == 42
        assert cfg.path == "a/b"
        assert cfg.int_keys == {1: "one", 2: "two", "three": 3}

    def test_classes_are_kept_like_mmengine(self, tmp_path):
        path = _write(tmp_path / "c.py", "class Foo:\n    pass\n\nmodel = dict(type=Foo)\n")
        cfg = Config.fromfile(path)
        assert isinstance(cfg.Foo, type)
        assert cfg.model.type is cfg.Foo

    def test_external_package_base_gets_scope(self, fake_mmdet):
        cfg = Config.fromfile(FEATURES / "pkg_base.py")
        assert cfg.model._scope_ == "mmdet"
        assert "_scope_" not in cfg.model.backbone
        assert cfg.model.bbox_head.num_classes == 3
        assert [h._scope_ for h in cfg.custom_hooks] == ["mmdet", "mmengine"]
        assert cfg.train_dataloader.sampler._scope_ == "mmdet"
        assert "_scope_" not in cfg.train_dataloader
        assert all(step._scope_ == "mmdet" for step in cfg.test_pipeline)
        assert "_scope_" not in cfg.local_pipeline[0]
        assert "mmdet/.mim/configs/_base_/models/retinanet_r50_fpn.py" in cfg.text.replace(
            "\\", "/"
        )

    def test_yaml_and_json_children(self):
        cfg = Config.fromfile(FEATURES / "yaml_child.yaml")
        assert cfg.optim_wrapper.optimizer == {
            "type": "SGD",
            "lr": 0.005,
            "momentum": 0.9,
            "weight_decay": 0.0001,
        }
        assert cfg.train_dataloader.batch_size == 8
        assert cfg.train_pipeline[2].scale == (1000, 600)
        assert cfg.class_weights == {0: 1.0, 1: 2.5, 7: 0.5}
        cfg = Config.fromfile(FEATURES / "json_child.json")
        assert cfg.train_dataloader.dataset.times == 5
        assert cfg.train_cfg.max_epochs == 24

    def test_empty_yaml_is_an_empty_config(self, tmp_path):
        assert Config.fromfile(_write(tmp_path / "e.yaml", "")).to_dict() == {}


# --------------------------------------------------------------------------------------------
# Errors name the file and the line
# --------------------------------------------------------------------------------------------


class TestErrors:
    def test_missing_file(self, tmp_path):
        with pytest.raises(FileNotFoundError, match=r"nope\.py"):
            Config.fromfile(tmp_path / "nope.py")

    def test_unsupported_suffix(self, tmp_path):
        with pytest.raises(OSError, match="Only py/yml/yaml/json"):
            Config.fromfile(_write(tmp_path / "c.toml", "a = 1\n"))

    def test_syntax_error(self):
        path = str(ERRORS / "syntax_error.py")
        with pytest.raises(
            SyntaxError, match=r"syntax errors in config file .*syntax_error.py, line 3"
        ) as info:
            Config.fromfile(path)
        assert info.value.filename == path
        assert info.value.lineno == 3

    def test_syntax_error_in_a_base(self, tmp_path):
        base = _write(tmp_path / "base.py", "a = (\n")
        child = _write(tmp_path / "child.py", "_base_ = './base.py'\n")
        with pytest.raises(SyntaxError) as info:
            Config.fromfile(child)
        assert info.value.filename == base

    def test_missing_base(self):
        with pytest.raises(FileNotFoundError) as info:
            Config.fromfile(ERRORS / "missing_base.py")
        message = str(info.value)
        assert '"./does_not_exist.py"' in message
        assert "missing_base.py, line 1" in message
        assert str(ERRORS.resolve() / "does_not_exist.py") in message

    def test_duplicate_keys_across_bases(self):
        with pytest.raises(KeyError) as info:
            Config.fromfile(ERRORS / "dup_child.py")
        message = str(info.value)
        assert "Duplicate key is not allowed among bases" in message
        assert "'shared'" in message
        assert "dup_a.py" in message
        assert "dup_b.py" in message
        assert "dup_child.py" in message
        assert "'model'" not in message

    def test_type_clash_on_merge(self):
        with pytest.raises(TypeError) as info:
            Config.fromfile(ERRORS / "type_clash.py")
        message = str(info.value)
        assert "pipeline" in message
        assert "<class 'list'> in base config" in message
        assert "_delete_=True" in message
        assert "type_clash.py, line 3" in message

    def test_type_clash_in_nested_yaml_key(self, tmp_path):
        _write(tmp_path / "base.py", "model = dict(head=[1, 2])\n")
        child = _write(tmp_path / "child.yaml", "_base_: base.py\nmodel:\n  head:\n    x: 1\n")
        with pytest.raises(TypeError, match=r"key 'model.head' in .*child.yaml, line 3"):
            Config.fromfile(child)

    def test_bad_delete_values(self):
        with pytest.raises(
            TypeError, match=r"`_delete_` must be True or False, got 'yes'.*bad_delete.py, line 4"
        ):
            Config.fromfile(ERRORS / "bad_delete.py")
        with pytest.raises(ConfigParsingError, match=r"top level of .*top_delete.py, line 2"):
            Config.fromfile(ERRORS / "top_delete.py")

    @pytest.mark.parametrize(("name", "line"), [("bad.yaml", 3), ("bad.json", 3)])
    def test_yaml_and_json_parse_errors(self, name, line):
        with pytest.raises(ConfigParsingError, match=rf"{name}, line {line}, column \d+") as info:
            Config.fromfile(ERRORS / name)
        assert info.value.__cause__ is not None

    def test_circular_bases(self):
        with pytest.raises(
            ConfigParsingError,
            match=r"Circular _base_ inheritance: .*circular_a.py -> .*circular_b.py -> .*circular_a.py",
        ):
            Config.fromfile(ERRORS / "circular_a.py")

    def test_text_config_with_pure_python_base(self):
        with pytest.raises(ConfigParsingError) as info:
            Config.fromfile(ERRORS / "lazy_base_child.py")
        message = str(info.value)
        assert "lazy_base.py is a pure-Python" in message
        assert "lazy_base_child.py, line 1" in message
        assert isinstance(info.value, RuntimeError)

    def test_bad_base_values(self, tmp_path):
        with pytest.raises(ConfigParsingError, match=r"_base_` must be a path.*c.py, line 2"):
            Config.fromfile(_write(tmp_path / "c.py", "a = 1\n_base_ = [1]\n"))
        with pytest.raises(
            ConfigParsingError, match=r"must look like 'package::relative/path\.py'"
        ):
            Config.fromfile(_write(tmp_path / "d.py", "_base_ = 'mmdet::'\n"))

    def test_external_base_errors(self, tmp_path, fake_mmdet):
        with pytest.raises(
            ModuleNotFoundError, match=r"treadle_no_such_pkg is not installed.*e.py, line 1"
        ):
            Config.fromfile(_write(tmp_path / "e.py", "_base_ = 'treadle_no_such_pkg::a/b.py'\n"))
        with pytest.raises(FileNotFoundError, match=r"tried .*mmdet.*\.mim.*configs.*nope.py"):
            Config.fromfile(_write(tmp_path / "f.py", "_base_ = 'mmdet::_base_/nope.py'\n"))

    def test_runtime_error_traceback_points_at_the_config(self):
        path = str(ERRORS / "runtime_error.py")
        with pytest.raises(NameError) as info:
            Config.fromfile(path)
        frame = traceback.extract_tb(info.value.__traceback__)[-1]
        assert (frame.filename, frame.lineno) == (path, 2)


# --------------------------------------------------------------------------------------------
# Pure-Python configs through Config.fromfile
# --------------------------------------------------------------------------------------------


class TestStyleDispatch:
    LAZY_TEXT = """\
        from json import dumps
        from treadle.core.utils.imports import get_installed_path as gip

        model = dict(type=gip, encoder=dumps)
        """

    def test_pure_python_config_builds_lazy_objects_on_access(self, tmp_path):
        from treadle.core.utils.imports import get_installed_path

        cfg = Config.fromfile(_write(tmp_path / "lazy.py", self.LAZY_TEXT))
        assert isinstance(cfg._cfg_dict.model._to_lazy_dict()["type"], LazyObject)
        assert cfg.model.type is get_installed_path
        assert cfg.model.encoder is json.dumps
        # MMEngine's dump string; the imported name itself is reachable but not dumped
        assert cfg.to_dict() == {
            "model": {
                "type": "treadle.core.utils.imports.get_installed_path",
                "encoder": json.dumps,
            }
        }
        assert "gip" in cfg
        assert "gip" in cfg.to_dict(keep_imported=True)
        assert "treadle.core.utils.imports.get_installed_path" in cfg.pretty_text
        assert ConfigDict.lazy is False

    def test_lazy_import_false_reads_it_as_text_style(self, tmp_path):
        from treadle.core.utils.imports import get_installed_path

        cfg = Config.fromfile(_write(tmp_path / "lazy.py", self.LAZY_TEXT), lazy_import=False)
        assert cfg._cfg_dict.model["type"] is get_installed_path
        assert "gip" not in cfg.to_dict()  # a function: dropped like in any text config

    def test_stdlib_imports_keep_text_style(self, tmp_path):
        path = _write(tmp_path / "c.py", "import os.path as osp\nroot = osp.join('a', 'b')\n")
        assert Config.fromfile(path).to_dict() == {"root": "a/b"}


# --------------------------------------------------------------------------------------------
# fromstring, pretty_text, dump, merge_from_dict
# --------------------------------------------------------------------------------------------


class TestFromString:
    def test_formats(self):
        assert Config.fromstring("a = 1\nb = dict(c=(1, 2))\n", ".py").b.c == (1, 2)
        assert Config.fromstring("a: 1\nb: {c: [1, 2]}\n", ".yaml").b.c == [1, 2]
        assert Config.fromstring('{"a": 1}', ".json").a == 1
        cfg = Config.fromstring("a = 1\n", ".py")
        assert cfg.filename is None
        assert cfg.text == "a = 1\n"

    def test_rejects_unknown_format_and_warns_on_python_in_yaml(self):
        with pytest.raises(OSError, match="Only py/yml/yaml/json"):
            Config.fromstring("a = 1", ".toml")
        with pytest.warns(UserWarning, match="file format may be .py"):
            Config.fromstring("a: dict(b=1)\n", ".yaml")

    def test_relative_base_from_current_directory(self, monkeypatch):
        monkeypatch.chdir(ROOT / "faster_rcnn")
        cfg = Config.fromstring(
            "_base_ = './faster-rcnn_r50_fpn_1x_coco.py'\nmodel = dict(backbone=dict(depth=18))\n",
            ".py",
        )
        assert cfg.model.backbone.depth == 18
        assert cfg.model.neck.type == "FPN"


GOLDEN_FILES = [
    "faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py",
    "faster_rcnn/faster-rcnn_r101_fpn_ms-3x_coco.py",
    "faster_rcnn/faster-rcnn_r50_fpn_1x_voc0712.py",
    "chain/level6.py",
    "features/misc.py",
    "features/delete.py",
]


class TestPrettyTextAndDump:
    @pytest.mark.parametrize("rel", GOLDEN_FILES)
    def test_pretty_text_parses_and_reloads_to_the_same_dict(self, rel):
        cfg = Config.fromfile(ROOT / rel)
        text = cfg.pretty_text
        ast.parse(text)
        assert Config.fromstring(text, ".py").to_dict() == cfg.to_dict()
        assert max(len(line) for line in text.splitlines()) <= 100

    def test_pretty_text_layout(self):
        cfg = Config(
            {
                "model": {"type": "ResNet", "depth": 50, "out_indices": (0, 1, 2, 3)},
                "pipeline": [
                    {"type": "Load"},
                    {"type": "Resize", "scale": (1333, 800), "keep_ratio": True},
                    {"type": "Pack"},
                ],
                "meta": {"a-b": 1, 2: "x", "class": None},
                "single": (1,),
                "empty": {},
                "inf": float("-inf"),
            }
        )
        assert cfg.pretty_text == textwrap.dedent(
            """\
            empty = dict()
            inf = float('-inf')
            meta = {2: 'x', 'a-b': 1, 'class': None}
            model = dict(depth=50, out_indices=(0, 1, 2, 3), type='ResNet')
            pipeline = [
                dict(type='Load'),
                dict(keep_ratio=True, scale=(1333, 800), type='Resize'),
                dict(type='Pack'),
            ]
            single = (1,)
            """
        )

    def test_non_identifier_top_level_keys_round_trip(self):
        cfg = Config({"a-b": 1, "ok": 2})
        assert Config.fromstring(cfg.pretty_text, ".py").to_dict() == {"a-b": 1, "ok": 2}

    @pytest.mark.parametrize("suffix", [".py", ".yaml", ".yml", ".pkl"])
    def test_dump_and_reload_keeps_tuples(self, tmp_path, suffix):
        cfg = Config.fromfile(ROOT / "faster_rcnn" / "faster-rcnn_r50-caffe_fpn_ms-1x_coco.py")
        out = tmp_path / f"dumped{suffix}"
        assert cfg.dump(out) is None
        if suffix == ".pkl":
            assert pickle.loads(out.read_bytes()) == cfg.to_dict()
        else:
            reloaded = Config.fromfile(out)
            assert reloaded.to_dict() == cfg.to_dict()
            assert reloaded.model.backbone.out_indices == (0, 1, 2, 3)

    def test_dump_json_turns_tuples_into_lists(self, tmp_path):
        cfg = Config.fromfile(FASTER)
        cfg.dump(str(tmp_path / "c.json"))
        assert Config.fromfile(tmp_path / "c.json").to_dict() == _detuple(cfg.to_dict())

    def test_dump_without_file_uses_the_source_format(self):
        assert Config.fromfile(FASTER).dump() == Config.fromfile(FASTER).pretty_text
        text = Config.fromfile(FEATURES / "json_child.json").dump()
        assert json.loads(text)["tags"] == ["a", "b"]
        text = Config.fromfile(FEATURES / "yaml_child.yaml").dump()
        assert yaml.load(text, Loader=yaml.Loader)["train_dataloader"]["batch_size"] == 8

    def test_dump_unknown_suffix(self, tmp_path):
        with pytest.raises(OSError, match="Cannot dump a config as 'toml'"):
            Config({"a": 1}).dump(tmp_path / "c.toml")


class TestMergeFromDict:
    def test_dotted_keys(self):
        cfg = Config({"model": {"backbone": {"type": "ResNet", "depth": 50}}})
        cfg.merge_from_dict(
            {"model.backbone.depth": 101, "model.neck.type": "FPN", "new": [{"a": 1}]}
        )
        assert cfg.model.backbone == {"type": "ResNet", "depth": 101}
        assert cfg.model.neck == {"type": "FPN"}
        assert isinstance(cfg.new[0], ConfigDict)
        assert isinstance(cfg.model.neck, ConfigDict)

    def test_list_and_tuple_indices(self):
        cfg = Config(
            {
                "pipeline": [{"type": "A"}, {"type": "B", "x": 1}],
                "sizes": [1, 2],
                "pair": ({"a": 1}, 2),
            }
        )
        cfg.merge_from_dict(
            {"pipeline.1.x": 2, "pipeline.0": {"type": "C"}, "sizes.1": 5, "pair.0.a": 3}
        )
        assert cfg.pipeline == [{"type": "C"}, {"type": "B", "x": 2}]
        assert cfg.sizes == [1, 5]
        assert cfg.pair == ({"a": 3}, 2)
        assert isinstance(cfg.pair, tuple)

    def test_index_out_of_range_and_disabled_list_keys(self):
        cfg = Config({"pipeline": [{"type": "A"}]})
        with pytest.raises(KeyError, match="Index 3 exceeds the length of list"):
            cfg.merge_from_dict({"pipeline.3.type": "X"})
        with pytest.raises(
            TypeError, match="pipeline is a dict in the child config but is of type <class 'list'>"
        ):
            cfg.merge_from_dict({"pipeline.0.type": "X"}, allow_list_keys=False)

    def test_delete_and_replace(self):
        cfg = Config({"optim": {"type": "SGD", "lr": 0.1}, "x": {"a": 1}})
        cfg.merge_from_dict({"optim": {"_delete_": True, "type": "Adam"}, "x": 3})
        assert cfg.to_dict() == {"optim": {"type": "Adam"}, "x": 3}

    def test_scalar_into_dict_key_is_a_type_error(self):
        cfg = Config({"a": 1})
        with pytest.raises(TypeError, match="a is a dict in the child config"):
            cfg.merge_from_dict({"a.b": 1})


def test_import_does_not_import_torch():
    code = "import sys, treadle.core.config; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_diff_shows_changed_lines():
    first = Config({"a": 1, "b": {"c": 2}})
    second = Config({"a": 1, "b": {"c": 3}})
    diff = Config.diff(first, second)
    assert "-b = dict(c=2)" in diff
    assert "+b = dict(c=3)" in diff
    assert "a = 1" not in [line.strip("+- ") for line in diff.splitlines() if line[:1] in "+-"]
    assert Config.diff(str(FASTER), str(FASTER)) == ""


def test_add_args_builds_one_option_per_value():
    import argparse

    from treadle.core.config.config import add_args

    parser = add_args(
        argparse.ArgumentParser(), {"lr": 0.1, "name": "x", "flag": False, "model": {"depth": 50}}
    )
    args = parser.parse_args(["--lr", "0.5", "--model.depth", "101", "--flag"])
    assert vars(args) == {"lr": 0.5, "name": None, "flag": True, "model.depth": 101}

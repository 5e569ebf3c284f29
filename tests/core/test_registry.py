"""Registry: registration, lookup in scope trees, building, the default scope, error messages.

Every test builds its own registries (unique scopes), so the root registries stay untouched.
"""

from __future__ import annotations

import collections
import logging
import sys
import types
from typing import Any

import pytest

import treadle.core.registry.registry as registry_module
from treadle.core.registry import (
    ROOT_SCOPE,
    DefaultScope,
    Registry,
    RegistryKeyError,
    build_from_cfg,
    init_default_scope,
)
from treadle.core.utils.manager import ManagerMixin


@pytest.fixture(autouse=True)
def _clean_default_scope():
    """Each test starts without a default scope and leaves none behind."""
    saved = collections.OrderedDict(DefaultScope._instance_dict)
    DefaultScope._instance_dict.clear()
    yield
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(saved)


@pytest.fixture
def registry_log():
    """Records of the ``treadle.registry`` logger (a handler of its own: propagation may be off)."""
    records: list[logging.LogRecord] = []

    class _Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    log = logging.getLogger("treadle.registry")
    handler = _Handler(logging.DEBUG)
    log.addHandler(handler)
    yield records
    log.removeHandler(handler)


def make_class(name: str, **attrs: Any) -> type:
    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs

    return type(name, (), {"__init__": __init__, **attrs})


# ---------------------------------------------------------------------------------------------
# Registration
# ---------------------------------------------------------------------------------------------


def test_register_as_decorator_uses_class_name():
    reg = Registry("thing", scope="t_dec")

    @reg.register_module()
    class ResNet:
        pass

    assert reg.get("ResNet") is ResNet
    assert "ResNet" in reg
    assert len(reg) == 1


def test_register_with_name_and_aliases():
    reg = Registry("thing", scope="t_alias")

    @reg.register_module(name=["ResNet", "resnet", "RN"])
    class ResNet:
        pass

    assert reg.get("resnet") is ResNet
    assert reg.get("RN") is ResNet
    assert sorted(reg.keys()) == ["RN", "ResNet", "resnet"]


def test_register_as_call_returns_module_and_accepts_functions():
    reg = Registry("thing", scope="t_call")

    def make(x: int = 1) -> int:
        return x * 2

    assert reg.register_module(module=make) is make
    assert reg.register_module(name="twice", module=make) is make
    assert reg.build({"type": "twice", "x": 4}) == 8
    assert reg.get("make") is make


def test_duplicate_name_raises_and_names_the_existing_entry():
    reg = Registry("thing", scope="t_dup")
    reg.register_module(module=make_class("A"), name="A")
    with pytest.raises(KeyError) as info:
        reg.register_module(module=make_class("B"), name="A")
    message = str(info.value)
    assert "A is already registered in the t_dup::thing registry" in message
    assert "force=True" in message


def test_duplicate_alias_registers_nothing():
    reg = Registry("thing", scope="t_dup2")
    reg.register_module(module=make_class("Taken"))
    new = make_class("New")
    with pytest.raises(KeyError):
        reg.register_module(module=new, name=["Fresh", "Taken"])
    assert "Fresh" not in reg


def test_force_replaces_and_same_object_is_not_a_conflict():
    reg = Registry("thing", scope="t_force")
    first, second = make_class("A"), make_class("A")
    reg.register_module(module=first)
    reg.register_module(module=first)  # the very same object again: fine
    reg.register_module(module=second, force=True)
    assert reg.get("A") is second


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"module": 3}, "module must be Callable"),
        ({"module": int, "force": 1}, "force must be a boolean"),
        ({"module": int, "name": 5}, "name must be None, a str, or a sequence of str"),
        ({"module": int, "name": ["ok", 5]}, "name must be None"),
    ],
)
def test_register_rejects_bad_arguments(kwargs, message):
    reg = Registry("thing", scope="t_bad")
    with pytest.raises(TypeError, match=message):
        reg.register_module(**kwargs)


def test_unregister():
    reg = Registry("thing", scope="t_unreg")
    reg.register_module(module=make_class("A"))
    reg.unregister("A")
    assert "A" not in reg
    with pytest.raises(KeyError, match=r"A is not in the t_unreg::thing registry"):
        reg.unregister("A")


# ---------------------------------------------------------------------------------------------
# Scopes
# ---------------------------------------------------------------------------------------------


def test_scope_is_inferred_from_the_defining_package():
    namespace: dict[str, Any] = {"__name__": "zqpkg.models.backbones", "Registry": Registry}
    exec("REG = Registry('models')", namespace)
    assert namespace["REG"].scope == "zqpkg"


def test_scope_inference_skips_registry_subclass_init():
    class MyRegistry(Registry):
        def __init__(self, name: str, **kwargs: Any) -> None:
            super().__init__(name, **kwargs)

    namespace: dict[str, Any] = {"__name__": "zqsub.registry", "MyRegistry": MyRegistry}
    exec("REG = MyRegistry('models')", namespace)
    assert namespace["REG"].scope == "zqsub"
    assert Registry.infer_scope() == __name__.split(".")[0]


def test_mmengine_scope_means_the_root_scope():
    assert Registry("thing", scope="mmengine").scope == ROOT_SCOPE
    namespace: dict[str, Any] = {"__name__": "mmengine.registry.root", "Registry": Registry}
    exec("REG = Registry('models')", namespace)
    assert namespace["REG"].scope == ROOT_SCOPE


def test_mmengine_prefix_and_scope_reach_the_root_registry():
    root = Registry("thing", scope=ROOT_SCOPE)
    child = Registry("thing", parent=root, scope="t_mmalias")
    Base = make_class("Base")
    Own = make_class("Base")
    root.register_module(module=Base)
    child.register_module(module=Own)
    assert child.get("mmengine.Base") is Base
    assert child.get("treadle.Base") is Base
    assert child.get("Base") is Own
    assert type(child.build({"type": "Base", "_scope_": "mmengine"})) is Base
    with DefaultScope.overwrite_default_scope("mmengine"):
        assert type(child.build({"type": "Base"})) is Base


def test_child_scopes_must_be_unique():
    root = Registry("thing", scope="t_uniq")
    Registry("a", parent=root, scope="t_uniq_child")
    with pytest.raises(ValueError, match="already has a child of scope 't_uniq_child'"):
        Registry("b", parent=root, scope="t_uniq_child")


def test_split_scope_key():
    assert Registry.split_scope_key("mmdet.ResNet") == ("mmdet", "ResNet")
    assert Registry.split_scope_key("a.b.C") == ("a", "b.C")
    assert Registry.split_scope_key("ResNet") == (None, "ResNet")


# The results MMEngine 0.10.7 gives for the tree below, recorded by running the same probe
# against mmengine==0.10.7 (`Registry.get` and `switch_scope_and_registry`). Each registry
# registers `X` and `only_<scope>`; zaa, zb and zaaaa also register `Mid`. A value is the scope
# of the registry the returned class came from, None when get() returned None.
#
#   zr ─┬─ za ─┬─ zaa ── zaaa ── zaaaa ── zaaaaa      (six levels: zr … zaaaaa)
#       │      └─ zab
#       └─ zb ──── zba
TREE = [
    ("zr", None),
    ("za", "zr"),
    ("zb", "zr"),
    ("zaa", "za"),
    ("zab", "za"),
    ("zba", "zb"),
    ("zaaa", "zaa"),
    ("zaaaa", "zaaa"),
    ("zaaaaa", "zaaaa"),
]
SCOPES = [scope for scope, _ in TREE]
KEYS = (
    ["X", "Mid", "Nope"]
    + [f"only_{s}" for s in SCOPES]
    + [f"{s}.X" for s in SCOPES]
    + [f"{s}.Mid" for s in SCOPES]
    + [f"zaa.only_{s}" for s in SCOPES]
    + ["zq_unknown.X"]
)
N = None
# fmt: off
GET_EXPECTED = {
    "zr": ["zr", N, N, "zr", N, N, N, N, N, N, N, N, "zr", "za", "zb", N, N, N, N, N, N, N, N, "zb", N, N, N, N, N, N, N, N, N, N, N, N, N, N, N, N],
    "za": ["za", N, N, "zr", "za", N, N, N, N, N, N, N, "zr", "za", "zb", "zaa", "zab", N, N, N, N, N, N, "zb", "zaa", N, N, N, N, N, "zr", "za", N, "zaa", N, N, N, N, N, N],
    "zb": ["zb", "zb", N, "zr", N, "zb", N, N, N, N, N, N, "zr", "za", "zb", N, N, "zba", N, N, N, N, N, "zb", N, N, "zb", N, N, N, N, N, N, N, N, N, N, N, N, N],
    "zaa": ["zaa", "zaa", N, "zr", "za", N, "zaa", N, N, N, N, N, "zr", "za", "zb", "zaa", N, N, "zaaa", N, N, N, N, "zb", "zaa", N, N, "zaa", N, N, N, N, N, "zaa", N, N, N, N, N, N],
    "zab": ["zab", N, N, "zr", "za", N, N, "zab", N, N, N, N, "zr", "za", "zb", N, "zab", N, N, N, N, N, N, "zb", N, N, N, N, N, N, N, N, N, N, N, N, N, N, N, N],
    "zba": ["zba", "zb", N, "zr", N, "zb", N, N, "zba", N, N, N, "zr", "za", "zb", N, N, "zba", N, N, N, N, N, "zb", N, N, N, N, N, N, N, N, N, N, N, N, N, N, N, N],
    "zaaa": ["zaaa", "zaa", N, "zr", "za", N, "zaa", N, N, "zaaa", N, N, "zr", "za", "zb", N, N, N, "zaaa", "zaaaa", N, N, N, "zb", N, N, N, N, "zaaaa", N, N, N, N, N, N, N, N, N, N, N],
    "zaaaa": ["zaaaa", "zaaaa", N, "zr", "za", N, "zaa", N, N, "zaaa", "zaaaa", N, "zr", "za", "zb", N, N, N, N, "zaaaa", "zaaaaa", N, N, "zb", N, N, N, N, "zaaaa", "zaaaa", N, N, N, N, N, N, N, N, N, N],
    "zaaaaa": ["zaaaaa", "zaaaa", N, "zr", "za", N, "zaa", N, N, "zaaa", "zaaaa", "zaaaaa", "zr", "za", "zb", N, N, N, N, N, "zaaaaa", N, N, "zb", N, N, N, N, N, N, N, N, N, N, N, N, N, N, N, N],
}
# fmt: on
# `switch_scope_and_registry(s)` searches the whole tree depth first: every scope is found from
# everywhere, and an unknown scope falls back to the registry itself.
SWITCH_EXPECTED = {scope: [*SCOPES, scope] for scope in SCOPES}


@pytest.fixture
def tree() -> dict[str, Registry]:
    registries: dict[str, Registry] = {}
    for scope, parent in TREE:
        reg = Registry(
            f"reg_{scope}", parent=registries.get(parent) if parent else None, scope=scope
        )
        registries[scope] = reg
        names = ["X", f"only_{scope}"] + (["Mid"] if scope in {"zaa", "zb", "zaaaa"} else [])
        for name in names:
            reg.register_module(module=make_class(name, origin=scope), name=name)
    return registries


def test_six_level_tree_get_resolves_as_mmengine(tree):
    for scope, expected in GET_EXPECTED.items():
        got = []
        for key in KEYS:
            obj = tree[scope].get(key)
            got.append(None if obj is None else obj.origin)
        assert dict(zip(KEYS, got)) == dict(zip(KEYS, expected)), scope


def test_six_level_tree_contains_agrees_with_get(tree):
    for scope, expected in GET_EXPECTED.items():
        for key, origin in zip(KEYS, expected):
            assert (key in tree[scope]) is (origin is not None), (scope, key)


def test_six_level_tree_switch_scope_as_mmengine(tree, registry_log):
    for scope, expected in SWITCH_EXPECTED.items():
        got = []
        for target in [*SCOPES, "zq_unknown"]:
            with tree[scope].switch_scope_and_registry(target) as registry:
                assert DefaultScope.get_current_instance().scope_name == target
                got.append(registry.scope)
        assert got == expected, scope
    assert DefaultScope.get_current_instance() is None
    # The unknown scope is reported once per tree, not once per build.
    warnings = [r.getMessage() for r in registry_log if "zq_unknown" in r.getMessage()]
    assert len(warnings) == 1
    assert 'No registry of scope "zq_unknown" in the "reg_zr" registry tree' in warnings[0]


def test_scope_cache_sees_registries_added_later(tree):
    with tree["zb"].switch_scope_and_registry("zlate") as registry:
        assert registry is tree["zb"]
    late = Registry("late", parent=tree["zaaaaa"], scope="zlate")
    with tree["zb"].switch_scope_and_registry("zlate") as registry:
        assert registry is late


def test_dotted_import_path_fallback():
    reg = Registry("thing", scope="t_dotted")
    assert reg.get("collections.OrderedDict") is collections.OrderedDict
    assert reg.get("os.path.join") is __import__("os").path.join
    assert reg.get("zqnotamodule.Foo") is None
    assert reg.get("collections.NoSuchThing") is None
    assert type(reg.build({"type": "collections.OrderedDict"})) is collections.OrderedDict
    # `in` only answers for registered names.
    assert "collections.OrderedDict" not in reg


def test_get_rejects_non_string_keys():
    reg = Registry("thing", scope="t_nonstr")
    with pytest.raises(TypeError, match="must be a str"):
        reg.get(3)  # type: ignore[arg-type]
    assert 3 not in reg


# ---------------------------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------------------------


def test_build_with_name_class_and_default_args():
    reg = Registry("thing", scope="t_build")
    Net = reg.register_module(module=make_class("Net"))
    cfg = {"type": "Net", "depth": 50}
    obj = reg.build(cfg, default_args={"depth": 18, "stages": 4})
    assert type(obj) is Net
    assert obj.kwargs == {"depth": 50, "stages": 4}  # cfg wins over default_args
    assert cfg == {"type": "Net", "depth": 50}  # the config is not modified
    assert type(reg.build({"type": Net})) is Net
    assert type(build_from_cfg({"depth": 1}, reg, default_args={"type": "Net"})) is Net


def test_build_accepts_dict_subclasses_and_mappings():
    reg = Registry("thing", scope="t_mapping")
    Net = reg.register_module(module=make_class("Net"))

    class ConfigDictLike(dict):
        pass

    class ConfigLike:
        def __init__(self, data: dict[str, Any]) -> None:
            self._data = data

        def items(self):
            return self._data.items()

        def __contains__(self, key: object) -> bool:
            return key in self._data

    assert reg.build(ConfigDictLike(type="Net", a=1)).kwargs == {"a": 1}
    obj = reg.build(ConfigLike({"type": "Net", "b": 2}))
    assert type(obj) is Net
    assert obj.kwargs == {"b": 2}


@pytest.mark.parametrize(
    ("cfg", "default_args", "error", "message"),
    [
        ([("type", "Net")], None, TypeError, "cfg should be a dict, ConfigDict or Config"),
        ({"a": 1}, None, KeyError, 'must contain the key "type"'),
        ({"a": 1}, {"b": 2}, KeyError, 'must contain the key "type"'),
        ({"type": "Net"}, 5, TypeError, "default_args should be a dict"),
        ({"type": 5}, None, TypeError, "type must be a str or valid type"),
    ],
)
def test_build_rejects_bad_configs(cfg, default_args, error, message):
    reg = Registry("thing", scope="t_badcfg")
    reg.register_module(module=make_class("Net"))
    with pytest.raises(error, match=message):
        build_from_cfg(cfg, reg, default_args)


def test_build_from_cfg_rejects_non_registry():
    with pytest.raises(TypeError, match="registry must be a treadle Registry"):
        build_from_cfg({"type": "Net"}, object())  # type: ignore[arg-type]


def test_build_manager_mixin_uses_get_instance():
    reg = Registry("thing", scope="t_manager")

    @reg.register_module()
    class Hub(ManagerMixin):
        def __init__(self, name: str, size: int = 0) -> None:
            super().__init__(name)
            self.size = size

    first = reg.build({"type": "Hub", "name": "t_manager_hub", "size": 3})
    again = reg.build({"type": "Hub", "name": "t_manager_hub"})
    assert again is first
    assert Hub.get_current_instance() is first


def test_child_inherits_build_func_and_build_passes_extra_arguments():
    calls = []

    def custom(cfg: dict, *args: Any, registry: Registry, **kwargs: Any) -> Any:
        calls.append((cfg, args, registry.name, kwargs))
        return "built"

    parent = Registry("parent", build_func=custom, scope="t_bf")
    child = Registry("child", parent=parent, scope="t_bf_child")
    assert child.build({"type": "X"}, 1, flag=True) == "built"
    assert calls == [({"type": "X"}, (1,), "child", {"flag": True})]


def test_build_with_scope_key_switches_registry_and_default_scope():
    root = Registry("model", scope="t_sw_root")
    det = Registry("model", parent=root, scope="t_sw_det")
    seen = []

    @root.register_module(name="Net")
    class RootNet:
        def __init__(self) -> None:
            seen.append(DefaultScope.get_current_instance())

    @det.register_module(name="Net")
    class DetNet:
        def __init__(self) -> None:
            seen.append(DefaultScope.get_current_instance().scope_name)

    assert type(root.build({"type": "Net"})) is RootNet
    assert type(root.build({"type": "Net", "_scope_": "t_sw_det"})) is DetNet
    assert seen == [None, "t_sw_det"]
    assert DefaultScope.get_current_instance() is None


def test_default_scope_picks_the_registry_and_nested_builds_follow_it():
    root = Registry("model", scope="t_ds_root")
    det = Registry("model", parent=root, scope="t_ds_det")
    cls = Registry("model", parent=root, scope="t_ds_cls")
    det.register_module(module=make_class("Head", origin="det"))
    cls.register_module(module=make_class("Head", origin="cls"))

    @root.register_module()
    class Wrapper:
        def __init__(self, head: dict) -> None:
            self.head = root.build(head)

    init_default_scope("t_ds_det")
    assert root.build({"type": "Head"}).origin == "det"
    built = root.build({"type": "Wrapper", "head": {"type": "Head"}, "_scope_": "t_ds_cls"})
    assert built.head.origin == "cls"  # the nested build saw the `_scope_` of its parent config
    assert root.build({"type": "Head"}).origin == "det"  # and the default scope came back


def test_constructor_errors_keep_their_type_and_name_the_class():
    reg = Registry("model", scope="t_ctor")

    @reg.register_module()
    class Broken:
        def __init__(self, depth: int) -> None:
            raise ValueError(f"bad depth {depth}")

    with pytest.raises(ValueError) as info:
        reg.build({"type": "Broken", "depth": 3})
    message = str(info.value)
    assert "class `Broken` in " + __name__ in message
    assert "t_ctor::model registry" in message
    assert message.endswith("bad depth 3")
    assert isinstance(info.value.__cause__, ValueError)
    assert str(info.value.__cause__) == "bad depth 3"

    with pytest.raises(TypeError, match=r"class `Broken`.*unexpected keyword argument 'width'"):
        reg.build({"type": "Broken", "depth": 3, "width": 2})


def test_constructor_errors_with_special_constructors_are_reraised_unchanged():
    reg = Registry("model", scope="t_ctor2")
    original = UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")

    @reg.register_module()
    def decode() -> None:
        raise original

    with pytest.raises(UnicodeDecodeError) as info:
        reg.build({"type": "decode"})
    assert info.value is original
    if sys.version_info >= (3, 11):
        assert any("callable `decode`" in note for note in info.value.__notes__)


def test_nested_build_errors_show_the_path():
    reg = Registry("model", scope="t_nested_err")

    @reg.register_module()
    class Inner:
        def __init__(self) -> None:
            raise RuntimeError("inner failed")

    @reg.register_module()
    class Outer:
        def __init__(self, inner: dict) -> None:
            self.inner = reg.build(inner)

    with pytest.raises(RuntimeError, match=r"class `Outer`.*class `Inner`.*inner failed"):
        reg.build({"type": "Outer", "inner": {"type": "Inner"}})


# ---------------------------------------------------------------------------------------------
# Errors for missing types
# ---------------------------------------------------------------------------------------------


def test_missing_type_error_explains_where_it_looked():
    root = Registry("model", scope="t_err_root")
    det = Registry("model", parent=root, scope="t_err_det")
    other = Registry("model", parent=root, scope="t_err_other")
    root.register_module(module=make_class("ResNet"))
    det.register_module(module=make_class("RetinaNet"))
    det.register_module(module=make_class("RetinaHead"))
    other.register_module(module=make_class("FCOS"))
    init_default_scope("t_err_det")

    with pytest.raises(KeyError) as info:
        root.build({"type": "RetinaNett"})
    error = info.value
    assert isinstance(error, RegistryKeyError)
    message = str(error)
    assert message.startswith("RetinaNett is not in the t_err_det::model registry.")
    assert "Searched: t_err_det::model -> t_err_root::model." in message
    assert "Default scope: 't_err_det'." in message
    assert "Close matches: RetinaNet, RetinaHead, t_err_root.ResNet." in message
    assert "custom_imports" in message
    assert "`treadle plugins`" in message

    with pytest.raises(KeyError) as info:
        root.build({"type": "FCOS"})
    message = str(info.value)
    assert "FCOS is registered in t_err_other::model" in message
    assert "type='t_err_other.FCOS'" in message


def test_missing_type_error_close_matches_are_case_insensitive_and_capped():
    reg = Registry("model", scope="t_err_close")
    for name in ["resnet", "ResNeXt", "ResNet18", "ResNet34", "ResNet50", "ResNet101", "ResNetV2"]:
        reg.register_module(module=make_class(name))
    with pytest.raises(KeyError) as info:
        reg.build({"type": "ResNet"})
    line = next(x for x in str(info.value).splitlines() if "Close matches" in x)
    names = line.split(":", 1)[1].strip(" .").split(", ")
    assert names[0] == "resnet"
    assert len(names) == 5


def test_missing_type_error_for_unknown_and_unreachable_scopes():
    root = Registry("model", scope="t_sc_root")
    mid = Registry("model", parent=root, scope="t_sc_mid")
    deep = Registry("model", parent=mid, scope="t_sc_deep")
    side = Registry("model", parent=root, scope="t_sc_side")
    deep.register_module(module=make_class("Deep"))

    with pytest.raises(KeyError) as info:
        side.build({"type": "zqnosuchscope.Net"})
    message = str(info.value)
    assert "No registry of scope 'zqnosuchscope' is in the 'model' registry tree" in message
    assert "scopes: t_sc_deep, t_sc_mid, t_sc_root, t_sc_side" in message
    assert "The package 'zqnosuchscope' is not installed" in message

    # MMEngine's rule: `scope.Name` reaches a child of the registry or of the root, not deeper.
    assert side.get("t_sc_deep.Deep") is None
    with pytest.raises(KeyError) as info:
        side.build({"type": "t_sc_deep.Deep"})
    message = str(info.value)
    assert "The scope 't_sc_deep' belongs to the t_sc_deep::model registry" in message
    assert "_scope_='t_sc_deep'" in message
    assert type(side.build({"type": "Deep", "_scope_": "t_sc_deep"})).__name__ == "Deep"


def test_missing_type_error_when_default_scope_has_no_registry():
    reg = Registry("model", scope="t_err_nods")
    init_default_scope("t_err_missing_scope")
    with pytest.raises(KeyError) as info:
        reg.build({"type": "Net"})
    message = str(info.value)
    assert (
        "Default scope: 't_err_missing_scope', but no registry of that scope is in the" in message
    )
    assert "so t_err_nods::model was used" in message


def test_missing_type_error_mentions_plugins_that_failed(monkeypatch):
    import treadle.core.plugins as plugins

    monkeypatch.setattr(
        plugins, "describe_failures", lambda: "These treadle plugins failed to load:\n  - x: boom"
    )
    reg = Registry("model", scope="t_err_plugins")
    with pytest.raises(KeyError, match=r"(?s)plugins failed to load:.*- x: boom"):
        reg.build({"type": "Net"})


# ---------------------------------------------------------------------------------------------
# DefaultScope
# ---------------------------------------------------------------------------------------------


def test_default_scope_current_instance_and_overwrite():
    assert DefaultScope.get_current_instance() is None
    DefaultScope.get_instance("t_task", scope_name="t_first")
    with DefaultScope.overwrite_default_scope("t_second"):
        assert DefaultScope.get_current_instance().scope_name == "t_second"
        init_default_scope("t_third")  # created inside the block: dropped on exit, as in MMEngine
    assert DefaultScope.get_current_instance().scope_name == "t_first"
    with DefaultScope.overwrite_default_scope(None):
        assert DefaultScope.get_current_instance().scope_name == "t_first"
    assert list(DefaultScope._instance_dict) == ["t_task"]


def test_default_scope_overwrite_restores_after_an_error():
    with pytest.raises(RuntimeError), DefaultScope.overwrite_default_scope("t_err"):
        raise RuntimeError
    assert DefaultScope.get_current_instance() is None


def test_default_scope_needs_a_string():
    with pytest.raises(TypeError, match="scope_name should be a string"):
        DefaultScope("t_bad", scope_name=3)  # type: ignore[arg-type]


def test_init_default_scope(registry_log):
    init_default_scope("t_a")
    assert DefaultScope.get_current_instance().scope_name == "t_a"
    init_default_scope("t_a")  # already current: nothing new
    assert len(DefaultScope._instance_dict) == 1
    init_default_scope("t_b")
    assert DefaultScope.get_current_instance().scope_name == "t_b"
    assert registry_log == []
    init_default_scope("t_a")  # exists, but t_b is current: forced, with a warning
    assert DefaultScope.get_current_instance().scope_name == "t_a"
    assert [r.levelno for r in registry_log] == [logging.WARNING]
    assert 'The current default scope "t_b" is not "t_a"' in registry_log[0].getMessage()
    assert len(DefaultScope._instance_dict) == 3


# ---------------------------------------------------------------------------------------------
# Display and plugin loading
# ---------------------------------------------------------------------------------------------


def test_repr_is_a_plain_table():
    reg = Registry("model", scope="t_repr")
    reg.register_module(module=make_class("Zeta"))
    reg.register_module(module=make_class("Alpha"))
    reg.register_lazy("Lazy", "zqnotamodule.sub:Thing")
    lines = repr(reg).splitlines()
    assert lines[0] == "Registry of model (scope 't_repr', 3 entries)"
    assert lines[1].split() == ["Name", "Object"]
    assert [line.split()[0] for line in lines[3:]] == ["Alpha", "Lazy", "Zeta"]
    assert lines[3].split()[1] == f"{__name__}.Alpha"
    assert "lazy target 'zqnotamodule.sub:Thing'" in lines[4]
    assert (
        repr(Registry("empty", scope="t_repr2")) == "Registry of empty (scope 't_repr2', 0 entries)"
    )


def test_first_lookup_loads_plugins_once(monkeypatch):
    calls = []
    reg = Registry("model", scope="t_plugins")
    reg.register_module(module=make_class("Net"))

    def load_plugins() -> None:
        calls.append("load")
        assert reg.get("Net") is not None  # a plugin looking things up does not recurse

    fake = types.ModuleType("treadle.core.plugins")
    fake.load_plugins = load_plugins  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "treadle.core.plugins", fake)
    monkeypatch.setattr(registry_module, "_plugins_done", False)
    monkeypatch.setattr(registry_module, "_plugins_started", False)

    assert reg.get("Net") is not None
    assert "Net" in reg
    reg.build({"type": "Net"})
    assert calls == ["load"]


def test_missing_type_error_suggests_only_keys_that_work():
    root = Registry("model", scope="t_sug_root")
    mid = Registry("model", parent=root, scope="t_sug_mid")
    deep = Registry("model", parent=mid, scope="t_sug_deep")
    side = Registry("model", parent=root, scope="t_sug_side")
    mid.register_module(module=make_class("MidNet"))
    deep.register_module(module=make_class("DeepNet"))

    with pytest.raises(KeyError) as info:
        side.build({"type": "MidNet"})
    assert (
        "MidNet is registered in t_sug_mid::model: write type='t_sug_mid.MidNet' or set "
        "_scope_='t_sug_mid' in the config." in str(info.value)
    )
    assert side.build({"type": "t_sug_mid.MidNet"}).__class__.__name__ == "MidNet"

    with pytest.raises(KeyError) as info:
        side.build({"type": "DeepNet"})
    message = str(info.value)
    assert "DeepNet is registered in t_sug_deep::model: set _scope_='t_sug_deep'" in message
    assert "type='t_sug_deep.DeepNet'" not in message


def test_constructor_errors_keep_attributes_and_os_errors_stay_intact():
    reg = Registry("model", scope="t_ctor3")

    class CustomError(Exception):
        def __init__(self, message: str, code: int = 0) -> None:
            super().__init__(message)
            self.code = code

    missing_file = FileNotFoundError(2, "No such file or directory", "/nope/weights.pth")

    @reg.register_module()
    def custom() -> None:
        raise CustomError("custom failed", code=7)

    @reg.register_module()
    def load() -> None:
        raise missing_file

    @reg.register_module()
    def needs_module() -> None:
        raise ModuleNotFoundError("No module named 'zqdep'", name="zqdep")

    with pytest.raises(CustomError, match=r"callable `custom`.*custom failed") as info:
        reg.build({"type": "custom"})
    assert info.value.code == 7

    with pytest.raises(FileNotFoundError) as info:
        reg.build({"type": "load"})
    assert info.value is missing_file
    assert info.value.errno == 2
    assert info.value.filename == "/nope/weights.pth"

    with pytest.raises(ModuleNotFoundError, match="callable `needs_module`") as info:
        reg.build({"type": "needs_module"})
    assert info.value.name == "zqdep"

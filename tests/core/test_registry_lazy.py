"""Registry entries imported on demand: lazy registration, ``locations``, and their failures.

Each test writes its own modules (unique names) to a temporary folder on ``sys.path``.
"""

from __future__ import annotations

import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from treadle.core.registry import Registry


@pytest.fixture
def make_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Write modules under a fresh top-level package; returns a function giving their names."""
    package = f"zqlazy_{uuid.uuid4().hex[:8]}"
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))

    def make(name: str, source: str) -> str:
        (tmp_path / package / f"{name}.py").write_text(textwrap.dedent(source))
        return f"{package}.{name}"

    yield make
    for module in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
        del sys.modules[module]


def test_lazy_entry_is_imported_on_first_get_and_cached(make_module):
    module = make_module(
        "nets", "class Net:\n    def __init__(self, depth=1):\n        self.depth = depth\n"
    )
    reg = Registry("model", scope="t_lazy")
    reg.register_lazy(["Net", "net"], f"{module}:Net")

    assert "Net" in reg
    assert len(reg) == 2
    assert sorted(reg.keys()) == ["Net", "net"]
    assert reg.is_lazy("Net")
    assert reg.lazy_targets == {"Net": f"{module}:Net", "net": f"{module}:Net"}
    assert f"lazy target '{module}:Net'" in repr(reg)
    assert module not in sys.modules  # none of the above imported it

    net_cls = reg.get("Net")
    assert module in sys.modules
    assert net_cls is sys.modules[module].Net
    assert not reg.is_lazy("Net")
    assert not reg.is_lazy("net")  # the alias was resolved with it
    assert reg.lazy_targets == {}
    assert reg.get("net") is net_cls
    assert reg.build({"type": "net", "depth": 3}).depth == 3


def test_lazy_dotted_attribute_and_build(make_module):
    module = make_module("outer", "class Outer:\n    class Inner:\n        pass\n")
    reg = Registry("model", scope="t_lazy_dotted")
    reg.register_lazy("Inner", f"{module}:Outer.Inner")
    assert type(reg.build({"type": "Inner"})).__qualname__ == "Outer.Inner"


def test_lazy_entry_found_through_parent_and_scope(make_module):
    module = make_module("base", "class Base:\n    pass\n")
    root = Registry("model", scope="t_lazy_root")
    child = Registry("model", parent=root, scope="t_lazy_child")
    root.register_lazy("Base", f"{module}:Base")
    assert child.get("Base") is child.get("t_lazy_root.Base")
    assert child.get("Base").__name__ == "Base"


def test_lazy_target_module_registering_itself_is_not_a_conflict(make_module):
    reg = Registry("model", scope="t_lazy_self")
    import builtins

    builtins._t_lazy_self_registry = reg  # type: ignore[attr-defined]
    try:
        # Plugin modules often register their classes with a decorator when imported.
        module = make_module(
            "selfreg",
            """
            import builtins

            @builtins._t_lazy_self_registry.register_module(name=["Net", "net"])
            class Net:
                pass
            """,
        )
        reg.register_lazy(["Net", "net"], f"{module}:Net")
        net = reg.get("Net")
    finally:
        del builtins._t_lazy_self_registry  # type: ignore[attr-defined]
    assert net is sys.modules[module].Net
    assert reg.get("net") is net
    assert reg.lazy_targets == {}


def test_register_lazy_conflicts(make_module):
    module = make_module("conf", "class Net:\n    pass\n")
    reg = Registry("model", scope="t_lazy_conf")
    reg.register_lazy("Net", f"{module}:Net")
    reg.register_lazy("Net", f"{module}:Net")  # the same registration again: fine
    with pytest.raises(KeyError, match=r"Net is already registered in the t_lazy_conf::model"):
        reg.register_lazy("Net", f"{module}:Other")
    reg.register_lazy("Net", f"{module}:Other", force=True)
    assert reg.lazy_targets == {"Net": f"{module}:Other"}

    # An object registered eagerly, then lazily by its own path: the eager entry stays.
    import importlib

    net = importlib.import_module(module).Net
    eager = Registry("model", scope="t_lazy_conf2")
    eager.register_module(module=net)
    eager.register_lazy("Net", f"{module}:Net")
    assert not eager.is_lazy("Net")
    assert eager.get("Net") is net
    # A different class under that name is a conflict.
    with pytest.raises(KeyError, match="already registered"):
        eager.register_lazy("Net", "zqother.mod:Net")
    # And so is registering another class eagerly over a lazy entry.
    reg2 = Registry("model", scope="t_lazy_conf3")
    reg2.register_lazy("Net", "zqother.mod:Net")
    with pytest.raises(KeyError, match=r"at lazy target 'zqother\.mod:Net'"):
        reg2.register_module(module=net)


@pytest.mark.parametrize(
    "target", ["pkg.mod", "pkg.mod:", ":Attr", "pkg mod:Attr", "pkg.mod:A:B", "pkg..mod:A"]
)
def test_register_lazy_rejects_malformed_targets(target):
    reg = Registry("model", scope="t_lazy_bad")
    with pytest.raises(ValueError, match=r'must look like "pkg.module:Attr"'):
        reg.register_lazy("Net", target)
    assert "Net" not in reg


def test_register_lazy_rejects_bad_names_and_targets():
    reg = Registry("model", scope="t_lazy_bad2")
    with pytest.raises(TypeError, match="target must be a string"):
        reg.register_lazy("Net", 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="name must be"):
        reg.register_lazy(3, "a:b")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="force must be a boolean"):
        reg.register_lazy("Net", "a:b", force="yes")  # type: ignore[arg-type]


def test_lazy_target_module_missing_raises_chained_import_error():
    reg = Registry("vis_backend", scope="t_lazy_missing")
    reg.register_lazy("WandbVisBackend", "zqnotinstalled.backend:WandbVisBackend")
    with pytest.raises(ImportError) as info:
        reg.get("WandbVisBackend")
    message = str(info.value)
    assert "t_lazy_missing::vis_backend registry" in message
    assert "'WandbVisBackend'" in message
    assert "'zqnotinstalled.backend:WandbVisBackend'" in message
    assert "No module named 'zqnotinstalled'" in message
    assert isinstance(info.value.__cause__, ModuleNotFoundError)
    # Still lazy: a later attempt (say, after installing the package) tries again.
    assert reg.is_lazy("WandbVisBackend")
    with pytest.raises(ImportError):
        reg.build({"type": "WandbVisBackend"})


def test_lazy_target_missing_dependency_is_named(make_module):
    module = make_module("needsdep", "import zqmissingsdk\n\nclass Backend:\n    pass\n")
    reg = Registry("vis_backend", scope="t_lazy_dep")
    reg.register_lazy("Backend", f"{module}:Backend")
    with pytest.raises(ImportError) as info:
        reg.build({"type": "Backend"})
    message = str(info.value)
    assert "the module 'zqmissingsdk' it needs is not installed" in message
    assert isinstance(info.value.__cause__, ModuleNotFoundError)
    assert info.value.__cause__.name == "zqmissingsdk"


def test_lazy_target_module_raising_other_errors_is_chained(make_module):
    module = make_module("crashes", "raise RuntimeError('config server unreachable')\n")
    reg = Registry("vis_backend", scope="t_lazy_crash")
    reg.register_lazy("Backend", f"{module}:Backend")
    with pytest.raises(ImportError, match="RuntimeError: config server unreachable") as info:
        reg.get("Backend")
    assert isinstance(info.value.__cause__, RuntimeError)


def test_lazy_target_attribute_missing_raises_chained_import_error(make_module):
    module = make_module("noattr", "class Other:\n    pass\n")
    reg = Registry("model", scope="t_lazy_noattr")
    reg.register_lazy("Net", f"{module}:Net")
    with pytest.raises(ImportError) as info:
        reg.get("Net")
    message = str(info.value)
    assert f"the module '{module}' has no attribute 'Net'" in message
    assert "t_lazy_noattr::model" in message
    assert isinstance(info.value.__cause__, AttributeError)


def test_module_dict_imports_lazy_entries(make_module):
    module = make_module("md", "class A:\n    pass\nclass B:\n    pass\n")
    reg = Registry("model", scope="t_lazy_md")
    reg.register_lazy(["A", "a"], f"{module}:A")
    reg.register_lazy("B", f"{module}:B")
    table = reg.module_dict
    assert {name: obj.__name__ for name, obj in table.items()} == {"A": "A", "a": "A", "B": "B"}
    assert table["A"] is table["a"]


def test_unregister_lazy_entry():
    reg = Registry("model", scope="t_lazy_unreg")
    reg.register_lazy("Net", "zqnotinstalled.mod:Net")
    reg.unregister("Net")
    assert reg.get("Net") is None


# ---------------------------------------------------------------------------------------------
# locations
# ---------------------------------------------------------------------------------------------


def test_locations_are_imported_on_first_lookup(make_module):
    reg = Registry("model", scope="t_loc")
    import builtins

    builtins._t_loc_registry = reg  # type: ignore[attr-defined]
    try:
        module = make_module(
            "located",
            """
            import builtins
            REG = builtins._t_loc_registry

            @REG.register_module()
            class Located:
                pass
            """,
        )
        located = Registry("model", parent=reg, scope="t_loc_child", locations=[module])
        assert reg.locations == []
        assert located.locations == [module]
        assert module not in sys.modules
        assert located.get("Located").__name__ == "Located"
        assert module in sys.modules
    finally:
        del builtins._t_loc_registry  # type: ignore[attr-defined]


def test_location_import_failure_is_raised_and_retried(make_module, tmp_path):
    module = make_module("badloc", "import zqmissingdep\n")
    reg = Registry("model", scope="t_loc_bad", locations=[module])
    with pytest.raises(ImportError) as info:
        reg.get("Anything")
    message = str(info.value)
    assert "The t_loc_bad::model registry could not import its location" in message
    assert f"'{module}'" in message
    assert "No module named 'zqmissingdep'" in message
    assert isinstance(info.value.__cause__, ModuleNotFoundError)
    with pytest.raises(ImportError, match="could not import its location"):
        reg.build({"type": "Anything"})
    with pytest.raises(ImportError, match="could not import its location"):
        _ = "Anything" in reg

    # Fixed: the next lookup imports it.
    make_module("badloc", "X = 1\n")
    sys.modules.pop(module, None)
    assert reg.get("Anything") is None


def test_locations_of_parents_are_imported_when_searched(make_module):
    root = Registry("model", scope="t_loc_parent")
    import builtins

    builtins._t_loc_parent_registry = root  # type: ignore[attr-defined]
    try:
        module = make_module(
            "parentloc",
            """
            import builtins
            builtins._t_loc_parent_registry.register_module(name="FromParent", module=dict)
            """,
        )
        root._locations = [module]
        root._imported = False
        child = Registry("model", parent=root, scope="t_loc_parent_child")
        assert child.get("FromParent") is dict
    finally:
        del builtins._t_loc_parent_registry  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------------
# Import failures surfaced by "not in the registry" errors
# ---------------------------------------------------------------------------------------------


def test_missing_type_error_chains_a_broken_dotted_path(make_module):
    module = make_module("brokenpath", "import zqabsentdependency\n\nclass Thing:\n    pass\n")
    reg = Registry("model", scope="t_err_dotted")
    assert reg.get(f"{module}.Thing") is None  # MMEngine's get() returns None here
    with pytest.raises(KeyError) as info:
        reg.build({"type": f"{module}.Thing"})
    message = str(info.value)
    assert f"Importing '{module}.Thing' as a dotted path failed" in message
    assert "No module named 'zqabsentdependency'" in message
    assert isinstance(info.value.__cause__, ModuleNotFoundError)


def test_missing_type_error_chains_a_broken_scope_registry(tmp_path, monkeypatch):
    scope = f"zqscope_{uuid.uuid4().hex[:8]}"
    (tmp_path / scope).mkdir()
    (tmp_path / scope / "__init__.py").write_text("")
    (tmp_path / scope / "registry.py").write_text("import zqscopedependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = Registry("model", scope="t_err_scope_reg")
    try:
        assert reg.get(f"{scope}.Net") is None
        with pytest.raises(KeyError) as info:
            reg.build({"type": f"{scope}.Net"})
    finally:
        for name in [m for m in sys.modules if m == scope or m.startswith(scope + ".")]:
            del sys.modules[name]
    message = str(info.value)
    assert f"No registry of scope '{scope}'" in message
    assert f"Importing {scope}.registry failed: ModuleNotFoundError" in message
    assert isinstance(info.value.__cause__, ModuleNotFoundError)


def test_scope_registry_module_is_imported_to_join_the_tree(tmp_path, monkeypatch):
    scope = f"zqjoin_{uuid.uuid4().hex[:8]}"
    root = Registry("model", scope="t_join_root")
    import builtins

    builtins._t_join_root = root  # type: ignore[attr-defined]
    (tmp_path / scope).mkdir()
    (tmp_path / scope / "__init__.py").write_text("")
    (tmp_path / scope / "registry.py").write_text(
        textwrap.dedent(
            f"""
            import builtins
            from treadle.core.registry import Registry
            MODELS = Registry("model", parent=builtins._t_join_root, scope="{scope}")
            MODELS.register_module(name="Joined", module=list)
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert root.get(f"{scope}.Joined") is list  # importing <scope>.registry added the child
    finally:
        del builtins._t_join_root  # type: ignore[attr-defined]
        for name in [m for m in sys.modules if m == scope or m.startswith(scope + ".")]:
            del sys.modules[name]

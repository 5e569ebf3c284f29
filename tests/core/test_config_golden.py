"""Text-style configs resolve to exactly the dict MMEngine 0.10.7 produces.

``fixtures/configs/text/golden.pkl`` holds ``Config.fromfile(f).to_dict()`` from real MMEngine
0.10.7 for every fixture file (regenerate with ``fixtures/configs/text/_make_golden.py``).
Comparison is strict: equal values, equal types (tuple vs list, int keys) and equal key order.
"""

import pickle
import sys
import warnings
from pathlib import Path

import pytest

from treadle.core.config import Config

ROOT = Path(__file__).parent / "fixtures" / "configs" / "text"
GOLDEN = pickle.loads((ROOT / "golden.pkl").read_bytes())
ENV = {"TREADLE_TEST_DATA_ROOT": "/mnt/data", "TREADLE_TEST_WORKERS": "8"}
UNSET = ("TREADLE_TEST_UNSET_BATCH", "TREADLE_TEST_UNSET_NAME", "TREADLE_TEST_SURELY_UNSET")
# Where treadle deliberately differs from MMEngine: (MMEngine's outcome, treadle's error type).
DEVIATIONS = {
    # MMEngine silently accepts these `_delete_` mistakes; treadle names the file and line.
    "errors/bad_delete.py": "TypeError",
    "errors/top_delete.py": "ConfigParsingError",
    # MMEngine recurses until RecursionError.
    "errors/circular_a.py": "ConfigParsingError",
    "errors/circular_b.py": "ConfigParsingError",
    # treadle wraps parser errors to name the file.
    "errors/bad.json": "ConfigParsingError",
    "errors/bad.yaml": "ConfigParsingError",
    # Same condition; treadle raises ConfigParsingError (a RuntimeError, like MMEngine's).
    "errors/lazy_base_child.py": "ConfigParsingError",
}
# Pure-Python configs are compared by the lazy-config tests.
SKIP = {"errors/lazy_base.py"}


def _normalize(value):
    if isinstance(value, str):
        return value.replace(str(ROOT.resolve()), "<ROOT>")
    if isinstance(value, dict):
        return {_normalize(k): _normalize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_normalize(v) for v in value)
    return value


def _assert_same(ours, theirs, where="cfg"):
    assert type(ours) is type(theirs), f"{where}: {type(ours)} != {type(theirs)}"
    if isinstance(ours, dict):
        assert list(ours) == list(theirs), f"{where}: keys {list(ours)} != {list(theirs)}"
        for key in ours:
            _assert_same(ours[key], theirs[key], f"{where}[{key!r}]")
    elif isinstance(ours, (list, tuple)):
        assert len(ours) == len(theirs), f"{where}: length {len(ours)} != {len(theirs)}"
        for index, (a, b) in enumerate(zip(ours, theirs)):
            _assert_same(a, b, f"{where}[{index}]")
    else:
        assert ours == theirs, f"{where}: {ours!r} != {theirs!r}"


@pytest.fixture
def golden_env(monkeypatch):
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    for key in UNSET:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.syspath_prepend(str(ROOT / "pkg_root"))
    yield
    sys.modules.pop("mmdet", None)


def test_golden_covers_the_fixture_tree():
    files = {
        p.relative_to(ROOT).as_posix()
        for p in ROOT.rglob("*")
        if p.suffix in (".py", ".yaml", ".json")
        and not p.relative_to(ROOT).as_posix().startswith("pkg_root/")
        and not p.name.startswith("_make")
    }
    assert files == set(GOLDEN)
    assert sum(1 for status, _ in GOLDEN.values() if status == "ok") >= 40


@pytest.mark.parametrize("rel", sorted(set(GOLDEN) - SKIP))
def test_matches_mmengine(rel, golden_env):
    status, expected = GOLDEN[rel]
    path = str(ROOT / rel)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if rel in DEVIATIONS:
            with pytest.raises(Exception) as info:
                Config.fromfile(path)
            assert type(info.value).__name__ == DEVIATIONS[rel]
            return
        if status == "error":
            with pytest.raises(Exception) as info:
                Config.fromfile(path)
            assert type(info.value).__name__ == expected
            return
        cfg = Config.fromfile(path)
    _assert_same(_normalize(cfg.to_dict()), expected)

"""Plugin discovery through the ``treadle.plugins`` entry point group.

Each case writes real distributions (a ``.dist-info`` with METADATA and entry_points.txt, next to
the plugin's module, exactly what an installer leaves in site-packages) to a temporary folder and
runs discovery in a fresh interpreter with that folder on ``sys.path``, so every case starts from
an undiscovered process, as a user's would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

GOOD_PLUGIN = """
from treadle.core.hookspecs import hookimpl

@hookimpl
def register_components(registries):
    registries.MODELS.register_lazy("GoodNet", "goodplug.models:GoodNet")
    registries.VISBACKENDS.register_lazy("GoodVis", "goodplug.vis:GoodVis")
"""


def make_dist(
    root: Path,
    dist: str,
    version: str,
    entry_points: dict[str, str],
    modules: dict[str, str],
) -> None:
    """Write an installed distribution: its modules and a .dist-info folder."""
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = "\n".join(f"{name} = {target}" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[treadle.plugins]\n{lines}\n")
    for relpath, source in modules.items():
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))


def run_py(code: str, site: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter with ``site`` (and ``site2`` beside it) on sys.path."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TREADLE_")}
    paths = [str(site), str(site.parent / "site2"), full_env.get("PYTHONPATH", "")]
    full_env["PYTHONPATH"] = os.pathsep.join(paths)
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=120,
        check=False,
    )


LIST_JSON = """
import json
from treadle.core.plugins import list_plugins
print(json.dumps([
    dict(name=i.name, dist=i.distribution, version=i.version, status=i.status,
         error=i.error, hint=i.hint, components=i.components)
    for i in list_plugins()
]))
"""


def plugins_by_name(result: subprocess.CompletedProcess[str]) -> dict[str, dict]:
    assert result.returncode == 0, result.stderr
    rows: dict[str, dict] = {}
    for row in json.loads(result.stdout.splitlines()[-1]):
        key = row["name"] if row["name"] not in rows else f"{row['name']} ({row['dist']})"
        rows[key] = row
    return rows


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    make_dist(
        root,
        "goodplug",
        "1.2.3",
        {"good": "goodplug"},
        {
            "goodplug/__init__.py": GOOD_PLUGIN,
            "goodplug/models.py": "import sys\nprint('IMPORTED goodplug.models', file=sys.stderr)\n"
            "class GoodNet:\n    def __init__(self, depth=1):\n        self.depth = depth\n",
            "goodplug/vis.py": "class GoodVis:\n    pass\n",
        },
    )
    return root


def test_entry_point_plugin_registers_lazily(site: Path) -> None:
    result = run_py(
        """
        import sys
        from treadle.core.registry import MODELS
        assert "goodplug.models" not in sys.modules
        net = MODELS.build(dict(type="GoodNet", depth=3))
        print(type(net).__module__, net.depth)
        """,
        site,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["goodplug.models", "3"]
    # The model's module was imported once, on build, not at discovery.
    assert result.stderr.count("IMPORTED goodplug.models") == 1


def test_list_records_distribution_version_and_components(site: Path) -> None:
    plugins = plugins_by_name(run_py(LIST_JSON, site))
    assert next(iter(plugins)) == "builtin"
    assert plugins["builtin"]["dist"] == "treadle-core"
    builtin = plugins["builtin"]["components"]
    assert builtin["FILE_BACKENDS"] == ["local"]
    assert "Runner" in builtin["RUNNERS"]
    assert {"CheckpointHook", "LoggerHook"} <= set(builtin["HOOKS"])
    good = plugins["good"]
    assert (good["dist"], good["version"], good["status"]) == ("goodplug", "1.2.3", "loaded")
    assert good["components"] == {"MODELS": ["GoodNet"], "VISBACKENDS": ["GoodVis"]}


def test_broken_plugin_is_reported_and_others_still_load(site: Path) -> None:
    make_dist(
        site,
        "treadle-logger-fake",
        "0.4.0",
        {"logger-fake": "fakelogger.plugin"},
        {
            "fakelogger/__init__.py": "",
            "fakelogger/plugin.py": "import fake_sdk_that_is_not_installed\n",
        },
    )
    result = run_py(LIST_JSON, site)
    plugins = plugins_by_name(result)
    assert plugins["good"]["status"] == "loaded"
    broken = plugins["logger-fake"]
    assert broken["status"] == "failed"
    assert (broken["dist"], broken["version"]) == ("treadle-logger-fake", "0.4.0")
    assert "fake_sdk_that_is_not_installed" in broken["error"]
    assert "ModuleNotFoundError" in broken["error"]
    assert "pip install --upgrade treadle-logger-fake" in broken["hint"]
    # Reported once on the treadle logger, with the distribution.
    assert result.stderr.count("treadle-logger-fake 0.4.0") == 1


def test_component_of_failed_plugin_error_names_the_plugin(site: Path) -> None:
    make_dist(
        site,
        "brokenplug",
        "0.1.0",
        {"broken": "brokenplug"},
        {"brokenplug/__init__.py": "raise ImportError('cannot import name X from sdk')\n"},
    )
    result = run_py(
        """
        from treadle.core.registry import VISBACKENDS
        try:
            VISBACKENDS.build(dict(type="BrokenVis"))
        except KeyError as exc:
            print(exc.args[0])
        else:
            raise SystemExit("no error")
        """,
        site,
    )
    assert result.returncode == 0, result.stderr
    assert "BrokenVis" in result.stdout
    assert "broken (brokenplug 0.1.0): failed" in result.stdout
    assert "cannot import name X from sdk" in result.stdout


def test_register_hook_that_raises_is_undone(site: Path) -> None:
    make_dist(
        site,
        "halfplug",
        "2.0",
        {"half": "halfplug"},
        {
            "halfplug/__init__.py": """
            from treadle.core.hookspecs import hookimpl

            @hookimpl
            def register_components(registries):
                registries.MODELS.register_lazy("HalfNet", "halfplug:HalfNet")
                raise RuntimeError("plugin bug")
            """
        },
    )
    result = run_py(
        LIST_JSON.replace(
            "print(json.dumps(",
            "from treadle.core.registry import MODELS\n"
            "assert 'HalfNet' not in MODELS, 'half registration left behind'\n"
            "print(json.dumps(",
        ),
        site,
    )
    plugins = plugins_by_name(result)
    assert plugins["half"]["status"] == "failed"
    assert "register_components hook raised: RuntimeError: plugin bug" in plugins["half"]["error"]
    assert plugins["good"]["status"] == "loaded"


def test_duplicate_name_from_another_distribution_is_ignored(site: Path) -> None:
    # Like imports, the distribution found first on sys.path wins.
    make_dist(
        site.parent / "site2",
        "zzplug",
        "1.0",
        {"good": "zzplug"},
        {"zzplug/__init__.py": "raise SystemExit('must not be imported')\n"},
    )
    result = run_py(LIST_JSON, site)
    plugins = plugins_by_name(result)
    assert plugins["good"]["dist"] == "goodplug"
    assert plugins["good"]["status"] == "loaded"
    dup = plugins["good (zzplug)"]
    assert dup["status"] == "duplicate"
    assert "already taken by goodplug" in dup["error"]


@pytest.mark.parametrize("value", ["good", "goodplug", "other, good"])
def test_disabled_plugins(site: Path, value: str) -> None:
    plugins = plugins_by_name(run_py(LIST_JSON, site, TREADLE_DISABLED_PLUGINS=value))
    assert plugins["good"]["status"] == "disabled"
    assert plugins["good"]["components"] == {}


def test_disable_autoload_keeps_builtin(site: Path) -> None:
    plugins = plugins_by_name(run_py(LIST_JSON, site, TREADLE_DISABLE_PLUGIN_AUTOLOAD="1"))
    assert list(plugins) == ["builtin"]
    assert plugins["builtin"]["components"]["FILE_BACKENDS"] == ["local"]


def test_trace_hooks_prints_hook_calls(site: Path) -> None:
    result = run_py(LIST_JSON, site, TREADLE_TRACE_HOOKS="1")
    assert result.returncode == 0, result.stderr
    assert "[treadle hooks]" in result.stderr
    assert "register_components" in result.stderr


def test_discovery_runs_once_per_process(site: Path) -> None:
    result = run_py(
        """
        from unittest import mock
        import treadle.core.plugins as plugins
        with mock.patch.object(plugins, "_entry_points", wraps=plugins._entry_points) as scan:
            from treadle.core.registry import MODELS
            MODELS.get("GoodNet"); MODELS.get("GoodNet"); plugins.load_plugins()
            plugins.list_plugins()
        print(scan.call_count)
        """,
        site,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"


def test_register_plugin_by_hand_gets_historic_call(site: Path) -> None:
    result = run_py(
        """
        from treadle.core.hookspecs import hookimpl
        from treadle.core.plugins import register_plugin
        from treadle.core.registry import METRICS

        class Mine:
            @hookimpl
            def register_components(self, registries):
                registries.METRICS.register_lazy("MyMetric", "collections:OrderedDict")

        info = register_plugin(Mine(), name="mine")
        print(info.components, METRICS.get("MyMetric").__name__)
        try:
            register_plugin(Mine(), name="mine")
        except ValueError as exc:
            print("again:", exc)
        """,
        site,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "{'METRICS': ['MyMetric']} OrderedDict"
    assert lines[1] == "again: a treadle plugin named 'mine' is already registered"


def test_installed_example_plugin_end_to_end() -> None:
    """The workspace's example plugin, installed by uv as a real wheel-built distribution."""
    pytest.importorskip("treadle_example_plugin", reason="example plugin not in this environment")
    result = run_py(LIST_JSON, Path(os.devnull))
    plugins = plugins_by_name(result)
    assert plugins["example"]["dist"] == "treadle-example-plugin"
    assert plugins["example"]["status"] == "loaded"
    assert plugins["example"]["components"] == {"MODELS": ["ExampleNet"]}

"""The ``treadle`` command line: config show/dump, plugins, env, and its errors."""

from __future__ import annotations

import ast
import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from treadle.core.cli import main
from treadle.core.fileio import load


@pytest.fixture
def cfg_file(tmp_path: Path) -> Path:
    (tmp_path / "_base_").mkdir()
    (tmp_path / "_base_" / "model.py").write_text(
        "model = dict(type='Net', depth=18, widths=[8, 16], norm=dict(type='BN'))\n"
    )
    path = tmp_path / "cfg.py"
    path.write_text(
        textwrap.dedent(
            """\
            _base_ = ['./_base_/model.py']
            model = dict(depth=34)
            optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1), clip=(1, 2))
            """
        )
    )
    return path


EXPECTED = {
    "model": {"type": "Net", "depth": 50, "widths": [8, 16], "norm": {"type": "GN"}},
    "optim_wrapper": {"optimizer": {"type": "SGD", "lr": 0.01}, "clip": (1, 2)},
}
OPTIONS = [
    "--cfg-options",
    "model.depth=50",
    "optim_wrapper.optimizer.lr=0.01",
    "model.norm.type=GN",
]


def test_config_show_prints_valid_python(
    cfg_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["config", "show", str(cfg_file), *OPTIONS]) == 0
    out = capsys.readouterr().out
    namespace: dict[str, object] = {}
    exec(compile(out, "<shown>", "exec"), namespace)
    shown = {k: v for k, v in namespace.items() if not k.startswith("__")}
    assert shown == EXPECTED


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_config_show_other_formats(
    cfg_file: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    assert main(["config", "show", str(cfg_file), "--format", fmt, *OPTIONS]) == 0
    out = capsys.readouterr().out
    # JSON has no tuples; treadle's YAML keeps them as !!python/tuple, as MMEngine's dump does.
    loaded = json.loads(out) if fmt == "json" else load(io.StringIO(out), file_format="yaml")
    assert loaded["model"] == EXPECTED["model"]
    assert loaded["optim_wrapper"]["optimizer"] == {"type": "SGD", "lr": 0.01}
    assert loaded["optim_wrapper"]["clip"] == ([1, 2] if fmt == "json" else (1, 2))


@pytest.mark.parametrize("suffix", [".py", ".json", ".yaml"])
def test_config_dump_round_trips(cfg_file: Path, tmp_path: Path, suffix: str) -> None:
    from treadle.core.config import Config

    out = tmp_path / "out" / f"dumped{suffix}"
    assert main(["config", "dump", str(cfg_file), str(out), *OPTIONS]) == 0
    reloaded = Config.fromfile(out).to_dict()
    expected = json.loads(json.dumps(EXPECTED)) if suffix != ".py" else EXPECTED
    if suffix != ".py":  # json and yaml have no tuples
        reloaded["optim_wrapper"]["clip"] = list(reloaded["optim_wrapper"]["clip"])
    assert reloaded == expected


def test_missing_config_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.py"
    assert main(["config", "show", str(missing)]) == 4  # exit code: a file is missing
    err = capsys.readouterr().err
    assert err.startswith("treadle: error: FileNotFoundError:")
    assert str(missing) in err
    assert "Traceback" not in err
    assert "--debug" in err


def test_syntax_error_names_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("a = 1\nmodel = dict(type='Net'\nb = 2\n")
    assert main(["config", "show", str(bad)]) == 3  # exit code: the config cannot be read
    err = capsys.readouterr().err
    assert "bad.py" in err
    assert "line 2" in err or "line 3" in err
    assert "Traceback" not in err


def test_debug_prints_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--debug", "config", "show", str(tmp_path / "nope.py")]) == 4
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert "treadle: error: FileNotFoundError" in err


def test_bad_cfg_option_is_usage_error(cfg_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["config", "show", str(cfg_file), "--cfg-options", "novalue"])
    assert exc.value.code == 2
    assert "novalue" in capsys.readouterr().err


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: treadle" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv", [[], ["config"], ["config", "show"], ["config", "dump"], ["plugins"], ["env"]]
)
def test_help_everywhere(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--help"])
    assert exc.value.code == 0
    assert "usage: treadle" in capsys.readouterr().out


def test_plugins_lists_builtin(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "builtin  [loaded]  treadle-core" in out
    assert "FILE_BACKENDS: local" in out
    assert main(["plugins", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["name"] == "builtin"
    assert rows[0]["components"]["FILE_BACKENDS"] == ["local"]
    assert "EpochBasedTrainLoop" in rows[0]["components"]["LOOPS"]


def test_env_prints_versions(capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    assert main(["env"]) == 0
    out = capsys.readouterr().out
    assert f"torch: {torch.__version__.split('+')[0]}" in out
    assert "treadle-core: " in out
    assert "Python: " in out


def test_example_plugin_adds_command_and_option(
    cfg_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("treadle_example_plugin", reason="example plugin not in this environment")
    assert main(["example-hello", "treadle"]) == 0
    assert capsys.readouterr().out == "hello from treadle-example-plugin, treadle\n"
    assert main(["config", "show", str(cfg_file), "--example-flag"]) == 0


def test_python_dash_m_and_console_script() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TREADLE_")}
    result = subprocess.run(
        [sys.executable, "-m", "treadle.core", "--version"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("treadle-core ")
    script = shutil.which("treadle", path=str(Path(sys.executable).parent))
    assert script is not None, "console script `treadle` is not installed next to python"
    result = subprocess.run(
        [script, "plugins"], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "builtin" in result.stdout


def test_shown_config_is_parseable_python(
    cfg_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["config", "show", str(cfg_file)]) == 0
    ast.parse(capsys.readouterr().out)


@pytest.mark.parametrize("command", ["show", "dump"])
def test_option_that_does_not_fit_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    # `a` is an int: a.b=1 cannot merge into it. `treadle train` exits 3 for this; so does config.
    cfg = tmp_path / "c.py"
    cfg.write_text("a = 1\nmodel = dict(type='Net')\n")
    out = [str(tmp_path / "out.py")] if command == "dump" else []
    assert main(["config", command, str(cfg), *out, "--cfg-options", "a.b=1"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("treadle: error: TypeError:")
    assert "Traceback" not in err

"""``treadle train`` / ``treadle test``: runs on the toy config, options, and errors for bad input."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch

from treadle.core.cli import main
from treadle.core.cli.main import (
    EXIT_CONFIG,
    EXIT_INTERRUPTED,
    EXIT_MISSING_PLUGIN,
    EXIT_NOT_FOUND,
    EXIT_UNKNOWN_TYPE,
    EXIT_USAGE,
)
from treadle.core.config import Config
from treadle.core.hooks import Hook
from treadle.core.registry import HOOKS

TEST_PARTS: dict[str, Any] = {
    "test_dataloader": {
        "dataset": {"type": "ToyDataset", "n": 10, "seed": 1},
        "sampler": {"type": "DefaultSampler", "shuffle": False},
        "collate_fn": {"type": "default_collate"},
        "batch_size": 5,
    },
    "test_cfg": {},
    "test_evaluator": {"type": "Accuracy"},
}


ONE_EPOCH = {"by_epoch": True, "max_epochs": 1, "val_interval": 1}


class InterruptAtIter(Hook):
    """Raises KeyboardInterrupt (what Ctrl-C raises) before training iteration ``at``."""

    def __init__(self, at: int) -> None:
        self.at = at

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
        if runner.iter == self.at:
            raise KeyboardInterrupt


if "InterruptAtIter" not in HOOKS:
    HOOKS.register_module(module=InterruptAtIter)


@pytest.fixture(autouse=True)
def _keep_sys_path(monkeypatch: pytest.MonkeyPatch) -> None:
    # `treadle train` appends the config's directory to sys.path; undo it after each test.
    monkeypatch.setattr(sys, "path", list(sys.path))
    # `treadle train` sets LOCAL_RANK, as tools/train.py does; restore the environment after.
    monkeypatch.setenv("LOCAL_RANK", "0")


@pytest.fixture
def write_cfg(tmp_path: Path, toy_cfg: Any) -> Any:
    """``write_cfg(name="toy.py", **overrides)`` → path of a config file for the toy run."""

    def write(name: str = "toy.py", **overrides: Any) -> Path:
        work_dir = overrides.pop("work_dir", "unset")
        cfg = toy_cfg(**{**TEST_PARTS, **overrides})
        if work_dir is None:
            del cfg["work_dir"]
        elif work_dir != "unset":
            cfg["work_dir"] = work_dir
        path = tmp_path / name
        Config(cfg).dump(str(path))
        return path

    return write


def _last_ckpt(work_dir: Path) -> Path:
    return Path((work_dir / "last_checkpoint").read_text().strip())


def _state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]  # type: ignore[no-any-return]


def _assert_one_message(err: str) -> None:
    assert err.startswith("treadle: error: ")
    assert "Traceback" not in err
    assert "(run with --debug for the traceback)" in err


# -- training runs -----------------------------------------------------------------------------


def test_train_writes_checkpoints_logs_and_scalars(write_cfg: Any, tmp_path: Path) -> None:
    cfg = write_cfg()
    work = tmp_path / "out"
    assert main(["train", str(cfg), "--work-dir", str(work)]) == 0
    assert _last_ckpt(work) == work / "epoch_2.pth"
    assert (work / "epoch_1.pth").is_file()
    assert (work / "toy.py").is_file()  # the config, dumped by the Runner
    (run_dir,) = [p for p in work.iterdir() if p.is_dir()]
    assert (run_dir / f"{run_dir.name}.log").is_file()
    records = [
        json.loads(line)
        for line in (run_dir / "vis_data" / "scalars.json").read_text().splitlines()
    ]
    assert any("loss" in r for r in records)
    assert any("accuracy/top1" in r for r in records)


def test_work_dir_precedence(
    write_cfg: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    # The config's work_dir when no --work-dir ...
    cfg = write_cfg(work_dir=str(tmp_path / "from_cfg"), train_cfg=ONE_EPOCH)
    assert main(["train", str(cfg)]) == 0
    assert (tmp_path / "from_cfg" / "epoch_1.pth").is_file()
    # ... ./work_dirs/<config name> when the config has none.
    cfg = write_cfg("named.py", work_dir=None, train_cfg=ONE_EPOCH)
    assert main(["train", str(cfg)]) == 0
    assert (cwd / "work_dirs" / "named" / "epoch_1.pth").is_file()


def test_work_dir_takes_a_uri(write_cfg: Any, tmp_path: Path) -> None:
    from treadle.core.fileio import exists, get_text

    cfg = write_cfg(train_cfg=ONE_EPOCH)
    work = tmp_path / "file uri"
    assert main(["train", str(cfg), "--work-dir", work.as_uri()]) == 0
    assert (work / "epoch_1.pth").is_file()
    remote = f"memory://treadle-cli-train-{tmp_path.name}/work"
    assert main(["train", str(cfg), "--work-dir", remote]) == 0
    assert get_text(f"{remote}/last_checkpoint").strip() == f"{remote}/epoch_1.pth"
    assert exists(f"{remote}/epoch_1.pth")


def test_resume_without_value_finds_last_checkpoint(
    write_cfg: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_cfg()
    stopping = write_cfg("toy_stop.py", custom_hooks=[{"type": "InterruptAtIter", "at": 4}])
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert main(["train", str(cfg), "--work-dir", str(straight)]) == 0
    assert main(["train", str(stopping), "--work-dir", str(resumed)]) == EXIT_INTERRUPTED
    capsys.readouterr()
    # Resume the interrupted run: the same final weights as the uninterrupted one.
    assert main(["train", str(cfg), "--work-dir", str(resumed), "--resume"]) == 0
    assert "resumed epoch: 1, iter: 3" in capsys.readouterr().out
    a, b = _state(_last_ckpt(straight)), _state(_last_ckpt(resumed))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_from_given_checkpoint(
    write_cfg: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_cfg()
    first, second = tmp_path / "first", tmp_path / "second"
    assert main(["train", str(cfg), "--work-dir", str(first)]) == 0
    capsys.readouterr()
    ckpt = first / "epoch_1.pth"
    assert main(["train", str(cfg), "--work-dir", str(second), "--resume", str(ckpt)]) == 0
    assert f"resumed epoch: 1, iter: 3 from {ckpt}" in capsys.readouterr().out
    a, b = _state(first / "epoch_2.pth"), _state(second / "epoch_2.pth")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_amp_switches_to_amp_optim_wrapper(write_cfg: Any, tmp_path: Path) -> None:
    cfg = write_cfg(train_cfg=ONE_EPOCH)
    work = tmp_path / "amp"
    assert main(["train", str(cfg), "--work-dir", str(work), "--amp"]) == 0
    dumped = Config.fromfile(str(work / "toy.py"))
    assert dumped.optim_wrapper.type == "AmpOptimWrapper"
    assert dumped.optim_wrapper.loss_scale == "dynamic"
    assert (work / "epoch_1.pth").is_file()


def test_amp_refuses_other_wrapper_types(
    write_cfg: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_cfg(optim_wrapper={"type": "OptimWrapperDict"})
    assert main(["train", str(cfg), "--amp"]) == EXIT_CONFIG
    err = capsys.readouterr().err
    _assert_one_message(err)
    assert "--amp" in err
    assert "OptimWrapperDict" in err


def test_auto_scale_lr(write_cfg: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_cfg(train_cfg=ONE_EPOCH, auto_scale_lr={"base_batch_size": 16})
    work = tmp_path / "scaled"
    assert main(["train", str(cfg), "--work-dir", str(work), "--auto-scale-lr"]) == 0
    assert Config.fromfile(str(work / "toy.py")).auto_scale_lr.enable is True
    # lr 0.1 x batch 8 / base 16
    assert "lr: 5.0000e-02" in capsys.readouterr().out
    bare = write_cfg("bare.py")
    assert main(["train", str(bare), "--auto-scale-lr"]) == EXIT_CONFIG
    assert "auto_scale_lr = dict(base_batch_size=N)" in capsys.readouterr().err


def test_ctrl_c_exits_130_and_says_how_to_resume(
    write_cfg: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 3 iterations per epoch: stop in epoch 2, after epoch_1.pth was written.
    cfg = write_cfg(custom_hooks=[{"type": "InterruptAtIter", "at": 4}])
    work = tmp_path / "stopped"
    assert main(["train", str(cfg), "--work-dir", str(work)]) == EXIT_INTERRUPTED
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"the last checkpoint is {work / 'epoch_1.pth'}" in err
    assert f"resume with: treadle train {cfg} --work-dir {work} --resume" in err
    assert _last_ckpt(work) == work / "epoch_1.pth"
    assert set(_state(work / "epoch_1.pth"))  # loads: complete


def test_ctrl_c_before_any_checkpoint(
    write_cfg: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_cfg(custom_hooks=[{"type": "InterruptAtIter", "at": 0}])
    assert main(["train", str(cfg), "--work-dir", str(tmp_path / "w")]) == EXIT_INTERRUPTED
    assert "before the first checkpoint" in capsys.readouterr().err


def test_custom_imports_found_next_to_the_config(
    tmp_path: Path, toy_cfg: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "cli_train_user_module.py").write_text(
        textwrap.dedent(
            """
            from treadle.core.registry import MODELS
            from treadle.core.registry import MODELS as _M

            @MODELS.register_module()
            class CliTrainUserNet(_M.get("ToyNet")):
                pass
            """
        )
    )
    cfg = toy_cfg(
        model={"type": "CliTrainUserNet"},
        train_cfg=ONE_EPOCH,
        custom_imports={"imports": ["cli_train_user_module"], "allow_failed_imports": False},
    )
    path = project / "user.py"
    Config(cfg).dump(str(path))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delitem(sys.modules, "cli_train_user_module", raising=False)
    assert main(["train", str(path), "--work-dir", str(tmp_path / "w")]) == 0
    assert str(project) in sys.path


# -- treadle test ------------------------------------------------------------------------------


def test_test_prints_metrics(
    write_cfg: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_cfg()
    work = tmp_path / "w"
    assert main(["train", str(cfg), "--work-dir", str(work)]) == 0
    capsys.readouterr()
    assert main(["test", str(cfg), str(work / "epoch_2.pth"), "--work-dir", str(work)]) == 0
    out = capsys.readouterr().out
    (line,) = [line for line in out.splitlines() if line.startswith("accuracy/top1: ")]
    assert 0.0 <= float(line.split(": ")[1]) <= 100.0
    assert (
        main(["test", str(cfg), str(work / "epoch_2.pth"), "--work-dir", str(work), "--json"]) == 0
    )
    # The log lines go to stdout too (as MMEngine's); the JSON object is the last line.
    metrics = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert 0.0 <= metrics["accuracy/top1"] <= 100.0


def test_test_missing_checkpoint(
    write_cfg: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_cfg()
    assert main(["test", str(cfg), str(tmp_path / "nope.pth")]) == EXIT_NOT_FOUND
    err = capsys.readouterr().err
    _assert_one_message(err)
    assert "nope.pth does not exist" in err


# -- errors for bad input ----------------------------------------------------------------------


@pytest.mark.parametrize("command", [["train"], ["test"]])
def test_missing_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    missing = tmp_path / "missing.py"
    extra = [str(tmp_path / "x.pth")] if command == ["test"] else []
    assert main([*command, str(missing), *extra]) == EXIT_NOT_FOUND
    err = capsys.readouterr().err
    _assert_one_message(err)
    assert f"config file {missing} does not exist" in err
    assert len(err.strip().splitlines()) == 2


def test_syntax_error_names_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("model = dict(type='ToyNet')\noptim_wrapper = dict(lr=0.1\n")
    assert main(["train", str(bad)]) == EXIT_CONFIG
    err = capsys.readouterr().err
    _assert_one_message(err)
    assert "SyntaxError" in err
    assert str(bad) in err or "bad.py" in err
    assert "line 2" in err


def test_failing_custom_import_is_a_config_error(
    write_cfg: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_cfg(custom_imports={"imports": ["no_such_module_for_cli_test"]})
    assert main(["train", str(cfg)]) == EXIT_CONFIG
    err = capsys.readouterr().err
    _assert_one_message(err)
    assert "no_such_module_for_cli_test" in err


def test_unknown_type_names_registry_and_close_matches(
    write_cfg: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_cfg(model={"type": "ToyNett"})
    assert main(["train", str(cfg), "--work-dir", str(tmp_path / "w")]) == EXIT_UNKNOWN_TYPE
    err = capsys.readouterr().err
    _assert_one_message(err)
    assert "ToyNett is not in the treadle::model registry" in err
    assert "Close matches: ToyNet" in err


def test_malformed_cfg_options_is_usage_error(
    write_cfg: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_cfg()
    with pytest.raises(SystemExit) as exc:
        main(["train", str(cfg), "--cfg-options", "model.width"])
    assert exc.value.code == EXIT_USAGE
    err = capsys.readouterr().err
    assert "--cfg-options" in err
    assert "Traceback" not in err


def test_cfg_option_that_does_not_fit(write_cfg: Any, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_cfg()
    code = main(["train", str(cfg), "--cfg-options", "param_scheduler.5.gamma=0.1"])
    assert code == EXIT_CONFIG
    _assert_one_message(capsys.readouterr().err)


def test_launcher_pytorch_without_treadle_dist(
    write_cfg: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from treadle.core.plugins import load_plugins
    from treadle.core.registry import STRATEGIES

    load_plugins()
    if STRATEGIES.get("DDPStrategy") is not None:
        pytest.skip("treadle-dist is installed")
    cfg = write_cfg()
    assert main(["train", str(cfg), "--launcher", "pytorch"]) == EXIT_MISSING_PLUGIN
    err = capsys.readouterr().err
    _assert_one_message(err)
    assert "--launcher pytorch needs treadle-dist" in err
    assert "pip install treadle-dist" in err
    assert len(err.strip().splitlines()) == 2


def test_unknown_launcher_is_usage_error(write_cfg: Any) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["train", str(write_cfg()), "--launcher", "k8s"])
    assert exc.value.code == EXIT_USAGE


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_prints_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    missing = str(tmp_path / "missing.py")
    argv = ["--debug", "train", missing] if where == "before" else ["train", missing, "--debug"]
    assert main(argv) == EXIT_NOT_FOUND
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert "(run with --debug" not in err

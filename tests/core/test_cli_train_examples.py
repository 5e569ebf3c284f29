"""The examples under ``examples/`` train through ``treadle train`` and do what they promise."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from treadle.core.cli import main

pytest.importorskip("sklearn", reason="the examples train on scikit-learn's digits")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(autouse=True)
def _keep_sys_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))
    # `treadle train` sets LOCAL_RANK, as tools/train.py does; restore the environment after.
    monkeypatch.setenv("LOCAL_RANK", "0")


def _records(work_dir: Path) -> list[dict[str, Any]]:
    (run_dir,) = [p for p in work_dir.iterdir() if p.is_dir()]
    lines = (run_dir / "vis_data" / "scalars.json").read_text().splitlines()
    return [json.loads(line) for line in lines]


@pytest.mark.slow
def test_digits_example_reaches_97_percent(tmp_path: Path) -> None:
    work = tmp_path / "digits"
    assert main(["train", str(EXAMPLES / "digits" / "digits_cnn.py"), "--work-dir", str(work)]) == 0
    val = [r for r in _records(work) if "accuracy/top1" in r]
    assert [r["step"] for r in val] == list(range(1, 13))
    assert val[-1]["accuracy/top1"] >= 97.0
    assert (work / "epoch_12.pth").is_file()
    assert list(work.glob("best_accuracy_top1_epoch_*.pth"))


def test_mmengine_style_example_merges_bases_and_runs_the_custom_hook(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = EXAMPLES / "mmengine_style" / "digits_mlp_param_norm.py"
    work = tmp_path / "mmengine_style"
    argv = ["train", str(cfg), "--work-dir", str(work), "--cfg-options", "train_cfg.max_epochs=2"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "ParamNormHook: parameter L2 norm" in out
    records = _records(work)
    assert any("param_norm" in r and r["param_norm"] > 0 for r in records)
    assert any("accuracy/top1" in r for r in records)

    from treadle.core.config import Config

    dumped = Config.fromfile(str(work / cfg.name), import_custom_modules=False)
    # The child changed lr only; type and momentum come from _base_/schedule_8e.py.
    assert dumped.optim_wrapper.to_dict() == {
        "type": "OptimWrapper",
        "optimizer": {"type": "SGD", "lr": 0.05, "momentum": 0.9},
    }
    assert dumped.default_hooks.checkpoint.save_best == "accuracy/top1"
    assert dumped.default_hooks.checkpoint.max_keep_ckpts == 2

"""The README's main job, end to end through the command line, in subprocesses.

Train the digits example once without a break (D1). Train it again (D2), press Ctrl-C in the
middle of an epoch (SIGINT to the process), check the exit code, the message, the checkpoint, the
text log and scalars.json; then ``treadle train … --resume`` finishes D2. The final weights of D1
and D2 must be bitwise equal.

To stop D2 at a known point rather than at a racy moment, its config adds a hook (written by this
test next to the config, found through ``custom_imports`` because ``treadle train`` puts the
config's directory on ``sys.path``) that, before iteration ``at``, writes a marker file and waits;
the test sends SIGINT once the marker exists, so the KeyboardInterrupt arrives mid-epoch, after
``epoch_2.pth`` was written. The hook changes nothing else: the resumed run uses the example
config itself.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "digits" / "digits_cnn.py"
# A short schedule (45 iterations per epoch) with deterministic algorithms.
SHORT = ["--cfg-options", "train_cfg.max_epochs=4", "randomness.deterministic=True"]
STOP_AT_ITER = 110  # in epoch 3, after epoch_2.pth

PAUSE_HOOK = '''
import time
from pathlib import Path

from treadle.core.hooks import Hook
from treadle.core.registry import HOOKS


@HOOKS.register_module()
class PauseForSignal(Hook):
    """Before iteration `at`, write `marker` and wait for SIGINT (KeyboardInterrupt)."""

    def __init__(self, at, marker, timeout=120.0):
        self.at, self.marker, self.timeout = at, marker, timeout

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter != self.at:
            return
        Path(self.marker).write_text(str(runner.iter))
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            time.sleep(0.01)
        raise RuntimeError("PauseForSignal: no SIGINT came")
'''

pytest.importorskip("sklearn", reason="the digits example needs scikit-learn")


def _treadle() -> list[str]:
    script = Path(sys.executable).with_name("treadle")
    return [str(script)] if script.exists() else [sys.executable, "-m", "treadle.core"]


def _env(*paths: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*map(str, paths), *filter(None, [env.get("PYTHONPATH")])])
    return env


def _state(work_dir: Path) -> dict[str, torch.Tensor]:
    last = Path((work_dir / "last_checkpoint").read_text().strip())
    assert last.parent == work_dir
    return torch.load(last, map_location="cpu", weights_only=False)["state_dict"]  # type: ignore[no-any-return]


@pytest.mark.slow
def test_ctrl_c_then_resume_gives_the_same_weights(tmp_path: Path) -> None:
    d1, d2 = tmp_path / "D1", tmp_path / "D2"
    hooked = tmp_path / "hooked"
    hooked.mkdir()
    (hooked / "pause_for_signal.py").write_text(PAUSE_HOOK)
    marker = tmp_path / "paused"
    interrupting_cfg = hooked / "digits_interrupt.py"
    interrupting_cfg.write_text(
        f"_base_ = [{str(EXAMPLE)!r}]\n"
        "custom_imports = dict(imports=['digits', 'pause_for_signal'], allow_failed_imports=False)\n"
        f"custom_hooks = [dict(type='PauseForSignal', at={STOP_AT_ITER}, marker={str(marker)!r})]\n"
    )

    # The uninterrupted run and the one to interrupt run side by side (the results do not depend
    # on it: each process computes the same thing whatever the load).
    straight = subprocess.Popen(
        [*_treadle(), "train", str(EXAMPLE), "--work-dir", str(d1), *SHORT],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # The base config's module (digits.py) is not next to the child config: PYTHONPATH.
    interrupted = subprocess.Popen(
        [*_treadle(), "train", str(interrupting_cfg), "--work-dir", str(d2), *SHORT],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(EXAMPLE.parent),
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            if interrupted.poll() is not None:
                out, err = interrupted.communicate()
                pytest.fail(f"the run ended before the pause point:\n{out}\n{err}")
            if time.monotonic() > deadline:
                pytest.fail("the run did not reach the pause point within 120 s")
            time.sleep(0.02)
        interrupted.send_signal(signal.SIGINT)  # what Ctrl-C sends
        out, err = interrupted.communicate(timeout=60)
    finally:
        if interrupted.poll() is None:
            interrupted.kill()
            interrupted.communicate()

    assert interrupted.returncode == 130, f"{out}\n{err}"
    assert "Traceback" not in err
    assert f"the last checkpoint is {d2 / 'epoch_2.pth'}" in err
    assert "resume with: treadle train" in err
    assert "--resume" in err
    # What the newcomer finds in the work dir after Ctrl-C.
    assert (d2 / "last_checkpoint").read_text().strip() == str(d2 / "epoch_2.pth")
    assert (
        torch.load(d2 / "epoch_2.pth", map_location="cpu", weights_only=False)["meta"]["epoch"] == 2
    )
    assert not (d2 / "epoch_3.pth").exists()
    (run_dir,) = [p for p in d2.iterdir() if p.is_dir()]
    log = (run_dir / f"{run_dir.name}.log").read_text()
    assert "Epoch(val) [2][3/3]" in log
    scalars = [
        json.loads(line)
        for line in (run_dir / "vis_data" / "scalars.json").read_text().splitlines()
    ]
    assert any(r.get("step") == 2 and "accuracy/top1" in r for r in scalars)
    assert any("loss" in r and r["iter"] > 90 for r in scalars)  # logged in epoch 3

    # Resume with the example config itself, as the message says.
    resumed = subprocess.run(
        [*_treadle(), "train", str(EXAMPLE), "--work-dir", str(d2), "--resume", *SHORT],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, f"{resumed.stdout}\n{resumed.stderr}"
    assert f"resumed epoch: 2, iter: 90 from {d2 / 'epoch_2.pth'}" in resumed.stdout

    out1, err1 = straight.communicate(timeout=300)
    assert straight.returncode == 0, f"{out1}\n{err1}"
    assert (d1 / "last_checkpoint").read_text().strip() == str(d1 / "epoch_4.pth")
    assert (d2 / "last_checkpoint").read_text().strip() == str(d2 / "epoch_4.pth")
    w1, w2 = _state(d1), _state(d2)
    assert w1.keys() == w2.keys()
    different = [k for k in w1 if not torch.equal(w1[k], w2[k])]
    assert not different, f"weights differ after resume: {different}"

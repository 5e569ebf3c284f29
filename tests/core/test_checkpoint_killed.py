"""A save killed with SIGKILL mid-write leaves the previous checkpoint and last_checkpoint intact.

A real subprocess saves a 32 MB checkpoint to the same path over and over (each save holds one
number everywhere, and writes ``last_checkpoint`` after it). The test waits until a temporary file
is being written, kills the writer with ``kill -9`` and checks that what a resume would read is a
complete, consistent checkpoint, that no partial file is visible under any name a resume or a
listing looks at, and that the next save removes the dead writer's temporary file.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from treadle.core import fileio
from treadle.core.runner.checkpoint import (
    find_latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)

pytestmark = pytest.mark.skipif(os.name == "nt", reason="needs SIGKILL")

WRITER = """
import sys, torch
from treadle.core.runner.checkpoint import save_checkpoint, write_last_checkpoint
work_dir, path = sys.argv[1], sys.argv[2]
weights = torch.empty(8 * 1024 * 1024)  # 32 MB
step = 0
while True:
    step += 1
    weights.fill_(step)
    save_checkpoint({"meta": {"iter": step}, "state_dict": {"w": weights}}, path)
    write_last_checkpoint(work_dir, path)
    print(step, flush=True)
"""


def read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    selector = selectors.DefaultSelector()
    assert proc.stdout is not None
    selector.register(proc.stdout, selectors.EVENT_READ)
    try:
        if not selector.select(timeout):
            raise TimeoutError(f"the writer printed nothing in {timeout} s")
        return proc.stdout.readline()
    finally:
        selector.close()


def temp_files(directory: Path) -> list[Path]:
    return [p for p in directory.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp")]


def kill_mid_save(work_dir: Path, path: Path) -> tuple[int, bool]:
    """Start a writer, kill it while it writes; return (steps completed, temp file left)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(work_dir), str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = read_line(proc, timeout=60)
        assert first.strip() == "1", proc.stderr.read() if proc.stderr else first
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            partial = [p for p in temp_files(work_dir) if p.stat().st_size > 0]
            if partial:
                break
        else:
            raise TimeoutError("never saw a temporary file being written")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    assert proc.returncode == -signal.SIGKILL
    return int(first), bool(temp_files(work_dir))


def test_killed_save_leaves_previous_checkpoint_intact(tmp_path: Path) -> None:
    path = tmp_path / "epoch_1.pth"
    for _attempt in range(5):  # the kill may land just after a rename; try again then
        _, left_temp = kill_mid_save(tmp_path, path)
        if left_temp:
            break
    assert left_temp, "could not kill the writer in the middle of a save"

    # What a resume reads: last_checkpoint names the file, and the file is one whole checkpoint.
    latest = find_latest_checkpoint(tmp_path, logger="silent")
    assert latest == str(path)
    checkpoint = load_checkpoint(latest)
    step = checkpoint["meta"]["iter"]
    weights = checkpoint["state_dict"]["w"]
    assert step >= 1
    assert weights.numel() == 8 * 1024 * 1024
    assert torch.all(weights == step)

    # Nothing partial is visible: listings (hidden files skipped) show only complete files.
    assert sorted(fileio.list_dir_or_file(str(tmp_path))) == ["epoch_1.pth", "last_checkpoint"]
    assert temp_files(tmp_path)  # the killed writer's temporary file, under a hidden name

    # The next save in the directory removes the dead writer's temporary file.
    save_checkpoint({"meta": {"iter": step + 1}}, tmp_path / "epoch_2.pth")
    assert temp_files(tmp_path) == []
    assert load_checkpoint(path)["meta"]["iter"] == step

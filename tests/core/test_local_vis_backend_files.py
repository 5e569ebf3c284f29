"""LocalVisBackend keeps its scalar files open: every line is on disk at once, all are closed."""

from __future__ import annotations

import copy
import json
import os
import pickle
import uuid
from pathlib import Path
from typing import Any

import pytest

from treadle.core.visualization import LocalVisBackend
from treadle.core.visualization import vis_backend as vis_backend_module


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _fd_closed(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return True
    return False


def test_kept_files_show_every_line_at_once_and_close(tmp_path: Path) -> None:
    backend = LocalVisBackend(str(tmp_path))
    for step in range(1, 6):
        backend.add_scalars({"loss": step / 10}, step=step, file_path="run.json")
        # another reader sees every line written so far, while the files stay open
        assert [r["step"] for r in _lines(tmp_path / "scalars.json")] == list(range(1, step + 1))
        assert [r["step"] for r in _lines(tmp_path / "run.json")] == list(range(1, step + 1))
    fds = dict(backend._fds)
    assert sorted(fds) == [str(tmp_path / "run.json"), str(tmp_path / "scalars.json")]
    backend.close()
    assert backend._fds == {}
    assert all(_fd_closed(fd) for fd in fds.values())
    backend.close()  # twice is fine
    # a later call reopens and appends
    backend.add_scalar("acc", 0.5, step=6)
    assert _lines(tmp_path / "scalars.json")[-1] == {"acc": 0.5, "step": 6}
    assert len(_lines(tmp_path / "scalars.json")) == 6
    backend.close()


def test_lines_equal_what_reopening_for_each_line_wrote(tmp_path: Path) -> None:
    values = [
        {"loss": 0.1234567890123, "lr": 1e-05, "iter": 3},
        {"loss": float("nan"), "acc": float("inf"), "name": "é", "step": 9},
        {"list": [1, 2.5], "nested": {"a": None, "b": True}},
    ]
    backend = LocalVisBackend(str(tmp_path / "kept"))
    expected = []
    for index, value in enumerate(values):
        backend.add_scalars(dict(value), step=index, file_path="run.json")
        line = dict(value)
        line.setdefault("step", index)
        expected.append(json.dumps(line) + "\n")
    backend.close()
    text = "".join(expected)
    assert (tmp_path / "kept" / "scalars.json").read_text(encoding="utf-8") == text
    assert (tmp_path / "kept" / "run.json").read_text(encoding="utf-8") == text


def test_the_callers_dict_is_not_changed(tmp_path: Path) -> None:
    backend = LocalVisBackend(str(tmp_path))
    tag = {"loss": 1.0}
    backend.add_scalars(tag, step=4)
    with_step = {"loss": 2.0, "step": 7}
    backend.add_scalars(with_step, step=4)
    backend.close()
    assert tag == {"loss": 1.0}
    assert with_step == {"loss": 2.0, "step": 7}
    assert _lines(tmp_path / "scalars.json") == [{"loss": 1.0, "step": 4}, with_step]


def test_a_new_file_path_gets_its_own_file_and_old_files_are_complete(tmp_path: Path) -> None:
    backend = LocalVisBackend(str(tmp_path))
    backend.add_scalars({"a": 1}, step=1, file_path="first.json")
    backend.add_scalars({"a": 2}, step=2, file_path="second.json")
    backend.add_scalars({"a": 3}, step=3, file_path="first.json")
    assert [r["a"] for r in _lines(tmp_path / "first.json")] == [1, 3]
    assert [r["a"] for r in _lines(tmp_path / "second.json")] == [2]
    assert [r["a"] for r in _lines(tmp_path / "scalars.json")] == [1, 2, 3]
    # many extra files: only a few stay open, every line still lands in its file
    for i in range(10):
        backend.add_scalars({"i": i}, step=i, file_path=f"extra{i % 5}.json")
    assert len(backend._fds) <= vis_backend_module._MAX_OPEN_FILES
    for k in range(5):
        assert [r["i"] for r in _lines(tmp_path / f"extra{k}.json")] == [k, k + 5]
    backend.close()
    assert backend._fds == {}


def test_a_file_removed_after_close_is_created_again(tmp_path: Path) -> None:
    backend = LocalVisBackend(str(tmp_path))
    backend.add_scalar("a", 1)
    backend.close()
    os.remove(tmp_path / "scalars.json")
    backend.add_scalar("a", 2)
    backend.close()
    assert _lines(tmp_path / "scalars.json") == [{"a": 2, "step": 0}]


def test_copies_and_pickles_do_not_share_open_files(tmp_path: Path) -> None:
    backend = LocalVisBackend(str(tmp_path))
    backend.add_scalar("a", 1)
    for other in (copy.deepcopy(backend), copy.copy(backend), pickle.loads(pickle.dumps(backend))):
        assert other._fds == {}
        other.add_scalar("b", 2)
        other.close()
    assert len(backend._fds) == 1
    backend.add_scalar("c", 3)
    backend.close()
    assert [next(iter(r)) for r in _lines(tmp_path / "scalars.json")] == ["a", "b", "b", "b", "c"]


def test_a_collected_backend_closes_its_files(tmp_path: Path) -> None:
    import gc

    backend = LocalVisBackend(str(tmp_path))
    backend.add_scalar("a", 1)
    (fd,) = backend._fds.values()
    del backend
    gc.collect()
    assert _fd_closed(fd)


def test_a_subclass_dump_is_still_used(tmp_path: Path) -> None:
    class Recording(LocalVisBackend):
        def __init__(self, save_dir: str) -> None:
            super().__init__(save_dir)
            self.dumped: list[tuple[dict[str, Any], str]] = []

        def _dump(self, value_dict: dict[str, Any], file_path: str) -> None:
            self.dumped.append((dict(value_dict), os.path.basename(file_path)))

    backend = Recording(str(tmp_path))
    backend.add_scalars({"a": 1}, step=2, file_path="run.json")
    assert backend.dumped == [
        ({"a": 1, "step": 2}, "run.json"),
        ({"a": 1, "step": 2}, "scalars.json"),
    ]


def test_remote_save_dir_appends_through_fileio() -> None:
    pytest.importorskip("fsspec")
    from treadle.core.fileio import get_text

    root = f"memory://treadle-vis-tests/{uuid.uuid4().hex}"
    backend = LocalVisBackend(root)
    backend.add_scalars({"loss": 1.0}, step=1, file_path="run.json")
    backend.add_scalars({"loss": 0.5}, step=2, file_path="run.json")
    assert backend._fds == {}
    expected = '{"loss": 1.0, "step": 1}\n{"loss": 0.5, "step": 2}\n'
    assert get_text(f"{root}/scalars.json") == expected
    assert get_text(f"{root}/run.json") == expected
    backend.close()


def test_runner_train_leaves_complete_closed_files(toy_cfg: Any, forget_run_instances: Any) -> None:
    from treadle.core.hooks import Hook
    from treadle.core.runner import Runner

    seen_during_run: list[int] = []

    class Reader(Hook):
        """Reads scalars.json after each LoggerHook call (it runs later: lower priority)."""

        priority = "LOWEST"

        def after_train_iter(self, runner: Any, batch_idx: int, *args: Any, **kw: Any) -> None:
            path = os.path.join(runner.log_dir, "vis_data", "scalars.json")
            with open(path) as f:
                seen_during_run.append(len(f.read().splitlines()))

    runner = Runner.from_cfg(toy_cfg(custom_hooks=[Reader()]))
    runner.train()
    vis_data = Path(runner.log_dir) / "vis_data"
    # 3 iterations per epoch, 2 epochs, interval 1; a validation line after each epoch
    assert seen_during_run == [1, 2, 3, 5, 6, 7]
    scalars = _lines(vis_data / "scalars.json")
    assert [r["step"] for r in scalars] == [1, 2, 3, 1, 4, 5, 6, 2]
    assert _lines(vis_data / f"{runner.timestamp}.json") == scalars
    backend = runner.visualizer.get_backend("LocalVisBackend")
    assert isinstance(backend, LocalVisBackend)
    assert backend._fds == {}

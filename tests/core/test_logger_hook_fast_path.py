"""LoggerHook.after_train_iter, with its predicates written out, decides exactly as MMEngine's
code does."""

from __future__ import annotations

import itertools
import json
import os
import types
from pathlib import Path
from typing import Any

import pytest

from treadle.core.hooks import LoggerHook
from treadle.core.visualization import LocalVisBackend


class _Sized:
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n


class _Runner:
    """What after_train_iter reads; records what it logs (``events``)."""

    def __init__(self, epoch_len: int) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.train_dataloader = _Sized(epoch_len)
        self.iter = 0
        self.experiment_name = "exp"
        events = self.events
        self.logger = types.SimpleNamespace(info=lambda msg: events.append(("info", msg)))
        self.log_processor = types.SimpleNamespace(
            get_log_after_iter=lambda runner, batch_idx, mode: (
                {"b": batch_idx},
                f"{mode} {batch_idx}",
            )
        )
        self.visualizer = types.SimpleNamespace(
            add_scalars=lambda tag, step, file_path: events.append(("scalars", tag, step))
        )


def _reference(hook: LoggerHook, runner: _Runner, batch_idx: int) -> None:
    """MMEngine's LoggerHook.after_train_iter, as treadle had it before the fast path."""
    end_of_epoch = hook.end_of_epoch(runner.train_dataloader, batch_idx)
    if hook.every_n_train_iters(runner, hook.interval_exp_name) or end_of_epoch:
        runner.logger.info(f"Exp name: {runner.experiment_name}")
    if not (
        hook.every_n_inner_iters(batch_idx, hook.interval)
        or (
            end_of_epoch and (not hook.ignore_last or len(runner.train_dataloader) <= hook.interval)
        )
    ):
        return
    tag, log_str = runner.log_processor.get_log_after_iter(runner, batch_idx, "train")
    runner.logger.info(log_str)
    runner.visualizer.add_scalars(tag, step=runner.iter + 1, file_path=hook.json_log_path)


def _epoch_based(epoch_len: int, epochs: int, start_iter: int = 0) -> list[tuple[int, int]]:
    """(batch_idx, runner.iter) as EpochBasedTrainLoop calls the hook (resumed at start_iter)."""
    calls = []
    it = start_iter
    for epoch in range(start_iter // epoch_len, epochs):
        for idx in range(it - epoch * epoch_len, epoch_len):
            calls.append((idx, it))
            it += 1
    return calls


def _iter_based(max_iters: int, start_iter: int = 0) -> list[tuple[int, int]]:
    """IterBasedTrainLoop passes batch_idx = runner.iter."""
    return [(i, i) for i in range(start_iter, max_iters)]


def _replay(hook: LoggerHook, calls: list[tuple[int, int]], epoch_len: int, fast: bool) -> list:
    runner = _Runner(epoch_len)
    for batch_idx, cur_iter in calls:
        runner.iter = cur_iter
        if fast:
            hook.after_train_iter(runner, batch_idx, None, None)
        else:
            _reference(hook, runner, batch_idx)
    return runner.events


SCHEDULES = {
    "epochs": lambda n: _epoch_based(n, 4),
    "epochs-resumed-mid-epoch": lambda n: _epoch_based(n, 3, start_iter=n + n // 2 + 1),
    "iters": lambda n: _iter_based(3 * n + 5),
    "iters-resumed": lambda n: _iter_based(3 * n + 5, start_iter=n - 1),
    "repeated-and-backwards": lambda n: [(5, 5), (5, 5), (3, 3), (7, 7), (6, 6), (0, 9), (9, 9)],
}


@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
@pytest.mark.parametrize(
    ("interval", "interval_exp_name", "ignore_last", "epoch_len"),
    [
        *itertools.product([1, 3, 5], [1, 4, 7], [True, False], [1, 5, 9, 12]),
        (50, 1000, True, 64),
        (10, 1000, True, 3),
    ],
)
def test_fast_path_decides_as_mmengine(
    schedule: str, interval: int, interval_exp_name: int, ignore_last: bool, epoch_len: int
) -> None:
    calls = SCHEDULES[schedule](epoch_len)

    def make() -> LoggerHook:
        hook = LoggerHook(interval, ignore_last, interval_exp_name)
        hook.json_log_path = "run.json"
        return hook

    expected = _replay(make(), calls, epoch_len, fast=False)
    assert _replay(make(), calls, epoch_len, fast=True) == expected


def test_changing_an_interval_takes_effect_at_once() -> None:
    hook = LoggerHook(interval=10, interval_exp_name=1000)
    runner = _Runner(100)
    for batch_idx in range(5):
        runner.iter = batch_idx
        hook.after_train_iter(runner, batch_idx)
    hook.interval = 2
    hook.interval_exp_name = 3
    for batch_idx in range(5, 9):
        runner.iter = batch_idx
        hook.after_train_iter(runner, batch_idx)
    assert runner.events == [
        ("info", "Exp name: exp"),  # iter 6
        ("info", "train 5"),
        ("scalars", {"b": 5}, 6),
        ("info", "train 7"),
        ("scalars", {"b": 7}, 8),
        ("info", "Exp name: exp"),  # iter 9
    ]


def test_another_runner_is_not_answered_from_the_range() -> None:
    hook = LoggerHook(interval=4)
    first, second = _Runner(100), _Runner(6)
    hook.after_train_iter(first, 0)  # quiet up to index 3 for `first`
    hook.after_train_iter(second, 1)
    hook.after_train_iter(second, 2)
    assert first.events == []
    hook.after_train_iter(second, 5)  # second's end of epoch: name, and the short tail is logged
    assert second.events == [("info", "Exp name: exp")]


def test_a_subclass_with_its_own_predicates_is_asked_every_iteration() -> None:
    class EveryOther(LoggerHook):
        def every_n_inner_iters(self, batch_idx: int, n: int) -> bool:
            return batch_idx % 2 == 1

    hook = EveryOther(interval=50)
    runner = _Runner(100)
    for batch_idx in range(6):
        runner.iter = batch_idx
        hook.after_train_iter(runner, batch_idx)
    assert [e[1] for e in runner.events if e[0] == "info"] == ["train 1", "train 3", "train 5"]


def _failing_runner(toy_cfg: Any) -> Any:
    """A Runner whose training raises after the LoggerHook logged its third iteration."""
    from treadle.core.hooks import Hook
    from treadle.core.runner import Runner

    class Boom(Hook):
        priority = "LOWEST"  # after the LoggerHook logged the iteration

        def after_train_iter(self, runner: Any, batch_idx: int, *args: Any, **kw: Any) -> None:
            if runner.iter == 2:
                raise RuntimeError("boom")

    return Runner.from_cfg(toy_cfg(custom_hooks=[Boom()]))


def test_a_failed_run_closes_the_local_backend_files(
    toy_cfg: Any, forget_run_instances: Any
) -> None:
    runner = _failing_runner(toy_cfg)
    backend = runner.visualizer.get_backend("LocalVisBackend")
    assert isinstance(backend, LocalVisBackend)
    with pytest.raises(RuntimeError, match="boom"):
        runner.train()
    assert backend._fds == {}
    # written again (e.g. a later runner.val()), the files are reopened and appended to
    scalars = Path(runner.log_dir, "vis_data", "scalars.json")
    before = scalars.read_text().splitlines()
    runner.visualizer.add_scalars({"loss": 2.0}, step=99, file_path="run.json")
    lines = scalars.read_text().splitlines()
    assert lines[: len(before)] == before
    assert lines[-1] == '{"loss": 2.0, "step": 99}'
    runner.visualizer.close()


def _open_fds() -> set[str]:
    fd_dir = "/proc/self/fd"
    targets = set()
    for name in os.listdir(fd_dir):
        try:
            targets.add(os.readlink(os.path.join(fd_dir, name)))
        except OSError:
            continue
    return targets


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_failed_run_leaves_no_scalar_file_open(toy_cfg: Any, forget_run_instances: Any) -> None:
    runner = _failing_runner(toy_cfg)
    with pytest.raises(RuntimeError, match="boom"):
        runner.train()
    vis_data = os.path.join(runner.log_dir, "vis_data")
    with open(os.path.join(vis_data, "scalars.json")) as f:
        assert [json.loads(line)["step"] for line in f] == [1, 2, 3]
    assert not [p for p in _open_fds() if p.startswith(os.path.realpath(vis_data))]


def test_the_length_is_read_again_when_an_epoch_starts_over() -> None:
    """A dataloader whose length changes between epochs (a sampler that resizes itself in
    ``set_epoch``): each epoch's end is found with that epoch's length, as MMEngine finds it."""
    lengths = [5, 3, 7]

    def replay(fast: bool) -> list[Any]:
        hook = LoggerHook(interval=4, interval_exp_name=1000)
        hook.json_log_path = "run.json"
        runner = _Runner(lengths[0])
        it = 0
        for n in lengths:
            runner.train_dataloader = _Sized(n)
            for batch_idx in range(n):
                runner.iter = it
                if fast:
                    hook.after_train_iter(runner, batch_idx)
                else:
                    _reference(hook, runner, batch_idx)
                it += 1
        return runner.events

    expected = replay(fast=False)
    assert [e for e in expected if e[0] == "info" and "Exp" in e[1]] == [
        ("info", "Exp name: exp")
    ] * 3  # one end of epoch per epoch, each at its own length
    assert replay(fast=True) == expected

"""Hooks with nothing to do at a training iteration (``Hook.idle_points``) are not called there.

The train loops ask each hook at the start of every training epoch; ParamSchedulerHook (no
scheduler stepping by iteration), ProgressHook (no display) and CheckpointHook (saving by epoch)
say so. Skipping them must change nothing but the calls: the runs below compare the whole result
with the same run through pluggy's own hook caller (call monitoring on), which calls every hook.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import torch

from treadle.core.hooks import CheckpointHook, Hook, ParamSchedulerHook, ProgressHook
from treadle.core.runner import Runner

pytestmark = pytest.mark.usefixtures("forget_run_instances")


def after_iter_hooks(runner: Runner) -> list[str]:
    """The classes of the hooks the train loop called at ``after_train_iter`` last."""
    plan = runner._hooks.train_iter_plan
    assert isinstance(plan, tuple)
    return [type(function.__self__).__name__ for function in plan[1]]


def outcome(runner: Runner) -> dict[str, Any]:
    hub = runner.message_hub
    return {
        "weights": {k: v.clone() for k, v in runner.model.state_dict().items()},
        "lr": list(hub.get_scalar("train/lr").data[0]),
        "loss": list(hub.get_scalar("train/loss").data[0]),
        "files": sorted(f for f in os.listdir(runner.work_dir) if f.endswith(".pth")),
        "iter": runner.iter,
    }


def run(toy_cfg: Any, monitored: bool, **overrides: Any) -> tuple[Runner, dict[str, Any]]:
    runner = Runner.from_cfg(toy_cfg(**overrides))
    calls: list[str] = []
    if monitored:
        runner._hooks._pm.add_hookcall_monitoring(
            lambda name, impls, kwargs: calls.append(name), lambda *args: None
        )
    runner.train()
    if monitored:
        assert calls.count("after_train_iter") == runner.iter  # pluggy's path, every hook
    return runner, outcome(runner)


def assert_same(fast: dict[str, Any], monitored: dict[str, Any]) -> None:
    assert fast.keys() == monitored.keys()
    for name in ("lr", "loss", "files", "iter"):
        assert fast[name] == monitored[name], name
    for key, value in fast["weights"].items():
        assert torch.equal(value, monitored["weights"][key]), key


@pytest.mark.parametrize(
    ("overrides", "skipped"),
    [
        # the toy config: a by-epoch MultiStepLR, checkpoints by epoch, no terminal
        ({}, {"ParamSchedulerHook", "CheckpointHook", "ProgressHook"}),
        ({"param_scheduler": None}, {"ParamSchedulerHook", "CheckpointHook", "ProgressHook"}),
        (
            {
                "train_cfg": {"by_epoch": False, "max_iters": 7, "val_interval": 4},
                "param_scheduler": [
                    {"type": "LinearLR", "start_factor": 0.1, "by_epoch": False, "end": 5}
                ],
                "default_hooks": {
                    "checkpoint": {"type": "CheckpointHook", "interval": 3, "by_epoch": False}
                },
            },
            {"ProgressHook"},
        ),
    ],
)
def test_idle_hooks_are_skipped_and_the_run_is_unchanged(
    toy_cfg: Any, overrides: dict[str, Any], skipped: set[str]
) -> None:
    fast_runner, fast = run(toy_cfg, False, **overrides)
    called = set(after_iter_hooks(fast_runner))
    assert not called & skipped
    assert {"RuntimeInfoHook", "IterTimerHook", "LoggerHook"} <= called
    assert {"ParamSchedulerHook", "CheckpointHook"} - skipped <= called
    _, monitored = run(toy_cfg, True, **overrides)
    assert_same(fast, monitored)


class _Runner:
    def __init__(self, schedulers: Any) -> None:
        self.param_schedulers = schedulers


class _Scheduler:
    def __init__(self, by_epoch: Any) -> None:
        self.by_epoch = by_epoch


@pytest.mark.parametrize(
    ("schedulers", "idle"),
    [
        (None, True),
        ([], True),
        ([_Scheduler(True), _Scheduler(True)], True),
        ([_Scheduler(True), _Scheduler(False)], False),
        ({"a": [_Scheduler(True)], "b": [_Scheduler(True)]}, True),
        ({"a": [_Scheduler(True)], "b": [_Scheduler(False)]}, False),
        ([object()], False),  # not a scheduler: after_train_iter reports it
        ({"a": "not a list"}, False),  # after_train_iter raises the clear error
        ("not a list", False),
    ],
)
def test_param_scheduler_hook_idle_points(schedulers: Any, idle: bool) -> None:
    points = ParamSchedulerHook().idle_points(_Runner(schedulers))
    assert (tuple(points) == ("after_train_iter",)) is idle


def test_hooks_with_their_own_after_train_iter_are_never_idle(toy_cfg: Any) -> None:
    seen: list[str] = []

    class Schedulers(ParamSchedulerHook):
        def after_train_iter(
            self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None
        ) -> None:
            seen.append("scheduler")

    class Progress(ProgressHook):
        def after_train_iter(
            self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None
        ) -> None:
            seen.append("progress")

    class Checkpoints(CheckpointHook):
        def after_train_iter(
            self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None
        ) -> None:
            seen.append("checkpoint")

    runner = Runner.from_cfg(
        toy_cfg(
            param_scheduler=None,
            default_hooks={
                "param_scheduler": Schedulers(),
                "progress": Progress(),
                "checkpoint": Checkpoints(interval=1),
            },
        )
    )
    runner.train()
    assert {"Schedulers", "Progress", "Checkpoints"} <= set(after_iter_hooks(runner))
    iterations = runner.iter
    assert sorted(seen) == sorted(["scheduler", "progress", "checkpoint"] * iterations)


def test_an_active_progress_display_is_called(toy_cfg: Any, monkeypatch: Any) -> None:
    drawn: list[int] = []
    monkeypatch.setattr(ProgressHook, "_draw", lambda self, runner, done, *args: drawn.append(done))
    runner = Runner.from_cfg(
        toy_cfg(default_hooks={"progress": {"type": "ProgressHook", "force": True}})
    )
    runner.train()
    assert "ProgressHook" in after_iter_hooks(runner)
    assert drawn[:1] == [1]  # the first iteration drew the line


def test_idle_points_are_asked_at_the_start_of_each_epoch(toy_cfg: Any) -> None:
    asked: list[int] = []
    before: list[tuple[int, int]] = []
    after: list[tuple[int, int]] = []

    class SecondEpochOnly(Hook):
        def idle_points(self, runner: Any) -> tuple[str, ...]:
            asked.append(runner.epoch)
            return ("before_train_iter", "after_train_iter") if runner.epoch == 0 else ()

        def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
            before.append((runner.epoch, batch_idx))

        def after_train_iter(
            self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None
        ) -> None:
            after.append((runner.epoch, batch_idx))

    runner = Runner.from_cfg(toy_cfg(custom_hooks=[SecondEpochOnly()]))
    runner.train()
    assert asked == [0, 1]  # once per epoch, for both points
    assert before == after == [(1, 0), (1, 1), (1, 2)]


def test_idle_points_apply_to_the_train_loops_only(toy_cfg: Any) -> None:
    """A point called through call_hook (here by a Runner subclass) reaches every hook."""
    calls: list[int] = []

    class Idle(Hook):
        def idle_points(self, runner: Any) -> tuple[str, ...]:
            return ("after_train_iter",)

        def after_train_iter(
            self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None
        ) -> None:
            calls.append(batch_idx)

    class Overriding(Runner):
        def call_hook(self, fn_name: str, **kwargs: Any) -> None:
            super().call_hook(fn_name, **kwargs)

    runner = Overriding.from_cfg(toy_cfg(custom_hooks=[Idle()]))
    runner.train()
    assert calls == [0, 1, 2] * 2


def test_monitoring_started_during_training_takes_the_next_iterations(toy_cfg: Any) -> None:
    points: list[tuple[str, int]] = []

    class StartMonitoring(Hook):  # the spec's signature: the loop calls it on its fast path
        def after_train_iter(
            self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None
        ) -> None:
            if runner.iter == 1:
                runner._hooks._pm.add_hookcall_monitoring(
                    lambda name, impls, kwargs: (
                        points.append((name, kwargs["batch_idx"]))
                        if name.endswith("train_iter")
                        else None
                    ),
                    lambda *args: None,
                )

    runner = Runner.from_cfg(
        toy_cfg(
            train_cfg={"by_epoch": False, "max_iters": 4, "val_interval": 10},
            custom_hooks=[StartMonitoring()],
        )
    )
    runner.train()
    assert runner._hooks.train_iter_plan is False  # monitored: through pluggy
    assert points == [
        ("before_train_iter", 2),
        ("after_train_iter", 2),
        ("before_train_iter", 3),
        ("after_train_iter", 3),
    ]

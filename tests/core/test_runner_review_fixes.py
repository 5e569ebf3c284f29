"""Regression tests: hooks' ``out_dir`` over several runs, lazy pluggy registration, several
optimizers' count status, and the merged evaluation loops."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pluggy
import pytest
import torch
from torch import nn

from treadle.core.hooks import CheckpointHook, Hook, LoggerHook
from treadle.core.optim import OptimWrapper, OptimWrapperDict
from treadle.core.runner import Runner
from treadle.core.runner.hook_manager import RunnerHookManager

# -- out_dir: joined with the work dir's name once per run, not once more per run ---------------


def _files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_out_dir_is_joined_once_however_many_runs(toy_cfg: Any, tmp_path: Path) -> None:
    out = tmp_path / "out"
    runner = Runner.from_cfg(
        toy_cfg(
            train_cfg={"by_epoch": True, "max_epochs": 1},
            default_hooks={
                "logger": {"type": "LoggerHook", "interval": 1, "out_dir": str(out)},
                "checkpoint": {"type": "CheckpointHook", "interval": 1, "out_dir": str(out)},
                "progress": None,
            },
        )
    )
    logger_hook = next(h for h in runner.hooks if isinstance(h, LoggerHook))
    checkpoint_hook = next(h for h in runner.hooks if isinstance(h, CheckpointHook))
    target = os.path.join(str(out), "work")

    runner.train()
    runner.val()  # a second run: before_run (LoggerHook) again
    runner.train()  # a third: before_train (CheckpointHook) again; nothing left to train

    assert logger_hook.out_dir == target
    assert checkpoint_hook.out_dir == target
    assert not (out / "work" / "work").exists()
    files = _files_under(out)
    assert "work/epoch_1.pth" in files
    assert any(f.endswith(".log") for f in files)
    assert all(f.startswith("work/") and not f.startswith("work/work/") for f in files)


def test_hooks_resolve_out_dir_per_runner(tmp_path: Path) -> None:
    """A hook reused with another work dir joins that one's name to the ``out_dir`` it was given."""
    import logging
    import types

    from treadle.core.logging import MessageHub

    def stand_in(name: str) -> Any:
        return types.SimpleNamespace(
            work_dir=str(tmp_path / name),
            timestamp="20260101_120000",
            logger=logging.getLogger(f"review-fixes-{name}"),
            message_hub=MessageHub(f"review-fixes-{name}-{os.getpid()}"),
        )

    out = str(tmp_path / "out")
    logger_hook = LoggerHook(out_dir=out)
    checkpoint_hook = CheckpointHook(out_dir=out)
    default_checkpoint_hook = CheckpointHook()
    for name in ("first", "second", "second"):
        runner = stand_in(name)
        logger_hook.before_run(runner)
        checkpoint_hook.before_train(runner)
        default_checkpoint_hook.before_train(runner)
        assert logger_hook.out_dir == os.path.join(out, name)
        assert checkpoint_hook.out_dir == os.path.join(out, name)
        assert default_checkpoint_hook.out_dir == runner.work_dir  # no out_dir: the work dir


# -- RunnerHookManager: pluggy registration deferred to the next read --------------------------


class _Point(Hook):
    def __init__(self, name: str, seen: list[str]) -> None:
        self.name = name
        self.seen = seen

    def before_train(self, runner: Any) -> None:
        self.seen.append(self.name)


def test_registration_reaches_pluggy_when_it_is_next_read() -> None:
    manager = RunnerHookManager()
    seen: list[str] = []
    manager.register(_Point("low", seen), priority="LOW")
    manager.register(_Point("high", seen), priority="HIGH")
    assert manager._dirty  # nothing registered with pluggy yet
    names = [impl.plugin_name for impl in manager.hook.before_train.get_hookimpls()]
    assert not manager._dirty
    assert names == ["_Point#0", "_Point#1"]  # pluggy calls the last one first: HIGH, then LOW
    manager.call("before_train", {"runner": None})
    assert seen == ["high", "low"]

    # A hook registered after the plans were built is called, in priority order.
    seen.clear()
    manager.register(_Point("first", seen), priority="HIGHEST")
    manager.call("before_train", {"runner": None})
    assert seen == ["first", "high", "low"]


def test_a_hook_pluggy_rejects_is_reported_and_dropped() -> None:
    class Bad(Hook):
        def before_train(self, runner: Any, not_an_argument: int) -> None:  # type: ignore[override]
            pass

    manager = RunnerHookManager()
    seen: list[str] = []
    manager.register(_Point("good", seen))
    manager.register(Bad())
    with pytest.raises(pluggy.PluginValidationError):
        manager.call("before_train", {"runner": None})
    # the others still run (on_exception, the next run)
    manager.call("before_train", {"runner": None})
    assert seen == ["good"]
    assert [type(hook).__name__ for hook in manager.hooks] == ["_Point"]


def test_runner_construction_registers_with_pluggy_once_and_fails_on_a_rejected_hook(
    toy_cfg: Any,
) -> None:
    runner = Runner.from_cfg(toy_cfg())
    assert not runner._hooks._dirty  # synced once at the end of construction

    class Bad(Hook):
        def before_train(self, runner: Any, not_an_argument: int) -> None:  # type: ignore[override]
            pass

    with pytest.raises(pluggy.PluginValidationError, match="not_an_argument"):
        Runner.from_cfg(toy_cfg(custom_hooks=[Bad()]))


# -- OptimWrapperDict.initialize_count_status: each wrapper with its own submodule -------------


class _Counted(OptimWrapper):
    def initialize_count_status(self, model: nn.Module, init_counts: int, max_counts: int) -> None:
        self.counted_with = model
        super().initialize_count_status(model, init_counts, max_counts)


def test_optim_wrapper_dict_initialises_every_wrapper_with_its_submodule() -> None:
    model = nn.Module()
    model.generator = nn.Linear(2, 2)
    model.discriminator = nn.Linear(2, 1)
    model.scale = nn.Parameter(torch.ones(1))
    wrappers = OptimWrapperDict(
        generator=_Counted(torch.optim.SGD(model.generator.parameters(), lr=0.1)),
        discriminator=_Counted(
            torch.optim.SGD(model.discriminator.parameters(), lr=0.1), accumulative_counts=4
        ),
        scale=_Counted(torch.optim.SGD([model.scale], lr=0.1)),  # not a submodule
    )
    wrapped = nn.DataParallel(model)  # the submodules are looked up inside the wrapper
    wrappers.initialize_count_status(wrapped, 2, 6)
    assert wrappers["generator"].counted_with is model.generator
    assert wrappers["discriminator"].counted_with is model.discriminator
    assert wrappers["scale"].counted_with is wrapped
    for wrapper in wrappers.values():
        assert (wrapper._inner_count, wrapper._max_counts) == (2, 6)
    assert wrappers["discriminator"]._remainder_counts == 2


# -- the evaluation loops share run() -----------------------------------------------------------


def test_val_and_test_loops_call_their_own_points(toy_cfg: Any) -> None:
    points: list[str] = []

    class Recorder(Hook):
        def before_val(self, runner: Any) -> None:
            points.append("before_val")

        def after_val_epoch(self, runner: Any, metrics: Any = None) -> None:
            points.append(f"after_val_epoch {sorted(metrics)}")

        def before_test(self, runner: Any) -> None:
            points.append("before_test")

        def after_test_epoch(self, runner: Any, metrics: Any = None) -> None:
            points.append(f"after_test_epoch {sorted(metrics)}")

    cfg = toy_cfg(
        test_dataloader=toy_cfg()["val_dataloader"],
        test_cfg={},
        test_evaluator={"type": "Accuracy"},
        custom_hooks=[Recorder()],
    )
    runner = Runner.from_cfg(cfg)
    runner.val()
    runner.test()
    assert points == [
        "before_val",
        "after_val_epoch ['accuracy/top1', 'loss', 'val_loss']",
        "before_test",
        "after_test_epoch ['accuracy/top1', 'loss', 'test_loss']",
    ]

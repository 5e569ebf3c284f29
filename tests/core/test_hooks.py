"""The built-in hooks against a stand-in runner: MMEngine's semantics, options and bad inputs.

The stand-in (:class:`StandInRunner`) holds exactly the Runner attributes the hooks read, with
MMEngine's names; its ``save_checkpoint`` writes a real file (MMEngine's layout, trimmed) and
calls ``before_save_checkpoint`` like the Runner does. Runs through the real Runner are in
``test_hooks_runner.py``.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import types
import uuid
from typing import Any

import pytest
import torch
from torch import nn

from treadle.core.config import Config
from treadle.core.fileio import join_path, put
from treadle.core.hooks import (
    CheckpointHook,
    DistSamplerSeedHook,
    EarlyStoppingHook,
    EMAHook,
    EmptyCacheHook,
    Hook,
    IterTimerHook,
    LoggerHook,
    NonFiniteLossError,
    NonFiniteLossHook,
    ParamSchedulerHook,
    ProfilerHook,
    RuntimeInfoHook,
    SyncBuffersHook,
)
from treadle.core.logging.message_hub import MessageHub
from treadle.core.optim.optimizer import OptimWrapper
from treadle.core.strategy.base import Strategy

# ---------------------------------------------------------------------------------------------
# The stand-in runner
# ---------------------------------------------------------------------------------------------


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class StandInRunner:
    """The attributes of MMEngine's Runner that the hooks use, and nothing else.

    ``epoch``/``iter`` are plain attributes the test (or :func:`run_epochs`) advances as the
    loops do: a hook's ``after_train_iter`` sees the iteration that just ran, and the loop
    counts it afterwards.
    """

    def __init__(
        self,
        tmp_path: Any,
        *,
        max_epochs: int = 3,
        epoch_len: int = 4,
        rank: int = 0,
        world_size: int = 1,
        model: nn.Module | None = None,
    ) -> None:
        self.work_dir = str(tmp_path / "work_dir")
        self.timestamp = "20260101_120000"
        self.log_dir = os.path.join(self.work_dir, self.timestamp)
        os.makedirs(self.log_dir, exist_ok=True)
        self.experiment_name = "exp"
        self.cfg = Config({"lr": 0.1})
        self.seed = 7
        self.rank = rank
        self.world_size = world_size
        self.strategy = Strategy()
        self.message_hub = MessageHub(f"hooks-{uuid.uuid4().hex}")
        self.logger = logging.getLogger(f"hooks-{uuid.uuid4().hex}")
        self.logger.propagate = False
        self.log_records = _ListHandler()
        self.logger.addHandler(self.log_records)
        self.logger.setLevel(logging.INFO)
        torch.manual_seed(0)
        self.model = model if model is not None else nn.Linear(2, 1)
        self.optim_wrapper = OptimWrapper(torch.optim.SGD(self.model.parameters(), lr=0.1))
        self.param_schedulers: Any = None
        data = torch.utils.data.TensorDataset(torch.randn(epoch_len * 2, 2))
        self.train_dataloader = torch.utils.data.DataLoader(data, batch_size=2)
        self.val_dataloader = torch.utils.data.DataLoader(data, batch_size=4)
        self.test_dataloader = self.val_dataloader
        self.train_loop = types.SimpleNamespace(
            dataloader=self.train_dataloader, stop_training=False
        )
        self.max_epochs = max_epochs
        self.max_iters = max_epochs * epoch_len
        self.epoch = 0
        self.iter = 0
        self._resume = False
        self.hooks: list[Hook] = []
        self.saved: list[dict[str, Any]] = []

    def messages(self, level: int = logging.INFO) -> list[str]:
        return [r.getMessage() for r in self.log_records.records if r.levelno == level]

    def save_checkpoint(
        self,
        out_dir: str,
        filename: str,
        file_client_args: Any = None,
        save_optimizer: bool = True,
        save_param_scheduler: bool = True,
        meta: dict[str, Any] | None = None,
        by_epoch: bool = True,
        backend_args: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        checkpoint: dict[str, Any] = {
            "meta": dict(meta or {}),
            "state_dict": dict(self.model.state_dict()),
            "message_hub": self.message_hub.state_dict(),
        }
        if save_optimizer:
            checkpoint["optimizer"] = self.optim_wrapper.state_dict()
        for hook in self.hooks:
            hook.before_save_checkpoint(self, checkpoint)
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        put(buffer.getvalue(), join_path(out_dir, filename), backend_args=backend_args)
        self.saved.append(
            {
                "out_dir": out_dir,
                "filename": filename,
                "save_optimizer": save_optimizer,
                "save_param_scheduler": save_param_scheduler,
                "meta": meta,
                "by_epoch": by_epoch,
                "kwargs": kwargs,
            }
        )


def run_epochs(
    runner: StandInRunner,
    hooks: list[Hook],
    epochs: int,
    metrics: list[dict[str, Any]] | None = None,
    outputs: Any = None,
) -> None:
    """Drive ``hooks`` through ``epochs`` training epochs like EpochBasedTrainLoop (+ val)."""
    runner.hooks = hooks
    for hook in hooks:
        hook.before_train(runner)
    for e in range(epochs):
        for hook in hooks:
            hook.before_train_epoch(runner)
        for batch_idx in range(len(runner.train_dataloader)):
            for hook in hooks:
                hook.before_train_iter(runner, batch_idx, None)
            for hook in hooks:
                hook.after_train_iter(runner, batch_idx, None, outputs)
            runner.iter += 1
        for hook in hooks:
            hook.after_train_epoch(runner)
        runner.epoch += 1
        if metrics is not None:
            for hook in hooks:
                hook.before_val_epoch(runner)
            for hook in hooks:
                hook.after_val_epoch(runner, metrics[e])
    for hook in hooks:
        hook.after_train(runner)


def run_iters(runner: StandInRunner, hooks: list[Hook], iters: int) -> None:
    """Drive ``hooks`` through ``iters`` iterations like IterBasedTrainLoop."""
    runner.hooks = hooks
    for hook in hooks:
        hook.before_train(runner)
    for _ in range(iters):
        for hook in hooks:
            hook.after_train_iter(runner, runner.iter % len(runner.train_dataloader), None, None)
        runner.iter += 1


@pytest.fixture
def runner(tmp_path: Any) -> StandInRunner:
    return StandInRunner(tmp_path)


def _load(path: str) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------------------------
# Registration
# ---------------------------------------------------------------------------------------------


def test_every_hook_is_registered_lazily_by_its_mmengine_name() -> None:
    from treadle.core.hooks.components import COMPONENTS
    from treadle.core.plugins import load_plugins
    from treadle.core.registry import HOOKS

    load_plugins()
    names = set(COMPONENTS["HOOKS"])
    assert names == {
        "RuntimeInfoHook",
        "IterTimerHook",
        "DistSamplerSeedHook",
        "LoggerHook",
        "ParamSchedulerHook",
        "CheckpointHook",
        "EMAHook",
        "ProgressHook",
        "EarlyStoppingHook",
        "EmptyCacheHook",
        "SyncBuffersHook",
        "ProfilerHook",
        "NonFiniteLossHook",
    }
    for name in names:
        assert HOOKS.get(name).__name__ == name
    hook = HOOKS.build({"type": "CheckpointHook", "interval": 2, "max_keep_ckpts": 3})
    assert (hook.interval, hook.max_keep_ckpts) == (2, 3)


def test_priorities_are_mmengines() -> None:
    from treadle.core.hooks import get_priority

    expected = {
        RuntimeInfoHook: 10,
        IterTimerHook: 50,
        DistSamplerSeedHook: 50,
        LoggerHook: 60,
        ParamSchedulerHook: 70,
        CheckpointHook: 90,
        EMAHook: 50,
        EarlyStoppingHook: 100,
        EmptyCacheHook: 50,
        SyncBuffersHook: 50,
        ProfilerHook: 90,
        NonFiniteLossHook: 30,
    }
    for cls, number in expected.items():
        assert get_priority(cls.priority) == number, cls.__name__


def test_importing_hooks_package_does_not_import_the_builtin_hook_modules() -> None:
    import subprocess
    import sys

    code = (
        "import sys, treadle.core.hooks as h; "
        "print(any(m.startswith('treadle.core.hooks.checkpoint') for m in sys.modules), "
        "'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# ---------------------------------------------------------------------------------------------
# RuntimeInfoHook
# ---------------------------------------------------------------------------------------------


def test_runtime_info_hook_records_run_and_train_state(runner: StandInRunner) -> None:
    from treadle.core.version import __version__

    runner.train_dataloader.dataset.metainfo = {"classes": ("a", "b")}  # type: ignore[attr-defined]
    runner.epoch, runner.iter = 1, 5
    hook = RuntimeInfoHook()
    hook.before_run(runner)
    hub = runner.message_hub
    assert hub.get_info("cfg") == runner.cfg.pretty_text
    assert (hub.get_info("seed"), hub.get_info("experiment_name")) == (7, "exp")
    assert hub.get_info("treadle_version") == __version__
    hook.before_train(runner)
    assert [
        hub.get_info(k) for k in ("loop_stage", "epoch", "iter", "max_epochs", "max_iters")
    ] == [
        "train",
        1,
        5,
        3,
        12,
    ]
    assert hub.get_info("dataset_meta") == {"classes": ("a", "b")}
    runner.epoch = 2
    hook.before_train_epoch(runner)
    assert hub.get_info("epoch") == 2
    hook.after_train(runner)
    assert hub.get_info("loop_stage") is None


def test_runtime_info_hook_records_lr_of_the_first_group_and_log_vars(
    runner: StandInRunner,
) -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    optimizer = torch.optim.SGD(
        [{"params": model[0].parameters(), "lr": 0.25}, {"params": model[1].parameters()}], lr=0.5
    )
    runner.optim_wrapper = OptimWrapper(optimizer)
    runner.iter = 3
    hook = RuntimeInfoHook()
    hook.before_train_iter(runner, 0, None)
    hub = runner.message_hub
    assert hub.get_info("iter") == 3
    assert hub.get_scalar("train/lr").current() == 0.25
    loss = torch.tensor(1.5)
    hook.after_train_iter(runner, 0, None, {"loss": loss, "acc": torch.tensor(0.75)})
    hook.after_train_iter(runner, 1, None, {"loss": torch.tensor(0.5), "acc": torch.tensor(0.25)})
    assert hub.get_scalar("train/loss").mean() == pytest.approx(1.0)
    assert hub.get_scalar("train/acc").current() == pytest.approx(0.25)
    hook.after_train_iter(runner, 2, None, None)  # nothing to record


def test_runtime_info_hook_rejects_a_get_lr_that_is_not_a_dict(runner: StandInRunner) -> None:
    runner.optim_wrapper = types.SimpleNamespace(get_lr=lambda: [0.1])  # type: ignore[assignment]
    with pytest.raises(TypeError, match=r"get_lr\(\) should return a dict"):
        RuntimeInfoHook().before_train_iter(runner, 0, None)


def test_runtime_info_hook_loop_stage_and_metrics(runner: StandInRunner) -> None:
    import numpy as np

    hook = RuntimeInfoHook()
    hub = runner.message_hub
    hook.before_run(runner)
    hook.before_train(runner)
    hook.before_val(runner)
    assert hub.get_info("loop_stage") == "val"
    hook.after_val_epoch(
        runner,
        {"acc": 0.5, "mAP": np.float32(0.25), "t": torch.tensor([2.0]), "per_class": [0.1, 0.2]},
    )
    hook.after_val(runner)
    assert hub.get_info("loop_stage") == "train"  # validation inside training
    assert hub.get_scalar("val/acc").current() == 0.5
    assert hub.get_scalar("val/mAP").current() == pytest.approx(0.25)
    assert hub.get_scalar("val/t").current() == pytest.approx(2.0)
    assert hub.get_info("val/per_class") == [0.1, 0.2]
    hook.after_train(runner)
    hook.before_val(runner)  # a val-only run
    hook.after_val(runner)
    assert hub.get_info("loop_stage") is None
    hook.before_test(runner)
    assert hub.get_info("loop_stage") == "test"
    hook.after_test_epoch(runner, {"acc": 0.9, "confusion": np.eye(2)})
    hook.after_test(runner)
    assert hub.get_info("loop_stage") is None
    assert hub.get_scalar("test/acc").current() == 0.9
    assert hub.get_info("test/confusion").shape == (2, 2)


# ---------------------------------------------------------------------------------------------
# IterTimerHook
# ---------------------------------------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_iter_timer_hook_measures_data_time_time_and_eta(
    runner: StandInRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    import treadle.core.hooks.iter_timer_hook as module

    clock = _Clock()
    monkeypatch.setattr(module.time, "perf_counter", clock)
    hook = IterTimerHook()
    runner.iter = 2  # resumed
    hook.before_train(runner)
    hook.before_train_epoch(runner)
    hub = runner.message_hub
    for i, (wait, work) in enumerate([(0.5, 1.5), (0.25, 0.75)]):
        clock.now += wait
        hook.before_train_iter(runner, i, None)
        clock.now += work
        hook.after_train_iter(runner, i, None, None)
        assert hub.get_scalar("train/data_time").current() == pytest.approx(wait)
        assert hub.get_scalar("train/time").current() == pytest.approx(wait + work)
        runner.iter += 1
    # mean time 1.5 s over the 2 iterations since the resume; 12 - 3 - 1 = 8 left
    runner.iter -= 1
    assert hub.get_info("eta") == pytest.approx(1.5 * 8)

    hook.before_val_epoch(runner)
    clock.now += 2.0
    hook.before_val_iter(runner, 0, None)
    hook.after_val_iter(runner, 0, None, None)
    assert hub.get_scalar("val/time").current() == pytest.approx(2.0)
    # val dataloader has 2 batches: one left
    assert hub.get_info("eta") == pytest.approx(2.0)
    hook.after_val_epoch(runner, {})
    assert hook.time_sec_test_val == 0


# ---------------------------------------------------------------------------------------------
# DistSamplerSeedHook
# ---------------------------------------------------------------------------------------------


class _EpochSampler(torch.utils.data.Sampler[int]):
    def __init__(self, n: int) -> None:
        self.n = n
        self.epochs: list[int] = []

    def __iter__(self) -> Any:
        return iter(range(self.n))

    def __len__(self) -> int:
        return self.n

    def set_epoch(self, epoch: int) -> None:
        self.epochs.append(epoch)


def test_dist_sampler_seed_hook_sets_the_epoch_on_sampler_or_batch_sampler(
    runner: StandInRunner,
) -> None:
    hook = DistSamplerSeedHook()
    sampler = _EpochSampler(4)
    runner.train_loop.dataloader = torch.utils.data.DataLoader(
        list(range(4)), sampler=sampler, batch_size=2
    )
    runner.epoch = 3
    hook.before_train_epoch(runner)
    assert sampler.epochs == [3]

    inner = _EpochSampler(4)
    batch_sampler = torch.utils.data.BatchSampler(inner, batch_size=2, drop_last=False)
    runner.train_loop.dataloader = types.SimpleNamespace(sampler=None, batch_sampler=batch_sampler)
    hook.before_train_epoch(runner)
    assert inner.epochs == [3]

    # PyTorch's own samplers have no set_epoch: nothing to do, no error.
    runner.train_loop.dataloader = torch.utils.data.DataLoader(list(range(4)), shuffle=True)
    hook.before_train_epoch(runner)


# ---------------------------------------------------------------------------------------------
# ParamSchedulerHook
# ---------------------------------------------------------------------------------------------


def _optimizer(lr: float = 1.0) -> torch.optim.Optimizer:
    return torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=lr)


def test_param_scheduler_hook_steps_iter_and_epoch_based_schedulers(
    runner: StandInRunner,
) -> None:
    from treadle.core.optim.scheduler import MultiStepLR

    by_iter_opt, by_epoch_opt = _optimizer(), _optimizer()
    by_iter = MultiStepLR(by_iter_opt, milestones=[2], gamma=0.5, by_epoch=False)
    by_epoch = MultiStepLR(by_epoch_opt, milestones=[1], gamma=0.1, by_epoch=True)
    runner.param_schedulers = [by_iter, by_epoch]
    hook = ParamSchedulerHook()
    hook.after_train_iter(runner, 0, None, None)
    hook.after_train_iter(runner, 1, None, None)
    assert by_iter_opt.param_groups[0]["lr"] == 0.5
    assert by_epoch_opt.param_groups[0]["lr"] == 1.0  # not stepped by iterations
    hook.after_train_epoch(runner)
    assert by_epoch_opt.param_groups[0]["lr"] == pytest.approx(0.1)
    assert by_iter_opt.param_groups[0]["lr"] == 0.5  # not stepped by epochs


def test_param_scheduler_hook_handles_a_dict_of_lists_and_none(runner: StandInRunner) -> None:
    from treadle.core.optim.scheduler import MultiStepLR

    gen_opt, disc_opt = _optimizer(), _optimizer()
    runner.param_schedulers = {
        "generator": [MultiStepLR(gen_opt, milestones=[1], gamma=0.5, by_epoch=False)],
        "discriminator": [MultiStepLR(disc_opt, milestones=[1], gamma=0.25, by_epoch=True)],
    }
    hook = ParamSchedulerHook()
    hook.after_train_iter(runner, 0, None, None)
    hook.after_train_epoch(runner)
    assert gen_opt.param_groups[0]["lr"] == 0.5
    assert disc_opt.param_groups[0]["lr"] == 0.25
    runner.param_schedulers = None
    hook.after_train_iter(runner, 0, None, None)
    hook.after_train_epoch(runner)
    hook.after_val_epoch(runner, {"loss": 1.0})


def test_param_scheduler_hook_steps_reduce_on_plateau_with_val_metrics(
    runner: StandInRunner,
) -> None:
    from treadle.core.optim.scheduler import MultiStepLR, ReduceOnPlateauLR

    optimizer = _optimizer()
    plateau = ReduceOnPlateauLR(optimizer, monitor="loss", patience=0, factor=0.5, by_epoch=True)
    other = MultiStepLR(_optimizer(), milestones=[1], gamma=0.5, by_epoch=True)
    runner.param_schedulers = {"a": [plateau], "b": [other]}
    hook = ParamSchedulerHook()
    hook.after_val_epoch(runner, None)  # no metrics: nothing is stepped
    hook.after_val_epoch(runner, {"loss": 1.0})
    assert optimizer.param_groups[0]["lr"] == 1.0
    hook.after_val_epoch(runner, {"loss": 2.0})  # no improvement, patience 0
    assert optimizer.param_groups[0]["lr"] == 0.5
    # only need_val_args schedulers are stepped by validation
    assert other.optimizer.param_groups[0]["lr"] == 1.0
    # a list that does not hold built schedulers yet is skipped
    runner.param_schedulers = [{"type": "ReduceOnPlateauLR"}]
    hook.after_val_epoch(runner, {"loss": 3.0})


def test_param_scheduler_hook_rejects_other_containers(runner: StandInRunner) -> None:
    hook = ParamSchedulerHook()
    runner.param_schedulers = ("not", "a", "list")
    with pytest.raises(TypeError, match=r"runner\.param_schedulers should be"):
        hook.after_train_iter(runner, 0, None, None)
    runner.param_schedulers = {"a": "oops"}
    with pytest.raises(TypeError, match=r"param_schedulers\['a'\]"):
        hook.after_train_epoch(runner)


# ---------------------------------------------------------------------------------------------
# EmptyCacheHook
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({}, 2),  # after_epoch only: one train epoch + one val epoch
        ({"before_epoch": True, "after_epoch": False}, 2),
        ({"after_iter": True, "after_epoch": False}, 3),  # 2 train iters + 1 val iter
    ],
)
def test_empty_cache_hook_empties_at_the_chosen_points(
    runner: StandInRunner,
    monkeypatch: pytest.MonkeyPatch,
    flags: dict[str, bool],
    expected: int,
) -> None:
    calls: list[int] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: calls.append(1))
    hook = EmptyCacheHook(**flags)
    hook.before_train_epoch(runner)
    hook.after_train_iter(runner, 0, None, None)
    hook.after_train_iter(runner, 1, None, None)
    hook.after_train_epoch(runner)
    hook.before_val_epoch(runner)
    hook.after_val_iter(runner, 0, None, None)
    hook.after_val_epoch(runner, {})
    assert len(calls) == expected


def test_empty_cache_hook_without_accelerator_does_nothing(
    runner: StandInRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: pytest.fail("called"))
    EmptyCacheHook(after_iter=True).after_train_iter(runner, 0, None, None)


def test_empty_cache_hook_rejects_non_bool_flags() -> None:
    with pytest.raises(TypeError, match="after_iter must be a bool"):
        EmptyCacheHook(after_iter=1)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# SyncBuffersHook
# ---------------------------------------------------------------------------------------------


class _TwoRankStrategy(Strategy):
    """All-reduce as if a second rank held ``other`` (a fixed value per call), counting calls."""

    world_size = 2

    def __init__(self, other: float) -> None:
        self.other = other
        self.calls: list[tuple[int, str]] = []

    def all_reduce(self, tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
        self.calls.append((tensor.numel(), op))
        tensor.add_(self.other)
        if op == "mean":
            tensor.div_(2)
        return tensor


def test_sync_buffers_hook_averages_float_buffers_in_one_collective(tmp_path: Any) -> None:
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3), nn.BatchNorm1d(3))
    runner = StandInRunner(tmp_path, world_size=2, model=model)
    strategy = runner.strategy = _TwoRankStrategy(other=4.0)
    for bn in (model[1], model[2]):
        bn.running_mean.fill_(2.0)
        bn.num_batches_tracked.fill_(5)
    hook = SyncBuffersHook()
    hook.before_run(runner)
    hook.after_train_epoch(runner)
    assert strategy.calls == [(12, "mean")]  # 2 × (running_mean + running_var) × 3, one call
    assert torch.equal(model[1].running_mean, torch.full((3,), 3.0))
    assert torch.equal(model[2].running_var, torch.full((3,), 2.5))
    assert int(model[1].num_batches_tracked) == 5  # counters are left alone
    hook.before_val_epoch(runner)  # right after a train epoch: no second sync
    assert len(strategy.calls) == 1
    hook.before_val_epoch(runner)  # a validation without a train epoch before it
    assert len(strategy.calls) == 2


def test_sync_buffers_hook_does_nothing_with_one_process(runner: StandInRunner) -> None:
    runner.strategy = strategy = _TwoRankStrategy(other=1.0)
    hook = SyncBuffersHook()
    hook.before_run(runner)  # world_size 1
    hook.after_train_epoch(runner)
    hook.before_val_epoch(runner)
    assert strategy.calls == []


# ---------------------------------------------------------------------------------------------
# EarlyStoppingHook
# ---------------------------------------------------------------------------------------------


def _early_stop(hook: EarlyStoppingHook, runner: StandInRunner, scores: list[float]) -> int:
    """Feed ``scores`` to the hook; return how many validations ran before it stopped."""
    for i, score in enumerate(scores):
        hook.after_val_epoch(runner, {hook.monitor: score})
        if runner.train_loop.stop_training:
            return i + 1
    return len(scores)


def test_early_stopping_infers_the_rule_from_the_metric_name() -> None:
    assert EarlyStoppingHook("accuracy").rule == "greater"
    assert EarlyStoppingHook("coco/bbox_mAP").rule == "greater"
    assert EarlyStoppingHook("val_loss").rule == "less"
    assert EarlyStoppingHook("Acc").rule == "greater"  # case-insensitive
    with pytest.raises(ValueError, match="Cannot infer the rule for psnr"):
        EarlyStoppingHook("psnr")
    with pytest.raises(ValueError, match='`rule` should be either "greater" or "less"'):
        EarlyStoppingHook("psnr", rule="bigger")


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"patience": 0}, "patience must be >= 1"),
        ({"min_delta": -0.1}, "min_delta must be >= 0"),
        ({"strict": "yes"}, "strict must be a bool"),
    ],
)
def test_early_stopping_rejects_bad_arguments(kwargs: dict[str, Any], error: str) -> None:
    with pytest.raises((TypeError, ValueError), match=error):
        EarlyStoppingHook("acc", **kwargs)


def test_early_stopping_patience_and_min_delta(runner: StandInRunner) -> None:
    hook = EarlyStoppingHook("acc", min_delta=0.1, patience=2)
    # 0.5 is the best; 0.55 improves by less than min_delta; 0.58 too: stop at the 3rd record.
    assert _early_stop(hook, runner, [0.5, 0.55, 0.58, 0.9]) == 3
    assert hook.best_score == 0.5
    assert "did not improve in the last 2 records" in runner.messages()[-1]

    runner.train_loop.stop_training = False
    hook = EarlyStoppingHook("loss", min_delta=0.1, patience=2)
    # an improvement of exactly min_delta counts (MMEngine's comparison) and resets the wait
    assert _early_stop(hook, runner, [1.0, 0.9, 0.85, 0.7, 0.65, 0.64]) == 6
    assert hook.best_score == 0.7


def test_early_stopping_threshold_and_non_finite(runner: StandInRunner) -> None:
    hook = EarlyStoppingHook("acc", stopping_threshold=0.8, patience=10)
    assert _early_stop(hook, runner, [0.5, 0.81, 0.9]) == 2
    assert hook.best_score == 0.81
    runner.train_loop.stop_training = False
    hook = EarlyStoppingHook("loss", patience=10)
    assert _early_stop(hook, runner, [1.0, math.nan]) == 2
    assert "is infinite" in runner.messages()[-1]
    runner.train_loop.stop_training = False
    hook = EarlyStoppingHook("loss", patience=10, check_finite=False)
    assert _early_stop(hook, runner, [1.0, math.inf, 0.5]) == 3
    assert not runner.train_loop.stop_training


def test_early_stopping_missing_metric(runner: StandInRunner) -> None:
    with pytest.warns(UserWarning, match=r"do not include `monitor` \(acc\)"):
        EarlyStoppingHook("acc").after_val_epoch(runner, {"loss": 1.0})
    with pytest.raises(RuntimeError, match="Early stopping conditioned on metric `acc`"):
        EarlyStoppingHook("acc", strict=True).after_val_epoch(runner, {"loss": 1.0})


def test_early_stopping_needs_a_stoppable_train_loop(runner: StandInRunner) -> None:
    EarlyStoppingHook("acc").before_train(runner)
    runner.train_loop = types.SimpleNamespace(dataloader=None)
    with pytest.raises(TypeError, match="stop_training"):
        EarlyStoppingHook("acc").before_train(runner)


# ---------------------------------------------------------------------------------------------
# CheckpointHook
# ---------------------------------------------------------------------------------------------


def _ckpts(runner: StandInRunner, out_dir: str | None = None) -> list[str]:
    return sorted(f for f in os.listdir(out_dir or runner.work_dir) if f.endswith(".pth"))


def _last_checkpoint(runner: StandInRunner) -> str:
    with open(os.path.join(runner.work_dir, "last_checkpoint")) as f:
        return f.read()


def test_checkpoint_hook_saves_every_interval_epochs_and_the_last(runner: StandInRunner) -> None:
    runner.max_epochs = 5
    hook = CheckpointHook(interval=2)
    run_epochs(runner, [hook], epochs=5)
    assert _ckpts(runner) == ["epoch_2.pth", "epoch_4.pth", "epoch_5.pth"]
    assert _last_checkpoint(runner) == os.path.join(runner.work_dir, "epoch_5.pth")
    assert runner.message_hub.get_info("last_ckpt") == os.path.join(runner.work_dir, "epoch_5.pth")
    assert _load(os.path.join(runner.work_dir, "epoch_4.pth"))["meta"] == {"epoch": 4, "iter": 16}
    assert runner.saved[0]["by_epoch"] is True
    assert "Saving checkpoint at 2 epochs" in runner.messages()


def test_checkpoint_hook_save_last_false_and_save_begin(runner: StandInRunner) -> None:
    runner.max_epochs = 5
    run_epochs(runner, [CheckpointHook(interval=2, save_last=False, save_begin=1)], epochs=5)
    # every 2 epochs counted from epoch 1: epochs 1, 3, 5
    assert _ckpts(runner) == ["epoch_1.pth", "epoch_3.pth", "epoch_5.pth"]


def test_checkpoint_hook_iteration_based(runner: StandInRunner) -> None:
    runner.max_iters = 8
    hook = CheckpointHook(interval=3, by_epoch=False, save_optimizer=False, foo="bar")
    run_iters(runner, [hook], 8)
    assert _ckpts(runner) == ["iter_3.pth", "iter_6.pth", "iter_8.pth"]
    checkpoint = _load(os.path.join(runner.work_dir, "iter_6.pth"))
    assert checkpoint["meta"] == {"epoch": 0, "iter": 6}
    assert "optimizer" not in checkpoint
    assert runner.saved[0]["kwargs"] == {"foo": "bar"}  # extra kwargs reach save_checkpoint
    assert runner.saved[0]["by_epoch"] is False
    # an epoch-based hook does nothing per iteration, an iteration-based one nothing per epoch
    runner.iter = 0
    CheckpointHook(interval=1).after_train_iter(runner, 0, None, None)
    hook.after_train_epoch(runner)
    assert len(runner.saved) == 3


def test_checkpoint_hook_filename_tmpl(runner: StandInRunner) -> None:
    run_epochs(runner, [CheckpointHook(interval=1, filename_tmpl="ckpt_{:03d}.pth")], epochs=2)
    assert _ckpts(runner) == ["ckpt_001.pth", "ckpt_002.pth"]
    with pytest.raises(ValueError, match="filename_tmpl must hold a field"):
        CheckpointHook(filename_tmpl="ckpt.pth")
    with pytest.raises(ValueError, match=r"filename_tmpl must hold one positional field"):
        CheckpointHook(filename_tmpl="ckpt_{}_{}.pth")
    with pytest.raises(ValueError, match=r"filename_tmpl"):
        CheckpointHook(filename_tmpl="ckpt_{epoch}.pth")
    with pytest.raises(TypeError, match="filename_tmpl must be a str"):
        CheckpointHook(filename_tmpl=3)  # type: ignore[arg-type]


def test_checkpoint_hook_max_keep_ckpts_removes_old_ones(runner: StandInRunner) -> None:
    runner.max_epochs = 5
    hook = CheckpointHook(interval=1, max_keep_ckpts=2)
    run_epochs(runner, [hook], epochs=5)
    assert _ckpts(runner) == ["epoch_4.pth", "epoch_5.pth"]
    assert runner.message_hub.get_info("keep_ckpt_ids") == [4, 5]
    # the saved message hub already describes the files on disk
    saved_hub = _load(os.path.join(runner.work_dir, "epoch_5.pth"))["message_hub"]
    assert saved_hub["runtime_info"]["keep_ckpt_ids"] == [4, 5]


def test_checkpoint_hook_max_keep_ckpts_after_resume_trims_the_kept_list(
    runner: StandInRunner,
) -> None:
    for step in (1, 2, 3):
        open(os.path.join(runner.work_dir, f"epoch_{step}.pth"), "wb").close()
    os.makedirs(os.path.join(runner.work_dir, "epoch_0.pth"))  # sharded checkpoints are folders
    runner.message_hub.update_info("keep_ckpt_ids", [0, 1, 2, 3])
    hook = CheckpointHook(interval=1, max_keep_ckpts=2)
    hook.before_train(runner)
    assert sorted(os.listdir(runner.work_dir)) == ["20260101_120000", "epoch_2.pth", "epoch_3.pth"]
    assert list(hook.keep_ckpt_ids) == [2, 3]


def test_checkpoint_hook_other_ranks_remove_and_point_nothing(tmp_path: Any) -> None:
    runner = StandInRunner(tmp_path, rank=1)
    run_epochs(runner, [CheckpointHook(interval=1, max_keep_ckpts=1)], epochs=2)
    assert _ckpts(runner) == ["epoch_1.pth", "epoch_2.pth"]  # the stand-in writes on every rank
    assert not os.path.exists(os.path.join(runner.work_dir, "last_checkpoint"))


def test_checkpoint_hook_out_dir_joins_the_work_dir_name(
    runner: StandInRunner, tmp_path: Any
) -> None:
    out_dir = str(tmp_path / "out")
    hook = CheckpointHook(interval=1, out_dir=out_dir)
    run_epochs(runner, [hook], epochs=1)
    assert hook.out_dir == os.path.join(out_dir, "work_dir")
    assert _ckpts(runner, hook.out_dir) == ["epoch_1.pth"]
    assert _last_checkpoint(runner) == os.path.join(out_dir, "work_dir", "epoch_1.pth")


def test_checkpoint_hook_out_dir_on_another_backend(runner: StandInRunner) -> None:
    from treadle.core import fileio

    out_dir = f"memory://ckpt-{uuid.uuid4().hex}"
    hook = CheckpointHook(interval=1, out_dir=out_dir, max_keep_ckpts=1, save_best="acc")
    run_epochs(runner, [hook], epochs=2, metrics=[{"acc": 0.5}, {"acc": 0.7}])
    names = sorted(fileio.list_dir_or_file(hook.out_dir))
    assert names == ["best_acc_epoch_2.pth", "epoch_2.pth"]
    assert _last_checkpoint(runner) == f"{out_dir}/work_dir/epoch_2.pth"


def test_checkpoint_hook_save_best_tracks_greater_and_removes_the_previous(
    runner: StandInRunner,
) -> None:
    runner.max_epochs = 4
    hook = CheckpointHook(interval=-1, save_best="acc", save_last=False)
    metrics = [{"acc": 0.5}, {"acc": 0.7}, {"acc": 0.6}, {"acc": 0.7}]
    run_epochs(runner, [hook], epochs=4, metrics=metrics)
    assert _ckpts(runner) == ["best_acc_epoch_2.pth"]  # a tie is not better
    hub = runner.message_hub
    assert hub.get_info("best_score") == 0.7
    assert hub.get_info("best_ckpt") == os.path.join(runner.work_dir, "best_acc_epoch_2.pth")
    assert hook.best_ckpt_path == hub.get_info("best_ckpt")
    best = runner.saved[-1]
    assert (best["save_optimizer"], best["save_param_scheduler"], best["by_epoch"]) == (
        False,
        False,
        False,
    )
    assert best["meta"] == {"epoch": 2, "iter": 8}
    messages = runner.messages()
    assert "The best checkpoint with 0.7000 acc at 2 epoch is saved to best_acc_epoch_2.pth." in (
        messages
    )
    assert any("The previous best checkpoint" in m and "epoch_1" in m for m in messages)


def test_checkpoint_hook_save_best_resaves_the_last_checkpoint_with_the_new_best(
    runner: StandInRunner,
) -> None:
    hook = CheckpointHook(interval=1, save_best="loss")  # 'loss' infers 'less'
    run_epochs(runner, [hook], epochs=2, metrics=[{"loss": 1.0}, {"loss": 0.5}])
    assert _ckpts(runner) == ["best_loss_epoch_2.pth", "epoch_1.pth", "epoch_2.pth"]
    info = _load(os.path.join(runner.work_dir, "epoch_2.pth"))["message_hub"]["runtime_info"]
    assert info["best_score"] == 0.5
    assert info["best_ckpt"].endswith("best_loss_epoch_2.pth")


def test_checkpoint_hook_save_best_several_metrics(runner: StandInRunner) -> None:
    hook = CheckpointHook(save_best=["FID", "IS"], rule=["less", "greater"], save_last=False)
    metrics = [{"FID": 10.0, "IS": 2.0}, {"FID": 12.0, "IS": 3.0}, {"FID": 8.0, "IS": 1.0}]
    run_epochs(runner, [hook], epochs=3, metrics=metrics)
    assert _ckpts(runner) == ["best_FID_epoch_3.pth", "best_IS_epoch_2.pth"]
    hub = runner.message_hub
    assert (hub.get_info("best_score_FID"), hub.get_info("best_score_IS")) == (8.0, 3.0)
    assert hub.get_info("best_ckpt_IS").endswith("best_IS_epoch_2.pth")
    assert hook.best_ckpt_path_dict["FID"] == hub.get_info("best_ckpt_FID")


def test_checkpoint_hook_save_best_auto_and_slash_in_names(runner: StandInRunner) -> None:
    hook = CheckpointHook(save_best="auto", save_last=False)
    run_epochs(runner, [hook], epochs=1, metrics=[{"coco/bbox_mAP": 0.3, "loss": 2.0}])
    assert hook.key_indicators == ["coco/bbox_mAP"]
    assert hook.rules == ["greater"]
    assert _ckpts(runner) == ["best_coco_bbox_mAP_epoch_1.pth"]


def test_checkpoint_hook_save_best_iteration_based_names_use_the_iteration(
    runner: StandInRunner,
) -> None:
    hook = CheckpointHook(interval=-1, by_epoch=False, save_best="acc", save_last=False)
    hook.before_train(runner)
    runner.iter = 6
    hook.after_val_epoch(runner, {"acc": 0.9})
    assert _ckpts(runner) == ["best_acc_iter_6.pth"]


def test_checkpoint_hook_rule_inference_and_custom_keys() -> None:
    assert CheckpointHook(save_best="top1_acc").rules == ["greater"]
    assert CheckpointHook(save_best="Loss").rules == ["less"]  # case-insensitive
    assert CheckpointHook(save_best="f1", greater_keys="f1").rules == ["greater"]
    assert CheckpointHook(save_best="mae", less_keys=["mae"]).rules == ["less"]
    assert CheckpointHook(save_best=["acc", "loss"], rule="greater").rules == ["greater"] * 2
    # exact match wins over substrings: 'loss' is not overridden by 'lo' in greater_keys
    assert CheckpointHook(save_best="loss", greater_keys=["lo"]).rules == ["less"]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"save_best": "acc", "rule": "bigger"},
            KeyError,
            "rule must be 'greater', 'less' or None",
        ),
        ({"save_best": "psnr"}, ValueError, "Cannot infer the rule for key psnr"),
        ({"save_best": ["acc", "auto"]}, ValueError, '"auto" only on its own'),
        ({"save_best": ["acc", "acc"]}, ValueError, "duplicate"),
        ({"save_best": 3}, TypeError, "save_best must be"),
        ({"save_best": ["a", "b"], "rule": ["less"] * 3}, ValueError, "rule must hold 1 or"),
        ({"rule": 1}, TypeError, "rule must be"),
        ({"published_keys": 3}, TypeError, "published_keys must be"),
        ({"published_keys": ["meta", "meta"]}, ValueError, "duplicates"),
        ({"save_begin": -1}, ValueError, "save_begin must be >= 0"),
        ({"interval": "2"}, TypeError, "interval must be an int"),
        ({"greater_keys": 3}, TypeError, "greater_keys must be"),
        ({"out_dir": 3}, TypeError, "out_dir must be"),
        ({"file_client_args": {}, "backend_args": {}}, ValueError, "cannot be set together"),
    ],
)
def test_checkpoint_hook_rejects_bad_arguments(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        CheckpointHook(**kwargs)


def test_checkpoint_hook_empty_or_incomplete_metrics(runner: StandInRunner) -> None:
    hook = CheckpointHook(save_best="acc")
    hook.before_train(runner)
    hook.after_val_epoch(runner, {})
    assert (
        "the behavior to save the best checkpoint will be skipped"
        in (runner.messages(logging.WARNING)[0])
    )
    with pytest.raises(KeyError, match=r"save_best metric 'acc' is not among .*\['loss'\]"):
        hook.after_val_epoch(runner, {"loss": 1.0})
    CheckpointHook().after_val_epoch(runner, {"acc": 1.0})  # no save_best: nothing to do
    assert runner.saved == []


def test_checkpoint_hook_restores_best_bookkeeping_on_resume(runner: StandInRunner) -> None:
    old_best = os.path.join(runner.work_dir, "best_acc_epoch_1.pth")
    open(old_best, "wb").close()
    runner.message_hub.update_info("best_score", 0.8)
    runner.message_hub.update_info("best_ckpt", old_best)
    hook = CheckpointHook(save_best="acc")
    hook.before_train(runner)
    assert hook.best_ckpt_path == old_best
    runner.epoch = 2
    hook.after_val_epoch(runner, {"acc": 0.7})  # not better than the resumed best
    assert os.path.exists(old_best)
    hook.after_val_epoch(runner, {"acc": 0.9})
    assert not os.path.exists(old_best)
    assert _ckpts(runner) == ["best_acc_epoch_2.pth"]


def test_checkpoint_hook_publishes_with_a_sha256_suffix(runner: StandInRunner) -> None:
    hook = CheckpointHook(
        interval=1, save_best="acc", published_keys=["meta", "state_dict"], save_optimizer=True
    )
    run_epochs(runner, [hook], epochs=1, metrics=[{"acc": 0.5}])
    published = [f for f in _ckpts(runner) if "-" in f]
    assert len(published) == 2
    for name in published:
        stem, sha = name[: -len(".pth")].rsplit("-", 1)
        assert stem in ("epoch_1", "best_acc_epoch_1")
        path = os.path.join(runner.work_dir, name)
        with open(path, "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest()[:8] == sha
        assert sorted(_load(path)) == ["meta", "state_dict"]
    assert "optimizer" in _load(os.path.join(runner.work_dir, "epoch_1.pth"))


def test_checkpoint_hook_needs_before_train(runner: StandInRunner) -> None:
    with pytest.raises(RuntimeError, match="before_train must run"):
        CheckpointHook(interval=1).after_train_epoch(runner)


# ---------------------------------------------------------------------------------------------
# LoggerHook
# ---------------------------------------------------------------------------------------------


class _RecordingLogProcessor:
    """Returns a recognisable (tag, log_str) and records how it was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def get_log_after_iter(self, runner: Any, batch_idx: int, mode: str) -> tuple[dict, str]:
        self.calls.append(("iter", batch_idx, mode))
        return {"loss": 1.0, "step": runner.iter}, f"{mode} iter {batch_idx}"

    def get_log_after_epoch(
        self, runner: Any, batch_idx: int, mode: str, with_non_scalar: bool = False
    ) -> tuple[dict, str]:
        self.calls.append(("epoch", batch_idx, mode, with_non_scalar))
        tag = {"acc": 0.5, "per_class": torch.tensor([1.0, 2.0]), "obj": object()}
        return tag, f"{mode} epoch"


class _RecordingVisualizer:
    def __init__(self) -> None:
        self.scalars: list[tuple[dict, int, str | None]] = []
        self.closed = False

    def add_scalars(self, tag: dict, step: int = 0, file_path: str | None = None) -> None:
        self.scalars.append((tag, step, file_path))

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def log_runner(tmp_path: Any) -> StandInRunner:
    runner = StandInRunner(tmp_path, epoch_len=10)
    runner.log_processor = _RecordingLogProcessor()  # type: ignore[attr-defined]
    runner.visualizer = _RecordingVisualizer()  # type: ignore[attr-defined]
    return runner


@pytest.mark.parametrize(("ignore_last", "logged"), [(True, [2, 5, 8]), (False, [2, 5, 8, 9])])
def test_logger_hook_logs_every_interval_and_the_epoch_tail(
    log_runner: StandInRunner, ignore_last: bool, logged: list[int]
) -> None:
    hook = LoggerHook(interval=3, ignore_last=ignore_last, interval_exp_name=4)
    hook.before_run(log_runner)
    for batch_idx in range(10):
        hook.after_train_iter(log_runner, batch_idx, None, None)
        log_runner.iter += 1
    assert [c[1] for c in log_runner.log_processor.calls] == logged  # type: ignore[attr-defined]
    scalars = log_runner.visualizer.scalars  # type: ignore[attr-defined]
    assert [(s[1], s[2]) for s in scalars] == [(i + 1, "20260101_120000.json") for i in logged]
    messages = log_runner.messages()
    assert [m for m in messages if m.startswith("Exp name")] == ["Exp name: exp"] * 3  # 4, 8, end
    assert "train iter 5" in messages


def test_logger_hook_logs_a_short_epoch_even_with_ignore_last(tmp_path: Any) -> None:
    runner = StandInRunner(tmp_path, epoch_len=2)
    runner.log_processor = _RecordingLogProcessor()  # type: ignore[attr-defined]
    runner.visualizer = _RecordingVisualizer()  # type: ignore[attr-defined]
    hook = LoggerHook(interval=5)
    hook.before_run(runner)
    hook.after_train_iter(runner, 0, None, None)
    hook.after_train_iter(runner, 1, None, None)
    assert runner.log_processor.calls == [("iter", 1, "train")]  # type: ignore[attr-defined]


def test_logger_hook_val_and_test(log_runner: StandInRunner) -> None:
    hook = LoggerHook(interval=2)
    hook.before_run(log_runner)
    for batch_idx in range(4):
        hook.after_val_iter(log_runner, batch_idx, None, None)
        hook.after_test_iter(log_runner, batch_idx, None, None)
    calls = log_runner.log_processor.calls  # type: ignore[attr-defined]
    assert calls == [
        ("iter", 1, "val"),
        ("iter", 1, "test"),
        ("iter", 3, "val"),
        ("iter", 3, "test"),
    ]
    log_runner.epoch, log_runner.iter = 2, 20
    hook.after_val_epoch(log_runner, {"acc": 0.5})
    assert calls[-1] == ("epoch", len(log_runner.val_dataloader), "val", False)
    assert log_runner.visualizer.scalars[-1][1] == 2  # type: ignore[attr-defined]
    LoggerHook(log_metric_by_epoch=False).after_val_epoch(log_runner, {})
    assert log_runner.visualizer.scalars[-1][1] == 20  # type: ignore[attr-defined]
    # a val-only run: the train loop is not built and must not be
    log_runner._train_loop = None  # type: ignore[attr-defined]
    hook.after_val_epoch(log_runner, {})
    assert log_runner.visualizer.scalars[-1][1] == 0  # type: ignore[attr-defined]

    hook.after_test_epoch(log_runner, {"acc": 0.5})
    assert calls[-1] == ("epoch", len(log_runner.test_dataloader), "test", True)
    with open(os.path.join(log_runner.log_dir, "20260101_120000.json")) as f:
        assert json.load(f) == {"acc": 0.5, "per_class": [1.0, 2.0], "obj": None}


def test_logger_hook_after_run_copies_logs_to_out_dir(
    log_runner: StandInRunner, tmp_path: Any
) -> None:
    log_dir = log_runner.log_dir
    os.makedirs(os.path.join(log_dir, "vis_data"))
    for name, text in [
        ("run.log", "line\n"),
        ("vis_data/scalars.json", "{}\n"),
        ("config.py", "x = 1\n"),
        ("weights.pth", "no"),
    ]:
        with open(os.path.join(log_dir, name), "w") as f:
            f.write(text)
    out = tmp_path / "out"
    hook = LoggerHook(out_dir=str(out), keep_local=False)
    hook.before_run(log_runner)
    hook.after_run(log_runner)
    assert log_runner.visualizer.closed  # type: ignore[attr-defined]
    target = out / "work_dir"
    assert (target / "run.log").read_text() == "line\n"
    assert (target / "vis_data" / "scalars.json").read_text() == "{}\n"
    assert (target / "config.py").exists()
    assert not (target / "weights.pth").exists()
    assert sorted(os.listdir(log_dir)) == ["vis_data", "weights.pth"]  # moved, not copied

    # without out_dir nothing is copied; the visualizer is still closed
    log_runner.visualizer = _RecordingVisualizer()  # type: ignore[attr-defined]
    LoggerHook().after_run(log_runner)
    assert log_runner.visualizer.closed  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"interval": 0}, ValueError, "interval must be >= 1"),
        ({"interval": 2.0}, TypeError, "interval must be an int"),
        ({"ignore_last": 1}, TypeError, "ignore_last must be a bool"),
        ({"interval_exp_name": 0}, ValueError, "interval_exp_name must be >= 1"),
        ({"out_dir": 1}, TypeError, "out_dir must be"),
        ({"keep_local": None}, TypeError, "keep_local must be a bool"),
        ({"file_client_args": {}}, ValueError, "file_client_args must be None"),
        (
            {"out_dir": "x", "file_client_args": {}, "backend_args": {}},
            ValueError,
            "cannot be set together",
        ),
        ({"out_suffix": [".log", 1]}, TypeError, "out_suffix must be"),
    ],
)
def test_logger_hook_rejects_bad_arguments(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        LoggerHook(**kwargs)


# ---------------------------------------------------------------------------------------------
# EMAHook
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def ema_runner(tmp_path: Any) -> StandInRunner:
    from treadle.core.plugins import load_plugins

    load_plugins()  # EMA models are built through MODELS
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    return StandInRunner(tmp_path, model=model)


def _set_weights(model: nn.Module, value: float) -> None:
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(value)


def test_ema_hook_averages_and_swaps_for_validation(ema_runner: StandInRunner) -> None:
    model = ema_runner.model
    hook = EMAHook(momentum=0.5)
    hook.before_run(ema_runner)
    hook.before_train(ema_runner)
    _set_weights(model, 1.0)
    hook.after_train_iter(ema_runner, 0, None, None)  # first update copies
    _set_weights(model, 3.0)
    hook.after_train_iter(ema_runner, 1, None, None)  # 1 + 0.5 * (3 - 1) = 2
    ema_weight = hook.ema_model.module[0].weight
    assert torch.equal(ema_weight, torch.full((2, 2), 2.0))
    hook.before_val_epoch(ema_runner)
    assert torch.equal(model[0].weight, torch.full((2, 2), 2.0))  # evaluates the average
    hook.after_val_epoch(ema_runner, {})
    assert torch.equal(model[0].weight, torch.full((2, 2), 3.0))
    assert torch.equal(ema_weight, torch.full((2, 2), 2.0))
    hook.before_test_epoch(ema_runner)
    assert torch.equal(model[0].weight, torch.full((2, 2), 2.0))
    hook.after_test_epoch(ema_runner, {})
    assert torch.equal(model[0].weight, torch.full((2, 2), 3.0))


def test_ema_hook_follows_the_model_before_begin_iter(ema_runner: StandInRunner) -> None:
    hook = EMAHook(momentum=0.5, begin_iter=2)
    hook.before_run(ema_runner)
    hook.before_train(ema_runner)
    for it, value in enumerate([1.0, 5.0, 7.0]):
        ema_runner.iter = it
        _set_weights(ema_runner.model, value)
        hook.after_train_iter(ema_runner, it, None, None)
    # iterations 0 copy; 1 is the first averaged one (iter + 1 >= 2) — its first update copies
    # too (steps == 0), then iteration 2 averages: 5 + 0.5 * (7 - 5) = 6
    assert torch.equal(hook.ema_model.module[0].weight, torch.full((2, 2), 6.0))


def test_ema_hook_begin_epoch(ema_runner: StandInRunner) -> None:
    hook = EMAHook(begin_epoch=2)
    assert hook.enabled_by_epoch
    ema_runner.epoch = 0
    assert not hook._ema_started(ema_runner)
    ema_runner.epoch = 1
    assert hook._ema_started(ema_runner)
    ema_runner.max_epochs = 1
    with pytest.raises(ValueError, match=r"begin_epoch of EMAHook should be <= runner.max_epochs"):
        hook.before_train(ema_runner)
    with pytest.raises(ValueError, match=r"begin_iter of EMAHook should be <= runner.max_iters"):
        EMAHook(begin_iter=100).before_train(ema_runner)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"begin_iter": 1, "begin_epoch": 1}, "cannot both be set"),
        ({"begin_iter": -1}, "begin_iter must be >= 0"),
        ({"begin_epoch": -2}, "begin_epoch must be >= 0"),
    ],
)
def test_ema_hook_rejects_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        EMAHook(**kwargs)


def test_ema_hook_checkpoint_layout_and_resume(ema_runner: StandInRunner) -> None:
    model = ema_runner.model
    hook = EMAHook(momentum=0.5)
    hook.before_run(ema_runner)
    _set_weights(model, 1.0)
    hook.after_train_iter(ema_runner, 0, None, None)
    _set_weights(model, 3.0)
    hook.after_train_iter(ema_runner, 1, None, None)
    checkpoint = {"state_dict": dict(model.state_dict())}
    hook.before_save_checkpoint(ema_runner, checkpoint)
    # state_dict holds the average (deployable), ema_state_dict the trained weights
    assert torch.equal(checkpoint["state_dict"]["0.weight"], torch.full((2, 2), 2.0))
    assert torch.equal(checkpoint["ema_state_dict"]["module.0.weight"], torch.full((2, 2), 3.0))
    assert int(checkpoint["ema_state_dict"]["steps"]) == 2
    assert torch.equal(model[0].weight, torch.full((2, 2), 3.0))  # the model is untouched

    # resume: a fresh hook gets the average back, and the trained weights go back to state_dict
    fresh = EMAHook(momentum=0.5)
    fresh.before_run(ema_runner)
    ema_runner._resume = True
    loaded = {k: (dict(v) if isinstance(v, dict) else v) for k, v in checkpoint.items()}
    fresh.after_load_checkpoint(ema_runner, loaded)
    assert torch.equal(loaded["state_dict"]["0.weight"], torch.full((2, 2), 3.0))
    assert torch.equal(fresh.ema_model.module[0].weight, torch.full((2, 2), 2.0))
    assert int(fresh.ema_model.steps) == 2


@pytest.mark.parametrize("point", ["before_train", "before_val_epoch", "before_test_epoch"])
def test_ema_hook_load_from_starts_the_average_from_the_loaded_weights(
    ema_runner: StandInRunner, point: str
) -> None:
    """The Runner calls after_load_checkpoint before it loads the weights: the average is copied
    from the model when the next stage starts, whatever the file's keys looked like."""
    hook = EMAHook()
    hook.before_run(ema_runner)
    state = {k: torch.full_like(v, 4.0) for k, v in ema_runner.model.state_dict().items()}
    hook.after_load_checkpoint(ema_runner, {"weights": "in another layout"})  # load_from
    ema_runner.model.load_state_dict(state)  # what the Runner does next
    assert not torch.equal(hook.ema_model.module[0].weight, torch.full((2, 2), 4.0))
    getattr(hook, point)(ema_runner)
    assert torch.equal(hook.ema_model.module[0].weight, torch.full((2, 2), 4.0))
    assert torch.equal(hook.ema_model.module[1].running_mean, torch.full((2,), 4.0))
    if point != "before_train":
        getattr(hook, point.replace("before", "after"))(ema_runner)  # swap back
    ema_runner.model.load_state_dict({k: v * 0 for k, v in state.items()})
    getattr(hook, point)(ema_runner)  # once only: a later stage does not copy again
    # the average still holds the loaded weights (the val/test points swap them into the model)
    holder = hook.ema_model.module if point == "before_train" else ema_runner.model
    assert torch.equal(holder[0].weight, torch.full((2, 2), 4.0))


def test_ema_hook_resume_without_ema_state_warns_and_copies(ema_runner: StandInRunner) -> None:
    hook = EMAHook()
    hook.before_run(ema_runner)
    state = {k: torch.full_like(v, 4.0) for k, v in ema_runner.model.state_dict().items()}
    ema_runner._resume = True  # resuming from a checkpoint without ema_state_dict warns
    records = _ListHandler()
    from treadle.core.logging import TreadleLogger

    current = TreadleLogger.get_current_instance()
    current.addHandler(records)
    try:
        hook.after_load_checkpoint(ema_runner, {"state_dict": state})
    finally:
        current.removeHandler(records)
    assert any("There is no `ema_state_dict`" in r.getMessage() for r in records.records)
    ema_runner.model.load_state_dict(state)
    hook.before_train(ema_runner)
    assert torch.equal(hook.ema_model.module[0].weight, torch.full((2, 2), 4.0))


# ---------------------------------------------------------------------------------------------
# ProfilerHook
# ---------------------------------------------------------------------------------------------


def _profiled_iters(runner: StandInRunner, hook: ProfilerHook, iters: int) -> None:
    hook.before_run(runner)
    for _ in range(iters):
        torch.mm(torch.ones(8, 8), torch.ones(8, 8))
        hook.after_train_iter(runner, runner.iter, None, None)
        runner.iter += 1


def test_profiler_hook_writes_a_chrome_trace_to_the_log_dir(runner: StandInRunner) -> None:
    hook = ProfilerHook(by_epoch=False, profile_times=2)
    _profiled_iters(runner, hook, 3)
    path = os.path.join(runner.log_dir, "profiler_trace.json")
    assert hook._closed
    with open(path) as f:
        trace = json.load(f)
    assert any(e.get("name") == "aten::mm" for e in trace["traceEvents"])
    hook.after_run(runner)  # already closed: nothing more


def test_profiler_hook_by_epoch_with_a_custom_path(runner: StandInRunner) -> None:
    hook = ProfilerHook(json_trace_path="prof/trace.json")
    _profiled_iters(runner, hook, 2)
    assert not hook._closed  # by epoch: closed after the epoch
    hook.after_train_epoch(runner)
    assert hook._closed
    with open(os.path.join(runner.log_dir, "prof", "trace.json")) as f:
        assert json.load(f)["traceEvents"]


def test_profiler_hook_schedule_and_handler(runner: StandInRunner) -> None:
    seen: list[Any] = []
    hook = ProfilerHook(
        by_epoch=False,
        profile_times=4,
        on_trace_ready=seen.append,
        schedule={"wait": 0, "warmup": 1, "active": 1, "repeat": 1},
        json_trace_path="trace.json",
    )
    _profiled_iters(runner, hook, 4)
    assert hook._closed
    assert seen == [hook.profiler]  # one warmup + active cycle, handed to the handler once
    # the last recorded cycle is exported too
    with open(os.path.join(runner.log_dir, "trace.json")) as f:
        assert any(e.get("name") == "aten::mm" for e in json.load(f)["traceEvents"])


def test_profiler_hook_schedule_that_never_recorded_exports_nothing(
    runner: StandInRunner,
) -> None:
    hook = ProfilerHook(
        by_epoch=False, profile_times=2, schedule={"wait": 5, "warmup": 1, "active": 1}
    )
    _profiled_iters(runner, hook, 2)
    assert hook._closed
    assert not os.path.exists(os.path.join(runner.log_dir, "profiler_trace.json"))


def test_profiler_hook_handler_only_writes_no_default_trace(runner: StandInRunner) -> None:
    seen: list[Any] = []
    hook = ProfilerHook(by_epoch=False, profile_times=1, on_trace_ready=seen.append)
    _profiled_iters(runner, hook, 1)
    assert len(seen) == 1
    assert not os.path.exists(os.path.join(runner.log_dir, "profiler_trace.json"))


def test_profiler_hook_closes_at_the_end_of_a_short_run(runner: StandInRunner) -> None:
    hook = ProfilerHook(by_epoch=False, profile_times=5)
    _profiled_iters(runner, hook, 2)  # training stopped early
    assert not hook._closed
    hook.after_run(runner)
    assert hook._closed
    assert os.path.isfile(os.path.join(runner.log_dir, "profiler_trace.json"))


def test_profiler_hook_log_trace(runner: StandInRunner, capsys: pytest.CaptureFixture[str]) -> None:
    hook = ProfilerHook(by_epoch=False, on_trace_ready={"type": "log_trace", "row_limit": 3})
    _profiled_iters(runner, hook, 1)
    assert "Self CPU" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"profile_times": 0}, ValueError, "profile_times must be >= 1"),
        ({"profile_times": 2}, ValueError, "Profiler will profile 0-2 epochs"),
        ({"on_trace_ready": 3}, ValueError, "should be a handler, or dict, or None"),
        ({"on_trace_ready": {"type": "x"}}, ValueError, '"log_trace" or "tb_trace"'),
        ({"schedule": [1]}, TypeError, "schedule must be a dict"),
        ({"by_epoch": 1}, TypeError, "by_epoch must be a bool"),
        ({"with_stack": "no"}, TypeError, "with_stack must be a bool"),
    ],
)
def test_profiler_hook_rejects_bad_arguments(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        ProfilerHook(**kwargs)


def test_profiler_hook_profile_times_beyond_the_run(runner: StandInRunner) -> None:
    with pytest.raises(ValueError, match="should not be greater than 12"):
        ProfilerHook(by_epoch=False, profile_times=13).before_run(runner)


# ---------------------------------------------------------------------------------------------
# NonFiniteLossHook
# ---------------------------------------------------------------------------------------------


def _feed(hook: NonFiniteLossHook, runner: StandInRunner, losses: list[dict[str, Any]]) -> None:
    for outputs in losses:
        hook.after_train_iter(runner, runner.iter, None, outputs)
        runner.iter += 1


def _ok(value: float = 1.0) -> dict[str, Any]:
    return {"loss": torch.tensor(value), "loss_cls": torch.tensor(value / 2)}


def test_nonfinite_hook_raises_at_the_iteration_naming_the_keys(runner: StandInRunner) -> None:
    hook = NonFiniteLossHook()
    hook.before_train(runner)
    _feed(hook, runner, [_ok(), _ok()])
    bad = {
        "loss": torch.tensor(math.nan),
        "loss_cls": torch.tensor(math.nan),
        "loss_box": torch.tensor(0.1),
    }
    with pytest.raises(NonFiniteLossError, match=r"in iteration 3: loss, loss_cls\.") as info:
        _feed(hook, runner, [bad])
    assert (info.value.first_iter, info.value.last_iter, info.value.keys) == (
        3,
        3,
        ["loss", "loss_cls"],
    )
    assert isinstance(info.value, RuntimeError)


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_nonfinite_hook_detects_inf_and_nan_in_any_dtype(
    runner: StandInRunner, value: float
) -> None:
    hook = NonFiniteLossHook()
    hook.before_train(runner)
    for dtype in (torch.float32, torch.bfloat16, torch.float16, torch.float64):
        _feed(hook, runner, [{"loss": torch.tensor(1.0, dtype=dtype)}])
    with pytest.raises(NonFiniteLossError, match="iteration 5: loss"):
        _feed(hook, runner, [{"loss": torch.tensor(value, dtype=torch.float16)}])


def test_nonfinite_hook_checks_every_interval_and_names_the_window(runner: StandInRunner) -> None:
    hook = NonFiniteLossHook(interval=3)
    hook.before_train(runner)
    _feed(hook, runner, [_ok(), _ok(), _ok()])
    bad = {"loss": torch.tensor(math.inf), "loss_cls": torch.tensor(1.0)}
    _feed(hook, runner, [bad, _ok()])  # iterations 4 and 5: not read yet
    with pytest.raises(NonFiniteLossError, match=r"in iterations 4-6: loss\.") as info:
        _feed(hook, runner, [_ok()])
    assert info.value.keys == ["loss"]


def test_nonfinite_hook_reads_no_tensor_on_the_host_between_checks(
    runner: StandInRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[str] = []
    for name in ("item", "tolist", "__bool__", "__float__"):
        original = getattr(torch.Tensor, name)

        def spy(self: torch.Tensor, *args: Any, _name: str = name, _orig: Any = original) -> Any:
            reads.append(_name)
            return _orig(self, *args)

        monkeypatch.setattr(torch.Tensor, name, spy)
    hook = NonFiniteLossHook(interval=4)
    hook.before_train(runner)
    _feed(hook, runner, [_ok(), _ok(), _ok()])
    assert reads == []
    _feed(hook, runner, [_ok()])
    assert reads == ["tolist"]  # one read per window


def test_nonfinite_hook_drains_before_a_checkpoint_is_saved(runner: StandInRunner) -> None:
    hook = NonFiniteLossHook(interval=100)
    run = [hook, CheckpointHook(interval=1)]
    runner.hooks = run
    for h in run:
        h.before_train(runner)
    _feed(hook, runner, [{"loss": torch.tensor(math.nan)}])
    with pytest.raises(NonFiniteLossError, match="iteration 1: loss"):
        run[1].after_train_epoch(runner)  # the save calls before_save_checkpoint
    assert _ckpts(runner) == []  # nothing written after the non-finite loss


@pytest.mark.parametrize("point", ["after_train_epoch", "before_val", "after_train"])
def test_nonfinite_hook_drains_at_epoch_end_validation_and_train_end(
    runner: StandInRunner, point: str
) -> None:
    hook = NonFiniteLossHook(interval=100)
    hook.before_train(runner)
    _feed(hook, runner, [_ok(), {"loss": torch.tensor(math.nan), "loss_cls": torch.tensor(0.0)}])
    with pytest.raises(NonFiniteLossError, match=r"iterations 1-2: loss\."):
        getattr(hook, point)(runner)


def test_nonfinite_hook_watches_loss_keys_or_the_given_keys(runner: StandInRunner) -> None:
    hook = NonFiniteLossHook()
    hook.before_train(runner)
    _feed(hook, runner, [{"loss": torch.tensor(1.0), "acc": torch.tensor(math.nan)}])
    _feed(hook, runner, [{"loss": torch.tensor(1.0), "count": torch.tensor(3)}])
    _feed(hook, runner, [None, {"note": "no tensors"}])
    hook = NonFiniteLossHook(keys=["acc"])
    hook.before_train(runner)
    _feed(hook, runner, [{"loss": torch.tensor(math.nan), "acc": torch.tensor(1.0)}])
    with pytest.raises(NonFiniteLossError, match=": acc"):
        _feed(hook, runner, [{"acc": torch.tensor(math.nan)}])


def test_nonfinite_hook_when_the_keys_change_within_a_window(runner: StandInRunner) -> None:
    hook = NonFiniteLossHook(interval=10)
    hook.before_train(runner)
    _feed(hook, runner, [{"loss": torch.tensor(math.nan)}, {"loss_a": torch.tensor(1.0)}])
    with pytest.raises(NonFiniteLossError, match="iteration 1: loss"):
        hook.after_train(runner)


def test_nonfinite_hook_non_scalar_losses(runner: StandInRunner) -> None:
    hook = NonFiniteLossHook()
    hook.before_train(runner)
    _feed(hook, runner, [{"loss": torch.ones(3)}])
    with pytest.raises(NonFiniteLossError):
        _feed(hook, runner, [{"loss": torch.tensor([1.0, math.inf, 2.0])}])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"action": "ignore"}, ValueError, "action must be 'raise' or 'skip'"),
        ({"interval": 0}, ValueError, "interval must be >= 1"),
        ({"keys": "loss"}, TypeError, "keys must be a non-empty list"),
        ({"keys": []}, TypeError, "keys must be a non-empty list"),
        ({"max_consecutive_skips": 0}, ValueError, "max_consecutive_skips must be >= 1"),
    ],
)
def test_nonfinite_hook_rejects_bad_arguments(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        NonFiniteLossHook(**kwargs)


class _SkippingWrapper:
    """An optimizer wrapper honouring ``skip_nonfinite`` (the contract OptimWrapper implements)."""

    def __init__(self) -> None:
        self.skip_nonfinite = False
        self.last_step_skipped = False

    def update_params(self, loss: torch.Tensor) -> None:
        self.last_step_skipped = self.skip_nonfinite and not bool(torch.isfinite(loss))


def test_nonfinite_hook_skip_switches_the_wrapper_and_reports(runner: StandInRunner) -> None:
    wrapper = _SkippingWrapper()
    runner.optim_wrapper = wrapper  # type: ignore[assignment]
    hook = NonFiniteLossHook(action="skip", max_consecutive_skips=2)
    hook.before_train(runner)
    assert wrapper.skip_nonfinite
    for it, value in enumerate([1.0, math.nan, 2.0, math.inf]):
        outputs = {"loss": torch.tensor(value), "loss_x": torch.tensor(1.0)}
        wrapper.update_params(outputs["loss"])
        runner.iter = it
        hook.after_train_iter(runner, it, None, outputs)
    warnings = runner.messages(logging.WARNING)
    assert warnings == [
        "Non-finite loss (NaN or inf) in iteration 2: loss; the optimizer step was skipped "
        "(1 in a row, 1 in this run).",
        "Non-finite loss (NaN or inf) in iteration 4: loss; the optimizer step was skipped "
        "(1 in a row, 2 in this run).",
    ]
    assert runner.message_hub.get_info("nonfinite_skips") == 2
    runner.iter = 4
    wrapper.update_params(torch.tensor(math.nan))
    with pytest.raises(NonFiniteLossError, match="2 steps in a row were skipped") as info:
        hook.after_train_iter(runner, 4, None, {"loss": torch.tensor(math.nan)})
    assert (info.value.first_iter, info.value.last_iter) == (4, 5)
    hook.after_train(runner)
    assert wrapper.skip_nonfinite is False  # restored


def test_nonfinite_hook_skip_sets_every_wrapper_of_a_dict(runner: StandInRunner) -> None:
    wrappers = {"g": _SkippingWrapper(), "d": _SkippingWrapper()}
    runner.optim_wrapper = types.SimpleNamespace(optim_wrappers=wrappers)  # type: ignore[assignment]
    hook = NonFiniteLossHook(action="skip")
    hook.before_train(runner)
    assert all(w.skip_nonfinite for w in wrappers.values())


def test_nonfinite_hook_skip_needs_a_supporting_wrapper(runner: StandInRunner) -> None:
    runner.optim_wrapper = types.SimpleNamespace()  # type: ignore[assignment]
    with pytest.raises(TypeError, match="needs optimizer wrappers with a `skip_nonfinite` switch"):
        NonFiniteLossHook(action="skip").before_train(runner)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_nonfinite_hook_on_cuda_reads_asynchronously_and_drains(runner: StandInRunner) -> None:
    hook = NonFiniteLossHook()
    hook.before_train(runner)
    _feed(hook, runner, [{"loss": torch.tensor(1.0, device="cuda")}] * 3)
    torch.cuda.synchronize()
    with pytest.raises(NonFiniteLossError, match="iteration 4: loss"):
        # detected at a later check once the copy completed, or at the latest when draining
        _feed(hook, runner, [{"loss": torch.tensor(math.nan, device="cuda")}])
        _feed(hook, runner, [{"loss": torch.tensor(1.0, device="cuda")}] * 3)
        hook.before_save_checkpoint(runner, {})

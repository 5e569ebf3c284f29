"""The built-in hooks in real (tiny, CPU) trainings with the Runner: files on disk, message hub
values, and how the hooks work together."""

from __future__ import annotations

import json
import math
import os
import uuid
from typing import Any

import pytest
import torch
from torch import nn

from treadle.core.evaluator.metric import BaseMetric
from treadle.core.hooks import NonFiniteLossError
from treadle.core.model import BaseModel
from treadle.core.runner import Runner


class MLP(BaseModel):
    """A 2-layer MLP regressor; the loss is NaN in the (1-based) training calls ``nan_calls``."""

    def __init__(self, nan_calls: range | set[int] = range(0)) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
        self.nan_calls = nan_calls
        self.calls = 0

    def forward(self, x: torch.Tensor, y: torch.Tensor, mode: str = "tensor") -> Any:
        out = self.net(x)
        if mode == "loss":
            self.calls += 1
            loss = ((out - y) ** 2).mean()
            if self.calls in self.nan_calls:
                loss = loss * math.nan
            return {"loss": loss}
        if mode == "predict":
            return [{"err": float(((o - t) ** 2).sum())} for o, t in zip(out, y, strict=True)]
        return out


class MSEMetric(BaseMetric):
    default_prefix = "toy"

    def process(self, data_batch: Any, data_samples: Any) -> None:
        self.results.extend(s["err"] for s in data_samples)

    def compute_metrics(self, results: list[Any]) -> dict[str, Any]:
        return {"loss": sum(results) / len(results)}


class ConstantMetric(BaseMetric):
    default_prefix = "toy"

    def process(self, data_batch: Any, data_samples: Any) -> None:
        self.results.extend(0 for _ in data_samples)

    def compute_metrics(self, results: list[Any]) -> dict[str, Any]:
        return {"acc": 0.5}


#: Component tables the hooks' runs need that the built-in plugin may not list yet.
_TABLES = ("treadle.core.visualization.components", "treadle.core.logging.components")


@pytest.fixture(autouse=True)
def _registered_components() -> Any:
    """Register the tables of ``_TABLES`` that the built-in plugin does not register yet (and
    unregister them afterwards). A no-op once ``_builtin.COMPONENT_TABLES`` lists them."""
    import importlib

    from treadle.core import _builtin
    from treadle.core.plugins import load_plugins
    from treadle.core.registry import REGISTRIES

    load_plugins()
    added = []
    for module_name in _TABLES:
        if module_name in _builtin.COMPONENT_TABLES:
            continue
        for registry_name, entries in importlib.import_module(module_name).COMPONENTS.items():
            registry = REGISTRIES[registry_name]
            for name, target in entries.items():
                if name not in registry:
                    registry.register_lazy(name, target)
                    added.append((registry, name))
    yield
    for registry, name in added:
        registry.unregister(name)
    # The Runner's logger stays the "current" TreadleLogger, with a FileHandler into this test's
    # tmp dir; later tests that log through "current" would write there. Make a fresh one current.
    from treadle.core.logging import TreadleLogger

    TreadleLogger.get_instance(f"after-{uuid.uuid4().hex}")


def _dataset(n: int = 16) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    y = x.sum(dim=1, keepdim=True)
    return [{"x": x[i], "y": y[i]} for i in range(n)]


def _loader() -> dict[str, Any]:
    return {
        "dataset": _dataset(),
        "batch_size": 4,
        "sampler": {"type": "DefaultSampler", "shuffle": True},
        "collate_fn": {"type": "default_collate"},
    }


def _runner(tmp_path: Any, **kwargs: Any) -> Runner:
    args: dict[str, Any] = {
        "model": MLP(),
        "work_dir": str(tmp_path / "work"),
        "train_dataloader": _loader(),
        "train_cfg": {"by_epoch": True, "max_epochs": 2},
        "optim_wrapper": {"optimizer": {"type": "SGD", "lr": 0.01}},
        "default_hooks": {"logger": {"type": "LoggerHook", "interval": 2}},
        "randomness": {"seed": 0},
        # Runners made within one second share the default (timestamp) experiment name.
        "experiment_name": f"hooks-{tmp_path.name}",
    }
    if "val_evaluator" in kwargs:
        args.update(val_dataloader=_loader(), val_cfg={})
    args.update(kwargs)
    return Runner(**args)


def _scalars(runner: Runner) -> list[dict[str, Any]]:
    path = os.path.join(runner.log_dir, "vis_data", "scalars.json")
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_default_hooks_epoch_based_training(tmp_path: Any) -> None:
    runner = _runner(tmp_path)
    runner.train()
    work_dir = runner.work_dir
    # CheckpointHook (interval=1 by default in the Runner) + last_checkpoint
    assert sorted(f for f in os.listdir(work_dir) if f.endswith(".pth")) == [
        "epoch_1.pth",
        "epoch_2.pth",
    ]
    with open(os.path.join(work_dir, "last_checkpoint")) as f:
        assert f.read() == os.path.join(work_dir, "epoch_2.pth")
    checkpoint = torch.load(os.path.join(work_dir, "epoch_2.pth"), weights_only=False)
    assert (checkpoint["meta"]["epoch"], checkpoint["meta"]["iter"]) == (2, 8)
    # RuntimeInfoHook + IterTimerHook: the message hub describes the run
    hub = runner.message_hub
    assert (hub.get_info("epoch"), hub.get_info("max_iters")) == (1, 8)
    assert hub.get_info("loop_stage") is None  # popped after training
    assert hub.get_scalar("train/lr").current() == pytest.approx(0.01)
    assert math.isfinite(hub.get_scalar("train/loss").current())
    assert hub.get_scalar("train/time").current() > 0
    assert hub.get_info("eta") == pytest.approx(0.0)
    # LoggerHook: every 2 iterations, 4 lines per run of 8 iterations, with step = iter + 1
    lines = _scalars(runner)
    assert [line["step"] for line in lines] == [2, 4, 6, 8]
    assert all({"loss", "lr"} <= set(line) for line in lines)
    with open(os.path.join(runner.log_dir, f"{runner.timestamp}.log")) as f:
        log = f.read()
    assert "Exp name:" in log
    assert "Saving checkpoint at 2 epochs" in log


def test_iteration_based_training_with_best_and_kept_checkpoints_and_ema(tmp_path: Any) -> None:
    runner = _runner(
        tmp_path,
        train_cfg={"by_epoch": False, "max_iters": 6, "val_interval": 2},
        val_evaluator=MSEMetric(),
        default_hooks={
            "logger": {"type": "LoggerHook", "interval": 2},
            "checkpoint": {
                "type": "CheckpointHook",
                "by_epoch": False,
                "interval": 2,
                "max_keep_ckpts": 1,
                "save_best": "toy/loss",
            },
        },
        custom_hooks=[{"type": "EMAHook", "momentum": 0.5}],
    )
    runner.train()
    files = sorted(f for f in os.listdir(runner.work_dir) if f.endswith(".pth"))
    best = [f for f in files if f.startswith("best_toy_loss_iter_")]
    assert [f for f in files if f.startswith("iter_")] == ["iter_6.pth"]
    assert len(best) == 1  # earlier bests were removed
    hub = runner.message_hub
    assert hub.get_info("best_ckpt") == os.path.join(runner.work_dir, best[0])
    assert hub.get_info("keep_ckpt_ids") == [6]
    checkpoint = torch.load(os.path.join(runner.work_dir, "iter_6.pth"), weights_only=False)
    assert checkpoint["message_hub"]["runtime_info"]["best_score"] == hub.get_info("best_score")
    # EMAHook: the deployable state_dict holds the average, ema_state_dict the trained weights
    model = runner.model
    trained = model.net[0].weight.detach()
    assert torch.equal(checkpoint["ema_state_dict"]["module.net.0.weight"], trained)
    assert not torch.equal(checkpoint["state_dict"]["net.0.weight"], trained)


def test_early_stopping_ends_training(tmp_path: Any) -> None:
    runner = _runner(
        tmp_path,
        train_cfg={"by_epoch": True, "max_epochs": 10},
        val_evaluator=ConstantMetric(),
        custom_hooks=[{"type": "EarlyStoppingHook", "monitor": "toy/acc", "patience": 1}],
    )
    runner.train()
    # epoch 1 sets the best, epoch 2 does not improve: stop after 2 of 10 epochs
    assert runner.epoch == 2
    assert runner.iter == 8


def test_nonfinite_loss_stops_with_the_iteration_and_keeps_the_last_good_checkpoint(
    tmp_path: Any,
) -> None:
    runner = _runner(
        tmp_path,
        model=MLP(nan_calls=range(6, 100)),
        train_cfg={"by_epoch": True, "max_epochs": 3},
        custom_hooks=[{"type": "NonFiniteLossHook"}],
    )
    with pytest.raises(NonFiniteLossError, match=r"in iteration 6: loss\.") as info:
        runner.train()
    assert info.value.first_iter == 6
    files = sorted(f for f in os.listdir(runner.work_dir) if f.endswith(".pth"))
    assert files == ["epoch_1.pth"]
    with open(os.path.join(runner.work_dir, "last_checkpoint")) as f:
        assert f.read().endswith("epoch_1.pth")


def test_profiler_hook_writes_its_trace_to_the_log_dir(tmp_path: Any) -> None:
    runner = _runner(
        tmp_path,
        train_cfg={"by_epoch": False, "max_iters": 3},
        custom_hooks=[{"type": "ProfilerHook", "by_epoch": False, "profile_times": 2}],
    )
    runner.train()
    with open(os.path.join(runner.log_dir, "profiler_trace.json")) as f:
        assert json.load(f)["traceEvents"]


@pytest.mark.skipif(
    not hasattr(
        __import__("treadle.core.optim", fromlist=["OptimWrapper"]).OptimWrapper, "skip_nonfinite"
    ),
    reason="OptimWrapper does not implement the skip_nonfinite switch yet",
)
def test_nonfinite_loss_skip_leaves_the_weights_finite(tmp_path: Any) -> None:
    runner = _runner(
        tmp_path,
        model=MLP(nan_calls={3, 7}),
        custom_hooks=[{"type": "NonFiniteLossHook", "action": "skip"}],
    )
    runner.train()
    assert all(bool(torch.isfinite(p).all()) for p in runner.model.parameters())
    assert runner.message_hub.get_info("nonfinite_skips") == 2
    with open(os.path.join(runner.log_dir, f"{runner.timestamp}.log")) as f:
        log = f.read()
    assert "in iteration 3: loss; the optimizer step was skipped" in log
    assert runner.optim_wrapper.skip_nonfinite is False  # switched back after training

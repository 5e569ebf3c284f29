"""The Runner end to end on CPU: training, validation, checkpoints, hooks and exact resume."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch

from treadle.core.hooks import Hook
from treadle.core.hookspecs import hookimpl
from treadle.core.runner import Runner


def _weights(runner: Runner) -> dict[str, torch.Tensor]:
    model = runner.strategy.unwrap_model(runner.model)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_epoch_based_training_writes_checkpoints_logs_and_scalars(toy_cfg: Any) -> None:
    runner = Runner.from_cfg(toy_cfg())
    runner.train()
    work = Path(runner.work_dir)
    assert (work / "epoch_1.pth").is_file()
    assert (work / "epoch_2.pth").is_file()
    assert (work / "last_checkpoint").read_text().strip() == str(work / "epoch_2.pth")
    ckpt = torch.load(work / "epoch_2.pth", weights_only=True)
    assert set(ckpt) >= {"meta", "state_dict", "optimizer", "param_schedulers", "message_hub"}
    assert (ckpt["meta"]["epoch"], ckpt["meta"]["iter"]) == (2, 6)
    log_dir = Path(runner.log_dir)
    log_text = (log_dir / f"{runner.timestamp}.log").read_text()
    assert "Epoch(train) [1][3/3]" in log_text
    assert "Epoch(val) [2][3/3]" in log_text
    lines = [
        json.loads(line)
        for line in (log_dir / "vis_data" / "scalars.json").read_text().splitlines()
    ]
    train_lines = [line for line in lines if "lr" in line]
    assert [line["step"] for line in train_lines] == [1, 2, 3, 4, 5, 6]
    val_lines = [line for line in lines if "accuracy/top1" in line]
    assert len(val_lines) == 2
    assert 0.0 <= val_lines[-1]["accuracy/top1"] <= 100.0
    assert "val_loss" in val_lines[-1]
    # the second epoch's lr follows the MultiStepLR milestone
    assert train_lines[0]["lr"] == pytest.approx(0.1)
    assert train_lines[-1]["lr"] == pytest.approx(0.05)


def test_iter_based_training(toy_cfg: Any) -> None:
    cfg = toy_cfg(
        train_cfg={"type": "IterBasedTrainLoop", "max_iters": 7, "val_interval": 4},
        param_scheduler=[{"type": "MultiStepLR", "milestones": [4], "by_epoch": False}],
        default_hooks={
            "logger": {"type": "LoggerHook", "interval": 1},
            "checkpoint": {"type": "CheckpointHook", "interval": 4, "by_epoch": False},
        },
        log_processor={"by_epoch": False},
    )
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 7
    work = Path(runner.work_dir)
    assert sorted(p.name for p in work.glob("*.pth")) == ["iter_4.pth", "iter_7.pth"]
    assert torch.load(work / "iter_4.pth", weights_only=True)["meta"]["iter"] == 4


# -- the golden hook order ---------------------------------------------------------------------


class Recorder(Hook):
    """Implements every point; records the calls with their arguments' shape."""

    priority = "LOWEST"

    def __init__(self) -> None:
        self.calls: list[str] = []

    def _note(self, name: str, **kw: Any) -> None:
        extra = ",".join(f"{k}={v}" for k, v in kw.items())
        self.calls.append(f"{name}({extra})" if extra else name)


def _make_recorder_points() -> None:
    from treadle.core.hooks.hook import POINTS

    for point in POINTS:

        def method(self: Recorder, runner: Any, _p: str = point, **kw: Any) -> None:
            shown = {}
            if "batch_idx" in kw:
                shown["i"] = kw["batch_idx"]
            if _p.endswith("_epoch") and "metrics" in kw:
                shown["metrics"] = ",".join(sorted(kw["metrics"] or {}))
            self._note(_p, **shown)

        import inspect

        params = {
            "before_train_iter": "runner, batch_idx, data_batch=None",
            "before_val_iter": "runner, batch_idx, data_batch=None",
            "before_test_iter": "runner, batch_idx, data_batch=None",
            "after_train_iter": "runner, batch_idx, data_batch=None, outputs=None",
            "after_val_iter": "runner, batch_idx, data_batch=None, outputs=None",
            "after_test_iter": "runner, batch_idx, data_batch=None, outputs=None",
            "after_val_epoch": "runner, metrics=None",
            "after_test_epoch": "runner, metrics=None",
            "before_save_checkpoint": "runner, checkpoint",
            "after_load_checkpoint": "runner, checkpoint",
            "on_exception": "runner, exception",
        }.get(point, "runner")
        namespace: dict[str, Any] = {"method": method}
        args = ", ".join(p.split("=")[0].strip() for p in params.split(",")[1:])
        call = ", ".join(f"{a}={a}" for a in args.split(", ") if a)
        exec(
            f"def {point}(self, {params}):\n    method(self, runner{', ' + call if call else ''})",
            namespace,
        )
        setattr(Recorder, point, namespace[point])
        del inspect


_make_recorder_points()


GOLDEN = [
    "before_run",
    "before_train",
    "before_train_epoch",
    "before_train_iter(i=0)", "after_train_iter(i=0)",
    "before_train_iter(i=1)", "after_train_iter(i=1)",
    "before_train_iter(i=2)", "after_train_iter(i=2)",
    # CheckpointHook (VERY_LOW) saves inside after_train_epoch, before the LOWEST recorder sees it
    "before_save_checkpoint",
    "after_train_epoch",
    "before_val",
    "before_val_epoch",
    "before_val_iter(i=0)", "after_val_iter(i=0)",
    "before_val_iter(i=1)", "after_val_iter(i=1)",
    "before_val_iter(i=2)", "after_val_iter(i=2)",
    "after_val_epoch(metrics=accuracy/top1,loss,val_loss)",
    "after_val",
    "before_train_epoch",
    "before_train_iter(i=0)", "after_train_iter(i=0)",
    "before_train_iter(i=1)", "after_train_iter(i=1)",
    "before_train_iter(i=2)", "after_train_iter(i=2)",
    # CheckpointHook (VERY_LOW) saves inside after_train_epoch, before the LOWEST recorder sees it
    "before_save_checkpoint",
    "after_train_epoch",
    "before_val",
    "before_val_epoch",
    "before_val_iter(i=0)", "after_val_iter(i=0)",
    "before_val_iter(i=1)", "after_val_iter(i=1)",
    "before_val_iter(i=2)", "after_val_iter(i=2)",
    "after_val_epoch(metrics=accuracy/top1,loss,val_loss)",
    "after_val",
    "after_train",
    "after_run",
]  # fmt: skip


def test_golden_hook_order(toy_cfg: Any) -> None:
    """2 epochs × 3 iterations with validation each epoch and a checkpoint each epoch."""
    runner = Runner.from_cfg(toy_cfg(custom_hooks=[Recorder()]))
    runner.train()
    # from_cfg deep-copies the config (as MMEngine's does): read the Runner's own recorder back
    (recorder,) = [hook for hook in runner.hooks if isinstance(hook, Recorder)]
    assert recorder.calls == GOLDEN


def test_golden_order_of_every_hook_at_every_point(toy_cfg: Any) -> None:
    """Which hooks run at each point, in which order: MMEngine's priorities, FIFO among equals."""
    runner = Runner.from_cfg(toy_cfg(custom_hooks=[Recorder()]))
    calls: list[tuple[str, list[str]]] = []
    pm = runner._hooks._pm
    pm.add_hookcall_monitoring(
        lambda name, impls, kwargs: calls.append(
            (name, [impl.plugin_name.split("#")[0] for impl in reversed(impls)])
        ),
        lambda outcome, name, impls, kwargs: None,
    )
    runner.train()
    first = {}
    for name, order in calls:
        first.setdefault(name, order)
    assert first["before_run"][-1] == "Recorder"
    assert first["before_train_iter"] == ["RuntimeInfoHook", "IterTimerHook", "Recorder"]
    assert first["after_train_iter"] == [
        "RuntimeInfoHook",
        "IterTimerHook",
        "LoggerHook",
        "ParamSchedulerHook",
        "CheckpointHook",
        "ProgressHook",
        "Recorder",
    ]
    assert first["before_train_epoch"] == [
        "RuntimeInfoHook",
        "IterTimerHook",
        "DistSamplerSeedHook",
        "Recorder",
    ]
    assert first["after_val_epoch"] == [
        "RuntimeInfoHook",
        "IterTimerHook",
        "LoggerHook",
        "ParamSchedulerHook",
        "CheckpointHook",
        "ProgressHook",
        "Recorder",
    ]


def test_fifo_among_equal_priorities_and_numeric_priority(toy_cfg: Any) -> None:
    order: list[str] = []

    class A(Hook):
        def before_train(self, runner: Any) -> None:
            order.append(type(self).__name__)

    class B(A):
        pass

    class C(A):
        priority = 10

    class D(A):
        priority = "LOWEST"

    runner = Runner.from_cfg(toy_cfg(custom_hooks=[D(), A(), B(), C()]))
    runner.train()
    assert order == ["C", "A", "B", "D"]


def test_only_overridden_points_are_called(toy_cfg: Any) -> None:
    class OnlyEpoch(Hook):
        calls = 0

        def _after_epoch(self, runner: Any, mode: str = "train") -> None:
            type(self).calls += 1

    runner = Runner.from_cfg(toy_cfg(custom_hooks=[OnlyEpoch()]))
    pm = runner._hooks._pm
    impls = {
        name: [i.plugin_name for i in getattr(pm.hook, name).get_hookimpls()]
        for name in ("after_train_epoch", "after_val_epoch", "after_train_iter", "before_run")
    }
    assert any("OnlyEpoch" in n for n in impls["after_train_epoch"])
    assert any("OnlyEpoch" in n for n in impls["after_val_epoch"])
    assert not any("OnlyEpoch" in n for n in impls["after_train_iter"])
    assert not any("OnlyEpoch" in n for n in impls["before_run"])
    runner.train()
    assert OnlyEpoch.calls == 4  # 2 train epochs + 2 validation passes


def test_pluggy_plugin_object_as_custom_hook(toy_cfg: Any) -> None:
    seen: list[int] = []

    class Plugin:
        priority = "HIGHEST"

        @hookimpl
        def after_train_iter(self, runner: Any, batch_idx: int) -> None:
            seen.append(batch_idx)

    runner = Runner.from_cfg(toy_cfg(custom_hooks=[Plugin()]))
    runner.train()
    assert seen == [0, 1, 2, 0, 1, 2]


def test_on_exception_fires_and_error_propagates(toy_cfg: Any) -> None:
    seen: list[str] = []

    class Boom(Hook):
        def after_train_iter(
            self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None
        ) -> None:
            if runner.iter == 2:
                raise RuntimeError("boom at iter 2")

        def on_exception(self, runner: Any, exception: BaseException) -> None:
            seen.append(str(exception))

    runner = Runner.from_cfg(toy_cfg(custom_hooks=[Boom()]))
    with pytest.raises(RuntimeError, match="boom at iter 2"):
        runner.train()
    assert seen == ["boom at iter 2"]


# -- resume: bitwise equal to an uninterrupted run ---------------------------------------------


class _Stop(Exception):
    pass


class StopAt(Hook):
    priority = "LOWEST"  # after CheckpointHook wrote the checkpoint of this iteration

    def __init__(self, k: int) -> None:
        self.k = k

    def after_train_iter(
        self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        if runner.iter + 1 == self.k:
            raise _Stop


def _resume_case(toy_cfg: Any, tmp_path: Path, loop: str, k: int | None) -> dict[str, torch.Tensor]:
    if loop == "epoch":
        train_cfg = {"by_epoch": True, "max_epochs": 3, "val_interval": 1}
        schedule = [{"type": "MultiStepLR", "milestones": [1, 2], "gamma": 0.5}]
    else:
        train_cfg = {"type": "IterBasedTrainLoop", "max_iters": 9, "val_interval": 4}
        schedule = [{"type": "MultiStepLR", "milestones": [3, 6], "gamma": 0.5, "by_epoch": False}]
    work = tmp_path / f"{loop}-{k}"
    cfg = toy_cfg(
        train_cfg=train_cfg,
        param_scheduler=schedule,
        default_hooks={
            "logger": {"type": "LoggerHook", "interval": 1},
            "checkpoint": {"type": "CheckpointHook", "interval": 1, "by_epoch": False},
        },
        randomness={"seed": 7, "deterministic": True},
    )
    cfg["work_dir"] = str(work)
    if k is not None:
        with pytest.raises(_Stop):
            Runner.from_cfg({**cfg, "custom_hooks": [StopAt(k)]}).train()
        runner = Runner.from_cfg({**cfg, "resume": True})
    else:
        runner = Runner.from_cfg(cfg)
    runner.train()
    return _weights(runner)


@pytest.fixture
def deterministic() -> Any:
    yield
    torch.use_deterministic_algorithms(False)


@pytest.mark.parametrize("loop", ["epoch", "iter"])
def test_resume_after_any_iteration_is_bitwise_equal(
    toy_cfg: Any, tmp_path: Path, loop: str, deterministic: Any
) -> None:
    reference = _resume_case(toy_cfg, tmp_path, loop, None)
    total = 9
    for k in range(1, total):
        resumed = _resume_case(toy_cfg, tmp_path, loop, k)
        for name, value in reference.items():
            assert torch.equal(value, resumed[name]), f"{loop} loop, stopped after iter {k}: {name}"


def test_iter_resume_skips_instead_of_replaying(
    toy_cfg: Any, toy_dataset_cls: Any, deterministic: Any
) -> None:
    """A resume at iteration k loads only the batches after k: none is replayed."""
    from treadle.core.registry import DATASETS

    loads: list[int] = []

    class CountingDataset(toy_dataset_cls):  # type: ignore[misc, valid-type]
        def __getitem__(self, i: int) -> Any:
            loads.append(i)
            return super().__getitem__(i)

    DATASETS.register_module(module=CountingDataset, force=True)
    try:
        cfg = toy_cfg(
            train_cfg={"type": "IterBasedTrainLoop", "max_iters": 9, "val_interval": 100},
            param_scheduler=None,
            val_dataloader=None,
            val_cfg=None,
            val_evaluator=None,
            default_hooks={
                "checkpoint": {"type": "CheckpointHook", "interval": 1, "by_epoch": False}
            },
        )
        cfg["train_dataloader"]["dataset"] = {"type": "CountingDataset"}
        with pytest.raises(_Stop):
            Runner.from_cfg({**cfg, "custom_hooks": [StopAt(5)]}).train()
        assert len(loads) == 5 * 8
        loads.clear()
        Runner.from_cfg({**cfg, "resume": True}).train()
        assert len(loads) == (9 - 5) * 8  # batch size 8; MMEngine would load 9 * 8
    finally:
        DATASETS.unregister("CountingDataset")


def test_bad_inputs_name_what_is_wrong(toy_cfg: Any) -> None:
    cfg = toy_cfg(optim_wrapper=None)
    with pytest.raises(ValueError, match="train_dataloader, train_cfg, optim_wrapper"):
        Runner.from_cfg(cfg)
    cfg = toy_cfg(model={"type": "NoSuchNet"})
    with pytest.raises(KeyError, match="NoSuchNet"):
        Runner.from_cfg(cfg)
    cfg = toy_cfg(train_cfg={"by_epoch": True, "max_epochs": 0})
    with pytest.raises(ValueError, match="max_epochs"):
        Runner.from_cfg(cfg).train()
    with pytest.raises(RuntimeError, match="treadle-dist"):
        Runner.from_cfg(toy_cfg(launcher="pytorch"))
    runner = Runner.from_cfg(toy_cfg(test_dataloader=None))
    with pytest.raises(RuntimeError, match="test_dataloader, test_cfg and test_evaluator"):
        runner.test()


def test_load_from_and_val_only(toy_cfg: Any) -> None:
    trained = Runner.from_cfg(toy_cfg())
    trained.train()
    ckpt = os.path.join(trained.work_dir, "epoch_2.pth")
    cfg = toy_cfg(train_dataloader=None, train_cfg=None, optim_wrapper=None, param_scheduler=None)
    cfg["load_from"] = ckpt
    evaluator = Runner.from_cfg(cfg)
    metrics = evaluator.val()
    assert set(metrics) == {"accuracy/top1", "loss", "val_loss"}  # MMEngine's keys
    for name, value in _weights(evaluator).items():
        assert torch.equal(value, _weights(trained)[name])

"""Parameter schedulers: values against PyTorch's own schedulers and hand-computed schedules,
windows and chaining, momentum (SGD and Adam betas), convert_to_iter_based, state dicts and
resuming, and the errors for bad arguments."""

from __future__ import annotations

import ast
import importlib
import io
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.optim import lr_scheduler as torch_sched

import treadle.core.optim.scheduler as sched_pkg
from treadle.core.optim.scheduler import (
    INF,
    ConstantLR,
    CosineAnnealingLR,
    CosineAnnealingMomentum,
    CosineAnnealingParamScheduler,
    CosineRestartLR,
    CosineRestartMomentum,
    ExponentialLR,
    LinearLR,
    LinearMomentum,
    MultiStepLR,
    MultiStepParamScheduler,
    OneCycleLR,
    OneCycleParamScheduler,
    ParamScheduler,
    PolyLR,
    ReduceOnPlateauLR,
    ReduceOnPlateauMomentum,
    ReduceOnPlateauParamScheduler,
    StepLR,
    StepMomentum,
    StepParamScheduler,
    _ParamScheduler,
)
from treadle.core.optim.scheduler.components import COMPONENTS
from treadle.core.registry import PARAM_SCHEDULERS, Registry, build_scheduler_from_cfg

LRS = (0.1, 0.05)


def make_sgd(lrs: tuple[float, ...] = LRS, momentum: float = 0.9) -> torch.optim.SGD:
    groups = [{"params": [torch.nn.Parameter(torch.zeros(2))], "lr": lr} for lr in lrs]
    return torch.optim.SGD(groups, lr=lrs[0], momentum=momentum)


def make_adam(lrs: tuple[float, ...] = LRS) -> torch.optim.Adam:
    groups = [{"params": [torch.nn.Parameter(torch.zeros(2))], "lr": lr} for lr in lrs]
    return torch.optim.Adam(groups, betas=(0.9, 0.999))


def lrs_of(optimizer: Any, name: str = "lr") -> list[float]:
    return [group[name] for group in optimizer.param_groups]


def assert_close(
    actual: list[list[float]], expected: list[list[float]], rtol: float, atol: float
) -> None:
    """Element-wise closeness of two step x group tables (torch.testing.assert_close's first
    call costs seconds of imports; this is the same check for plain floats)."""
    assert len(actual) == len(expected)
    for step, (row, ref) in enumerate(zip(actual, expected)):
        assert len(row) == len(ref), step
        for value, target in zip(row, ref):
            assert abs(value - target) <= atol + rtol * abs(target), (step, value, target)


def run(optimizer: Any, schedulers: list[Any], steps: int, name: str = "lr") -> list[list[float]]:
    """The value of every group after construction and after each of ``steps`` steps."""
    values = [lrs_of(optimizer, name)]
    for _ in range(steps):
        optimizer.step()
        for scheduler in schedulers:
            scheduler.step()
        values.append(lrs_of(optimizer, name))
    return values


class FakeWrapper:
    """An OptimWrapper look-alike: ``.optimizer`` plus a ``param_groups`` property."""

    def __init__(self, optimizer: torch.optim.Optimizer, base_group: bool = False) -> None:
        self.optimizer = optimizer
        self.base_param_settings = dict(optimizer.defaults) if base_group else None

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        if self.base_param_settings is None:
            return self.optimizer.param_groups
        return [*self.optimizer.param_groups, self.base_param_settings]

    def step(self) -> None:
        self.optimizer.step()


@pytest.fixture
def registry() -> Registry:
    """A private PARAM_SCHEDULERS-like registry filled from components.py."""
    reg = Registry("parameter scheduler", build_func=build_scheduler_from_cfg)
    for name, target in COMPONENTS["PARAM_SCHEDULERS"].items():
        reg.register_lazy(name, target)
    return reg


# ---------------------------------------------------------------------------------------------
# Against PyTorch's schedulers
# ---------------------------------------------------------------------------------------------

TORCH_PAIRS = {
    "step": (lambda o: StepLR(o, step_size=3, gamma=0.5), lambda o: torch_sched.StepLR(o, 3, 0.5)),
    "multistep": (
        lambda o: MultiStepLR(o, milestones=[2, 5, 5, 9], gamma=0.3),
        lambda o: torch_sched.MultiStepLR(o, milestones=[2, 5, 5, 9], gamma=0.3),
    ),
    "constant": (
        lambda o: ConstantLR(o, factor=0.5, end=5),
        lambda o: torch_sched.ConstantLR(o, factor=0.5, total_iters=4),
    ),
    "exponential": (
        lambda o: ExponentialLR(o, gamma=0.9),
        lambda o: torch_sched.ExponentialLR(o, gamma=0.9),
    ),
    "cosine": (
        lambda o: CosineAnnealingLR(o, T_max=10, eta_min=0.001),
        lambda o: torch_sched.CosineAnnealingLR(o, T_max=10, eta_min=0.001),
    ),
    "linear": (
        lambda o: LinearLR(o, start_factor=0.2, end_factor=0.9, end=6),
        lambda o: torch_sched.LinearLR(o, start_factor=0.2, end_factor=0.9, total_iters=5),
    ),
    "poly": (
        lambda o: PolyLR(o, power=2.0, end=9),
        lambda o: torch_sched.PolynomialLR(o, total_iters=8, power=2.0),
    ),
    "onecycle_two_phase_cos": (
        lambda o: OneCycleLR(o, eta_max=[0.5, 0.3], total_steps=30, pct_start=0.3),
        lambda o: torch_sched.OneCycleLR(
            o, max_lr=[0.5, 0.3], total_steps=30, pct_start=0.3, cycle_momentum=False
        ),
    ),
    "onecycle_three_phase_linear": (
        lambda o: OneCycleLR(
            o,
            eta_max=0.5,
            total_steps=30,
            pct_start=0.25,
            anneal_strategy="linear",
            three_phase=True,
            div_factor=10.0,
            final_div_factor=50.0,
        ),
        lambda o: torch_sched.OneCycleLR(
            o,
            max_lr=0.5,
            total_steps=30,
            pct_start=0.25,
            anneal_strategy="linear",
            three_phase=True,
            div_factor=10.0,
            final_div_factor=50.0,
            cycle_momentum=False,
        ),
    ),
    "cosine_restart_equal_periods": (
        lambda o: CosineRestartLR(
            o, periods=[6, 6, 6, 6, 6], restart_weights=[1] * 5, eta_min=0.001
        ),
        lambda o: torch_sched.CosineAnnealingWarmRestarts(o, T_0=6, eta_min=0.001),
    ),
    "cosine_restart_doubling_periods": (
        lambda o: CosineRestartLR(o, periods=[4, 8, 16], restart_weights=[1, 1, 1], eta_min=0.0),
        lambda o: torch_sched.CosineAnnealingWarmRestarts(o, T_0=4, T_mult=2, eta_min=0.0),
    ),
}


@pytest.mark.parametrize("case", sorted(TORCH_PAIRS))
def test_values_equal_pytorch(case):
    ours_factory, torch_factory = TORCH_PAIRS[case]
    ours_opt, torch_opt = make_sgd(), make_sgd()
    # CosineRestartLR's periods end at 30 and 28 steps, where PyTorch would restart again.
    steps = {"cosine_restart_equal_periods": 29, "cosine_restart_doubling_periods": 27}.get(
        case, 30
    )
    ours = run(ours_opt, [ours_factory(ours_opt)], steps)
    theirs = run(torch_opt, [torch_factory(torch_opt)], steps)
    assert_close(ours, theirs, rtol=1e-10, atol=1e-12)
    # Not trivially constant: the schedule really moved.
    assert len({round(v[0], 12) for v in ours}) >= 2


def test_cosine_matches_closed_form_past_t_max():
    opt = make_sgd()
    values = run(opt, [CosineAnnealingLR(opt, T_max=7, eta_min=0.002)], 30)
    for t, row in enumerate(values):
        for base, value in zip(LRS, row):
            expected = 0.002 + (base - 0.002) * (1 + math.cos(math.pi * t / 7)) / 2
            assert value == pytest.approx(expected, rel=1e-10, abs=1e-14), t


def test_cosine_eta_min_ratio():
    opt = make_sgd()
    values = run(opt, [CosineAnnealingLR(opt, T_max=8, eta_min_ratio=0.1)], 8)
    # Each group anneals to a tenth of its own initial value.
    assert values[-1] == pytest.approx([0.01, 0.005], rel=1e-12)
    mid = [0.1 * base + 0.9 * base * (1 + math.cos(math.pi / 2)) / 2 for base in LRS]
    assert values[4] == pytest.approx(mid, rel=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "torch_kwargs"),
    [
        ({}, {}),
        ({"rule": "greater", "patience": 0}, {"mode": "max", "patience": 0}),
        (
            {
                "threshold_rule": "abs",
                "threshold": 0.05,
                "cooldown": 2,
                "patience": 1,
                "factor": 0.5,
            },
            {
                "threshold_mode": "abs",
                "threshold": 0.05,
                "cooldown": 2,
                "patience": 1,
                "factor": 0.5,
            },
        ),
        ({"patience": 1, "min_value": [0.02, 0.03]}, {"patience": 1, "min_lr": [0.02, 0.03]}),
    ],
)
def test_reduce_on_plateau_equals_pytorch(kwargs, torch_kwargs):
    metrics = [1.0, 0.9, 0.91, 0.92, 0.7, 0.71, 0.72, 0.73, 0.74, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6]
    metrics = metrics + [0.6] * 10 + [0.4, 0.45, 0.45, 0.45, 0.45]
    ours_opt, torch_opt = make_sgd(), make_sgd()
    kwargs.setdefault("patience", 2)
    torch_kwargs.setdefault("patience", 2)
    ours = ReduceOnPlateauLR(ours_opt, monitor="acc", **kwargs)
    theirs = torch_sched.ReduceLROnPlateau(torch_opt, **torch_kwargs)
    ours_values, torch_values = [], []
    for metric in metrics:
        ours.step()  # the end of a training epoch: counts, changes nothing
        ours.step({"acc": metric, "other": 0.0})
        theirs.step(metric)
        ours_values.append(lrs_of(ours_opt))
        torch_values.append(lrs_of(torch_opt))
    assert ours_values == torch_values
    assert ours_values[-1] != list(LRS)
    assert ours.get_last_value() == ours_values[-1]


# ---------------------------------------------------------------------------------------------
# Windows and chaining (hand-computed)
# ---------------------------------------------------------------------------------------------


def test_begin_end_window_hand_computed():
    opt = make_sgd((0.1,))
    values = run(opt, [StepLR(opt, step_size=2, gamma=0.5, begin=3, end=8)], 11)
    expected = [0.1] * 5 + [0.05] * 2 + [0.025] * 5
    assert [v[0] for v in values] == pytest.approx(expected, rel=1e-15)


def test_warmup_then_cosine_hand_computed():
    opt = make_sgd((0.1,))
    warmup = LinearLR(opt, start_factor=0.1, end=5, by_epoch=False)
    cosine = CosineAnnealingLR(opt, begin=5, end=15, eta_min=0.0, by_epoch=False)
    assert cosine.T_max == 10
    values = [v[0] for v in run(opt, [warmup, cosine], 20)]
    expected = [0.1 * (0.1 + 0.9 * t / 4) for t in range(5)]
    expected += [0.1 * (1 + math.cos(math.pi * t / 10)) / 2 for t in range(10)]
    expected += [expected[-1]] * 6  # both windows are over: the value stays
    assert values == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_constant_window_restores_at_end():
    opt = make_sgd((0.1,))
    values = [v[0] for v in run(opt, [ConstantLR(opt, factor=0.25, begin=2, end=5)], 7)]
    assert values == pytest.approx([0.1, 0.1, 0.025, 0.025, 0.1, 0.1, 0.1, 0.1], rel=1e-15)


def test_generic_param_scheduler_on_weight_decay():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1, weight_decay=1e-2)
    scheduler = MultiStepParamScheduler(opt, "weight_decay", milestones=[1, 3], gamma=0.1)
    values = [v[0] for v in run(opt, [scheduler], 4, name="weight_decay")]
    assert values == pytest.approx([1e-2, 1e-3, 1e-3, 1e-4, 1e-4], rel=1e-12)
    assert opt.param_groups[0]["initial_weight_decay"] == 1e-2
    assert opt.param_groups[0]["lr"] == 0.1


def test_get_last_value_and_wrapper():
    opt = make_sgd()
    wrapper = FakeWrapper(opt)
    scheduler = ExponentialLR(wrapper, gamma=0.5)
    assert scheduler.optimizer is wrapper
    assert scheduler.get_last_value() == [0.1, 0.05]
    wrapper.step()
    scheduler.step()
    assert scheduler.get_last_value() == [0.05, 0.025] == lrs_of(opt)
    assert isinstance(scheduler, _ParamScheduler)
    assert _ParamScheduler is ParamScheduler


def test_with_treadle_optim_wrapper():
    from treadle.core.optim import OptimWrapper

    opt = make_sgd()
    wrapper = OptimWrapper(opt)
    scheduler = CosineAnnealingLR(wrapper, T_max=4, eta_min=0.0)
    for _ in range(2):
        wrapper.step()
        scheduler.step()
    # The wrapper's extra base group (MMEngine's base_param_settings) is scheduled too.
    assert scheduler.get_last_value() == pytest.approx([0.05, 0.025, 0.05])
    assert wrapper.get_lr() == {
        "base_lr": pytest.approx([0.05]),
        "lr": pytest.approx([0.05, 0.025]),
    }
    plateau = ReduceOnPlateauLR(wrapper, min_value=[0.01, 0.02])
    assert plateau.min_values == [0.01, 0.02, 0.02]

    adam_wrapper = OptimWrapper(make_adam())
    momentum = StepMomentum(adam_wrapper, step_size=1, gamma=0.5)
    adam_wrapper.step()
    momentum.step()
    assert [g["betas"] for g in adam_wrapper.param_groups] == [(0.45, 0.999)] * 3


# ---------------------------------------------------------------------------------------------
# Momentum
# ---------------------------------------------------------------------------------------------


def test_sgd_momentum_schedule():
    opt = make_sgd(momentum=0.9)
    values = run(opt, [StepMomentum(opt, step_size=2, gamma=0.5)], 5, name="momentum")
    assert [v[0] for v in values] == pytest.approx([0.9, 0.9, 0.45, 0.45, 0.225, 0.225])
    assert lrs_of(opt) == list(LRS)  # the learning rate is untouched


def test_adam_betas_momentum_schedule():
    opt = make_adam()
    scheduler = LinearMomentum(opt, start_factor=0.5, end=3)
    assert scheduler.use_betas
    assert scheduler.state_dict()["use_betas"] is True
    seen = [[g["betas"] for g in opt.param_groups]]
    for _ in range(3):
        for group in opt.param_groups:
            group["params"][0].grad = torch.ones(2)
        opt.step()  # Adam still works with the rewritten betas tuple
        scheduler.step()
        seen.append([g["betas"] for g in opt.param_groups])
    first = [[pytest.approx(b[0]) for b in row] for row in seen]
    assert first == [[0.45] * 2, [0.675] * 2, [0.9] * 2, [0.9] * 2]
    assert all(b[1] == 0.999 for row in seen for b in row)
    assert all(isinstance(b, tuple) for row in seen for b in row)
    assert [g["momentum"] for g in opt.param_groups] == pytest.approx([0.9, 0.9])


def test_adam_momentum_through_wrapper_and_cosine():
    opt = make_adam((0.01,))
    scheduler = CosineAnnealingMomentum(FakeWrapper(opt), T_max=4, eta_min=0.8)
    betas = []
    for _ in range(4):
        opt.step()
        scheduler.step()
        betas.append(opt.param_groups[0]["betas"][0])
    expected = [0.8 + 0.1 * (1 + math.cos(math.pi * t / 4)) / 2 for t in range(1, 5)]
    assert betas == pytest.approx(expected, rel=1e-12)


def test_reduce_on_plateau_momentum_adam():
    opt = make_adam((0.01,))
    scheduler = ReduceOnPlateauMomentum(opt, monitor="loss", patience=0, factor=0.5)
    scheduler.step({"loss": 1.0})
    scheduler.step({"loss": 2.0})
    assert opt.param_groups[0]["betas"] == pytest.approx((0.45, 0.999))
    assert scheduler.get_last_value() == pytest.approx([0.45])


def test_momentum_needs_momentum_or_betas():
    opt = torch.optim.Adagrad([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(ValueError, match=r"StepMomentum needs an optimizer with momentum.*Adagrad"):
        StepMomentum(opt, step_size=1)
    with pytest.raises(TypeError, match="do not pass param_name"):
        CosineRestartMomentum(make_sgd(), param_name="momentum", periods=[2], eta_min=0.0)


# ---------------------------------------------------------------------------------------------
# convert_to_iter_based
# ---------------------------------------------------------------------------------------------


def test_build_iter_from_epoch_scales_every_count():
    opt = make_sgd()
    step = StepLR.build_iter_from_epoch(opt, step_size=2, begin=1, end=5, epoch_length=4)
    assert (step.step_size, step.begin, step.end, step.by_epoch) == (8, 4, 20, False)
    multi = MultiStepLR.build_iter_from_epoch(opt, milestones=[1, 3], epoch_length=5)
    assert dict(multi.milestones) == {5: 1, 15: 1}
    assert multi.end == INF
    cosine = CosineAnnealingLR.build_iter_from_epoch(opt, begin=1, end=4, epoch_length=10)
    assert (cosine.T_max, cosine.begin, cosine.end) == (30, 10, 40)
    cosine = CosineAnnealingLR.build_iter_from_epoch(opt, T_max=2, epoch_length=10)
    assert cosine.T_max == 20
    cycle = OneCycleLR.build_iter_from_epoch(make_sgd(), eta_max=1.0, total_steps=3, epoch_length=7)
    assert cycle.total_steps == 21
    restart = CosineRestartLR.build_iter_from_epoch(
        opt, periods=[1, 2], restart_weights=[1, 0.5], eta_min=0.0, begin=0.5, epoch_length=4
    )
    assert (restart.periods, restart.cumulative_periods, restart.begin) == ([4, 8], [4, 12], 2)


def test_convert_to_iter_based_through_registry(registry):
    opt = make_sgd((0.1,))
    scheduler = registry.build(
        {"type": "MultiStepLR", "milestones": [1, 3], "end": 4, "convert_to_iter_based": True},
        default_args={"optimizer": opt, "epoch_length": 3},
    )
    assert isinstance(scheduler, MultiStepLR)
    assert not scheduler.by_epoch
    values = [v[0] for v in run(opt, [scheduler], 14)]
    expected = [0.1] * 3 + [0.01] * 6 + [0.001] * 6
    assert values == pytest.approx(expected, rel=1e-12)
    # Without the flag, epoch_length from default_args is dropped and nothing is converted.
    plain = registry.build(
        {"type": "StepLR", "step_size": 2},
        default_args={"optimizer": make_sgd(), "epoch_length": 3},
    )
    assert (plain.step_size, plain.by_epoch) == (2, True)


def test_convert_errors(registry):
    opt = make_sgd()
    with pytest.raises(ValueError, match=r"by_epoch=True.*got by_epoch=False"):
        StepLR.build_iter_from_epoch(opt, step_size=1, by_epoch=False, epoch_length=3)
    for bad in (None, 0, -2, 1.5, True):
        with pytest.raises(ValueError, match=r"epoch_length must be a positive integer"):
            LinearLR.build_iter_from_epoch(opt, end=2, epoch_length=bad)
    with pytest.raises(TypeError, match=r"needs 'step_size' as a keyword argument"):
        StepLR.build_iter_from_epoch(opt, epoch_length=3)
    with pytest.raises(ValueError, match=r"ReduceOnPlateauLR cannot be converted"):
        ReduceOnPlateauLR.build_iter_from_epoch(opt, epoch_length=3)
    with pytest.raises(ValueError, match="epoch_length"):
        registry.build(
            {"type": "StepLR", "step_size": 1, "convert_to_iter_based": True},
            default_args={"optimizer": opt},
        )
    with pytest.raises(ValueError, match="by_epoch"):
        registry.build(
            {"type": "StepLR", "step_size": 1, "by_epoch": False, "convert_to_iter_based": True},
            default_args={"optimizer": opt, "epoch_length": 2},
        )


# ---------------------------------------------------------------------------------------------
# State dicts and resuming
# ---------------------------------------------------------------------------------------------

# Keys of MMEngine 0.10.7's state_dict() for each scheduler (recorded from mmengine).
_COMMON = {"param_name", "begin", "end", "by_epoch", "base_values", "last_step", "_global_step",
           "verbose", "_last_value"}  # fmt: skip
MMENGINE_KEYS = {
    "StepLR": _COMMON | {"step_size", "gamma"},
    "MultiStepLR": _COMMON | {"milestones", "gamma"},
    "ConstantLR": _COMMON | {"factor", "total_iters"},
    "ExponentialLR": _COMMON | {"gamma"},
    "CosineAnnealingLR": _COMMON | {"T_max", "eta_min", "eta_min_ratio"},
    "LinearLR": _COMMON | {"start_factor", "end_factor", "total_iters"},
    "PolyLR": _COMMON | {"eta_min", "power", "total_iters"},
    # MMEngine also saves "anneal_func" (a function); treadle leaves it out (weights_only).
    "OneCycleLR": _COMMON
    | {"eta_max", "div_factor", "final_div_factor", "total_steps", "_schedule_phases"},
    "CosineRestartLR": _COMMON
    | {"periods", "eta_min", "eta_min_ratio", "restart_weights", "cumulative_periods"},
    "ReduceOnPlateauLR": {
        "param_name",
        "begin",
        "end",
        "by_epoch",
        "last_step",
        "_global_step",
        "verbose",
        "factor",
        "min_values",
        "patience",
        "cooldown",
        "cooldown_counter",
        "rule_worse",
        "best",
        "num_bad_epochs",
        "eps",
        "monitor",
        "rule",
        "threshold",
        "threshold_rule",
        "_last_value",
    },
    "StepMomentum": _COMMON | {"use_betas", "step_size", "gamma"},
}

RESUMABLE = {
    "StepLR": {"step_size": 3, "gamma": 0.5},
    "MultiStepLR": {"milestones": [2, 6, 6], "gamma": 0.5},
    "ConstantLR": {"factor": 0.5, "end": 9},
    "ExponentialLR": {"gamma": 0.9},
    "CosineAnnealingLR": {"T_max": 12, "eta_min_ratio": 0.05},
    "LinearLR": {"start_factor": 0.1, "end": 10},
    "PolyLR": {"power": 1.5, "eta_min": 0.001, "end": 15},
    "OneCycleLR": {"eta_max": 0.6, "total_steps": 20, "three_phase": True},
    "CosineRestartLR": {"periods": [4, 6, 8], "restart_weights": [1, 0.6, 0.3], "eta_min": 0.001},
    "StepMomentum": {"step_size": 2, "gamma": 0.8},
}


def _build(name: str, optimizer: Any) -> Any:
    return getattr(sched_pkg, name)(optimizer, **RESUMABLE[name])


@pytest.mark.parametrize("name", sorted(MMENGINE_KEYS))
def test_state_dict_keys_match_mmengine(name):
    opt = make_sgd()
    if name == "ReduceOnPlateauLR":
        scheduler = ReduceOnPlateauLR(opt, monitor="loss")
    else:
        scheduler = _build(name, opt)
    state = scheduler.state_dict()
    assert set(state) == MMENGINE_KEYS[name]
    # Plain values only: a checkpoint holding it loads with weights_only=True.
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    assert torch.load(buffer, weights_only=True) == state


@pytest.mark.parametrize("name", sorted(RESUMABLE))
@pytest.mark.parametrize("stop", [0, 5])
def test_resume_mid_way_gives_identical_values(name, stop):
    param = "momentum" if "Momentum" in name else "lr"
    total = 18
    reference_opt = make_sgd()
    reference = run(reference_opt, [_build(name, reference_opt)], total, param)

    opt = make_sgd()
    scheduler = _build(name, opt)
    run(opt, [scheduler], stop, param)
    buffer = io.BytesIO()
    torch.save({"optimizer": opt.state_dict(), "scheduler": scheduler.state_dict()}, buffer)
    buffer.seek(0)
    checkpoint = torch.load(buffer, weights_only=True)

    resumed_opt = make_sgd()
    resumed = _build(name, resumed_opt)  # construction steps the fresh optimizer once
    resumed_opt.load_state_dict(checkpoint["optimizer"])
    resumed.load_state_dict(checkpoint["scheduler"])
    assert resumed.get_last_value() == reference[stop]
    after = run(resumed_opt, [resumed], total - stop, param)
    assert after == reference[stop:]


def test_resume_reduce_on_plateau():
    metrics = [1.0, 0.9, 0.95, 0.96, 0.97, 0.5, 0.6, 0.6, 0.6, 0.6]

    def play(scheduler: Any, optimizer: Any, values: list[float]) -> list[list[float]]:
        out = []
        for metric in values:
            scheduler.step()
            scheduler.step({"loss": torch.tensor(metric)})  # a 0-dim tensor metric is fine
            out.append(lrs_of(optimizer))
        return out

    ref_opt = make_sgd()
    reference = play(ReduceOnPlateauLR(ref_opt, patience=1, cooldown=1), ref_opt, metrics)
    opt = make_sgd()
    scheduler = ReduceOnPlateauLR(opt, patience=1, cooldown=1)
    play(scheduler, opt, metrics[:4])
    state = scheduler.state_dict()
    assert isinstance(state["best"], float)
    new_opt = make_sgd()
    new_opt.load_state_dict(opt.state_dict())
    resumed = ReduceOnPlateauLR(new_opt, patience=1, cooldown=1)
    resumed.load_state_dict(state)
    assert play(resumed, new_opt, metrics[4:]) == reference[4:]


def test_resume_with_last_step_without_state_dict():
    opt = make_sgd()
    first = StepLR(opt, step_size=2, gamma=0.5)
    run(opt, [first], 3)
    # initial_lr is in the groups now, so a scheduler may pick up with last_step.
    again = StepLR(opt, step_size=2, gamma=0.5, last_step=2)
    assert again.base_values == list(LRS)
    assert again.last_step == 3


def test_load_state_dict_checks():
    scheduler = StepLR(make_sgd(), step_size=1)
    with pytest.raises(TypeError, match="state_dict must be a mapping"):
        scheduler.load_state_dict([1, 2])  # type: ignore[arg-type]
    momentum_state = StepMomentum(make_sgd(), step_size=1).state_dict()
    with pytest.raises(ValueError, match=r"param_name='momentum'.*schedules 'lr'"):
        scheduler.load_state_dict(momentum_state)


def test_state_dict_is_a_copy():
    opt = make_sgd()
    scheduler = MultiStepLR(opt, milestones=[1])
    state = scheduler.state_dict()
    assert type(state["milestones"]) is dict
    state["base_values"].append(123.0)
    state["milestones"][7] = 1
    assert scheduler.base_values == list(LRS)
    assert 7 not in scheduler.milestones
    scheduler.load_state_dict(state)
    assert scheduler.milestones[7] == 1
    assert type(scheduler.milestones).__name__ == "Counter"


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


def test_begin_must_be_before_end():
    with pytest.raises(ValueError, match=r"StepLR: end must be larger than begin.*begin=5, end=5"):
        StepLR(make_sgd(), step_size=1, begin=5, end=5)
    with pytest.raises(ValueError, match=r"begin=7, end=3"):
        ReduceOnPlateauLR(make_sgd(), begin=7, end=3)


def test_bad_param_name():
    with pytest.raises(KeyError, match=r"param_name='foo'.*param_groups\[0\].*lr"):
        StepParamScheduler(make_sgd(), "foo", step_size=1)
    with pytest.raises(KeyError, match=r"param_name='momentum'.*param_groups\[0\]"):
        CosineAnnealingParamScheduler(make_adam(), "momentum", T_max=3)
    with pytest.raises(TypeError, match="param_name must be a non-empty string"):
        StepParamScheduler(make_sgd(), None, step_size=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="do not pass param_name"):
        StepLR(make_sgd(), param_name="lr", step_size=1)


def test_optimizer_checks():
    with pytest.raises(TypeError, match=r"optimizer must be a torch.optim.Optimizer.*got dict"):
        StepLR({"lr": 0.1}, step_size=1)  # type: ignore[arg-type]
    with pytest.raises(KeyError, match=r"last_step=4 needs 'initial_lr'.*param_groups\[0\]"):
        StepLR(make_sgd(), step_size=1, last_step=4)
    with pytest.raises(ValueError, match="last_step must be an integer >= -1"):
        StepLR(make_sgd(), step_size=1, last_step=-2)


def test_argument_range_errors():
    opt = make_sgd()
    cases = [
        (lambda: StepLR(opt, step_size=0), ValueError, "step_size must be a positive number"),
        (lambda: MultiStepLR(opt, milestones=3), TypeError, "milestones must be a list"),
        (lambda: MultiStepLR(opt, milestones=[1.5]), TypeError, "milestones must be a list"),
        (lambda: ConstantLR(opt, factor=0), ValueError, r"factor must be in \(0, 1\]"),
        (lambda: ConstantLR(opt, factor=1.5), ValueError, r"factor must be in \(0, 1\]"),
        (lambda: LinearLR(opt, start_factor=0), ValueError, "start_factor must be in"),
        (lambda: LinearLR(opt, end_factor=2), ValueError, "end_factor must be in"),
        (
            lambda: CosineAnnealingLR(opt, T_max=5, eta_min=0.0, eta_min_ratio=0.1),
            ValueError,
            "exactly one of eta_min and eta_min_ratio",
        ),
        (
            lambda: CosineRestartLR(opt, periods=[2, 3], restart_weights=[1], eta_min=0.0),
            ValueError,
            "same length",
        ),
        (
            lambda: CosineRestartLR(opt, periods=[2]),
            ValueError,
            "exactly one of eta_min and eta_min_ratio",
        ),
        (
            lambda: CosineRestartLR(opt, periods=[0], eta_min=0.0),
            ValueError,
            "every period must be a positive number",
        ),
        (
            lambda: OneCycleParamScheduler(opt, "momentum", eta_max=1.0, total_steps=3),
            ValueError,
            "param_name='momentum'",
        ),
        (lambda: OneCycleLR(opt, eta_max=1.0, total_steps=0), ValueError, "total_steps"),
        (lambda: OneCycleLR(opt, eta_max=1.0, end=9, pct_start=2.0), ValueError, "pct_start"),
        (
            lambda: OneCycleLR(opt, eta_max=1.0, end=9, anneal_strategy="exp"),
            ValueError,
            "anneal_strategy",
        ),
        (lambda: OneCycleLR(opt, eta_max=[1.0], end=9), ValueError, "eta_max has 1 values"),
        (lambda: ReduceOnPlateauLR(opt, factor=1.0), ValueError, "factor must be < 1.0"),
        (lambda: ReduceOnPlateauLR(opt, rule="max"), ValueError, "rule must be"),
        (lambda: ReduceOnPlateauLR(opt, threshold_rule="x"), ValueError, "threshold_rule"),
        (lambda: ReduceOnPlateauLR(opt, threshold=-1), ValueError, "threshold must be >= 0"),
        (lambda: ReduceOnPlateauLR(opt, min_value=[0.1]), ValueError, "min_value has 1"),
        (lambda: ReduceOnPlateauLR(opt, by_epoch=False), ValueError, "only by_epoch=True"),
    ]
    for build, error, message in cases:
        with pytest.raises(error, match=message):
            build()


def test_one_cycle_cannot_step_past_total_steps():
    opt = make_sgd()
    scheduler = OneCycleLR(opt, eta_max=1.0, total_steps=3)
    for _ in range(3):
        scheduler.step()
    with pytest.raises(ValueError, match=r"tried to step 5 times, but total_steps is 3"):
        scheduler.step()


def test_reduce_on_plateau_metric_errors():
    scheduler = ReduceOnPlateauLR(make_sgd(), monitor="acc")
    with pytest.raises(KeyError, match=r"monitor='acc' is not among the validation metrics"):
        scheduler.step({"loss": 1.0})
    with pytest.raises(TypeError, match="metrics must be a dict"):
        scheduler.step([1.0])  # type: ignore[arg-type]


def test_reduce_on_plateau_wrapper_base_group():
    opt = make_sgd()
    scheduler = ReduceOnPlateauLR(FakeWrapper(opt, base_group=True), min_value=[0.01, 0.02])
    assert scheduler.min_values == [0.01, 0.02, 0.02]
    assert scheduler.need_val_args is True
    assert not getattr(StepLR(opt, step_size=1), "need_val_args", False)


def test_verbose_logs_the_new_value(capsys):
    from treadle.core.logging import TreadleLogger

    TreadleLogger.get_instance("test_scheduler_verbose", log_level="INFO")
    opt = make_sgd((0.1,))
    scheduler = ExponentialLR(opt, gamma=0.5, verbose=True)
    scheduler.step()
    out = capsys.readouterr()
    assert "Adjusting parameter value of group 0 to 5.0000e-02." in out.out + out.err


# ---------------------------------------------------------------------------------------------
# Registration and imports
# ---------------------------------------------------------------------------------------------


def test_components_list_every_scheduler():
    table = COMPONENTS["PARAM_SCHEDULERS"]
    assert len(table) == 29
    exported = {name for name in sched_pkg.__all__ if name in table}
    assert exported == set(table)
    for name, target in table.items():
        module_name, attr = target.split(":")
        cls = getattr(importlib.import_module(module_name), attr)
        assert cls.__name__ == name
        assert issubclass(cls, ParamScheduler)
        assert getattr(sched_pkg, name) is cls
    source = Path(sys.modules["treadle.core.optim.scheduler.components"].__file__).read_text()
    assert not [
        n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Import | ast.ImportFrom)
    ]


def test_build_through_root_registry():
    from treadle.core.plugins import load_plugins

    load_plugins()
    added = []
    for name, target in COMPONENTS["PARAM_SCHEDULERS"].items():
        if name not in PARAM_SCHEDULERS:  # until the built-in plugin registers them
            PARAM_SCHEDULERS.register_lazy(name, target)
            added.append(name)
    try:
        opt = make_sgd()
        scheduler = PARAM_SCHEDULERS.build(
            {"type": "CosineAnnealingLR", "T_max": 3, "end": 6, "convert_to_iter_based": True},
            default_args={"optimizer": opt, "epoch_length": 2},
        )
        assert isinstance(scheduler, CosineAnnealingLR)
        assert (scheduler.T_max, scheduler.end, scheduler.by_epoch) == (6, 12, False)
        plateau = PARAM_SCHEDULERS.build(
            {"type": "ReduceOnPlateauParamScheduler", "param_name": "lr", "monitor": "acc"},
            default_args={"optimizer": opt},
        )
        assert isinstance(plateau, ReduceOnPlateauParamScheduler)
    finally:
        for name in added:
            PARAM_SCHEDULERS.unregister(name)


def test_imports_stay_light():
    # Discovery reads components.py: that imports no scheduler module (and no torch).
    code = (
        "import sys, treadle.core.optim.scheduler.components;"
        "assert 'treadle.core.optim.scheduler.param_scheduler' not in sys.modules;"
        "from treadle.core.optim.scheduler import StepLR, StepMomentum;"
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    with pytest.raises(AttributeError, match="has no attribute 'NoSuchLR'"):
        sched_pkg.NoSuchLR

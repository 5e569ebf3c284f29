# ruff: noqa: C408  (configs are written dict(...) as in MMEngine config files)
"""Averaged models: EMA, momentum-annealing EMA and SWA against hand-computed values."""

from __future__ import annotations

import copy
import logging

import pytest
import torch
from torch import nn

from treadle.core import plugins, registry
from treadle.core.logging import TreadleLogger
from treadle.core.model import (
    BaseAveragedModel,
    ExponentialMovingAverage,
    MomentumAnnealingEMA,
    StochasticWeightAverage,
)
from treadle.core.model.components import COMPONENTS


def assert_close(actual, expected, rtol=1.3e-6, atol=1e-5, msg=""):
    """A light torch.testing.assert_close (whose first call imports torch.distributed.tensor,
    seconds of import time)."""
    assert isinstance(actual, torch.Tensor), f"{msg} not a tensor: {type(actual)}"
    assert actual.shape == expected.shape, f"{msg} shape {actual.shape} != {expected.shape}"
    assert actual.dtype == expected.dtype, f"{msg} dtype {actual.dtype} != {expected.dtype}"
    assert actual.device == expected.device, f"{msg} device {actual.device} != {expected.device}"
    ok = torch.allclose(actual, expected, rtol=rtol, atol=atol, equal_nan=True)
    assert ok, (
        f"{msg} values differ (max |diff| {(actual - expected).abs().max().item()}):\n{actual}\n{expected}"
    )


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)
        self.bn = nn.BatchNorm1d(2)


def _set(model, value):
    """Give every float parameter the value ``value`` and the BN running mean ``-value``."""
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(value)
        model.bn.running_mean.fill_(-value)
        model.bn.num_batches_tracked.fill_(int(value))


def _ema_value(momentum, values, interval=1):
    """EMA of a scalar sequence the way update_parameters does it."""
    avg = None
    for step, v in enumerate(values):
        if step == 0:
            avg = v
        elif step % interval == 0:
            avg = (1 - momentum) * avg + momentum * v
    return avg


def test_ema_after_k_updates_matches_hand_computation():
    src = Net()
    ema = ExponentialMovingAverage(src, momentum=0.1)
    values = [1.0, 2.0, 4.0, 8.0]
    for v in values:
        _set(src, v)
        ema.update_parameters(src)
    expected = _ema_value(0.1, values)  # 1 -> 1.1 -> 1.39 -> 2.051
    assert expected == pytest.approx(2.051)
    for p in ema.module.parameters():
        assert_close(p, torch.full_like(p, expected))
    # buffers are copied, not averaged
    assert_close(ema.module.bn.running_mean, torch.full((2,), -8.0))
    assert ema.module.bn.num_batches_tracked.item() == 8
    assert ema.steps.item() == 4
    assert not any(p.requires_grad for p in ema.module.parameters())
    assert all(p.requires_grad for p in src.parameters())


def test_ema_interval_skips_updates():
    src = Net()
    ema = ExponentialMovingAverage(src, momentum=0.5, interval=2)
    values = [1.0, 3.0, 5.0, 7.0, 9.0]
    for v in values:
        _set(src, v)
        ema.update_parameters(src)
    # step 0 copies 1; steps 2 and 4 average: (1+5)/2 = 3, (3+9)/2 = 6
    assert _ema_value(0.5, values, interval=2) == 6.0
    assert_close(ema.module.fc.weight, torch.full((2, 2), 6.0))


def test_ema_update_buffers_averages_float_buffers_only():
    src = Net()
    ema = ExponentialMovingAverage(src, momentum=0.25, update_buffers=True)
    for v in [4.0, 8.0]:
        _set(src, v)
        ema.update_parameters(src)
    assert_close(ema.module.fc.bias, torch.full((2,), 5.0))
    assert_close(ema.module.bn.running_mean, torch.full((2,), -5.0))
    # integer buffers are copied at the first update only (as in MMEngine)
    assert ema.module.bn.num_batches_tracked.item() == 4


def test_momentum_annealing_ema():
    src = Net()
    ema = MomentumAnnealingEMA(src, momentum=0.1, gamma=4)
    values = [0.0, 10.0, 20.0, 30.0]
    for v in values:
        _set(src, v)
        ema.update_parameters(src)
    avg = 0.0
    for step, v in enumerate(values[1:], start=1):
        m = max(0.1, 4 / (4 + step))  # 0.8, 0.667, 0.571
        avg = (1 - m) * avg + m * v
    assert_close(ema.module.fc.weight, torch.full((2, 2), avg))
    with pytest.raises(ValueError, match="gamma must be greater than 0"):
        MomentumAnnealingEMA(src, gamma=0)


def test_swa_is_the_mean_of_the_sampled_weights():
    src = Net()
    swa = StochasticWeightAverage(src, interval=2)
    values = [1.0, 100.0, 3.0, 100.0, 8.0]
    for v in values:
        _set(src, v)
        swa.update_parameters(src)
    assert_close(swa.module.fc.weight, torch.full((2, 2), (1 + 3 + 8) / 3))


def test_momentum_checks_and_warning():
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    logger = TreadleLogger.get_current_instance()
    handler = Keep()
    logger.addHandler(handler)
    try:
        ExponentialMovingAverage(Net(), momentum=0.9)
    finally:
        logger.removeHandler(handler)
    assert any("usually a small number" in r.getMessage() for r in records)
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match=r"momentum must be in range \(0.0, 1.0\)"):
            ExponentialMovingAverage(Net(), momentum=bad)
    with pytest.raises(ValueError, match="interval must be a positive integer"):
        ExponentialMovingAverage(Net(), interval=0)


def test_state_dict_layout_and_round_trip():
    src = Net()
    ema = ExponentialMovingAverage(src, momentum=0.5)
    for v in [1.0, 3.0, 5.0]:
        _set(src, v)
        ema.update_parameters(src)
    state = ema.state_dict()
    assert list(state) == [
        "steps",
        "module.fc.weight",
        "module.fc.bias",
        "module.bn.weight",
        "module.bn.bias",
        "module.bn.running_mean",
        "module.bn.running_var",
        "module.bn.num_batches_tracked",
    ]
    assert state["steps"].dtype == torch.long
    assert state["steps"].item() == 3

    resumed = ExponentialMovingAverage(Net(), momentum=0.5)
    resumed.load_state_dict(state)
    assert resumed.steps.item() == 3
    # the next update averages (it does not copy as a fresh step 0 would)
    _set(src, 7.0)
    resumed.update_parameters(src)
    ema.update_parameters(src)
    assert_close(resumed.module.fc.weight, ema.module.fc.weight)
    assert_close(resumed.module.fc.weight, torch.full((2, 2), 5.25))  # 1, 2, 3.5, 5.25


def test_forward_runs_the_averaged_copy():
    src = nn.Linear(2, 1)
    ema = ExponentialMovingAverage(src, momentum=0.5)
    ema.update_parameters(src)
    with torch.no_grad():
        src.weight.add_(1.0)
    x = torch.ones(3, 2)
    assert_close(ema(x), src(x) - 2.0)


def test_device_move_keeps_averaging_live_tensors():
    src = Net()
    ema = ExponentialMovingAverage(src, momentum=0.5, update_buffers=True)
    ema.to(torch.float64)
    _set(src, 2.0)
    ema.update_parameters(src)
    assert ema.module.bn.running_mean.dtype == torch.float64
    assert_close(ema.module.bn.running_mean, torch.full((2,), -2.0, dtype=torch.float64))


def test_base_class_needs_avg_func():
    class Copy(BaseAveragedModel):
        def avg_func(self, averaged_param, source_param, steps):
            averaged_param.copy_(source_param)

    src = Net()
    avg = Copy(copy.deepcopy(src), interval=1)
    _set(src, 3.0)
    avg.update_parameters(src)
    avg.update_parameters(src)
    assert_close(avg.module.fc.weight, torch.full((2, 2), 3.0))


def test_built_from_models_registry():
    plugins.load_plugins()
    added = []
    for name, target in COMPONENTS["MODELS"].items():
        if name not in registry.MODELS:
            registry.MODELS.register_lazy(name, target)
            added.append(name)
    try:
        ema = registry.MODELS.build(
            dict(type="ExponentialMovingAverage", momentum=0.01), default_args=dict(model=Net())
        )
        assert isinstance(ema, ExponentialMovingAverage)
        assert ema.momentum == 0.01
        swa = registry.MODELS.build(dict(type="StochasticWeightAverage", model=Net()))
        assert isinstance(swa, StochasticWeightAverage)
        anneal = registry.MODELS.build(dict(type="MomentumAnnealingEMA", model=Net(), gamma=7))
        assert anneal.gamma == 7
    finally:
        for name in added:
            registry.MODELS.unregister(name)


def test_steps_buffer_is_the_source_of_truth():
    src = Net()
    ema = ExponentialMovingAverage(src, momentum=0.5)
    _set(src, 2.0)
    ema.update_parameters(src)
    ema.steps.zero_()  # e.g. restarting the average by hand: the next update copies again
    _set(src, 6.0)
    ema.update_parameters(src)
    assert_close(ema.module.fc.weight, torch.full((2, 2), 6.0))
    assert ema.steps.item() == 1

# ruff: noqa: C408  (configs are written dict(...) as in MMEngine config files)
"""The momentum mixin's ``step`` cooperates through the MRO; the constructor resolves the optimizer
type once."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from treadle.core.optim import DefaultOptimWrapperConstructor
from treadle.core.optim.scheduler.momentum_scheduler import (
    MomentumSchedulerMixin,
    ReduceOnPlateauMomentum,
)
from treadle.core.optim.scheduler.param_scheduler import ReduceOnPlateauParamScheduler
from treadle.core.registry import Registry


def test_reduce_on_plateau_momentum_steps_through_the_mixin():
    assert "step" not in ReduceOnPlateauMomentum.__dict__
    calls = []

    class Recording(ReduceOnPlateauParamScheduler):
        def step(self, metrics=None):  # type: ignore[no-untyped-def]
            calls.append(metrics)
            super().step(metrics)

    class Momentum(MomentumSchedulerMixin, Recording):
        pass

    param = nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([param], lr=0.01, betas=(0.9, 0.999))
    scheduler = Momentum(opt, monitor="loss", patience=0, factor=0.5)
    scheduler.step({"loss": 1.0})
    scheduler.step(metrics={"loss": 2.0})
    scheduler.step()
    assert calls == [{"loss": 1.0}, {"loss": 2.0}, None]
    assert opt.param_groups[0]["betas"] == pytest.approx((0.45, 0.999))


def test_constructor_resolves_the_optimizer_type_once(monkeypatch):
    looked_up = []
    original = Registry.get

    def counting_get(self, key):  # type: ignore[no-untyped-def]
        if key == "SGD":
            looked_up.append(self.name)
        return original(self, key)

    monkeypatch.setattr(Registry, "get", counting_get)
    model = nn.Sequential(nn.Linear(2, 2), nn.LayerNorm(2))
    constructor = DefaultOptimWrapperConstructor(
        dict(optimizer=dict(type="SGD", lr=0.1, weight_decay=1e-4)),
        paramwise_cfg=dict(norm_decay_mult=0.0, custom_keys={"0.": dict(lr_mult=0.5)}),
    )
    wrapper = constructor(model)
    assert isinstance(wrapper.optimizer, torch.optim.SGD)
    assert looked_up == ["optimizer"]
    assert constructor.optimizer_cfg["type"] == "SGD"  # the constructor's own config is kept
    assert [(g["lr"], g["weight_decay"]) for g in wrapper.optimizer.param_groups] == [
        (0.05, 1e-4),
        (0.05, 1e-4),
        (0.1, 0.0),
        (0.1, 0.0),
    ]

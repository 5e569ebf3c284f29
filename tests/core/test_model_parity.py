# ruff: noqa: C408  (configs are written dict(...) as in MMEngine config files)
"""treadle's model components against outputs recorded from MMEngine 0.10.7.

The fixture ``fixtures/model/mmengine_parity.pt`` was written by
``fixtures/model/record_mmengine_parity.py`` in an environment with mmengine==0.10.7; it holds
the inputs too, so this test needs no MMEngine.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from treadle.core import plugins, registry
from treadle.core.model import (
    BaseModel,
    BaseModule,
    ExponentialMovingAverage,
    ImgDataPreprocessor,
    MomentumAnnealingEMA,
    StochasticWeightAverage,
    initialize,
    stack_batch,
)
from treadle.core.model.components import COMPONENTS

FIXTURE = Path(__file__).parent / "fixtures" / "model" / "mmengine_parity.pt"


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


@pytest.fixture(scope="module")
def record():
    return torch.load(FIXTURE, weights_only=True)


@pytest.fixture(autouse=True, scope="module")
def _model_components():
    """Register the model components unless the built-in plugin already does."""
    plugins.load_plugins()
    added = []
    for registry_name, entries in COMPONENTS.items():
        reg = getattr(registry, registry_name)
        for name, target in entries.items():
            if name not in reg:
                reg.register_lazy(name, target)
                added.append((reg, name))
    yield
    for reg, name in added:
        reg.unregister(name)


def test_fixture_comes_from_mmengine_0_10_7(record):
    assert record["mmengine_version"] == "0.10.7"


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)
        self.bn = nn.BatchNorm1d(2)


EMA_CASES = {
    "ema": (ExponentialMovingAverage, dict(momentum=0.1)),
    "ema_buffers": (ExponentialMovingAverage, dict(momentum=0.25, update_buffers=True)),
    "ema_interval": (ExponentialMovingAverage, dict(momentum=0.3, interval=2)),
    "annealing": (MomentumAnnealingEMA, dict(momentum=0.01, gamma=3)),
    "swa": (StochasticWeightAverage, dict(interval=2)),
}


@pytest.mark.parametrize("case", sorted(EMA_CASES))
def test_averaged_models_match_mmengine(record, case):
    cls, kwargs = EMA_CASES[case]
    recorded = record["ema"][case]
    src = Net()
    averaged = cls(src, **kwargs)
    for source_state in recorded["sources"]:
        src.load_state_dict(source_state)
        averaged.update_parameters(src)
    state = averaged.state_dict()
    assert list(state) == recorded["keys"]
    for key, expected in recorded["state_dict"].items():
        assert_close(state[key], expected, rtol=0, atol=0, msg=key)


def test_mmengine_ema_state_dict_loads_into_treadle(record):
    recorded = record["ema"]["ema"]
    ema = ExponentialMovingAverage(Net(), momentum=0.1)
    ema.load_state_dict(recorded["state_dict"])
    assert ema.steps.item() == len(recorded["sources"])
    assert_close(ema.module.fc.weight, recorded["state_dict"]["module.fc.weight"])


@pytest.mark.parametrize(
    "case",
    [
        "list_norm_bgr_pad",
        "list_plain",
        "list_int_mean",
        "tensor_norm_rgb_pad",
        "tensor_plain",
        "gray",
    ],
)
def test_img_data_preprocessor_matches_mmengine(record, case):
    recorded = record["img"][case]
    pre = ImgDataPreprocessor(**recorded["kwargs"])
    out = pre({"inputs": recorded["inputs"]})
    assert (out["data_samples"] is None) == recorded["data_samples_is_none"]
    assert list(pre.state_dict()) == recorded["buffers"]
    assert_close(out["inputs"], recorded["output"], rtol=0, atol=0)


def test_img_data_preprocessor_built_from_config_matches_mmengine(record):
    recorded = record["img"]["list_norm_bgr_pad"]
    pre = registry.MODELS.build(dict(type="ImgDataPreprocessor", **recorded["kwargs"]))
    out = pre({"inputs": recorded["inputs"]})
    assert_close(out["inputs"], recorded["output"], rtol=0, atol=0)


def test_stack_batch_matches_mmengine(record):
    recorded = record["stack_batch"]
    assert_close(stack_batch(recorded["inputs"]), recorded["div1"], rtol=0, atol=0)
    assert_close(
        stack_batch(recorded["inputs"], pad_size_divisor=4, pad_value=7),
        recorded["div4"],
        rtol=0,
        atol=0,
    )


def test_parse_losses_matches_mmengine(record):
    class Toy(BaseModel):
        def forward(self, inputs, data_samples=None, mode="tensor"):
            return inputs

    recorded = record["parse_losses"]
    loss, log_vars = Toy().parse_losses(recorded["losses"])
    assert_close(loss, recorded["loss"])
    assert list(log_vars) == recorded["order"]
    for key, expected in recorded["log_vars"].items():
        assert_close(log_vars[key], expected, msg=key)


def test_nested_init_cfg_matches_mmengine(record):
    class Head(BaseModule):
        def __init__(self):
            super().__init__(init_cfg=dict(type="Constant", layer="Linear", val=5, bias=6))
            self.fc = nn.Linear(2, 2)

    class Model(BaseModule):
        def __init__(self):
            super().__init__(
                init_cfg=dict(
                    type="Constant",
                    layer=["Conv1d", "Linear"],
                    val=1,
                    bias=2,
                    override=dict(type="Constant", name="reg", val=3, bias=4),
                )
            )
            self.conv = nn.Conv1d(2, 2, 1)
            self.reg = nn.Conv1d(2, 2, 1)
            self.fc = nn.Linear(2, 2)
            self.head = Head()
            self.bn = nn.BatchNorm1d(2)

    model = Model()
    model.init_weights()
    state = model.state_dict()
    assert list(state) == list(record["init"])
    for key, expected in record["init"].items():
        assert_close(state[key], expected, rtol=0, atol=0, msg=key)

    m2 = nn.Sequential(nn.Conv1d(3, 1, 3), nn.Linear(1, 2))
    initialize(
        m2,
        [
            dict(type="Constant", layer="Conv1d", val=1),
            dict(type="Constant", layer="Linear", val=2, bias_prob=0.01),
        ],
    )
    for key, expected in record["initialize_list"].items():
        assert_close(m2.state_dict()[key], expected, msg=key)

# ruff: noqa: C408  (configs are written dict(...) as in MMEngine config files)
"""Weight initialisation: functional helpers, initializers, ``initialize`` with layer/override,
``BaseModule.init_weights`` on nested modules, and ``Pretrained`` from checkpoint files."""

from __future__ import annotations

import logging
import math
from collections import OrderedDict

import pytest
import torch
from torch import nn

from treadle.core import plugins, registry
from treadle.core.logging import TreadleLogger
from treadle.core.model import (
    BaseModule,
    Caffe2XavierInit,
    ConstantInit,
    KaimingInit,
    ModuleDict,
    ModuleList,
    NormalInit,
    PretrainedInit,
    Sequential,
    TruncNormalInit,
    UniformInit,
    XavierInit,
    bias_init_with_prob,
    caffe2_xavier_init,
    constant_init,
    initialize,
    kaiming_init,
    normal_init,
    trunc_normal_init,
    uniform_init,
    xavier_init,
)
from treadle.core.model.components import COMPONENTS
from treadle.core.registry import WEIGHT_INITIALIZERS


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


@pytest.fixture
def log_records():
    """Records logged by the current TreadleLogger during the test."""
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    logger = TreadleLogger.get_current_instance()
    handler = Keep(level=logging.DEBUG)
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield records
    logger.removeHandler(handler)
    logger.setLevel(old_level)


def big_linear():
    torch.manual_seed(0)
    return nn.Linear(200, 300)


# ---------------------------------------------------------------------------------------------
# Functional helpers
# ---------------------------------------------------------------------------------------------


def test_constant_init_and_missing_bias():
    conv = nn.Conv2d(2, 3, 3)
    constant_init(conv, 0.5, bias=2)
    assert torch.equal(conv.weight, torch.full_like(conv.weight, 0.5))
    assert torch.equal(conv.bias, torch.full((3,), 2.0))
    no_bias = nn.Linear(2, 2, bias=False)
    constant_init(no_bias, 3)
    assert torch.equal(no_bias.weight, torch.full((2, 2), 3.0))
    constant_init(nn.ReLU(), 1)  # nothing to fill: no error


def test_random_helpers_match_statistics():
    lin = big_linear()
    normal_init(lin, mean=1.0, std=0.5, bias=0.25)
    assert lin.weight.mean().item() == pytest.approx(1.0, abs=0.01)
    assert lin.weight.std().item() == pytest.approx(0.5, abs=0.01)
    assert torch.equal(lin.bias, torch.full((300,), 0.25))

    uniform_init(lin, a=-2, b=3, bias=1)
    assert lin.weight.min().item() >= -2
    assert lin.weight.max().item() <= 3
    assert lin.weight.mean().item() == pytest.approx(0.5, abs=0.02)

    trunc_normal_init(lin, mean=0, std=1, a=-0.5, b=0.5)
    assert lin.weight.abs().max().item() <= 0.5
    assert lin.weight.std().item() == pytest.approx(0.2865, abs=0.01)  # std of N(0,1) on [-.5,.5]

    # fan_in = 200, fan_out = 300
    xavier_init(lin, gain=2, distribution="uniform")
    bound = 2 * math.sqrt(6 / 500)
    assert lin.weight.abs().max().item() <= bound
    assert lin.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.02)
    xavier_init(lin, distribution="normal")
    assert lin.weight.std().item() == pytest.approx(math.sqrt(2 / 500), rel=0.02)

    kaiming_init(lin)  # fan_out, relu, normal
    assert lin.weight.std().item() == pytest.approx(math.sqrt(2 / 300), rel=0.02)
    kaiming_init(lin, mode="fan_in", distribution="uniform", bias=3)
    assert lin.weight.abs().max().item() <= math.sqrt(6 / 200)
    assert torch.equal(lin.bias, torch.full((300,), 3.0))

    caffe2_xavier_init(lin)  # kaiming_uniform a=1, fan_in, leaky_relu: bound sqrt(3 / fan_in)
    assert lin.weight.abs().max().item() <= math.sqrt(3 / 200)
    assert lin.weight.abs().max().item() > 0.9 * math.sqrt(3 / 200)


def test_helpers_follow_torch_init_with_the_same_seed():
    a, b = nn.Linear(4, 5), nn.Linear(4, 5)
    torch.manual_seed(3)
    kaiming_init(a, a=0.1, mode="fan_in", nonlinearity="leaky_relu", distribution="uniform")
    torch.manual_seed(3)
    nn.init.kaiming_uniform_(b.weight, a=0.1, mode="fan_in", nonlinearity="leaky_relu")
    assert torch.equal(a.weight, b.weight)
    torch.manual_seed(4)
    trunc_normal_init(a, mean=0.1, std=0.2, a=-0.3, b=0.4)
    torch.manual_seed(4)
    nn.init.trunc_normal_(b.weight, 0.1, 0.2, -0.3, 0.4)
    assert torch.equal(a.weight, b.weight)


def test_bias_init_with_prob():
    assert bias_init_with_prob(0.01) == pytest.approx(-math.log(99))
    assert bias_init_with_prob(0.5) == 0.0
    with pytest.raises(ValueError, match="prior_prob must be in"):
        bias_init_with_prob(1.0)


def test_distribution_is_checked():
    with pytest.raises(ValueError, match='distribution must be "uniform" or "normal"'):
        xavier_init(nn.Linear(1, 1), distribution="cauchy")
    with pytest.raises(ValueError, match="distribution"):
        KaimingInit(distribution="cauchy")
    with pytest.raises(ValueError, match='mode must be "fan_in" or "fan_out"'):
        KaimingInit(mode="fan_avg")


# ---------------------------------------------------------------------------------------------
# Initializer classes: layer filtering, bias_prob, override
# ---------------------------------------------------------------------------------------------


class FooNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.feat = nn.Conv2d(1, 2, 1)
        self.reg = nn.Conv2d(2, 2, 1)
        self.cls = nn.Linear(2, 2)
        self.bn = nn.BatchNorm2d(2)


class MyConv(nn.Conv2d):
    """Matched by ``layer="Conv2d"`` through its direct base class."""


class MyConvChild(MyConv):
    """Only its direct bases count: ``Conv2d`` is two levels up."""


def test_layer_selects_by_class_name_or_direct_base():
    net = nn.Sequential(nn.Conv2d(1, 1, 1), MyConv(1, 1, 1), MyConvChild(1, 1, 1), nn.Linear(1, 1))
    ConstantInit(val=2, bias=3, layer="Conv2d")(net)
    assert net[0].weight.item() == 2
    assert net[0].bias.item() == 3
    assert net[1].weight.item() == 2
    assert net[2].weight.item() != 2
    assert net[3].weight.item() != 2
    ConstantInit(val=4, layer=["Linear", "MyConv"])(net)
    assert net[2].weight.item() == 4
    assert net[3].weight.item() == 4
    assert net[0].weight.item() == 2


def test_without_layer_nothing_is_initialised():
    net = FooNet()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    ConstantInit(val=7)(net)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_bias_prob_sets_the_bias():
    lin = nn.Linear(2, 3)
    NormalInit(std=0.01, bias_prob=0.01, layer="Linear")(lin)
    assert torch.allclose(lin.bias, torch.full((3,), -math.log(99)))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(bias="1"), "bias must be a number"),
        (dict(bias_prob=1), "bias_prob must be a float"),
        (dict(layer=("Conv2d",)), "layer must be a str or a list of str"),
    ],
)
def test_base_init_argument_errors(kwargs, match):
    with pytest.raises(TypeError, match=match):
        ConstantInit(val=1, **kwargs)


def test_initialize_with_override():
    net = FooNet()
    initialize(
        net,
        dict(
            type="Constant",
            val=1,
            bias=2,
            layer=["Conv2d", "Linear"],
            override=dict(type="Constant", name="reg", val=3, bias=4),
        ),
    )
    assert torch.all(net.feat.weight == 1)
    assert torch.all(net.feat.bias == 2)
    assert torch.all(net.cls.weight == 1)
    assert torch.all(net.reg.weight == 3)
    assert torch.all(net.reg.bias == 4)
    assert torch.all(net.bn.weight == 1)
    assert torch.all(net.bn.bias == 0)


def test_override_with_only_a_name_reuses_the_outer_config_on_the_whole_submodule():
    net = FooNet()
    cfg = dict(type="Constant", val=5, layer="Linear", override=dict(name="bn"))
    initialize(net, cfg)
    assert torch.all(net.cls.weight == 5)
    assert torch.all(net.bn.weight == 5)
    assert torch.all(net.bn.bias == 0)
    assert not torch.all(net.feat.weight == 5)
    assert cfg == dict(type="Constant", val=5, layer="Linear", override=dict(name="bn"))  # copied


def test_override_list_and_errors():
    net = FooNet()
    initialize(
        net,
        dict(
            type="Constant",
            val=1,
            layer="Conv2d",
            override=[
                dict(type="Constant", name="reg", val=3),
                dict(type="Uniform", name="cls", a=10, b=11),
            ],
        ),
    )
    assert torch.all(net.reg.weight == 3)
    assert torch.all((net.cls.weight >= 10) & (net.cls.weight <= 11))
    with pytest.raises(ValueError, match='must contain the key "name"'):
        initialize(net, dict(type="Constant", val=1, override=dict(type="Constant", val=2)))
    with pytest.raises(ValueError, match='needs a "type" key'):
        initialize(net, dict(type="Constant", val=1, override=dict(name="reg", val=2)))
    with pytest.raises(RuntimeError, match="FooNet has no submodule 'head'"):
        initialize(net, dict(type="Constant", val=1, override=dict(name="head")))
    with pytest.raises(TypeError, match="override must be a dict or a list of dict"):
        initialize(net, dict(type="Constant", val=1, override="reg"))
    with pytest.raises(TypeError, match="init_cfg must be a dict or a list of dict"):
        initialize(net, "Constant")


def test_each_initializer_is_registered_and_built():
    expected = {
        "Constant": ConstantInit,
        "Xavier": XavierInit,
        "Normal": NormalInit,
        "TruncNormal": TruncNormalInit,
        "Uniform": UniformInit,
        "Kaiming": KaimingInit,
        "Caffe2Xavier": Caffe2XavierInit,
        "Pretrained": PretrainedInit,
    }
    for name, cls in expected.items():
        assert WEIGHT_INITIALIZERS.get(name) is cls
    lin = big_linear()
    initialize(lin, dict(type="TruncNormal", std=0.02, layer="Linear"))
    assert lin.weight.abs().max().item() <= 2  # cutoffs are absolute: [-2, 2]
    assert lin.weight.std().item() == pytest.approx(0.02, rel=0.03)
    initialize(lin, dict(type="Kaiming", layer="Linear", mode="fan_in"))
    assert lin.weight.std().item() == pytest.approx(math.sqrt(2 / 200), rel=0.03)
    initialize(lin, dict(type="Xavier", layer="Linear", distribution="uniform", bias=1))
    assert lin.weight.abs().max().item() <= math.sqrt(6 / 500)
    assert torch.all(lin.bias == 1)
    initialize(lin, dict(type="Caffe2Xavier", layer="Linear"))
    assert lin.weight.abs().max().item() <= math.sqrt(3 / 200)
    initialize(lin, dict(type=ConstantInit, layer="Linear", val=0.25))  # a class as type
    assert torch.all(lin.weight == 0.25)


# ---------------------------------------------------------------------------------------------
# BaseModule.init_weights
# ---------------------------------------------------------------------------------------------


class Leaf(BaseModule):
    def __init__(self, init_cfg=None):
        super().__init__(init_cfg)
        self.fc = nn.Linear(2, 2)


class CustomInit(BaseModule):
    """Overrides init_weights, as many OpenMMLab modules do."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)
        self.calls = 0

    def init_weights(self):
        self.calls += 1
        nn.init.constant_(self.fc.weight, -1.0)
        super().init_weights()


class Root(BaseModule):
    def __init__(self):
        super().__init__(init_cfg=dict(type="Constant", layer="Linear", val=1, bias=2))
        self.own = nn.Linear(2, 2)
        self.leaf = Leaf(init_cfg=dict(type="Constant", layer="Linear", val=3))
        self.plain_leaf = Leaf()
        self.custom = CustomInit()
        self.blocks = ModuleList(
            [Leaf(), Leaf()], init_cfg=dict(type="Constant", layer="Linear", val=4)
        )
        self.seq = Sequential(
            nn.Linear(2, 2), init_cfg=dict(type="Constant", layer="Linear", val=5)
        )
        self.heads = ModuleDict(
            {"a": nn.Linear(2, 2)}, init_cfg=dict(type="Constant", layer="Linear", val=6)
        )


def test_init_weights_parent_first_then_children_override():
    root = Root()
    assert not root.is_init
    root.init_weights()
    assert torch.all(root.own.weight == 1)
    assert torch.all(root.own.bias == 2)
    assert torch.all(root.leaf.fc.weight == 3)  # child's init_cfg wins over the parent's
    assert torch.all(root.leaf.fc.bias == 0)
    assert torch.all(root.plain_leaf.fc.weight == 1)  # no init_cfg: keeps the parent's
    assert root.custom.calls == 1
    assert torch.all(root.custom.fc.weight == -1)
    assert torch.all(root.blocks[0].fc.weight == 4)
    assert torch.all(root.blocks[1].fc.weight == 4)
    assert torch.all(root.seq[0].weight == 5)
    assert torch.all(root.heads["a"].weight == 6)
    assert all(m.is_init for m in root.modules() if isinstance(m, BaseModule))
    assert not any(hasattr(m, "_params_init_info") for m in root.modules())
    assert "init_cfg={'type': 'Constant'" in repr(root)


def test_init_weights_skips_initialised_children_and_warns_on_second_call(log_records):
    root = Root()
    root.leaf.init_weights()  # initialised on its own first
    nn.init.constant_(root.leaf.fc.weight, 9.0)
    root.init_weights()
    # The parent's config reaches every Linear below it (as in MMEngine), but the child, already
    # initialised, does not apply its own val=3 again.
    assert torch.all(root.leaf.fc.weight == 1)
    assert root.leaf.is_init
    log_records.clear()
    root.init_weights()
    assert torch.all(root.own.weight == 1)
    warnings = [r.getMessage() for r in log_records if r.levelno == logging.WARNING]
    assert warnings == ["init_weights of Root has been called more than once."]


def test_init_info_is_logged_per_parameter(log_records):
    Root().init_weights()
    text = "\n".join(r.getMessage() for r in log_records if r.levelno == logging.INFO)
    assert "own.weight - torch.Size([2, 2])" in text
    assert "ConstantInit: val=1, bias=2" in text
    assert "custom.fc.weight" in text
    assert "Initialized by user-defined `init_weights` in CustomInit" in text


def test_init_cfg_is_copied_and_checked():
    cfg = dict(type="Constant", layer="Linear", val=1)
    leaf = Leaf(cfg)
    cfg["val"] = 2
    leaf.init_weights()
    assert torch.all(leaf.fc.weight == 1)
    with pytest.raises(TypeError, match="init_cfg of Leaf must be a dict or a list"):
        Leaf(init_cfg="Constant").init_weights()


def test_model_wrappers_are_looked_through():
    class Outer(BaseModule):
        def __init__(self):
            super().__init__()
            self.wrapped = nn.DataParallel(
                Leaf(init_cfg=dict(type="Constant", layer="Linear", val=8))
            )

    outer = Outer()
    outer.init_weights()
    assert torch.all(outer.wrapped.module.fc.weight == 8)


# ---------------------------------------------------------------------------------------------
# Pretrained
# ---------------------------------------------------------------------------------------------


class Detector(BaseModule):
    def __init__(self, init_cfg=None, classes=3):
        super().__init__(init_cfg)
        self.backbone = Leaf()
        self.head = nn.Linear(2, classes)


def _saved(tmp_path, name, obj):
    path = tmp_path / name
    torch.save(obj, path)
    return str(path)


def test_pretrained_plain_state_dict_loads_after_other_initializers(tmp_path):
    torch.manual_seed(0)
    source = Detector()
    path = _saved(tmp_path, "plain.pth", source.state_dict())
    model = Detector(
        init_cfg=[
            dict(type="Pretrained", checkpoint=path),
            dict(type="Constant", layer="Linear", val=0),  # listed later but applied first
        ]
    )
    model.init_weights()
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_pretrained_wrapped_checkpoint_strips_module_prefix(tmp_path):
    torch.manual_seed(1)
    source = Detector()
    wrapped = {
        "meta": {"epoch": 3},
        "state_dict": OrderedDict((f"module.{k}", v) for k, v in source.state_dict().items()),
    }
    path = _saved(tmp_path, "wrapped.pth", wrapped)
    model = Detector(init_cfg=dict(type="Pretrained", checkpoint=path))
    model.init_weights()
    assert torch.equal(model.head.weight, source.head.weight)
    assert torch.equal(model.backbone.fc.bias, source.backbone.fc.bias)


def test_pretrained_with_prefix_loads_a_submodule(tmp_path):
    torch.manual_seed(2)
    source = Detector()
    path = _saved(tmp_path, "det.pth", {"state_dict": source.state_dict()})
    backbone = Leaf(init_cfg=dict(type="Pretrained", checkpoint=path, prefix="backbone"))
    backbone.init_weights()
    assert torch.equal(backbone.fc.weight, source.backbone.fc.weight)
    with pytest.raises(ValueError, match=r"No key of checkpoint .* starts with 'neck\.'"):
        Leaf(init_cfg=dict(type="Pretrained", checkpoint=path, prefix="neck.")).init_weights()


def test_pretrained_mismatches_warn_and_skip(tmp_path, log_records):
    torch.manual_seed(3)
    source = Detector(classes=5)  # a different head
    state = source.state_dict()
    state["extra.weight"] = torch.zeros(1)
    del state["backbone.fc.bias"]
    path = _saved(tmp_path, "other.pth", state)
    torch.manual_seed(4)
    model = Detector(init_cfg=dict(type="Pretrained", checkpoint=path))
    head_before = model.head.weight.clone()
    model.init_weights()
    assert torch.equal(model.backbone.fc.weight, source.backbone.fc.weight)
    assert torch.equal(model.head.weight, head_before)  # shape mismatch: skipped
    warning = "\n".join(r.getMessage() for r in log_records if r.levelno == logging.WARNING)
    assert "size mismatch for head.weight" in warning
    assert "unexpected key in source state_dict: extra.weight" in warning
    assert "missing keys in source state_dict: backbone.fc.bias" in warning


def test_pretrained_loads_weights_only_with_map_location(tmp_path, monkeypatch):
    source = Leaf()
    path = _saved(tmp_path, "leaf.pth", source.state_dict())
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    target = Leaf()
    PretrainedInit(checkpoint=path)(target)
    PretrainedInit(checkpoint=path, prefix="fc", map_location={"cpu": "cpu"})(target.fc)
    # treadle's loader: torch.load with a restricted unpickler (safe like weights_only=True,
    # and it also reads MMEngine checkpoints); map_location is passed through.
    assert [c["map_location"] for c in calls] == ["cpu", {"cpu": "cpu"}]
    assert all(c["pickle_module"].__name__ == "treadle_checkpoint_pickle" for c in calls)
    assert torch.equal(target.fc.weight, source.fc.weight)


def test_load_state_dict_strict_raises():
    from treadle.core.runner.checkpoint import load_state_dict

    with pytest.raises(RuntimeError, match=r"missing keys in source state_dict: fc\.bias"):
        load_state_dict(Leaf(), {"fc.weight": torch.zeros(2, 2)}, strict=True)
    bn = nn.BatchNorm1d(2)
    state = {k: v for k, v in bn.state_dict().items() if k != "num_batches_tracked"}
    load_state_dict(bn, state, strict=True)  # num_batches_tracked may be missing


def test_pretrained_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\.pth"):
        PretrainedInit(checkpoint=str(tmp_path / "missing.pth"))(Leaf())
    with pytest.raises(ValueError, match="model-zoo URIs"):
        PretrainedInit(checkpoint="torchvision://resnet50")(Leaf())

    from fractions import Fraction  # any class outside weights_only's allow-list

    path = _saved(tmp_path, "pickle.pth", {"state_dict": {}, "obj": Fraction(1, 3)})
    from treadle.core.runner.checkpoint import UnsafeCheckpointError

    with pytest.raises(UnsafeCheckpointError, match=r"fractions\.Fraction"):
        PretrainedInit(checkpoint=path)(Leaf())
    path = _saved(tmp_path, "list.pth", [torch.zeros(1)])
    with pytest.raises(RuntimeError, match="No state_dict found"):
        PretrainedInit(checkpoint=path)(Leaf())


def test_pretrained_through_a_uri(tmp_path):
    import fsspec

    torch.manual_seed(5)
    source = Leaf()
    fs = fsspec.filesystem("memory")
    with fs.open("/ckpts/leaf.pth", "wb") as f:
        torch.save({"state_dict": source.state_dict()}, f)
    try:
        target = Leaf(init_cfg=dict(type="Pretrained", checkpoint="memory://ckpts/leaf.pth"))
        target.init_weights()
        assert torch.equal(target.fc.weight, source.fc.weight)
    finally:
        fs.rm("/ckpts", recursive=True)

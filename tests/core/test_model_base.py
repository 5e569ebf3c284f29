# ruff: noqa: C408  (configs are written dict(...) as in MMEngine config files)
"""BaseModel steps and losses, data preprocessors, stack_batch and the other model utilities."""

from __future__ import annotations

import contextlib
import copy
from collections import OrderedDict, namedtuple

import pytest
import torch
from torch import nn

from treadle.core import plugins, registry
from treadle.core.model import (
    BaseDataPreprocessor,
    BaseModel,
    ImgDataPreprocessor,
    is_model_wrapper,
    merge_dict,
    stack_batch,
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


class ToyModel(BaseModel):
    """y = fc(x); loss = MSE + 0.1 * mean|w| (two loss terms and one logged metric)."""

    def __init__(self, data_preprocessor=None):
        super().__init__(data_preprocessor=data_preprocessor)
        self.fc = nn.Linear(3, 1)
        self.calls = []

    def forward(self, inputs, data_samples=None, mode="tensor"):
        self.calls.append(mode)
        out = self.fc(inputs)
        if mode == "loss":
            return {
                "loss_mse": ((out.squeeze(1) - data_samples) ** 2).mean(),
                "loss_reg": [0.05 * self.fc.weight.abs(), 0.05 * self.fc.weight.abs()],
                "mae": (out.squeeze(1) - data_samples).abs(),
            }
        if mode == "predict":
            return list(out.detach().squeeze(1))
        return out


class PlainSGD:
    """SGD with momentum written out (constructing a torch.optim optimizer imports torch._dynamo,
    which costs seconds; this keeps the file fast)."""

    def __init__(self, params, lr, momentum=0.0):
        self.param_groups = [{"params": list(params), "lr": lr, "momentum": momentum}]
        self.defaults = {"lr": lr, "momentum": momentum}
        self.buffers = {}

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                buf = self.buffers.get(p)
                buf = p.grad.clone() if buf is None else buf.mul_(group["momentum"]).add_(p.grad)
                self.buffers[p] = buf
                p.sub_(group["lr"] * buf)

    def zero_grad(self, set_to_none=True):
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None


class StandInOptimWrapper:
    """The two methods train_step uses, done by hand."""

    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.contexts = 0

    @contextlib.contextmanager
    def optim_context(self, model):
        self.contexts += 1
        yield

    def update_params(self, loss):
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad()


def _batches(n=4):
    g = torch.Generator().manual_seed(0)
    return [
        {"inputs": torch.randn(5, 3, generator=g), "data_samples": torch.randn(5, generator=g)}
        for _ in range(n)
    ]


# ---------------------------------------------------------------------------------------------
# train_step / val_step / test_step
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("wrapper", ["stand-in", "OptimWrapper"])
def test_train_step_equals_a_manual_loop(wrapper):
    torch.manual_seed(0)
    model = ToyModel()
    reference = copy.deepcopy(model)
    optimizer = PlainSGD(model.parameters(), lr=0.1, momentum=0.9)
    if wrapper == "stand-in":
        optim_wrapper = StandInOptimWrapper(optimizer)
    else:
        from treadle.core.optim import OptimWrapper

        optim_wrapper = OptimWrapper(optimizer)
    ref_optimizer = PlainSGD(reference.parameters(), lr=0.1, momentum=0.9)

    for batch in _batches():
        log_vars = model.train_step(batch, optim_wrapper)
        # the same step written out
        out = reference.fc(batch["inputs"]).squeeze(1)
        mse = ((out - batch["data_samples"]) ** 2).mean()
        reg = 2 * (0.05 * reference.fc.weight.abs()).mean()
        loss = mse + reg
        loss.backward()
        ref_optimizer.step()
        ref_optimizer.zero_grad()

        assert list(log_vars) == ["loss", "loss_mse", "loss_reg", "mae"]
        assert_close(log_vars["loss"], loss.detach())
        assert_close(log_vars["loss_mse"], mse.detach())
        assert_close(log_vars["loss_reg"], reg.detach())
        assert all(not v.requires_grad for v in log_vars.values())
    for p, q in zip(model.parameters(), reference.parameters(), strict=True):
        assert_close(p, q)
    assert model.calls == ["loss"] * 4
    if wrapper == "stand-in":
        assert optim_wrapper.contexts == 4


def test_train_step_preprocesses_inside_optim_context():
    events = []

    class Pre(BaseDataPreprocessor):
        def forward(self, data, training=False):
            events.append(("preprocess", training))
            return super().forward(data, training)

    class Wrapper(StandInOptimWrapper):
        @contextlib.contextmanager
        def optim_context(self, model):
            events.append("enter")
            yield
            events.append("exit")

        def update_params(self, loss):
            events.append("update")
            super().update_params(loss)

    model = ToyModel(data_preprocessor=Pre())
    model.train_step(_batches(1)[0], Wrapper(PlainSGD(model.parameters(), lr=0.1)))
    assert events == ["enter", ("preprocess", True), "exit", "update"]


def test_val_and_test_step_predict_without_training_flag():
    seen = []

    class Pre(BaseDataPreprocessor):
        def forward(self, data, training=False):
            seen.append(training)
            return super().forward(data, training)

    model = ToyModel(data_preprocessor=Pre())
    batch = _batches(1)[0]
    expected = list(model.fc(batch["inputs"]).detach().squeeze(1))
    for step in (model.val_step, model.test_step):
        out = step(batch)
        assert_close(torch.stack(out), torch.stack(expected))
    assert seen == [False, False]
    assert model.calls == ["predict", "predict"]


def test_run_forward_unpacks_dicts_and_sequences_and_rejects_others():
    class Echo(BaseModel):
        def forward(self, inputs, data_samples=None, mode="tensor"):
            return (inputs, data_samples, mode)

    model = Echo()
    assert model._run_forward({"inputs": 1, "data_samples": 2}, "loss") == (1, 2, "loss")
    assert model._run_forward([3, 4], "predict") == (3, 4, "predict")
    assert model._run_forward((5,), "tensor") == (5, None, "tensor")
    with pytest.raises(TypeError, match=r"dict, list or tuple.*Tensor"):
        model._run_forward(torch.zeros(1), "loss")


def test_base_model_is_abstract():
    with pytest.raises(TypeError, match="abstract"):
        BaseModel()


# ---------------------------------------------------------------------------------------------
# parse_losses
# ---------------------------------------------------------------------------------------------


def test_parse_losses_sums_loss_keys_and_keeps_tensors():
    model = ToyModel()
    w = torch.tensor([1.0, 3.0], requires_grad=True)
    loss, log_vars = model.parse_losses(
        {
            "loss_a": w * 2,  # mean 4
            "top1_acc": torch.tensor([0.5, 1.0]),  # logged only
            "aux_loss": [w, torch.tensor(10.0)],  # 2 + 10
        }
    )
    # A plain dict (MMEngine builds an OrderedDict; its annotation says Dict): same order.
    assert type(log_vars) is dict
    assert list(log_vars) == ["loss", "loss_a", "top1_acc", "aux_loss"]
    assert loss.item() == pytest.approx(16.0)
    assert loss.requires_grad
    assert {k: v.item() for k, v in log_vars.items()} == {
        "loss": 16.0,
        "loss_a": 4.0,
        "top1_acc": 0.75,
        "aux_loss": 12.0,
    }
    assert all(isinstance(v, torch.Tensor) and not v.requires_grad for v in log_vars.values())
    loss.backward()
    assert_close(w.grad, torch.tensor([1.5, 1.5]))


@pytest.mark.parametrize(
    ("value", "kind"), [(1.0, "float"), ("x", "str"), ([], "list"), ([torch.ones(1), 2.0], "list")]
)
def test_parse_losses_rejects_non_tensor_values_naming_the_key(value, kind):
    with pytest.raises(TypeError, match=rf"losses\['loss_bad'\] must be a tensor .* got {kind}"):
        ToyModel().parse_losses({"loss_ok": torch.ones(1), "loss_bad": value})


def test_parse_losses_needs_a_loss_key_and_a_dict():
    with pytest.raises(ValueError, match=r"no key .* contains 'loss'.*\['acc'\]"):
        ToyModel().parse_losses({"acc": torch.ones(1)})
    with pytest.raises(TypeError, match="must return a dict"):
        ToyModel().parse_losses([torch.ones(1)])


# ---------------------------------------------------------------------------------------------
# data_preprocessor argument and device handling
# ---------------------------------------------------------------------------------------------


def test_data_preprocessor_from_config_instance_or_default():
    assert type(ToyModel().data_preprocessor) is BaseDataPreprocessor
    pre = ImgDataPreprocessor()
    assert ToyModel(data_preprocessor=pre).data_preprocessor is pre
    built = ToyModel(
        data_preprocessor=dict(type="ImgDataPreprocessor", mean=[1, 2, 3], std=[1, 1, 1])
    ).data_preprocessor
    assert isinstance(built, ImgDataPreprocessor)
    assert_close(built.mean.flatten(), torch.tensor([1, 2, 3]))
    with pytest.raises(TypeError, match=r"data_preprocessor must be a dict or an nn\.Module.*str"):
        ToyModel(data_preprocessor="ImgDataPreprocessor")


def test_model_device_moves_set_the_preprocessor_device():
    model = ToyModel()
    model.extra = BaseDataPreprocessor()  # a nested one follows too
    meta = torch.device("meta")
    assert model.to(meta) is model
    assert model.data_preprocessor.device == meta
    assert model.extra.device == meta
    assert model.fc.weight.device == meta
    model.to(torch.float64)  # dtype only: device unchanged
    assert model.data_preprocessor.device == meta

    other = ToyModel()
    other.data_preprocessor._device = meta  # out of step with the weights, on purpose
    assert other.cpu() is other
    assert other.data_preprocessor.device == torch.device("cpu")
    other.to(device="meta", dtype=torch.float32)
    assert other.data_preprocessor.device == meta


def test_preprocessor_to_and_cpu_set_its_device():
    pre = BaseDataPreprocessor()
    assert pre.device == torch.device("cpu")
    assert pre.to("meta") is pre
    assert pre.device == torch.device("meta")
    assert pre.cast_data({"x": torch.ones(2)})["x"].device == torch.device("meta")
    pre.cpu()
    assert pre.device == torch.device("cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_moves_model_and_batch():
    model = ToyModel().cuda()
    assert model.data_preprocessor.device.type == "cuda"
    batch = _batches(1)[0]
    out = model.val_step(batch)
    assert out[0].device.type == "cuda"


# ---------------------------------------------------------------------------------------------
# BaseDataPreprocessor.cast_data
# ---------------------------------------------------------------------------------------------


class _Element:
    """A BaseDataElement-like object: anything with .to(device, non_blocking=...)."""

    def __init__(self, t):
        self.t = t
        self.calls = []

    def to(self, device, non_blocking=False):
        self.calls.append((device, non_blocking))
        return _Element(self.t.to(device))


def test_cast_data_recurses_and_keeps_container_types():
    Pair = namedtuple("Pair", ["a", "b"])
    pre = BaseDataPreprocessor(non_blocking=True).to("meta")
    element = _Element(torch.ones(1))
    data = OrderedDict(
        inputs=[torch.ones(2), (torch.zeros(1), "name")],
        pair=Pair(torch.ones(1), None),
        meta={"path": "a.png", "raw": b"xy", "id": 3, "arr": [1.5]},
        sample=element,
    )
    out = pre(data)
    assert type(out) is dict
    assert out["inputs"][0].device.type == "meta"
    assert type(out["inputs"][1]) is tuple
    assert out["inputs"][1][1] == "name"
    assert out["inputs"][1][0].device.type == "meta"
    assert type(out["pair"]) is Pair
    assert out["pair"].a.device.type == "meta"
    assert out["pair"].b is None
    assert out["meta"] == {"path": "a.png", "raw": b"xy", "id": 3, "arr": [1.5]}
    assert element.calls == [(torch.device("meta"), True)]
    assert out["sample"].t.device.type == "meta"
    # input untouched
    assert data["inputs"][0].device.type == "cpu"


# ---------------------------------------------------------------------------------------------
# ImgDataPreprocessor
# ---------------------------------------------------------------------------------------------


def test_img_preprocessor_normalizes_flips_and_pads_a_list():
    a = torch.arange(3 * 2 * 3, dtype=torch.uint8).view(3, 2, 3)
    b = torch.full((3, 3, 1), 9, dtype=torch.uint8)
    mean, std = [1.0, 2.0, 3.0], [2.0, 4.0, 8.0]
    pre = ImgDataPreprocessor(mean=mean, std=std, bgr_to_rgb=True, pad_size_divisor=2, pad_value=-7)
    out = pre({"inputs": [a, b]})
    assert out["data_samples"] is None
    batch = out["inputs"]
    assert batch.shape == (2, 3, 4, 4)
    assert batch.dtype == torch.float32

    m = torch.tensor(mean).view(3, 1, 1)
    s = torch.tensor(std).view(3, 1, 1)
    expected = torch.full((2, 3, 4, 4), -7.0)
    expected[0, :, :2, :3] = (a.flip(0).float() - m) / s
    expected[1, :, :3, :1] = (b.flip(0).float() - m) / s
    assert_close(batch, expected)
    assert dict(pre.state_dict()) == {}  # mean/std are not saved


def test_img_preprocessor_tensor_batch_and_data_samples_kept():
    x = torch.arange(2 * 3 * 3 * 5, dtype=torch.float32).view(2, 3, 3, 5)
    pre = ImgDataPreprocessor(mean=[10.0], std=[5.0], rgb_to_bgr=True, pad_size_divisor=4)
    out = pre({"inputs": x, "data_samples": ["s0", "s1"]}, training=True)
    assert out["data_samples"] == ["s0", "s1"]
    expected = torch.zeros(2, 3, 4, 8)
    expected[:, :, :3, :5] = (x[:, [2, 1, 0]] - 10.0) / 5.0
    assert_close(out["inputs"], expected)


def test_img_preprocessor_without_normalisation_only_casts_and_stacks():
    imgs = [torch.ones(3, 2, 2, dtype=torch.uint8), torch.zeros(3, 2, 2, dtype=torch.uint8)]
    out = ImgDataPreprocessor()({"inputs": imgs})["inputs"]
    assert_close(out, torch.stack(imgs).float())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(bgr_to_rgb=True, rgb_to_bgr=True), "cannot both be True"),
        (dict(mean=[1.0, 2.0, 3.0]), "mean and std must both be None or both be given"),
        (dict(mean=[1.0, 2.0], std=[1.0, 2.0]), "mean must have 1 or 3 values"),
        (dict(mean=[1.0], std=[1.0, 2.0]), "std must have 1 or 3 values"),
        (dict(pad_size_divisor=0), "pad_size_divisor must be >= 1"),
    ],
)
def test_img_preprocessor_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ImgDataPreprocessor(**kwargs)


def test_img_preprocessor_rejects_bad_inputs():
    pre = ImgDataPreprocessor(mean=[0.0, 0.0, 0.0], std=[1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"inputs\[1\] must have shape \(3, H, W\)"):
        pre({"inputs": [torch.zeros(3, 2, 2), torch.zeros(1, 2, 2)]})
    with pytest.raises(ValueError, match=r"\(N, C, H, W\) tensor .* shape \(3, 2, 2\)"):
        pre({"inputs": torch.zeros(3, 2, 2)})
    with pytest.raises(TypeError, match="dict with an 'inputs' key, but got tuple"):
        pre((torch.zeros(1, 3, 2, 2),))
    with pytest.raises(TypeError, match=r"with keys \['img'\]"):
        pre({"img": torch.zeros(1, 3, 2, 2)})
    with pytest.raises(TypeError, match="got str"):
        pre({"inputs": "image.png"})
    flip = ImgDataPreprocessor(bgr_to_rgb=True)
    with pytest.raises(ValueError, match=r"inputs\[0\] must have at least 3 channels"):
        flip({"inputs": [torch.zeros(1, 2, 2)]})


# ---------------------------------------------------------------------------------------------
# utils
# ---------------------------------------------------------------------------------------------


def test_stack_batch_pads_every_dim_but_the_first():
    a = torch.ones(2, 3, 1)
    b = torch.full((2, 1, 4), 2.0)
    out = stack_batch([a, b], pad_size_divisor=3, pad_value=-1)
    assert out.shape == (2, 2, 3, 6)
    expected = torch.full((2, 2, 3, 6), -1.0)
    expected[0, :, :3, :1] = 1.0
    expected[1, :, :1, :4] = 2.0
    assert_close(out, expected)
    same = [torch.ones(1, 2), torch.zeros(1, 2)]
    assert_close(stack_batch(same), torch.stack(same))


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        (([],), ValueError, "must not be empty"),
        ((torch.ones(2, 2),), TypeError, "must be a list of tensors"),
        (
            ([torch.ones(1, 2), torch.ones(1, 2, 2)],),
            ValueError,
            r"same number of dimensions.*\[2, 3\]",
        ),
        (([torch.ones(1, 2), 3],), TypeError, r"only tensors.*int"),
        (([torch.ones(1, 2)], 0), ValueError, "pad_size_divisor must be >= 1"),
    ],
)
def test_stack_batch_rejects_bad_input(args, error, match):
    with pytest.raises(error, match=match):
        stack_batch(*args)


def test_merge_dict_later_wins_and_is_a_traced_leaf():
    assert merge_dict({"a": 1, "b": 2}, {"b": 3}) == {"a": 1, "b": 3}
    with pytest.raises(TypeError, match="argument 1 is <class 'list'>"):
        merge_dict({}, [])

    from treadle.core.model import utils

    class Net(nn.Module):
        def forward(self, x):
            # fx patches the name where merge_dict is defined, so call it through its module
            return utils.merge_dict({"a": x}, {"b": x + 1})

    graph = torch.fx.symbolic_trace(Net()).graph
    assert any(node.op == "call_function" and node.target is merge_dict for node in graph.nodes)


def test_is_model_wrapper():
    net = nn.Linear(1, 1)
    assert not is_model_wrapper(net)
    assert is_model_wrapper(nn.DataParallel(net))

    class MyWrapper(nn.Module):
        def __init__(self, module):
            super().__init__()
            self.module = module

    assert not is_model_wrapper(MyWrapper(net))
    registry.MODEL_WRAPPERS.register_module(module=MyWrapper)
    try:
        assert is_model_wrapper(MyWrapper(net))
    finally:
        registry.MODEL_WRAPPERS.unregister("MyWrapper")

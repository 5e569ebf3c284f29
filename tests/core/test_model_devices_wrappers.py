# ruff: noqa: C408  (configs are written dict(...) as in MMEngine config files)
"""Preprocessor device tracking through ``_apply``, ``unwrap_model``, the stacked list path of
``ImgDataPreprocessor`` and the CPU-pinned ``steps`` of averaged models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from treadle.core import registry
from treadle.core.model import (
    BaseDataPreprocessor,
    ExponentialMovingAverage,
    ImgDataPreprocessor,
    unwrap_model,
)
from treadle.core.strategy.base import Strategy

# ---------------------------------------------------------------------------------------------
# The preprocessor's device follows every move, whichever module it starts from
# ---------------------------------------------------------------------------------------------


def test_parent_sequential_to_meta_and_to_empty_move_the_preprocessor_device():
    pre = ImgDataPreprocessor(mean=[1.0, 2.0, 3.0], std=[1.0, 1.0, 1.0])
    parent = nn.Sequential(nn.Linear(2, 2), nn.Sequential(pre))  # not a BaseModel
    parent.to("meta")
    assert pre.device == torch.device("meta")
    assert pre.mean.device == torch.device("meta")
    parent.to(torch.float64)  # dtype only: the device stays
    assert pre.device == torch.device("meta")
    parent.to_empty(device="cpu")
    assert pre.device == torch.device("cpu")
    assert pre.mean.device == torch.device("cpu")
    out = pre.cast_data({"x": torch.ones(1)})
    assert out["x"].device == torch.device("cpu")


def test_to_empty_on_a_bare_preprocessor_and_meta_to_cpu():
    pre = BaseDataPreprocessor()
    pre.to_empty(device="meta")
    assert pre.device == torch.device("meta")
    pre.cpu()  # nothing can be copied out of meta, but a preprocessor without tensors can move
    assert pre.device == torch.device("cpu")
    pre.half()
    assert pre.device == torch.device("cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_device_is_indexed_so_batches_already_there_are_kept():
    parent = nn.Sequential(BaseDataPreprocessor())
    parent.cuda()
    pre = parent[0]
    assert pre.device == torch.device("cuda", torch.cuda.current_device())
    parent.to("cuda")
    assert pre.device.index is not None
    x = torch.ones(2, device=pre.device)
    assert pre.cast_data(x) is x


# ---------------------------------------------------------------------------------------------
# unwrap_model
# ---------------------------------------------------------------------------------------------


class _RegisteredWrapper(nn.Module):
    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module


class _HasModule(nn.Module):
    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module


def test_unwrap_model_follows_model_wrappers_registry():
    net = nn.Linear(1, 1)
    assert unwrap_model(net) is net
    assert unwrap_model(nn.DataParallel(net)) is net
    plain = _HasModule(net)  # a `module` attribute alone does not make a wrapper
    assert unwrap_model(plain) is plain
    assert Strategy().unwrap_model(plain) is plain
    registry.MODEL_WRAPPERS.register_module(module=_RegisteredWrapper)
    try:
        wrapped = _RegisteredWrapper(nn.DataParallel(net))  # nested wrappers peel one by one
        assert unwrap_model(wrapped) is net
        assert Strategy().unwrap_model(wrapped) is net
        assert Strategy().model_state_dict(wrapped).keys() == net.state_dict().keys()
    finally:
        registry.MODEL_WRAPPERS.unregister("_RegisteredWrapper")


# ---------------------------------------------------------------------------------------------
# ImgDataPreprocessor: images of one shape are stacked first, with the same result
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(),
        dict(mean=[1.0, 2.0, 3.0], std=[2.0, 4.0, 8.0], bgr_to_rgb=True, pad_size_divisor=4),
        dict(mean=[10.0], std=[3.0], pad_size_divisor=3, pad_value=-1.5),
        dict(rgb_to_bgr=True, pad_size_divisor=1),
    ],
)
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32, torch.float64])
def test_uniform_list_matches_the_per_image_path(kwargs, dtype):
    gen = torch.Generator().manual_seed(0)
    images = [(torch.rand(3, 5, 7, generator=gen) * 255).to(dtype) for _ in range(4)]
    pre = ImgDataPreprocessor(**kwargs)
    assert pre._uniform_images(images)
    fast = pre({"inputs": list(images)})["inputs"]
    fast_tuple = pre({"inputs": tuple(images)})["inputs"]
    slow = pre._process_images(images)
    assert fast.dtype == slow.dtype == torch.float32
    assert fast.shape == slow.shape
    assert torch.equal(fast, slow)
    assert torch.equal(fast_tuple, slow)


def test_non_uniform_or_invalid_lists_keep_the_per_image_path():
    pre = ImgDataPreprocessor(mean=[0.0, 0.0, 0.0], std=[1.0, 1.0, 1.0])
    assert not pre._uniform_images([torch.zeros(3, 2, 2), torch.zeros(3, 2, 3)])
    assert not pre._uniform_images([torch.zeros(3, 2, 2), torch.zeros(3, 2, 2, dtype=torch.uint8)])
    assert not pre._uniform_images([])
    with pytest.raises(ValueError, match=r"inputs\[0\] must have shape \(3, H, W\)"):
        pre({"inputs": [torch.zeros(1, 2, 2), torch.zeros(1, 2, 2)]})
    flip = ImgDataPreprocessor(bgr_to_rgb=True)
    with pytest.raises(ValueError, match=r"inputs\[0\] must have at least 3 channels"):
        flip({"inputs": [torch.zeros(1, 2, 2), torch.zeros(1, 2, 2)]})


# ---------------------------------------------------------------------------------------------
# Averaged models: `steps` stays on the CPU
# ---------------------------------------------------------------------------------------------


def test_ema_steps_stay_on_cpu_and_long_through_moves():
    src = nn.Linear(2, 2)
    ema = ExponentialMovingAverage(src, momentum=0.5)
    ema.to(torch.float64)
    assert ema.steps.device == torch.device("cpu")
    assert ema.steps.dtype == torch.long
    ema.update_parameters(src.double())
    assert int(ema.steps) == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_ema_on_cuda_keeps_steps_on_cpu_and_resumes():
    src = nn.Linear(2, 2).cuda()
    ema = ExponentialMovingAverage(src, momentum=0.5, device="cuda")
    assert ema.steps.device == torch.device("cpu")
    ema.cuda()
    assert ema.steps.device == torch.device("cpu")
    assert ema.module.weight.is_cuda
    ema.update_parameters(src)
    ema.update_parameters(src)
    resumed = ExponentialMovingAverage(src, momentum=0.5).cuda()
    resumed.load_state_dict(ema.state_dict())
    assert int(resumed.steps) == 2
    assert resumed.steps.device == torch.device("cpu")

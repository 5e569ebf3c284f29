"""Compose: callables and TRANSFORMS configs, in order; None stops the pipeline."""

from __future__ import annotations

import uuid

import pytest

from treadle.core.config import ConfigDict
from treadle.core.dataset import Compose
from treadle.core.registry import TRANSFORMS


class Scale:
    def __init__(self, factor=2):
        self.factor = factor

    def __call__(self, data):
        return {**data, "x": data["x"] * self.factor}

    def __repr__(self):
        return f"Scale(factor={self.factor})"


@pytest.fixture
def scale_name():
    name = f"_Scale_{uuid.uuid4().hex[:8]}"
    TRANSFORMS.register_module(name=name, module=Scale)
    yield name
    TRANSFORMS.unregister(name)


def test_callables_run_in_order():
    pipeline = Compose([lambda d: {**d, "x": d["x"] + 1}, Scale(3)])
    assert pipeline({"x": 1}) == {"x": 6}


def test_configs_are_built_from_transforms(scale_name):
    pipeline = Compose([{"type": scale_name, "factor": 5}, ConfigDict(type=scale_name)])
    assert [type(t) for t in pipeline.transforms] == [Scale, Scale]
    assert pipeline({"x": 1}) == {"x": 10}


@pytest.mark.parametrize("transforms", [None, []])
def test_no_transforms_is_identity(transforms):
    data = {"x": 1}
    assert Compose(transforms)(data) is data


def test_none_short_circuits():
    called = []
    pipeline = Compose([lambda d: None, lambda d: called.append(d)])
    assert pipeline({"x": 1}) is None
    assert called == []


def test_repr_lists_the_transforms():
    assert repr(Compose([Scale(2), Scale(4)])) == (
        "Compose(\n    Scale(factor=2)\n    Scale(factor=4)\n)"
    )
    assert repr(Compose(None)) == "Compose(\n)"


def test_an_item_that_is_neither_dict_nor_callable():
    with pytest.raises(TypeError, match=r"transforms\[1\] is a int"):
        Compose([Scale(), 3])


def test_a_config_that_builds_something_not_callable():
    name = f"_NotCallable_{uuid.uuid4().hex[:8]}"
    TRANSFORMS.register_module(name=name, module=type("NotCallable", (), {}))
    try:
        with pytest.raises(TypeError, match=rf"transforms\[0\] \('{name}'\) built a NotCallable"):
            Compose([{"type": name}])
    finally:
        TRANSFORMS.unregister(name)


def test_a_single_config_instead_of_a_list(scale_name):
    with pytest.raises(TypeError, match="wrap a single transform config in a list"):
        Compose({"type": scale_name})


def test_an_unknown_transform_names_the_registry():
    with pytest.raises(KeyError, match="transform"):
        Compose([{"type": "_NoSuchTransform"}])

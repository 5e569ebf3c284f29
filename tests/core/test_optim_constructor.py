# ruff: noqa: C408  (configs are written dict(...) as in MMEngine config files)
"""DefaultOptimWrapperConstructor (paramwise_cfg against MMEngine), build_optim_wrapper, the
registered torch optimizers."""

from __future__ import annotations

import importlib.util
import inspect
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from treadle.core.optim import (
    AmpOptimWrapper,
    DefaultOptimWrapperConstructor,
    OptimWrapper,
    build_optim_wrapper,
)
from treadle.core.optim.optimizer.components import COMPONENTS
from treadle.core.registry import (
    OPTIM_WRAPPER_CONSTRUCTORS,
    OPTIMIZERS,
    REGISTRIES,
    RegistryKeyError,
)

FIXTURES = Path(__file__).parent / "fixtures" / "optim"


def _load_models():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(
        "_optim_paramwise_models", FIXTURES / "paramwise_models.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MODELS = _load_models()
MMENGINE = json.loads((FIXTURES / "mmengine_paramwise.json").read_text())


@pytest.fixture(autouse=True, scope="module")
def _registered() -> Iterator[None]:
    """Register optim's components as the built-in plugin does (if it does not yet)."""
    added: list[tuple[str, str]] = []
    for registry_name, entries in COMPONENTS.items():
        registry = REGISTRIES[registry_name]
        for name, target in entries.items():
            if name not in registry:
                registry.register_lazy(name, target)
                added.append((registry_name, name))
    yield
    for registry_name, name in added:
        REGISTRIES[registry_name].unregister(name)


def _jsonable(value: object) -> object:
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    return value


def _groups(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[dict]:
    names: dict[int, str] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(param), name)
    groups = []
    for group in optimizer.param_groups:
        entry = {k: _jsonable(v) for k, v in group.items() if k != "params"}
        entry["params"] = [names[id(p)] for p in group["params"]]
        groups.append(entry)
    return groups


# ---------------------------------------------------------------------------------- paramwise


@pytest.mark.parametrize("case", sorted(MODELS.CASES))
def test_param_groups_equal_mmengine(case: str) -> None:
    model_name, cfg = MODELS.CASES[case]
    expected = MMENGINE[case]
    model = MODELS.make_model(model_name)
    wrapper = build_optim_wrapper(model, cfg)
    assert _groups(model, wrapper.optimizer) == expected["groups"]
    assert wrapper.get_lr() == expected["get_lr"]
    assert wrapper.get_momentum() == expected["get_momentum"]
    assert len(wrapper.param_groups) == expected["num_wrapper_param_groups"]
    base = wrapper.base_param_settings
    assert (
        None if base is None else {k: _jsonable(v) for k, v in base.items() if k != "params"}
    ) == expected["base_param_settings"]
    assert sorted(wrapper.state_dict()) == expected["state_dict_keys"]


def test_fixture_exercises_every_rule() -> None:
    """Guards the fixture: each option changed at least one parameter's lr or weight decay."""
    groups = {g["params"][0]: g for g in MMENGINE["all_options"]["groups"]}
    assert groups["backbone.conv1d.weight"]["lr_mult"] == 0.5  # substring match of 'backbone.conv1'
    assert groups["head.0.weight"]["lr"] == 0.01 * 3.0  # 'ead' beats 'hea' (same length)
    assert groups["pos_embed"]["extra_key"] == 7  # custom options are copied into the group
    rules = {g["params"][0]: g for g in MMENGINE["rules_only"]["groups"]}
    assert rules["backbone.bn1.weight"]["weight_decay"] == 0.0  # norm
    assert rules["backbone.dwconv.weight"]["weight_decay"] == pytest.approx(3e-5)  # dwconv
    assert rules["neck.bias"]["lr"] == 0.02
    assert rules["neck.bias"]["weight_decay"] == 5e-5
    assert rules["scale"]["weight_decay"] == pytest.approx(7e-5)  # flat
    assert rules["dcn.conv_offset.weight"]["lr"] == pytest.approx(1e-3)  # dcn offset
    assert rules["dcn.conv_offset.bias"]["weight_decay"] == 1e-4  # dcn children keep decay
    assert "frozen.weight" not in rules
    tied = [g["params"] for g in MMENGINE["bypass_duplicate"]["groups"]]
    assert tied[-3:] == [["head.weight"], ["head.bias"], ["decoder.bias"]]  # shared weight once


def test_duplicate_parameters_without_bypass_are_rejected_by_torch() -> None:
    model = MODELS.make_model("tied")
    cfg = dict(
        optimizer=dict(type="SGD", lr=0.1, weight_decay=1e-3),
        paramwise_cfg=dict(norm_decay_mult=0.0),
    )
    with pytest.raises(ValueError, match="some parameters appear in more than one parameter group"):
        build_optim_wrapper(model, cfg)


def test_paramwise_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    import treadle.core.optim.optimizer.default_constructor as module

    logged: list[tuple[int, str]] = []
    monkeypatch.setattr(
        module, "print_log", lambda msg, logger=None, level=0: logged.append((level, str(msg)))
    )
    model_name, cfg = MODELS.CASES["all_options"]
    build_optim_wrapper(MODELS.make_model(model_name), cfg)
    messages = {msg: level for level, msg in logged}
    unused = "paramwise_cfg.custom_keys ['hea', 'no_such_param'] apply to no parameter"
    assert [level for msg, level in messages.items() if msg.startswith(unused)] == [10]
    assert (
        messages[
            "2 parameters with requires_grad=False are not given to the optimizer: frozen.weight, frozen.bias"
        ]
        == 20
    )
    assert (
        messages[
            "paramwise_options -- backbone.conv1.weight: lr=0.005, weight_decay=0.0001, lr_mult=0.5"
        ]
        == 10
    )

    logged.clear()
    DefaultOptimWrapperConstructor(
        dict(optimizer=dict(type="SGD", lr=0.1)), paramwise_cfg=dict(bias_lr_mul=2.0)
    )
    assert logged[0][0] == 30
    assert "['bias_lr_mul'] are not used" in logged[0][1]


@pytest.mark.parametrize(
    ("optimizer", "paramwise_cfg", "error", "message"),
    [
        (
            dict(type="SGD", lr=0.1),
            dict(custom_keys={"a": dict(decay_mult=0.5)}),
            ValueError,
            r"custom_keys\['a'\] sets decay_mult.*no weight_decay",
        ),
        (
            dict(type="SGD", lr=0.1),
            dict(norm_decay_mult=0.0),
            ValueError,
            "norm_decay_mult needs the optimizer config to set weight_decay",
        ),
        (dict(type="SGD", lr=0.1), dict(bias_decay_mult=0.0), ValueError, "bias_decay_mult needs"),
        (
            dict(type="SGD", lr=0.1),
            dict(dwconv_decay_mult=0.0),
            ValueError,
            "dwconv_decay_mult needs",
        ),
        (
            dict(type="Adam"),
            dict(bias_lr_mult=2.0),
            ValueError,
            "bias_lr_mult needs the optimizer config to set lr",
        ),
        (
            dict(type="Adam"),
            dict(custom_keys={"a": dict(lr_mult=2.0)}),
            ValueError,
            "custom_keys needs the optimizer config to set lr",
        ),
        (
            dict(type="SGD", lr=0.1),
            dict(custom_keys=["a"]),
            TypeError,
            "custom_keys must be a dict",
        ),
        (
            dict(type="SGD", lr=0.1),
            dict(custom_keys={"a": 0.1}),
            TypeError,
            r"custom_keys\['a'\] must be a dict",
        ),
        (
            dict(type="SGD", lr=0.1),
            [("norm_decay_mult", 0.0)],
            TypeError,
            "paramwise_cfg should be None or a dict",
        ),
    ],
)
def test_bad_paramwise_cfg(
    optimizer: dict, paramwise_cfg: object, error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        DefaultOptimWrapperConstructor(dict(optimizer=optimizer), paramwise_cfg)  # type: ignore[arg-type]


def test_bad_optim_wrapper_cfg() -> None:
    with pytest.raises(
        ValueError, match=r"must contain an 'optimizer' config.*got keys \['clip_grad', 'type'\]"
    ):
        build_optim_wrapper(nn.Linear(1, 1), dict(type="OptimWrapper", clip_grad=dict(max_norm=1)))
    with pytest.raises(TypeError, match="optim_wrapper_cfg should be a dict"):
        DefaultOptimWrapperConstructor([("optimizer", None)])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"optim_wrapper_cfg\['optimizer'\] should be a dict"):
        DefaultOptimWrapperConstructor(dict(optimizer="SGD"))
    with pytest.raises(ValueError, match="the optimizer config needs a 'type'"):
        build_optim_wrapper(nn.Linear(1, 1), dict(optimizer=dict(lr=0.1)))
    with pytest.raises(TypeError, match="optim_wrapper config should be a dict"):
        build_optim_wrapper(nn.Linear(1, 1), "SGD")  # type: ignore[arg-type]


class _LayerCounting(DefaultOptimWrapperConstructor):
    """An MMEngine-style subclass that overrides add_params and calls the base per module."""

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: dict | None = None) -> None:
        super().__init__(optim_wrapper_cfg, paramwise_cfg)
        self.prefixes: list[str] = []

    def add_params(self, params, module, prefix="", is_dcn_module=None):  # type: ignore[no-untyped-def]
        self.prefixes.append(prefix)
        super().add_params(params, module, prefix, is_dcn_module)


def test_subclass_add_params_sees_every_module() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.Linear(2, 2), nn.LayerNorm(2)))
    constructor = _LayerCounting(
        dict(optimizer=dict(type="SGD", lr=0.1, weight_decay=0.1)), dict(norm_decay_mult=0.0)
    )
    wrapper = constructor(model)
    assert constructor.prefixes == ["", "0", "1", "1.0", "1.1"]
    assert [g["weight_decay"] for g in wrapper.optimizer.param_groups] == [
        0.1,
        0.1,
        0.1,
        0.1,
        0.0,
        0.0,
    ]


def test_add_params_called_directly_keeps_bypass_duplicate() -> None:
    model = MODELS.make_model("tied")
    constructor = DefaultOptimWrapperConstructor(
        dict(optimizer=dict(type="SGD", lr=0.1)), dict(bypass_duplicate=True)
    )
    params: list[dict] = [{"params": [model.body.weight]}]
    constructor.add_params(params, model)
    names = {id(p): n for n, p in model.named_parameters()}
    assert [names[id(g["params"][0])] for g in params] == [
        "body.weight",
        "body.bias",
        "norm.weight",
        "norm.bias",
        "head.weight",
        "head.bias",
        "decoder.bias",
    ]


# ---------------------------------------------------------------------------------- building


def test_build_optim_wrapper_through_the_registries() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.LayerNorm(2))
    cfg = dict(
        type="AmpOptimWrapper",
        dtype="bfloat16",
        accumulative_counts=2,
        clip_grad=dict(max_norm=1.0),
        optimizer=dict(type="AdamW", lr=1e-3, weight_decay=0.05),
        paramwise_cfg=dict(norm_decay_mult=0.0),
    )
    given = json.dumps(cfg, sort_keys=True)
    wrapper = build_optim_wrapper(model, cfg)
    assert json.dumps(cfg, sort_keys=True) == given  # the config is not modified
    assert isinstance(wrapper, AmpOptimWrapper)
    assert type(wrapper.optimizer) is torch.optim.AdamW
    assert wrapper.cast_dtype == torch.bfloat16
    assert wrapper._accumulative_counts == 2
    assert [g["weight_decay"] for g in wrapper.optimizer.param_groups] == [0.05, 0.05, 0.0, 0.0]

    default = build_optim_wrapper(model, dict(optimizer=dict(type=torch.optim.SGD, lr=0.1)))
    assert type(default) is OptimWrapper
    assert type(default.optimizer) is torch.optim.SGD
    assert default.optimizer.param_groups[0]["params"] == list(model.parameters())

    adafactor = build_optim_wrapper(model, dict(optimizer=dict(type="TorchAdafactor", lr=0.01)))
    assert type(adafactor.optimizer).__name__ == "Adafactor"


def test_build_optim_wrapper_from_a_loaded_config() -> None:
    from treadle.core.config import Config

    cfg = Config(
        dict(
            optim_wrapper=dict(
                optimizer=dict(type="AdamW", lr=1e-3, betas=(0.9, 0.99), weight_decay=0.05),
                clip_grad=dict(max_norm=1.0),
                paramwise_cfg=dict(norm_decay_mult=0.0, custom_keys={"0.": dict(lr_mult=0.1)}),
            )
        )
    )
    model = nn.Sequential(nn.Linear(2, 2), nn.LayerNorm(2))
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    groups = wrapper.optimizer.param_groups
    assert [(g["lr"], g["weight_decay"]) for g in groups] == [
        (1e-3 * 0.1, 0.05),
        (1e-3 * 0.1, 0.05),
        (1e-3, 0.0),
        (1e-3, 0.0),
    ]
    assert groups[0]["betas"] == (0.9, 0.99)
    assert wrapper.clip_grad_kwargs == {"max_norm": 1.0}
    wrapper.update_params(model(torch.ones(3, 2)).sum())
    assert set(wrapper.get_grad_norm()) == {"grad_norm"}


def test_constructor_unwraps_model_module_and_accepts_class_types() -> None:
    class Wrapped(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.module = nn.Linear(2, 2)
            self.extra = nn.Parameter(torch.zeros(1))  # not part of .module: not optimized

    model = Wrapped()
    wrapper = build_optim_wrapper(
        model,
        dict(
            type=OptimWrapper,
            constructor=DefaultOptimWrapperConstructor,
            optimizer=dict(type="SGD", lr=0.1),
        ),
    )
    assert wrapper.optimizer.param_groups[0]["params"] == list(model.module.parameters())


class _ModelParamsOptimizer(torch.optim.SGD):
    """An optimizer whose first argument is called model_params (like colossalai's HybridAdam)."""

    def __init__(self, model_params, lr: float = 0.1) -> None:  # type: ignore[no-untyped-def]
        super().__init__(model_params, lr=lr)


def test_first_argument_name_of_the_optimizer_is_used() -> None:
    OPTIMIZERS.register_module(module=_ModelParamsOptimizer)
    try:
        model = nn.Linear(2, 2)
        wrapper = build_optim_wrapper(
            model,
            dict(
                optimizer=dict(type="_ModelParamsOptimizer", lr=0.3),
                paramwise_cfg=dict(bias_lr_mult=2.0),
            ),
        )
        assert [g["lr"] for g in wrapper.optimizer.param_groups] == [0.3, 0.6]
    finally:
        OPTIMIZERS.unregister("_ModelParamsOptimizer")


def test_unknown_types_raise_registry_errors() -> None:
    with pytest.raises(
        RegistryKeyError, match="NoSuchOptimizer is not in the treadle::optimizer registry"
    ):
        build_optim_wrapper(nn.Linear(1, 1), dict(optimizer=dict(type="NoSuchOptimizer", lr=0.1)))
    with pytest.raises(
        RegistryKeyError, match=r"AdamWW is not in the treadle::optimizer registry(.|\n)*AdamW"
    ):
        build_optim_wrapper(nn.Linear(1, 1), dict(optimizer=dict(type="AdamWW", lr=0.1)))
    with pytest.raises(
        RegistryKeyError, match="NoSuchWrapper is not in the treadle::optim_wrapper registry"
    ):
        build_optim_wrapper(
            nn.Linear(1, 1), dict(type="NoSuchWrapper", optimizer=dict(type="SGD", lr=0.1))
        )
    with pytest.raises(
        RegistryKeyError,
        match="NoSuchConstructor is not in the treadle::optimizer wrapper constructor",
    ):
        build_optim_wrapper(
            nn.Linear(1, 1),
            dict(constructor="NoSuchConstructor", optimizer=dict(type="SGD", lr=0.1)),
        )


# ---------------------------------------------------------------------------------- components


# Optimizers newer than the oldest torch treadle-core supports (torch>=2.4).
_NEWER_THAN_TORCH_2_4 = {"TorchAdafactor", "Muon"}


def test_optimizers_list_matches_torch_optim() -> None:
    installed = {
        name
        for name, obj in vars(torch.optim).items()
        if inspect.isclass(obj) and issubclass(obj, torch.optim.Optimizer)
    }
    # MMEngine's names: torch's Adafactor is TorchAdafactor ("Adafactor" is transformers').
    expected = {
        "TorchAdafactor" if name == "Adafactor" else name: f"torch.optim:{name}"
        for name in installed
    }
    listed = COMPONENTS["OPTIMIZERS"]
    missing = set(expected) - set(listed)
    assert not missing, (
        f"torch.optim has optimizers that components.py does not list: {sorted(missing)}"
    )
    for name, target in listed.items():
        if name in expected:
            assert target == expected[name]
        else:
            assert name in _NEWER_THAN_TORCH_2_4, f"{name} ({target}) is not in torch.optim"


def test_components_resolve_to_the_classes() -> None:
    from treadle.core.optim.optimizer.amp_optimizer_wrapper import AmpOptimWrapper as Amp

    assert OPTIMIZERS.get("SGD") is torch.optim.SGD
    assert REGISTRIES["OPTIM_WRAPPERS"].get("AmpOptimWrapper") is Amp
    assert (
        OPTIM_WRAPPER_CONSTRUCTORS.get("DefaultOptimWrapperConstructor")
        is DefaultOptimWrapperConstructor
    )
    for registry_name, entries in COMPONENTS.items():
        assert set(entries) <= set(REGISTRIES[registry_name].keys())


def test_components_and_package_import_without_torch() -> None:
    code = (
        "import sys\n"
        "import treadle.core.optim\n"
        "import treadle.core.optim.optimizer\n"
        "import treadle.core.optim.scheduler.components\n"
        "from treadle.core.optim.optimizer.components import COMPONENTS\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_lazy_package_attributes() -> None:
    import treadle.core.optim as optim
    import treadle.core.optim.optimizer as optimizer
    import treadle.core.optim.scheduler as scheduler

    assert optim.OptimWrapperDict is optimizer.OptimWrapperDict
    assert optim.OPTIMIZERS is OPTIMIZERS
    assert optim.StepLR is scheduler.StepLR
    # mmengine.optim's names: the optimizer and scheduler packages' names and the registries.
    assert set(optim.__all__) == {
        *optimizer.__all__,
        *scheduler.__all__,
        "OPTIMIZERS",
        "OPTIM_WRAPPERS",
        "OPTIM_WRAPPER_CONSTRUCTORS",
    }
    assert set(optim.__all__) <= set(dir(optim))
    for name in optim.__all__:
        assert getattr(optim, name) is not None
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        optim.Nope
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        optimizer.Nope

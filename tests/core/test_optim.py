# ruff: noqa: C408  (configs are written dict(...) as in MMEngine config files)
"""OptimWrapper, AmpOptimWrapper and OptimWrapperDict: against plain PyTorch loops and MMEngine."""

from __future__ import annotations

import copy
import io
import json
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from torch import nn

from treadle.core.optim import AmpOptimWrapper, OptimWrapper, OptimWrapperDict

FIXTURES = Path(__file__).parent / "fixtures" / "optim"
CUDA = torch.cuda.is_available()


def _mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))


def _data(n: int, seed: int = 1) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(16, 4, generator=gen), torch.randn(16, 1, generator=gen)) for _ in range(n)
    ]


def _loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return nn.functional.mse_loss(model(x), y)


def _assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def _save_load(obj: object) -> object:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


# ---------------------------------------------------------------------------------- updates


def test_update_params_equals_a_manual_loop_bitwise() -> None:
    ours, ref = _mlp(), _mlp()
    wrapper = OptimWrapper(
        torch.optim.SGD(ours.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-2)
    )
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-2)
    for x, y in _data(6):
        with wrapper.optim_context(ours):
            loss = _loss(ours, x, y)
        wrapper.update_params(loss)

        ref_loss = _loss(ref, x, y)
        ref_loss.backward()
        ref_opt.step()
        ref_opt.zero_grad()
    _assert_same_weights(ours, ref)
    assert wrapper.inner_count == 6
    assert all(p.grad is None for p in ours.parameters())  # zero_grad(set_to_none=True)


def test_step_and_zero_kwargs_are_passed_on() -> None:
    model = _mlp()
    wrapper = OptimWrapper(torch.optim.LBFGS(model.parameters(), lr=0.5, max_iter=3))
    x, y = _data(1)[0]

    def closure() -> torch.Tensor:
        wrapper.zero_grad()
        loss = _loss(model, x, y)
        loss.backward()
        return loss

    before = _loss(model, x, y).detach()
    wrapper.update_params(
        _loss(model, x, y), step_kwargs={"closure": closure}, zero_kwargs={"set_to_none": False}
    )
    assert _loss(model, x, y) < before
    assert all(p.grad is not None and not p.grad.any() for p in model.parameters())


def test_accumulation_over_10_iters_equals_a_manual_loop_with_tail_division() -> None:
    ours, ref = _mlp(), _mlp()
    wrapper = OptimWrapper(
        torch.optim.SGD(ours.parameters(), lr=0.1, momentum=0.9), accumulative_counts=4
    )
    wrapper.initialize_count_status(ours, 0, 10)
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    updates = []
    for i, (x, y) in enumerate(_data(10), start=1):
        with wrapper.optim_context(ours):
            loss = _loss(ours, x, y)
        wrapper.update_params(loss)
        if wrapper.should_update():
            updates.append(i)

        # Iterations 1-8 form two groups of 4; the tail (9, 10) is a group of 2.
        divisor = 4 if i <= 8 else 2
        (_loss(ref, x, y) / divisor).backward()
        if i in (4, 8, 10):
            ref_opt.step()
            ref_opt.zero_grad()
    assert updates == [4, 8, 10]
    _assert_same_weights(ours, ref)


def test_accumulation_without_count_status_divides_by_accumulative_counts() -> None:
    wrapper = OptimWrapper(
        torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1), accumulative_counts=3
    )
    assert float(wrapper.scale_loss(torch.tensor(6.0))) == 2.0
    no_accum = OptimWrapper(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1))
    loss = torch.tensor(6.0)
    assert no_accum.scale_loss(loss) is loss  # no division kernel without accumulation


def test_accumulation_and_clipping_match_mmengine_bitwise() -> None:
    rec = json.loads((FIXTURES / "mmengine_accumulation.json").read_text())
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    model.load_state_dict({k: torch.tensor(v) for k, v in rec["init"].items()})
    inputs, targets = torch.tensor(rec["inputs"]), torch.tensor(rec["targets"])
    wrapper = OptimWrapper(
        torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
        accumulative_counts=4,
        clip_grad=dict(max_norm=0.5),
    )
    wrapper.initialize_count_status(model, 0, 10)
    grad_norms = []
    for x, y in zip(inputs, targets, strict=True):
        with wrapper.optim_context(model):
            loss = _loss(model, x, y)
        wrapper.update_params(loss)
        if wrapper.should_update():
            grad_norms.append(float(wrapper.get_grad_norm()["grad_norm"]))
    assert grad_norms == rec["grad_norms"]
    for key, value in model.state_dict().items():
        assert torch.equal(value, torch.tensor(rec["final"][key])), key


@pytest.mark.parametrize("case", ["4,0,10", "3,0,9", "4,3,10", "4,0,-1", "1,0,5", "5,2,7"])
def test_counting_matches_mmengine(case: str) -> None:
    """should_sync before, the loss divisor, should_update after: iteration by iteration."""
    trace = json.loads((FIXTURES / "mmengine_accumulation.json").read_text())["traces"][case]
    accum, init, total = map(int, case.split(","))
    param = nn.Parameter(torch.zeros(1))
    wrapper = OptimWrapper(torch.optim.SGD([param], lr=0.0), accumulative_counts=accum)
    if total != -1:
        wrapper.initialize_count_status(nn.Linear(1, 1), init, total)
    ours = []
    for _ in trace:
        sync = wrapper.should_sync()
        factor = 1.0 / float(wrapper.scale_loss(torch.tensor(1.0)))
        wrapper.update_params((param * 1.0).sum())
        ours.append([sync, factor, wrapper.should_update()])
    assert ours == trace


def test_count_status_errors_and_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    import treadle.core.optim.optimizer.optimizer_wrapper as module

    logged: list[tuple[int, str]] = []
    monkeypatch.setattr(
        module, "print_log", lambda msg, logger=None, level=0: logged.append((level, str(msg)))
    )
    wrapper = OptimWrapper(
        torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1), accumulative_counts=4
    )
    with pytest.raises(ValueError, match="init_counts=11, max_counts=10"):
        wrapper.initialize_count_status(nn.Linear(1, 1), 11, 10)
    with pytest.raises(ValueError, match="max_counts=-2"):
        wrapper.initialize_count_status(nn.Linear(1, 1), 0, -2)

    wrapper.initialize_count_status(nn.Sequential(nn.Linear(1, 1), nn.BatchNorm1d(1)), 3, 8)
    assert [level for level, _ in logged] == [30, 30]
    assert "Resumed iteration 3" in logged[0][1]
    assert "BatchNorm" in logged[1][1]

    # max_counts=8 is divisible by 4: a 9th iteration has no group to belong to.
    param = wrapper.optimizer.param_groups[0]["params"][0]
    for _ in range(5):
        wrapper.update_params(param.sum())
    with pytest.raises(RuntimeError, match="iteration 9, beyond max_counts=8"):
        wrapper.update_params(param.sum())


class _DDPLike(nn.Module):
    """A model with DDP's ``no_sync`` context, recording when it is used."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 1)
        self.no_sync_entries = 0

    @contextmanager
    def no_sync(self):  # type: ignore[no-untyped-def]
        self.no_sync_entries += 1
        yield

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


def test_optim_context_skips_sync_while_accumulating() -> None:
    model = _DDPLike()
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1), accumulative_counts=3)
    wrapper.initialize_count_status(model, 0, 7)
    synced = []
    for _ in range(7):
        before = model.no_sync_entries
        with wrapper.optim_context(model):
            loss = model(torch.ones(1, 2)).sum()
        synced.append(model.no_sync_entries == before)
        wrapper.update_params(loss)
    # Updates happen at iterations 3, 6 and 7 (the tail); only those synchronise.
    assert synced == [False, False, True, False, False, True, True]

    plain = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    with plain.optim_context(model):
        pass
    assert model.no_sync_entries == 4  # no accumulation: never skipped


# ---------------------------------------------------------------------------------- clipping


@pytest.mark.parametrize(
    ("clip_grad", "clip"),
    [
        (dict(max_norm=0.3), lambda ps: torch.nn.utils.clip_grad_norm_(ps, max_norm=0.3)),
        (
            dict(type="norm", max_norm=0.2, norm_type=1.0),
            lambda ps: torch.nn.utils.clip_grad_norm_(ps, max_norm=0.2, norm_type=1.0),
        ),
        (
            dict(type="norm", max_norm=0.1, norm_type="inf"),
            lambda ps: torch.nn.utils.clip_grad_norm_(ps, max_norm=0.1, norm_type="inf"),
        ),
        (dict(type="value", clip_value=0.01), lambda ps: torch.nn.utils.clip_grad_value_(ps, 0.01)),
    ],
)
def test_clipping_matches_torch_clip_functions(clip_grad: dict, clip) -> None:  # type: ignore[no-untyped-def]
    ours, ref = _mlp(), _mlp()
    ours.requires_grad_(True)
    ours[0].bias.requires_grad_(False)  # parameters without grad are left out, as in MMEngine
    ref[0].bias.requires_grad_(False)
    given = copy.deepcopy(clip_grad)
    wrapper = OptimWrapper(torch.optim.SGD(ours.parameters(), lr=0.5), clip_grad=clip_grad)
    assert clip_grad == given  # the config is not modified
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.5)
    for x, y in _data(3):
        wrapper.update_params(_loss(ours, x, y))
        _loss(ref, x, y).backward()
        ref_norm = clip([p for p in ref.parameters() if p.grad is not None])
        ref_opt.step()
        ref_opt.zero_grad()
        if ref_norm is None:
            assert wrapper.last_grad_norm is None
            assert wrapper.get_grad_norm() == {}
        else:
            assert torch.equal(wrapper.last_grad_norm, ref_norm)
    _assert_same_weights(ours, ref)
    assert wrapper.grad_name == ("grad_value" if clip_grad.get("type") == "value" else "grad_norm")


def test_grad_norm_is_recorded_without_a_host_sync(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _mlp()
    wrapper = OptimWrapper(
        torch.optim.SGD(model.parameters(), lr=0.1), clip_grad=dict(max_norm=1.0)
    )
    assert wrapper.get_grad_norm() == {}

    def no_sync(*args: object, **kwargs: object) -> None:
        raise AssertionError("host sync in the update path")

    for name in ("item", "tolist", "__float__", "__bool__", "cpu", "numpy"):
        monkeypatch.setattr(torch.Tensor, name, no_sync)
    for x, y in _data(3):
        with wrapper.optim_context(model):
            loss = _loss(model, x, y)
        wrapper.update_params(loss)
    monkeypatch.undo()
    norm = wrapper.get_grad_norm()["grad_norm"]
    assert isinstance(norm, torch.Tensor)
    assert norm.ndim == 0
    assert not norm.requires_grad
    assert norm is wrapper.last_grad_norm
    assert float(norm) > 0


@pytest.mark.parametrize(
    ("clip_grad", "message"),
    [
        (dict(type="l2", max_norm=1.0), "clip_grad type must be 'norm' or 'value', got 'l2'"),
        ({}, "non-empty dict"),
        ([1.0], "non-empty dict"),
        (dict(type="norm"), "at least 'max_norm'"),
        (dict(type="value"), "at least 'clip_value'"),
    ],
)
def test_bad_clip_grad(clip_grad: object, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        OptimWrapper(torch.optim.SGD(_mlp().parameters(), lr=0.1), clip_grad=clip_grad)  # type: ignore[arg-type]


def test_bad_constructor_arguments() -> None:
    for counts in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="accumulative_counts must be an integer >= 1"):
            OptimWrapper(torch.optim.SGD(_mlp().parameters(), lr=0.1), accumulative_counts=counts)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"optimizer must be a torch.optim.Optimizer.*got dict"):
        OptimWrapper(dict(type="SGD", lr=0.1))  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------- read-outs


def test_lr_momentum_param_groups_and_defaults() -> None:
    model = _mlp()
    single = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.8))
    assert single.get_lr() == {"lr": [0.1]}
    assert single.get_momentum() == {"momentum": [0.8]}
    assert single.param_groups is single.optimizer.param_groups
    assert single.defaults is single.optimizer.defaults
    assert single.base_param_settings is None

    groups = [{"params": model[0].parameters(), "lr": 0.01}, {"params": model[2].parameters()}]
    multi = OptimWrapper(torch.optim.Adam(groups, lr=0.1, betas=(0.7, 0.9)))
    assert multi.get_lr() == {"base_lr": [0.1], "lr": [0.01, 0.1]}
    assert multi.get_momentum() == {"momentum": [0.7, 0.7]}
    # The extra group that schedulers update and the logger reads as base_lr (MMEngine).
    assert len(multi.param_groups) == 3
    base = multi.param_groups[-1]
    assert base is multi.base_param_settings
    assert base["lr"] == 0.1
    assert base["betas"] == (0.7, 0.9)
    assert torch.equal(base["params"], torch.tensor([0.0]))

    assert OptimWrapper(torch.optim.Adagrad(model.parameters())).get_momentum() == {"momentum": [0]}
    assert "Type: OptimWrapper\n_accumulative_counts: 1\noptimizer: \nSGD (" in repr(single)


def test_state_dict_round_trip_continues_identically() -> None:
    def make(model: nn.Module) -> OptimWrapper:
        groups = [{"params": model[0].parameters(), "lr": 0.01}, {"params": model[2].parameters()}]
        return OptimWrapper(torch.optim.AdamW(groups, lr=0.05, weight_decay=0.1))

    data = _data(6)
    model = _mlp()
    wrapper = make(model)
    for x, y in data[:3]:
        wrapper.update_params(_loss(model, x, y))
    wrapper.base_param_settings["lr"] = 0.042  # as a scheduler would  # type: ignore[index]
    state = wrapper.state_dict()
    assert sorted(state) == ["base_param_settings", "param_groups", "state"]
    saved = _save_load({"model": model.state_dict(), "optimizer": state})  # weights_only=True

    resumed_model = _mlp(seed=5)
    resumed_model.load_state_dict(saved["model"])  # type: ignore[index]
    resumed = make(resumed_model)
    given = saved["optimizer"]  # type: ignore[index]
    resumed.load_state_dict(given)
    assert "base_param_settings" in given  # the caller's dict is left alone
    assert resumed.get_lr() == {"base_lr": [0.042], "lr": [0.01, 0.05]}

    for x, y in data[3:]:
        wrapper.update_params(_loss(model, x, y))
        resumed.update_params(_loss(resumed_model, x, y))
    _assert_same_weights(model, resumed_model)


# ---------------------------------------------------------------------------------- AMP


def test_amp_bf16_on_cpu_autocasts_without_a_scaler() -> None:
    model = _mlp()
    wrapper = AmpOptimWrapper(
        dtype="bfloat16", optimizer=torch.optim.SGD(model.parameters(), lr=0.1)
    )
    assert wrapper.device_type == "cpu"
    assert wrapper.cast_dtype == torch.bfloat16
    assert wrapper.loss_scaler is None
    a = torch.randn(3, 4)
    with wrapper.optim_context(model):
        inside = a @ a.T
        out = model(torch.randn(2, 4))
    assert inside.dtype == torch.bfloat16
    assert out.dtype == torch.bfloat16
    assert (a @ a.T).dtype == torch.float32

    # Training under autocast equals the same loop written by hand.
    ref = _mlp()
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.1)
    for x, y in _data(3):
        with wrapper.optim_context(model):
            loss = _loss(model, x, y)
        wrapper.update_params(loss)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            ref_loss = _loss(ref, x, y)
        ref_loss.backward()
        ref_opt.step()
        ref_opt.zero_grad()
    _assert_same_weights(model, ref)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert "loss_scaler" not in wrapper.state_dict()


def test_amp_default_dtype_on_cpu_is_bf16_and_float32_disables_autocast() -> None:
    default = AmpOptimWrapper(optimizer=torch.optim.SGD(_mlp().parameters(), lr=0.1))
    assert default.cast_dtype == torch.bfloat16
    assert default.loss_scaler is None

    fp32 = AmpOptimWrapper(
        dtype=torch.float32, optimizer=torch.optim.SGD(_mlp().parameters(), lr=0.1)
    )
    a = torch.randn(3, 4)
    with fp32.optim_context(nn.Linear(1, 1)):
        assert (a @ a.T).dtype == torch.float32


def test_amp_errors() -> None:
    params = list(_mlp().parameters())
    with pytest.raises(
        ValueError, match=r"dtype='float16'\) needs a CUDA device.*dtype='bfloat16'"
    ):
        AmpOptimWrapper(dtype="float16", optimizer=torch.optim.SGD(params, lr=0.1))
    with pytest.raises(ValueError, match=r"needs a CUDA device"):
        AmpOptimWrapper(dtype=torch.float16, optimizer=torch.optim.SGD(params, lr=0.1))
    with pytest.raises(
        ValueError,
        match=r"dtype must be one of \('float16', 'bfloat16', 'float32', 'float64'\).*'fp8'",
    ):
        AmpOptimWrapper(dtype="fp8", optimizer=torch.optim.SGD(params, lr=0.1))
    with pytest.raises(ValueError, match="not a floating point type"):
        AmpOptimWrapper(dtype=torch.int8, optimizer=torch.optim.SGD(params, lr=0.1))
    with pytest.raises(
        TypeError, match=r"loss_scale must be 'dynamic', a number or a dict.*'static'"
    ):
        AmpOptimWrapper(
            loss_scale="static", dtype="bfloat16", optimizer=torch.optim.SGD(params, lr=0.1)
        )
    with pytest.raises(ValueError, match="loss_scale must be positive"):
        AmpOptimWrapper(loss_scale=0.0, dtype="bfloat16", optimizer=torch.optim.SGD(params, lr=0.1))


def test_amp_without_scaler_ignores_a_saved_loss_scaler() -> None:
    model = _mlp()
    wrapper = AmpOptimWrapper(
        dtype="bfloat16", optimizer=torch.optim.SGD(model.parameters(), lr=0.1)
    )
    state = wrapper.state_dict()
    state["loss_scaler"] = {"scale": 1024.0, "growth_factor": 2.0}
    wrapper.load_state_dict(state)
    assert "loss_scaler" in state
    assert wrapper.loss_scaler is None


@pytest.mark.skipif(not CUDA, reason="float16 with a GradScaler needs CUDA")
def test_amp_fp16_on_cuda_matches_a_manual_grad_scaler_loop() -> None:
    model, ref = _mlp().cuda(), _mlp().cuda()
    wrapper = AmpOptimWrapper(
        dtype="float16",
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        clip_grad=dict(max_norm=0.5),
    )
    assert wrapper.device_type == "cuda"
    assert isinstance(wrapper.loss_scaler, torch.amp.GradScaler)
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cuda")
    for x, y in _data(4):
        x, y = x.cuda(), y.cuda()
        with wrapper.optim_context(model):
            assert (x @ x.T).dtype == torch.float16
            loss = _loss(model, x, y)
        wrapper.update_params(loss)

        with torch.autocast("cuda", dtype=torch.float16):
            ref_loss = _loss(ref, x, y)
        scaler.scale(ref_loss).backward()
        scaler.unscale_(ref_opt)
        norm = torch.nn.utils.clip_grad_norm_(list(ref.parameters()), max_norm=0.5)
        scaler.step(ref_opt)
        scaler.update()
        ref_opt.zero_grad()
        assert torch.equal(wrapper.last_grad_norm, norm)
    _assert_same_weights(model, ref)

    state = wrapper.state_dict()
    assert state["loss_scaler"] == scaler.state_dict()
    other = AmpOptimWrapper(
        dtype="float16", optimizer=torch.optim.SGD(_mlp().cuda().parameters(), lr=0.1)
    )
    other.load_state_dict(_save_load(state))  # type: ignore[arg-type]
    assert other.loss_scaler.state_dict() == scaler.state_dict()  # type: ignore[union-attr]


@pytest.mark.skipif(not CUDA, reason="float16 with a GradScaler needs CUDA")
def test_amp_static_and_configured_loss_scale_on_cuda() -> None:
    model = _mlp().cuda()
    static = AmpOptimWrapper(
        loss_scale=512.0, dtype="float16", optimizer=torch.optim.SGD(model.parameters(), lr=0.1)
    )
    for x, y in _data(3):
        static.update_params(_loss(model, x.cuda(), y.cuda()))
    assert static.loss_scaler.get_scale() == 512.0  # type: ignore[union-attr]
    configured = AmpOptimWrapper(
        loss_scale=dict(init_scale=64.0, growth_interval=1),
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
    )
    assert configured.cast_dtype == torch.float16  # the CUDA default
    configured.update_params(_loss(model, *(t.cuda() for t in _data(1)[0])))
    assert configured.loss_scaler.get_scale() == 128.0  # type: ignore[union-attr]


# ---------------------------------------------------------------------------------- dict


def _gan() -> tuple[nn.Module, nn.Module, OptimWrapperDict]:
    gen, disc = _mlp(0), _mlp(1)
    wrappers = OptimWrapperDict(
        generator=OptimWrapper(
            torch.optim.SGD(gen.parameters(), lr=0.1, momentum=0.5), clip_grad=dict(max_norm=1.0)
        ),
        discriminator=OptimWrapper(
            torch.optim.Adam(
                [{"params": disc[0].parameters(), "lr": 0.01}, {"params": disc[2].parameters()}],
                lr=0.02,
                betas=(0.6, 0.9),
            )
        ),
    )
    return gen, disc, wrappers


def test_optim_wrapper_dict_read_outs() -> None:
    gen, _disc, wrappers = _gan()
    assert wrappers.get_lr() == {
        "generator.lr": [0.1],
        "discriminator.base_lr": [0.02],
        "discriminator.lr": [0.01, 0.02],
    }
    assert wrappers.get_momentum() == {
        "generator.momentum": [0.5],
        "discriminator.momentum": [0.6, 0.6],
    }
    assert list(wrappers.keys()) == ["generator", "discriminator"]
    assert [w for _, w in wrappers.items()] == list(wrappers.values())
    assert len(wrappers) == 2
    assert "generator" in wrappers
    assert "nope" not in wrappers
    assert wrappers.param_groups["generator"] is wrappers["generator"].param_groups
    assert len(wrappers.param_groups["discriminator"]) == 3
    assert wrappers.defaults["discriminator"]["betas"] == (0.6, 0.9)
    assert repr(wrappers).startswith("name: generator\nType: OptimWrapper")

    x, y = _data(1)[0]
    wrappers["generator"].update_params(_loss(gen, x, y))
    assert set(wrappers.get_grad_norm()) == {"generator.grad_norm"}


def test_optim_wrapper_dict_refuses_ambiguous_calls() -> None:
    gen, _, wrappers = _gan()
    loss = _loss(gen, *_data(1)[0])
    with pytest.raises(NotImplementedError, match="call update_params on the wrapper"):
        wrappers.update_params(loss)
    with pytest.raises(NotImplementedError, match="call backward on the wrapper"):
        wrappers.backward(loss)
    with pytest.raises(NotImplementedError, match="call step on each wrapper"):
        wrappers.step()
    with (
        pytest.raises(NotImplementedError, match="optim_context of the wrapper"),
        wrappers.optim_context(gen),
    ):
        pass
    wrappers.initialize_count_status(gen, 0, 10)  # each wrapper with its submodule (or gen)
    with pytest.raises(
        KeyError, match=r"no optimizer wrapper called 'critic'.*'generator', 'discriminator'"
    ):
        wrappers["critic"]
    with pytest.raises(TypeError, match="'critic' is a SGD"):
        OptimWrapperDict(critic=torch.optim.SGD(gen.parameters(), lr=0.1))  # type: ignore[arg-type]


def test_optim_wrapper_dict_zero_grad_and_state_dict() -> None:
    gen, disc, wrappers = _gan()
    x, y = _data(1)[0]
    wrappers["generator"].backward(_loss(gen, x, y))
    wrappers["discriminator"].update_params(_loss(disc, x, y))
    wrappers["discriminator"].backward(_loss(disc, x, y))
    wrappers.zero_grad()
    assert all(p.grad is None for p in [*gen.parameters(), *disc.parameters()])

    state = _save_load(wrappers.state_dict())
    assert sorted(state) == ["discriminator", "generator"]  # type: ignore[arg-type]
    assert sorted(state["discriminator"]) == ["base_param_settings", "param_groups", "state"]  # type: ignore[index]
    _, _, fresh = _gan()
    fresh.load_state_dict(state)  # type: ignore[arg-type]
    loaded = fresh["discriminator"].optimizer.state_dict()["state"]
    expected = wrappers["discriminator"].optimizer.state_dict()["state"]
    assert loaded.keys() == expected.keys()
    for key in expected:
        assert torch.equal(loaded[key]["exp_avg"], expected[key]["exp_avg"])
    with pytest.raises(
        KeyError, match=r"wrappers \['critic'\] that this OptimWrapperDict does not have"
    ):
        fresh.load_state_dict({"critic": {}})


def test_skip_nonfinite_drops_the_window_with_a_bad_loss() -> None:
    """With accumulation 2, a NaN in micro-batch 3 drops window (2, 3); the others step."""
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    reference = torch.nn.Linear(3, 1)
    reference.load_state_dict(model.state_dict())
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1), accumulative_counts=2)
    wrapper.initialize_count_status(model, 0, 6)
    wrapper.skip_nonfinite = True
    manual = torch.optim.SGD(reference.parameters(), lr=0.1)
    xs = [torch.randn(4, 3) for _ in range(6)]
    skipped = []
    for i, x in enumerate(xs):
        loss = model(x).pow(2).mean()
        if i == 3:
            loss = loss * float("nan")
        wrapper.update_params(loss)
        skipped.append(wrapper.last_step_skipped)
    for i in (0, 1, 4, 5):  # windows (0, 1) and (4, 5) step; (2, 3) is dropped
        (reference(xs[i]).pow(2).mean() / 2).backward()
        if i in (1, 5):
            manual.step()
            manual.zero_grad()
    assert skipped == [False, False, False, True, False, False]
    for p, q in zip(model.parameters(), reference.parameters(), strict=True):
        assert torch.isfinite(p).all()
        assert torch.allclose(p, q, atol=1e-6)

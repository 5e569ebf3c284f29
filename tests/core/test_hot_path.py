"""The per-iteration fast paths give what the general paths give, and step aside when they must.

The training iteration skips work in several places (see benchmarks/bench_train_loop.py): the
history buffer appends plain floats and 0-d tensors on a short path, the Runner reads the
counters of treadle's own loops directly, the loops call the hook manager without
``Runner.call_hook``, ``OptimWrapper.update_params`` calls the optimizer directly,
``BaseModel.train_step`` enters no context when there is none and calls ``forward`` itself on
modules whose ``__call__`` would do nothing else, and RuntimeInfoHook reads the learning rate
from the first parameter group when ``get_lr`` is the stock one. Each test below pins one of these
against the general path, and checks that an override or an unusual value still takes it.
"""

from __future__ import annotations

import uuid
import warnings
from typing import Any

import pytest
import torch
from torch import nn

from treadle.core.logging import HistoryBuffer, MessageHub
from treadle.core.logging.history_buffer import MAX_PENDING
from treadle.core.optim import OptimWrapper
from treadle.core.runner import IterBasedTrainLoop, Runner

# Runners make their logger, hub and visualizer current: put the previous ones back.
pytestmark = pytest.mark.usefixtures("forget_run_instances")

# -- message hub ---------------------------------------------------------------------------------


def new_hub() -> MessageHub:
    return MessageHub.get_instance(f"hot-{uuid.uuid4().hex}")


def fill(hub: MessageHub, values: list[Any]) -> None:
    for value in values:
        hub.update_scalar("s", value)


@pytest.mark.parametrize(
    "values",
    [
        [0.5, 1.5, 2.25],  # floats: the fast path from the second update on
        [torch.tensor(1.0), torch.tensor(2.0), torch.tensor(4.0)],  # plain 0-d tensors
        [torch.tensor(3), torch.tensor(5)],  # integer tensors stay integers
        [1, 2.5, torch.tensor(1.0), 4],  # ints take the checked path, mixed with the others
        [torch.tensor([2.0]), torch.tensor([[3.0]])],  # one element, not 0-d: reshaped
        [torch.tensor(1.0, requires_grad=True) * 2, torch.tensor(5.0)],  # detached
        [nn.Parameter(torch.tensor(2.0)), torch.tensor(1.0)],  # a tensor subclass
    ],
)
def test_update_scalar_fast_path_matches_history_buffer_update(values: list[Any]) -> None:
    hub = new_hub()
    fill(hub, values)
    expected = HistoryBuffer()
    for value in values:
        expected.update(value)
    buffer = hub.get_scalar("s")
    assert buffer.log_history == expected.log_history
    assert [type(v) for v in buffer.log_history] == [type(v) for v in expected.log_history]
    assert buffer.mean() == expected.mean()
    assert buffer.current() == expected.current()
    assert all(not getattr(v, "requires_grad", False) for v in buffer._values)


def test_update_scalar_fast_path_still_checks_the_resumed_flag_and_values() -> None:
    hub = new_hub()
    hub.update_scalar("s", 1.0)
    with pytest.raises(ValueError, match="resumed"):
        hub.update_scalar("s", 2.0, resumed=False)
    with pytest.raises(TypeError, match="one element"):
        hub.update_scalar("s", torch.ones(2))
    with pytest.raises(TypeError, match="count"):
        hub.update_scalar("s", 2.0, count=1.5)  # type: ignore[arg-type]
    hub.update_scalar("s", 3.0, count=2)
    assert hub.get_scalar("s").log_history == [1.0, 3.0]
    assert hub.get_scalar("s").count_history == [1, 2]


def test_update_scalar_fast_path_bounds_pending_tensors_and_length() -> None:
    hub = new_hub()
    hub.update_scalar("s", torch.tensor(0.0))
    for i in range(1, MAX_PENDING + 10):
        hub.update_scalar("s", torch.tensor(float(i)))
    buffer = hub.get_scalar("s")
    assert len(buffer._pending) < MAX_PENDING  # converted once MAX_PENDING were pending
    buffer.max_length = 10  # the setter moves the trimming threshold with it
    for i in range(200):
        hub.update_scalar("s", float(i))
    assert len(buffer._values) <= 10 + 64
    assert buffer.log_history == [float(i) for i in range(190, 200)]


def test_update_info_keeps_checking_the_resumed_flag() -> None:
    hub = new_hub()
    hub.update_info("iter", 1)
    hub.update_info("iter", 2)
    with pytest.raises(ValueError, match="resumed"):
        hub.update_info("iter", 3, resumed=False)
    assert hub.get_info("iter") == 2


# -- Runner counters and hook calls ----------------------------------------------------------


class CountedLoop(IterBasedTrainLoop):
    """A custom loop with its own ``iter`` property: the Runner must go through it."""

    reads = 0

    @property
    def iter(self) -> int:
        CountedLoop.reads += 1
        return self._iter


def test_runner_counters_read_overridden_loop_properties(toy_cfg: Any) -> None:
    from treadle.core.registry import LOOPS

    if "CountedLoop" not in LOOPS:
        LOOPS.register_module(module=CountedLoop)
    runner = Runner.from_cfg(toy_cfg(train_cfg={"type": "CountedLoop", "max_iters": 3}))
    runner.train()
    CountedLoop.reads = 0
    assert runner.iter == 3
    assert CountedLoop.reads == 1
    assert runner.max_iters == 3


def test_runner_counters_of_builtin_loops(toy_cfg: Any) -> None:
    runner = Runner.from_cfg(toy_cfg(train_cfg={"by_epoch": True, "max_epochs": 2}))
    assert (runner.epoch, runner.iter) == (0, 0)  # before the loop is built
    runner.train()
    assert (runner.epoch, runner.iter, runner.max_epochs, runner.max_iters) == (2, 6, 2, 6)


def test_an_overridden_call_hook_sees_every_iteration_point(toy_cfg: Any) -> None:
    calls: list[tuple[str, tuple[str, ...]]] = []

    class CountingRunner(Runner):
        def call_hook(self, fn_name: str, **kwargs: Any) -> None:
            calls.append((fn_name, tuple(sorted(kwargs))))
            super().call_hook(fn_name, **kwargs)

    for by_epoch in (True, False):
        calls.clear()
        train_cfg = (
            {"by_epoch": True, "max_epochs": 1} if by_epoch else {"by_epoch": False, "max_iters": 3}
        )
        CountingRunner.from_cfg(toy_cfg(train_cfg=train_cfg)).train()
        points = [name for name, _ in calls]
        assert points.count("before_train_iter") == points.count("after_train_iter") == 3
        assert ("before_train_iter", ("batch_idx", "data_batch")) in calls
        assert ("after_train_iter", ("batch_idx", "data_batch", "outputs")) in calls


# -- OptimWrapper.update_params and BaseModel.train_step ------------------------------------------


def linear() -> tuple[nn.Linear, torch.Tensor]:
    torch.manual_seed(0)
    return nn.Linear(3, 1), torch.randn(4, 3)


def test_update_params_fast_path_equals_the_general_path() -> None:
    class General(OptimWrapper):
        def backward(self, loss: torch.Tensor, **kwargs: Any) -> None:  # forces the general path
            super().backward(loss, **kwargs)

    results = []
    for cls in (OptimWrapper, General):
        model, x = linear()
        wrapper = cls(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
        for _ in range(3):
            wrapper.update_params(model(x).pow(2).mean())
        assert wrapper._inner_count == 3
        results.append([p.detach().clone() for p in model.parameters()])
        assert all(p.grad is None for p in model.parameters())  # zero_grad ran
    assert all(torch.equal(a, b) for a, b in zip(*results, strict=True))


def test_update_params_fast_path_passes_kwargs_and_clips() -> None:
    model, x = linear()
    wrapper = OptimWrapper(
        torch.optim.SGD(model.parameters(), lr=0.1), clip_grad={"max_norm": 1e-3}
    )
    wrapper.update_params(model(x).pow(2).mean(), zero_kwargs={"set_to_none": False})
    assert all(torch.equal(p.grad, torch.zeros_like(p)) for p in model.parameters())
    assert wrapper.get_grad_norm()["grad_norm"] > 1e-3  # measured before clipping

    closures: list[int] = []

    def closure() -> None:
        closures.append(1)

    wrapper.update_params(model(x).pow(2).mean(), step_kwargs={"closure": closure})
    assert closures == [1]


def test_update_params_honours_overridden_steps() -> None:
    steps: list[str] = []

    class Logged(OptimWrapper):
        def step(self, **kwargs: Any) -> None:
            steps.append("step")
            super().step(**kwargs)

        def zero_grad(self, **kwargs: Any) -> None:
            steps.append("zero_grad")
            super().zero_grad(**kwargs)

    model, x = linear()
    Logged(torch.optim.SGD(model.parameters(), lr=0.1)).update_params(model(x).sum())
    assert steps == ["step", "zero_grad"]


def test_train_step_enters_a_real_optim_context() -> None:
    import contextlib

    from treadle.core.model import BaseModel

    entered: list[bool] = []

    class NoSyncNet(BaseModel):
        def __init__(self) -> None:
            super().__init__()
            self.layer = nn.Linear(3, 1)

        def forward(self, inputs: torch.Tensor, mode: str = "tensor") -> Any:  # type: ignore[override]
            entered.append(self.syncing)
            return {"loss": self.layer(inputs).pow(2).mean()}

        syncing = True

        @contextlib.contextmanager
        def no_sync(self) -> Any:
            self.syncing = False
            try:
                yield
            finally:
                self.syncing = True

    model = NoSyncNet()
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1), accumulative_counts=2)
    wrapper.initialize_count_status(model, 0, 4)
    for _ in range(4):
        model.train_step({"inputs": torch.randn(2, 3)}, optim_wrapper=wrapper)
    # Accumulating iterations run inside no_sync(); the updating ones synchronise.
    assert entered == [False, True, False, True]


@pytest.mark.parametrize(
    "losses",
    [
        {"loss": torch.tensor(2.0, requires_grad=True)},  # the fast path
        {"loss": torch.tensor([1.0, 3.0], requires_grad=True)},  # not 0-d: reduced to its mean
        {"loss_cls": torch.tensor(2.0, requires_grad=True)},  # another name
        {"loss": nn.Parameter(torch.tensor(2.0))},  # a tensor subclass
    ],
)
def test_parse_losses_single_entry_matches_the_general_path(losses: dict[str, Any]) -> None:
    from treadle.core.model import BaseModel

    class Net(BaseModel):
        def forward(self, *args: Any, **kwargs: Any) -> Any:
            return None

    net = Net()
    loss, log_vars = net.parse_losses(losses)
    # The general path, by hand: mean per entry, sum of the "loss" entries, "loss" logged first.
    ((name, value),) = losses.items()
    expected = value.mean()
    assert torch.equal(loss.detach(), expected.detach())
    assert loss.requires_grad
    assert list(log_vars) == (["loss"] if name == "loss" else ["loss", name])
    assert all(not v.requires_grad for v in log_vars.values())
    assert torch.equal(log_vars["loss"], expected.detach())
    loss.backward()  # the graph reaches the input
    assert value.grad is not None


def test_hook_calls_by_position_only_when_parameter_order_matches_the_spec(toy_cfg: Any) -> None:
    from treadle.core.hooks import Hook
    from treadle.core.runner.hook_manager import _Positional

    seen: list[tuple[str, Any, Any]] = []

    class InOrder(Hook):
        def after_train_iter(
            self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None
        ) -> None:
            seen.append(("in order", batch_idx, outputs))

    class Shuffled(Hook):
        # Same names, another order: must be called by keyword.
        def after_train_iter(  # type: ignore[override]
            self, runner: Any, outputs: Any = None, data_batch: Any = None, batch_idx: int = -1
        ) -> None:
            seen.append(("shuffled", batch_idx, outputs))

    runner = Runner.from_cfg(
        toy_cfg(train_cfg={"by_epoch": False, "max_iters": 2}, custom_hooks=[InOrder()])
    )
    runner.train()
    assert isinstance(runner._hooks._plans["after_train_iter"], _Positional)  # positional path
    assert [(who, idx) for who, idx, _ in seen] == [("in order", 0), ("in order", 1)]
    assert all(isinstance(outputs, dict) and "loss" in outputs for _, _, outputs in seen)

    seen.clear()
    runner = Runner.from_cfg(
        toy_cfg(train_cfg={"by_epoch": False, "max_iters": 2}, custom_hooks=[Shuffled()])
    )
    runner.train()
    assert not isinstance(runner._hooks._plans["after_train_iter"], _Positional)
    assert [(who, idx) for who, idx, _ in seen] == [("shuffled", 0), ("shuffled", 1)]
    assert all(isinstance(outputs, dict) and "loss" in outputs for _, _, outputs in seen)

    # A caller that leaves out an argument with a default still reaches every hook.
    seen.clear()
    runner = Runner.from_cfg(
        toy_cfg(train_cfg={"by_epoch": False, "max_iters": 2}, custom_hooks=[InOrder()])
    )
    runner.train()
    seen.clear()
    runner._hooks.call("after_train_iter", {"runner": runner, "batch_idx": 7})
    assert seen == [("in order", 7, None)]


# -- this round: direct iteration calls, counters, contexts, timer and logger ----------------------


def test_train_iteration_calls_hooks_registered_during_training(toy_cfg: Any) -> None:
    from treadle.core.hooks import Hook

    seen: list[int] = []

    class Late(Hook):
        def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
            seen.append(batch_idx)

    class Registrar(Hook):
        def after_train_iter(
            self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None
        ) -> None:
            if batch_idx == 1:
                runner.register_hook(Late())

    runner = Runner.from_cfg(
        toy_cfg(train_cfg={"by_epoch": False, "max_iters": 4}, custom_hooks=[Registrar()])
    )
    runner.train()
    assert seen == [2, 3]  # the iteration plan was rebuilt after the registration


def test_train_iteration_goes_through_pluggy_when_monitored(toy_cfg: Any) -> None:
    runner = Runner.from_cfg(toy_cfg(train_cfg={"by_epoch": False, "max_iters": 3}))
    points: list[str] = []
    undo = runner._hooks._pm.add_hookcall_monitoring(
        lambda name, impls, kwargs: points.append(name), lambda *args: None
    )
    runner.train()
    assert points.count("before_train_iter") == points.count("after_train_iter") == 3
    undo()
    assert runner._hooks.train_iter_plan is None  # undoing the monitoring forgot the plan
    assert runner._hooks.train_iter_functions(runner) is not None  # direct again


def test_runner_counters_follow_the_train_loop_attribute(toy_cfg: Any) -> None:
    runner = Runner.from_cfg(
        toy_cfg(train_cfg=None, train_dataloader=None, optim_wrapper=None, param_scheduler=None)
    )
    assert (runner.epoch, runner.iter) == (0, 0)
    with pytest.raises(RuntimeError, match="no train loop"):
        runner.max_iters
    built = Runner.from_cfg(toy_cfg(train_cfg={"by_epoch": False, "max_iters": 2}))
    built.train()
    runner._train_loop = built.train_loop  # any assignment re-points the counters
    assert (runner.iter, runner.max_iters) == (2, 2)
    runner._train_loop = {"type": "IterBasedTrainLoop", "max_iters": 5}
    assert runner.iter == 0


def test_no_forward_context_only_for_plain_wrappers_without_accumulation() -> None:
    import contextlib

    model, _ = linear()
    assert OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1)).no_forward_context
    accumulating = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1), accumulative_counts=2)
    assert not accumulating.no_forward_context

    from treadle.core.model import BaseModel

    entered: list[str] = []

    class Contextual(OptimWrapper):
        @contextlib.contextmanager
        def optim_context(self, model: nn.Module) -> Any:
            entered.append("in")
            yield

    class Net(BaseModel):
        def __init__(self) -> None:
            super().__init__()
            self.layer = nn.Linear(3, 1)

        def forward(self, inputs: torch.Tensor, mode: str = "tensor") -> Any:  # type: ignore[override]
            return {"loss": self.layer(inputs).pow(2).mean()}

    net = Net()
    wrapper = Contextual(torch.optim.SGD(net.parameters(), lr=0.1))
    assert not wrapper.no_forward_context
    net.train_step({"inputs": torch.randn(2, 3)}, optim_wrapper=wrapper)
    assert entered == ["in"]


def test_iter_timer_subclass_extending_the_helpers_sees_training(toy_cfg: Any) -> None:
    from treadle.core.hooks import IterTimerHook

    modes: list[tuple[str, str]] = []

    class Extended(IterTimerHook):  # MMEngine-style: extends the per-mode helpers
        def _before_iter(
            self, runner: Any, batch_idx: int, data_batch: Any = None, mode: str = "train"
        ) -> None:
            super()._before_iter(runner, batch_idx, data_batch, mode)
            modes.append(("before", mode))

        def _after_iter(
            self,
            runner: Any,
            batch_idx: int,
            data_batch: Any = None,
            outputs: Any = None,
            mode: str = "train",
        ) -> None:
            super()._after_iter(runner, batch_idx, data_batch, outputs, mode)
            modes.append(("after", mode))

    runner = Runner.from_cfg(
        toy_cfg(
            train_cfg={"by_epoch": False, "max_iters": 2, "val_interval": 10},
            default_hooks={"timer": {"type": Extended}},
        )
    )
    runner.train()
    assert modes.count(("before", "train")) == modes.count(("after", "train")) == 2
    assert runner.message_hub.get_scalar("train/time").data[1].size == 2
    assert "eta" in runner.message_hub.runtime_info


def test_iter_based_loop_stops_on_a_dataloader_without_batches(toy_cfg: Any) -> None:
    cfg = toy_cfg(train_cfg={"by_epoch": False, "max_iters": 3})
    cfg["train_dataloader"]["batch_size"] = 100  # more than the 24 samples
    cfg["train_dataloader"]["drop_last"] = True
    runner = Runner.from_cfg(cfg)
    with pytest.raises(RuntimeError, match="gave no batch in a whole epoch"):
        runner.train()


# -- nn.Module.__call__ skipped when it would only call forward ------------------------------------


def _toy_runner(toy_cfg: Any, **overrides: Any) -> Runner:
    return Runner.from_cfg(
        toy_cfg(train_cfg={"by_epoch": True, "max_epochs": 1}, val_cfg=None, **overrides)
    )


def test_train_step_still_runs_module_hooks(toy_cfg: Any) -> None:
    """Forward hooks on the model and on its preprocessor, forward pre-hooks registered for all
    modules, and backward hooks still run every training iteration when train_step calls
    ``forward`` itself on hook-less modules."""
    runner = _toy_runner(toy_cfg, val_dataloader=None, val_evaluator=None)
    model = runner.model
    seen: list[str] = []
    handles = [
        model.register_forward_hook(lambda m, a, k, out: seen.append("model"), with_kwargs=True),
        model.data_preprocessor.register_forward_pre_hook(lambda m, a: seen.append("pre")),
        model.net[3].register_full_backward_hook(lambda m, gi, go: seen.append("backward")),
    ]
    outer = nn.modules.module.register_module_forward_pre_hook(
        lambda m, a: seen.append(type(m).__name__) if m is model else None
    )
    try:
        runner.train()
    finally:
        outer.remove()
        for handle in handles:
            handle.remove()
    iters = runner.iter
    assert iters == 3
    assert seen.count("model") == seen.count("pre") == seen.count("backward") == iters
    assert seen.count("ToyNet") == iters


@pytest.mark.parametrize("hooked", ["model", "preprocessor"])
def test_train_step_runs_a_hook_on_either_module_alone(toy_cfg: Any, hooked: str) -> None:
    """train_step asks about the model and its preprocessor together; a hook on only one of them
    must still run (and the other keeps working)."""
    runner = _toy_runner(toy_cfg, val_dataloader=None, val_evaluator=None)
    model = runner.model
    module = model if hooked == "model" else model.data_preprocessor
    seen: list[Any] = []
    handle = module.register_forward_pre_hook(lambda m, a: seen.append(m))
    try:
        runner.train()
    finally:
        handle.remove()
    assert runner.iter == 3
    assert seen == [module] * 3


def test_train_step_calls_an_overridden_run_forward(toy_cfg: Any) -> None:
    """MMEngine's train_step calls ``self._run_forward(data, mode="loss")``: a subclass that
    overrides it is called, not skipped by the direct ``forward`` call."""
    from treadle.core.registry import MODELS

    from .conftest import ToyNet

    calls: list[str] = []

    class RunForwardNet(ToyNet):
        def _run_forward(self, data: Any, mode: str) -> Any:
            calls.append(mode)
            return super()._run_forward(data, mode)

    name = f"RunForwardNet{uuid.uuid4().hex}"
    MODELS.register_module(name=name, module=RunForwardNet)
    runner = _toy_runner(toy_cfg, model={"type": name}, val_dataloader=None, val_evaluator=None)
    runner.train()
    assert calls == ["loss"] * 3


def test_calls_forward_only_of_two_modules_needs_both() -> None:
    from treadle.core.model import utils

    first, second = nn.Linear(2, 2), nn.Linear(2, 2)
    assert utils.calls_forward_only(first, second)
    for module in (first, second):
        handle = module.register_forward_hook(lambda *args: None)
        assert not utils.calls_forward_only(first, second)
        assert utils.calls_forward_only(first if module is second else second)
        handle.remove()
        handle = module.register_full_backward_hook(lambda *args: None)
        assert not utils.calls_forward_only(first, second)
        handle.remove()
    assert utils.calls_forward_only(first, second)

    class OwnCall(nn.Linear):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return super().__call__(*args, **kwargs)

    assert not utils.calls_forward_only(first, OwnCall(2, 2))
    assert not utils.calls_forward_only(OwnCall(2, 2), second)
    compiled = nn.Linear(2, 2)
    compiled.compile()
    assert not utils.calls_forward_only(first, compiled)


def test_calls_forward_only_answers_as_module_call_would() -> None:
    from treadle.core.model import utils

    linear = nn.Linear(2, 2)
    assert utils.calls_forward_only(linear)
    handle = linear.register_forward_hook(lambda *args: None)
    assert not utils.calls_forward_only(linear)
    handle.remove()
    handle = linear.register_full_backward_pre_hook(lambda *args: None)
    assert not utils.calls_forward_only(linear)
    handle.remove()
    handle = nn.modules.module.register_module_forward_hook(lambda *args: None)
    assert not utils.calls_forward_only(linear)
    handle.remove()
    assert utils.calls_forward_only(linear)

    class OwnCall(nn.Linear):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return super().__call__(*args, **kwargs)

    assert not utils.calls_forward_only(OwnCall(2, 2))
    compiled = nn.Linear(2, 2)
    compiled.compile()  # lazy: nothing compiles until the first call
    assert not utils.calls_forward_only(compiled)


def test_calls_forward_only_is_false_when_tracing_or_with_unknown_internals(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from treadle.core.model import utils

    linear = nn.Linear(2, 2)
    torch_module, _ = utils._CALL_INTERNALS  # type: ignore[misc]
    monkeypatch.setattr(utils, "_CALL_INTERNALS", (torch_module, lambda: True))
    assert not utils.calls_forward_only(linear)
    monkeypatch.setattr(utils, "_CALL_INTERNALS", None)
    assert not utils.calls_forward_only(linear)


def test_jit_trace_of_a_model_sees_the_traced_call() -> None:
    """Under ``torch.jit.trace`` the module call goes through ``__call__`` (its _slow_forward
    records the scopes), not straight to ``forward``."""
    from treadle.core.model import utils

    answers: list[bool] = []

    class Probe(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            answers.append(utils.calls_forward_only(self))
            return x * 2

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.trace is deprecated in favour of export
        torch.jit.trace(Probe(), torch.ones(2), check_trace=False)
    assert answers == [False]


# -- the learning rate read from the first parameter group -----------------------------------------


def test_lr_fast_path_records_what_get_lr_gives(
    toy_cfg: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a scheduler changing the rate every iteration, the rates read from the first group
    are the ones the general path (``get_lr()``) records."""

    def lrs() -> list[float]:
        runner = _toy_runner(
            toy_cfg,
            val_dataloader=None,
            val_evaluator=None,
            param_scheduler=[{"type": "LinearLR", "start_factor": 0.5, "by_epoch": False}],
        )
        runner.train()
        return runner.message_hub.get_scalar("train/lr").log_history

    fast = lrs()
    monkeypatch.setattr(OptimWrapper, "_plain_get_lr", False)  # through get_lr()
    general = lrs()
    assert fast == general
    assert len(set(fast)) == 3  # the scheduler did change the rate


def test_lr_fast_path_steps_aside_for_an_overridden_get_lr(toy_cfg: Any) -> None:
    class Scaled(OptimWrapper):
        def get_lr(self) -> dict[str, list[float]]:
            return {"lr": [group["lr"] * 10 for group in self.optimizer.param_groups]}

    runner = _toy_runner(
        toy_cfg,
        val_dataloader=None,
        val_evaluator=None,
        optim_wrapper={"type": Scaled, "optimizer": {"type": "SGD", "lr": 0.1}},
        param_scheduler=None,
    )
    runner.train()
    assert runner.message_hub.get_scalar("train/lr").log_history == [1.0, 1.0, 1.0]

    per_instance = _toy_runner(toy_cfg, val_dataloader=None, val_evaluator=None)
    per_instance.optim_wrapper = per_instance.build_optim_wrapper(per_instance.optim_wrapper)
    per_instance.optim_wrapper.get_lr = lambda: {"lr": [7.0], "extra": [3.0]}  # type: ignore[method-assign]
    per_instance.train()
    assert per_instance.message_hub.get_scalar("train/lr").log_history == [7.0, 7.0, 7.0]
    assert per_instance.message_hub.get_scalar("train/extra").log_history == [3.0, 3.0, 3.0]


# -- batched validation outputs --------------------------------------------------------------------


def test_a_model_may_return_batched_validation_outputs(toy_cfg: Any) -> None:
    """``{"pred_score": (N, C), "gt_label": (N,), "loss": {...}}`` from val_step gives the same
    metrics and validation loss as ToyNet's per-sample list."""
    from treadle.core.registry import MODELS

    from .conftest import ToyNet

    class BatchedNet(ToyNet):
        def forward(self, inputs: Any, labels: Any = None, mode: str = "tensor") -> Any:  # type: ignore[override]
            if mode != "predict":
                return super().forward(inputs, labels, mode)
            logits = self.net(inputs)
            loss = nn.functional.cross_entropy(logits, labels)
            return {"pred_score": logits.softmax(-1), "gt_label": labels, "loss": {"loss": loss}}

    name = f"BatchedNet{uuid.uuid4().hex}"
    MODELS.register_module(name=name, module=BatchedNet)
    metrics = []
    for model in ({"type": "ToyNet"}, {"type": name}):
        torch.manual_seed(0)
        runner = Runner.from_cfg(
            toy_cfg(model=model, train_cfg=None, train_dataloader=None, optim_wrapper=None)
        )
        metrics.append(runner.val())
    assert set(metrics[0]) >= {"accuracy/top1", "val_loss"}
    assert metrics[1] == metrics[0]


def test_cast_data_returns_a_new_dict_of_the_same_cpu_tensors() -> None:
    from treadle.core.model import BaseDataPreprocessor

    pre = BaseDataPreprocessor()
    batch = {"inputs": torch.ones(2), "labels": torch.zeros(2, dtype=torch.long)}
    out = pre.cast_data(batch)
    assert out == batch
    assert out is not batch
    assert all(out[k] is batch[k] for k in batch)
    # anything else in the dict takes the general path, recursing into it
    mixed = {"inputs": torch.ones(2), "meta": [torch.zeros(1), "a"], "id": 3}
    cast = pre.cast_data(mixed)
    assert cast is not mixed
    assert cast["meta"] is not mixed["meta"]
    assert cast["meta"][0] is mixed["meta"][0]
    assert cast["meta"][1] == "a"
    assert cast["id"] == 3
    # a tensor elsewhere than the module is moved, even among CPU ones
    meta = BaseDataPreprocessor().to("meta")
    moved = meta.cast_data({"a": torch.ones(1), "b": torch.ones(1)})
    assert {t.device.type for t in moved.values()} == {"meta"}


def test_hooks_record_iter_and_eta_as_resumed_info(toy_cfg: Any) -> None:
    runner = Runner.from_cfg(toy_cfg(train_cfg={"by_epoch": False, "max_iters": 3}))
    runner.train()
    hub = runner.message_hub
    state = hub.state_dict()
    assert state["resumed_keys"]["iter"] is True
    assert state["resumed_keys"]["eta"] is True
    assert state["runtime_info"]["iter"] == 2  # the index of the last iteration
    assert state["runtime_info"]["eta"] == 0.0  # none left after it
    # a key registered with resumed=False: the hook's update_info says so, and changes nothing
    fresh = new_hub()
    fresh.update_info("eta", 1.0, resumed=False)
    runner.message_hub = fresh  # type: ignore[misc]
    from treadle.core.hooks import IterTimerHook

    with pytest.raises(ValueError, match="'eta' was updated with resumed=False"):
        IterTimerHook().after_train_iter(runner, 0, None, None)
    assert fresh.get_info("eta") == 1.0
    assert "eta" not in fresh.state_dict()["runtime_info"]

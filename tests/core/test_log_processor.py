"""LogProcessor: log lines and tags equal to MMEngine 0.10.7's (goldens recorded from MMEngine).

The scenarios live in fixtures/logging/log_processor_scenarios.py; the goldens were recorded with
fixtures/logging/make_log_processor_goldens.py in an environment with mmengine 0.10.7.
"""

from __future__ import annotations

import importlib.util
import json
import re
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from treadle.core.logging import HistoryBuffer, LogProcessor, MessageHub

FIXTURES = Path(__file__).parent / "fixtures" / "logging"
GOLDENS: dict[str, Any] = json.loads((FIXTURES / "log_processor_goldens.json").read_text())


def _load_scenarios() -> dict[str, dict[str, Any]]:
    spec = importlib.util.spec_from_file_location(
        "log_processor_scenarios", FIXTURES / "log_processor_scenarios.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {s["name"]: s for s in module.SCENARIOS}


SCENARIOS = _load_scenarios()
OK_NAMES = sorted(n for n in SCENARIOS if "error" not in GOLDENS[n])


class Loop:
    def __init__(self, length: int, max_epochs: int = 0, max_iters: int = 0) -> None:
        self.dataloader = list(range(length))
        self.max_epochs = max_epochs
        self.max_iters = max_iters


class Runner:
    """The attributes LogProcessor reads, as MMEngine's Runner has them."""

    def __init__(self, spec: dict[str, Any], hub: MessageHub) -> None:
        self.message_hub = hub
        self.iter = spec["iter"]
        self.epoch = spec["epoch"]
        self.train_loop = Loop(
            spec.get("train_len", 0), spec.get("max_epochs", 0), spec.get("max_iters", 0)
        )
        train = spec.get("train_loop", "built")
        self._train_loop = {"built": self.train_loop, "none": None, "dict": {"type": "X"}}[train]
        self.val_loop = Loop(spec.get("val_len", 0))
        self.test_loop = Loop(spec.get("test_len", 0))
        self.max_epochs = spec.get("max_epochs", 0)
        self.max_iters = spec.get("max_iters", 0)
        self.model = object()


def decode(value: Any) -> Any:
    if isinstance(value, dict) and "__ndarray__" in value:
        return np.array(value["__ndarray__"])
    if isinstance(value, dict) and "__tensor__" in value:
        return torch.tensor(value["__tensor__"])
    if isinstance(value, dict) and "__float__" in value:
        return float(value["__float__"])
    return value


def encode(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist()}
    if isinstance(value, torch.Tensor):
        return {"__tensor__": value.tolist()}
    if isinstance(value, float):
        return {"__float__": repr(value)}
    return value


@pytest.fixture(autouse=True)
def _no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    # The goldens were recorded without CUDA; the memory scenario fakes it explicitly.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def build(scenario: dict[str, Any], as_tensors: bool = False) -> tuple[LogProcessor, Runner]:
    hub = MessageHub(f"lp-{uuid.uuid4().hex[:8]}")
    for key, value, count in scenario["scalars"]:
        if as_tensors and isinstance(value, float):
            value = torch.tensor(value, dtype=torch.float64)
        hub.update_scalar(key, value, count)
    for key, value in scenario.get("info", {}).items():
        hub.update_info(key, decode(value))
    return LogProcessor(**scenario["processor"]), Runner(scenario["runner"], hub)


def call(processor: LogProcessor, runner: Runner, spec: dict[str, Any]) -> tuple[dict, str]:
    if spec["method"] == "after_iter":
        return processor.get_log_after_iter(runner, spec["batch_idx"], spec["mode"])
    return processor.get_log_after_epoch(
        runner, spec["batch_idx"], spec["mode"], spec.get("with_non_scalar", False)
    )


def run_scenario(
    name: str, monkeypatch: pytest.MonkeyPatch, as_tensors: bool = False
) -> tuple[dict, str]:
    scenario = SCENARIOS[name]
    memory = scenario.get("cuda_memory_mb")
    resets: list[Any] = []
    if memory is not None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(
            torch.cuda, "max_memory_allocated", lambda device=None: memory * 1024 * 1024 + 12345
        )
        monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", resets.append)
    processor, runner = build(scenario, as_tensors)
    tag, log_str = call(processor, runner, scenario["call"])
    if memory is not None:
        assert resets == [None]  # peak reset after reading it (current device: no output_device)
    return tag, log_str


def assert_same_tag(tag: dict[str, Any], golden: list[list[Any]]) -> None:
    assert list(tag) == [k for k, _ in golden]
    for key, expected in golden:
        value = tag[key]
        if isinstance(value, (np.ndarray, torch.Tensor)):
            assert encode(value) == expected, key
        else:
            assert type(value) is type(decode(expected)), key
            assert encode(value) == expected, key  # bit-exact floats (numpy's summation order)


@pytest.mark.parametrize("name", OK_NAMES)
def test_matches_mmengine(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    tag, log_str = run_scenario(name, monkeypatch)
    golden = GOLDENS[name]
    assert log_str == golden["log_str"]
    assert_same_tag(tag, golden["tag"])


@pytest.mark.parametrize(
    "name", ["epoch_train", "iter_train_custom", "epoch_val_epoch", "epoch_train_hierarchy"]
)
def test_tensor_scalars_give_the_same_output(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # float64 tensors hold the same values as the Python floats MMEngine saw.
    tag, log_str = run_scenario(name, monkeypatch, as_tensors=True)
    assert log_str == GOLDENS[name]["log_str"]
    assert_same_tag(tag, GOLDENS[name]["tag"])


def test_tensors_are_converted_once_per_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    hub = MessageHub(f"lp-{uuid.uuid4().hex[:8]}")
    stacks: list[int] = []
    real_stack = torch.stack

    def counting_stack(tensors: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
        stacks.append(len(tensors))
        return real_stack(tensors, *args, **kwargs)

    monkeypatch.setattr(torch, "stack", counting_stack)
    for i in range(20):
        hub.update_scalar("train/loss", torch.tensor(1.0 / (i + 1)))
        hub.update_scalar("train/acc", torch.tensor(float(i)))
        hub.update_scalar("train/lr", 0.1)
    runner = Runner({"iter": 19, "epoch": 0, "max_epochs": 2, "train_len": 20}, hub)
    _, log_str = LogProcessor().get_log_after_iter(runner, 19, "train")
    assert stacks == [40]  # every pending value of every buffer, one transfer
    expected_loss = sum(1.0 / (i + 1) for i in range(10, 20)) / 10
    assert f"loss: {expected_loss:.4f}" in log_str
    assert "acc: 19.0000" in log_str


def test_log_str_shape_example() -> None:
    # The line from the brief: lr values in scientific notation, eta, timings, memory absent.
    hub = MessageHub(f"lp-{uuid.uuid4().hex[:8]}")
    for _ in range(10):
        hub.update_scalars(
            {
                "train/base_lr": 0.01,
                "train/lr": 0.01,
                "train/time": 0.01,
                "train/data_time": 0.001,
                "train/loss": 0.5,
            }
        )
    hub.update_info("eta", 9.9)
    runner = Runner({"iter": 9, "epoch": 0, "max_epochs": 1, "train_len": 100}, hub)
    tag, log_str = LogProcessor().get_log_after_iter(runner, 9, "train")
    assert log_str == (
        "Epoch(train) [1][ 10/100]  base_lr: 1.0000e-02 lr: 1.0000e-02  eta: 0:00:09  "
        "time: 0.0100  data_time: 0.0010  loss: 0.5000"
    )
    assert tag["epoch"] == 1
    assert tag["iter"] == 10


# ---------------------------------------------------------------------- errors


def test_duplicate_log_name() -> None:
    golden = GOLDENS["error_duplicate_log_name"]
    assert golden["error"] == "AssertionError"
    with pytest.raises(ValueError, match=r"Found duplicate loss for loss\. Please check"):
        LogProcessor(**SCENARIOS["error_duplicate_log_name"]["processor"])
    # A distinct log_name makes the same data source legal twice.
    LogProcessor(
        custom_cfg=[
            {"data_src": "loss", "method_name": "mean", "window_size": 100},
            {"data_src": "loss", "method_name": "max", "log_name": "loss_max"},
        ]
    )


def test_epoch_window_needs_by_epoch() -> None:
    assert "window_size cannot be epoch" in GOLDENS["error_epoch_window_iter_based"]["message"]
    with pytest.raises(ValueError, match=r"custom_cfg\[0\]: window_size cannot be epoch"):
        LogProcessor(**SCENARIOS["error_epoch_window_iter_based"]["processor"])


def test_bad_window_word_is_caught_at_construction() -> None:
    golden = GOLDENS["error_bad_window"]
    assert golden["error"] == "TypeError"
    with pytest.raises(TypeError, match=re.escape(golden["message"])):
        LogProcessor(**SCENARIOS["error_bad_window"]["processor"])


def test_after_epoch_rejects_train_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    assert GOLDENS["error_epoch_mode_train"]["error"] == "AssertionError"
    processor, runner = build(SCENARIOS["error_epoch_mode_train"])
    with pytest.raises(ValueError, match="mode must be one of val, test; got 'train'"):
        processor.get_log_after_epoch(runner, 1, "train")
    with pytest.raises(ValueError, match="got 'predict'"):
        processor.get_log_after_iter(runner, 1, "predict")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"custom_cfg": [{"method_name": "mean"}]},
            ValueError,
            r"custom_cfg\[0\] has no 'data_src'",
        ),
        ({"custom_cfg": ["loss"]}, TypeError, r"custom_cfg\[0\] must be a dict"),
        ({"custom_cfg": {"data_src": "loss"}}, TypeError, "custom_cfg must be a list"),
        ({"window_size": "10"}, TypeError, "window_size must be an int"),
        ({"num_digits": -1}, TypeError, "num_digits"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        LogProcessor(**kwargs)


def test_unknown_statistic_names_known_ones() -> None:
    hub = MessageHub(f"lp-{uuid.uuid4().hex[:8]}")
    hub.update_scalar("train/loss", 1.0)
    runner = Runner({"iter": 0, "epoch": 0, "max_epochs": 1, "train_len": 1}, hub)
    processor = LogProcessor(custom_cfg=[{"data_src": "loss", "method_name": "median"}])
    with pytest.raises(KeyError, match=r"'median' is not a registered HistoryBuffer statistic"):
        processor.get_log_after_iter(runner, 0, "train")


def test_custom_statistic_registered_like_mmengine() -> None:
    name = f"weighted_{uuid.uuid4().hex[:6]}"

    def weighted(self: HistoryBuffer, window_size: int, weight: list[float]) -> float:
        # MMEngine-style statistic: reads numpy arrays from _log_history/_count_history.
        logs = self._log_history[-window_size:]
        return float((logs * np.array(weight)).sum() / self._count_history[-window_size:].sum())

    weighted.__name__ = name
    HistoryBuffer.register_statistics(weighted)
    try:
        hub = MessageHub(f"lp-{uuid.uuid4().hex[:8]}")
        for v in (1.0, 2.0, torch.tensor(4.0)):
            hub.update_scalar("train/score", v)
        runner = Runner({"iter": 2, "epoch": 0, "max_epochs": 1, "train_len": 3}, hub)
        cfg = [{"data_src": "score", "method_name": name, "window_size": 2, "weight": [1, 3]}]
        tag, log_str = LogProcessor(custom_cfg=cfg).get_log_after_iter(runner, 2, "train")
        assert tag["score"] == (2.0 + 12.0) / 2
        assert log_str.endswith("score: 7.0000")
    finally:
        del HistoryBuffer._statistics_methods[name]


def test_get_max_memory_uses_output_device(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    monkeypatch.setattr(
        torch.cuda,
        "max_memory_allocated",
        lambda device=None: calls.append(("max", device)) or 3 * 1024 * 1024 - 1,
    )
    monkeypatch.setattr(
        torch.cuda, "reset_peak_memory_stats", lambda device=None: calls.append(("reset", device))
    )

    class Model:
        output_device = 3

    runner = Runner({"iter": 0, "epoch": 0}, MessageHub(f"lp-{uuid.uuid4().hex[:8]}"))
    runner.model = Model()
    assert LogProcessor()._get_max_memory(runner) == 2
    assert calls == [("max", 3), ("reset", 3)]


def test_runner_without_private_train_loop_attribute() -> None:
    # A runner exposing only train_loop (no MMEngine-private _train_loop) still aligns epochs.
    hub = MessageHub(f"lp-{uuid.uuid4().hex[:8]}")
    hub.update_scalar("train/loss", 0.25)
    runner = Runner({"iter": 4, "epoch": 1, "max_epochs": 10, "train_len": 5}, hub)
    del runner._train_loop
    tag, log_str = LogProcessor().get_log_after_iter(runner, 4, "train")
    assert log_str == "Epoch(train)  [2][5/5]    loss: 0.2500"
    assert tag == {"loss": 0.25, "epoch": 2, "iter": 5}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_memory_is_reported_on_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.undo()  # the real torch.cuda.is_available
    hub = MessageHub(f"lp-{uuid.uuid4().hex[:8]}")
    block = torch.zeros(8 * 1024 * 1024, device="cuda")  # 32 MiB
    hub.update_scalar("train/loss", (block[:1] + 1).sum())
    runner = Runner({"iter": 0, "epoch": 0, "max_epochs": 1, "train_len": 1}, hub)
    tag, log_str = LogProcessor().get_log_after_iter(runner, 0, "train")
    assert tag["memory"] >= 32
    assert f"memory: {tag['memory']}  loss: 1.0000" in log_str
    del block


# ---------------------------------------------------------------------- reuse across calls


@pytest.mark.parametrize("name", OK_NAMES)
def test_a_processor_gives_the_same_output_when_asked_again(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The second call answers from the processor's remembered key names and smoothing.
    scenario = SCENARIOS[name]
    memory = scenario.get("cuda_memory_mb")
    if memory is not None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(
            torch.cuda, "max_memory_allocated", lambda device=None: memory * 1024 * 1024 + 12345
        )
        monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: None)
    processor, runner = build(scenario)
    custom_cfg = json.dumps(processor.custom_cfg, sort_keys=True, default=repr)
    for _ in range(2):
        tag, log_str = call(processor, runner, scenario["call"])
        assert log_str == GOLDENS[name]["log_str"]
        assert_same_tag(tag, GOLDENS[name]["tag"])
    # "epoch"/"global" windows are resolved in copies: the configuration is unchanged
    assert json.dumps(processor.custom_cfg, sort_keys=True, default=repr) == custom_cfg


def test_keys_of_every_mode_and_new_keys_are_picked_up() -> None:
    hub = MessageHub(f"lp-{uuid.uuid4().hex[:8]}")
    runner = Runner({"iter": 9, "epoch": 0, "max_epochs": 1, "train_len": 10, "val_len": 4}, hub)
    processor = LogProcessor(window_size=2)
    hub.update_scalar("train/loss", 1.0)
    hub.update_scalar("trainer_speed", 3.0)  # starts with "train": MMEngine counts it as train
    hub.update_scalar("val/loss", 5.0)
    tag, _ = processor.get_log_after_iter(runner, 9, "train")
    assert dict(tag) == {"loss": 1.0, "trainer_speed": 3.0, "epoch": 1, "iter": 10}
    hub.update_scalar("train/acc", 0.5)
    hub.update_scalar("train/loss", 3.0)
    tag, log_str = processor.get_log_after_iter(runner, 9, "train")
    assert dict(tag) == {"loss": 2.0, "trainer_speed": 3.0, "acc": 0.5, "epoch": 1, "iter": 10}
    assert log_str.endswith("loss: 2.0000  trainer_speed: 3.0000  acc: 0.5000")
    tag, _ = processor.get_log_after_iter(runner, 3, "val")
    assert dict(tag) == {"loss": 5.0, "epoch": 0, "iter": 10}
    processor.log_with_hierarchy = True
    tag, _ = processor.get_log_after_iter(runner, 9, "train")
    assert list(tag) == ["train/loss", "trainer_speed", "train/acc", "epoch", "iter"]
    # a new smoothing pattern applies at once
    processor.log_with_hierarchy = False
    processor.mean_pattern = re.compile("nothing")
    tag, _ = processor.get_log_after_iter(runner, 9, "train")
    assert tag["loss"] == 3.0  # the latest value, no longer the mean


def test_the_tag_does_not_share_mutable_values_with_the_buffers() -> None:
    # MMEngine deep-copies the tag; numbers are shared (immutable), other values are copied.
    hub = MessageHub(f"lp-{uuid.uuid4().hex[:8]}")
    runner = Runner({"iter": 0, "epoch": 0, "max_epochs": 1, "train_len": 10}, hub)
    hub.update_scalar("train/loss", 1.0)
    history = hub.get_scalar("train/loss")
    shared = [1, 2]

    def as_list(buffer: HistoryBuffer, window_size: Any = None) -> list[int]:
        return shared

    monkeypatched = HistoryBuffer._statistics_methods.copy()
    HistoryBuffer._statistics_methods["as_list_for_test"] = as_list
    try:
        processor = LogProcessor(
            custom_cfg=[{"data_src": "loss", "log_name": "ids", "method_name": "as_list_for_test"}]
        )
        tag, _ = processor.get_log_after_iter(runner, 0, "train")
    finally:
        HistoryBuffer._statistics_methods.clear()
        HistoryBuffer._statistics_methods.update(monkeypatched)
    assert tag["ids"] == [1, 2]
    assert tag["ids"] is not shared
    assert history.current() == 1.0


def test_hierarchy_tags_come_from_one_pass_equal_to_two(monkeypatch: pytest.MonkeyPatch) -> None:
    # log_with_hierarchy: the buffers are flushed once and each statistic computed once, and
    # the tags equal two separate collections (a pattern may match only the prefixed name).
    from treadle.core.logging import log_processor as lp_module

    hub = MessageHub(f"lp-{uuid.uuid4().hex[:8]}")
    for value in (1.0, 2.0, 6.0):
        hub.update_scalar("train/loss", value)
        hub.update_scalar("train/acc", value)
        hub.update_scalar("trainer_speed", value)
    runner = Runner({"iter": 2, "epoch": 0, "max_epochs": 1, "train_len": 3}, hub)
    processor = LogProcessor(
        mean_pattern=r"^(train/)?loss|^train/acc",
        custom_cfg=[{"data_src": "loss", "method_name": "max", "log_name": "loss_max"}],
    )
    cfg = processor._parse_windows_size(runner, 2, processor.custom_cfg)
    expected = [processor._collect_scalars(cfg, runner, "train", keep) for keep in (False, True)]

    flushes: list[int] = []
    real_flush = lp_module.flush_history_buffers
    monkeypatch.setattr(
        lp_module, "flush_history_buffers", lambda b: flushes.append(1) or real_flush(b)
    )
    means: list[int] = []
    real_mean = HistoryBuffer.mean
    monkeypatch.setattr(
        HistoryBuffer, "mean", lambda self, *a: means.append(1) or real_mean(self, *a)
    )
    tags = processor._collect_scalar_tags(cfg, runner, "train", (False, True))
    assert tags == expected
    assert [list(tag) for tag in tags] == [list(tag) for tag in expected]
    assert tags[0] == {"loss": 3.0, "acc": 6.0, "trainer_speed": 6.0, "loss_max": 6.0}
    assert tags[1]["train/acc"] == 3.0  # the pattern matches only the prefixed name
    assert flushes == [1]
    assert len(means) == 2  # train/loss once for both tags, train/acc once


def test_runner_without_private_train_loop_is_taken_to_train() -> None:
    # As the hooks (utils.runner_state.train_loop_built): no _train_loop means the runner trains.
    hub = MessageHub(f"lp-{uuid.uuid4().hex[:8]}")
    hub.update_scalar("val/loss", 0.5)
    runner = Runner({"iter": 4, "epoch": 2, "max_epochs": 10, "val_len": 5}, hub)
    del runner._train_loop
    assert LogProcessor()._get_epoch(runner, "val") == 2


@pytest.mark.parametrize(
    "seconds", [0, 0.9, 59.9, 60, 3599, 3600, 36000.5, 86399.9, 86400, 10**7 + 0.5, -1, -0.5]
)
def test_eta_is_formatted_as_a_timedelta(seconds: float) -> None:
    import datetime

    from treadle.core.logging.log_processor import _format_eta

    assert _format_eta(seconds) == str(datetime.timedelta(seconds=int(seconds)))


def test_cuda_availability_is_asked_again_when_torch_cuda_is_available_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[bool] = []

    def answer(value: bool) -> Any:
        def is_available() -> bool:
            calls.append(value)
            return value

        return is_available

    monkeypatch.setattr(torch.cuda, "is_available", answer(True))
    assert LogProcessor._cuda_available()
    assert LogProcessor._cuda_available()
    assert calls == [True]  # asked once, then remembered
    monkeypatch.setattr(torch.cuda, "is_available", answer(False))
    assert not LogProcessor._cuda_available()
    assert calls == [True, False]


def test_a_subclass_that_skips_log_processor_init_still_smooths() -> None:
    class Own(LogProcessor):
        def __init__(self) -> None:  # MMEngine-era subclasses set the attributes themselves
            self.window_size = 2
            self.by_epoch = False
            self.custom_cfg = []
            self.num_digits = 4
            self.log_with_hierarchy = False
            self.mean_pattern = re.compile(r".*loss.*")

    hub = MessageHub(f"lp-{uuid.uuid4().hex[:8]}")
    runner = Runner({"iter": 1, "epoch": 0, "max_epochs": 1, "train_len": 10}, hub)
    hub.update_scalar("train/loss", 1.0)
    hub.update_scalar("train/loss", 3.0)
    hub.update_scalar("train/acc", 0.5)
    tag, _ = Own().get_log_after_iter(runner, 1, "train")
    assert tag["loss"] == 2.0
    assert tag["acc"] == 0.5


def test_hierarchy_mode_asks_a_subclass_s_own_collect_scalars_for_both_forms() -> None:
    """With log_with_hierarchy, the one-pass collection is LogProcessor's own: a subclass that
    overrides _collect_scalars is asked for each key form, as MMEngine asks it."""

    class Scaled(LogProcessor):
        def _collect_scalars(  # type: ignore[override]
            self, custom_cfg: Any, runner: Any, mode: str, reserve_prefix: bool = False
        ) -> Any:
            self.asked.append(reserve_prefix)
            tag = super()._collect_scalars(custom_cfg, runner, mode, reserve_prefix)
            return type(tag)((key, value * 10) for key, value in tag.items())

    hub = MessageHub(f"lp-{uuid.uuid4().hex[:8]}")
    for value in (1.0, 3.0):
        hub.update_scalar("train/loss", value)
    runner = Runner({"iter": 1, "epoch": 0, "max_epochs": 1, "train_len": 10}, hub)
    processor = Scaled(log_with_hierarchy=True)
    processor.asked = []  # type: ignore[attr-defined]
    tag, log_str = processor.get_log_after_iter(runner, 1, "train")
    assert processor.asked == [False, True]  # type: ignore[attr-defined]
    assert tag["train/loss"] == 20.0
    assert "loss: 20.0000" in log_str

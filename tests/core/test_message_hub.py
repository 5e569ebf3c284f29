"""MessageHub: MMEngine's API, resumed keys, weights_only state dicts, MMEngine checkpoints."""

from __future__ import annotations

import io
import json
import pickle
import types
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from treadle.core.logging import HistoryBuffer, MessageHub
from treadle.core.logging import message_hub as message_hub_module
from treadle.core.logging.history_buffer import MAX_PENDING

FIXTURES = Path(__file__).parent / "fixtures" / "logging"


@pytest.fixture(autouse=True)
def _isolated_instances():
    saved = OrderedDict(MessageHub._instance_dict)
    MessageHub._instance_dict.clear()
    yield
    MessageHub._instance_dict.clear()
    MessageHub._instance_dict.update(saved)


@pytest.fixture
def warnings_logged(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    messages: list[str] = []
    monkeypatch.setattr(
        message_hub_module, "print_log", lambda msg, logger=None, level=0: messages.append(msg)
    )
    return messages


def hub() -> MessageHub:
    return MessageHub(f"hub-{uuid.uuid4().hex[:8]}")


def torch_round_trip(obj: Any) -> Any:
    stream = io.BytesIO()
    torch.save(obj, stream)
    stream.seek(0)
    return torch.load(stream, weights_only=True)


# ---------------------------------------------------------------------- instances


def test_get_current_instance_creates_a_default_hub() -> None:
    current = MessageHub.get_current_instance()
    assert current.instance_name == "treadle"
    assert MessageHub.get_current_instance() is current
    train = MessageHub.get_instance("train")
    assert MessageHub.get_current_instance() is train
    assert MessageHub.get_instance("train") is train


def test_constructor_checks() -> None:
    buffer = HistoryBuffer([1.0], [1])
    created = MessageHub(
        "x", log_scalars={"loss": buffer}, runtime_info={"iter": 3}, resumed_keys={"loss": False}
    )
    assert created.get_scalar("loss") is buffer
    assert created.get_info("iter") == 3
    with pytest.raises(TypeError, match=r"log_scalars\['loss'\] must be a HistoryBuffer, got list"):
        MessageHub("y", log_scalars={"loss": [1.0]})  # type: ignore[dict-item]
    with pytest.raises(KeyError, match="resumed_keys names 'acc'"):
        MessageHub("z", resumed_keys={"acc": True})
    with pytest.raises(TypeError, match="runtime_info must be a dict or None, got list"):
        MessageHub("w", runtime_info=[1])  # type: ignore[arg-type]


# ---------------------------------------------------------------------- scalars


def test_update_scalar_and_get_scalar() -> None:
    h = hub()
    h.update_scalar("train/loss", 1.0)
    h.update_scalar("train/loss", torch.tensor(3.0), count=2)
    h.update_scalar("train/loss", np.float64(5.0))
    buffer = h.get_scalar("train/loss")
    assert buffer is h.log_scalars["train/loss"]
    assert buffer.log_history == [1.0, 3.0, 5.0]
    assert buffer.count_history == [1, 2, 1]
    assert buffer.mean() == 9.0 / 4


def test_update_scalar_does_not_sync(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_item(self: torch.Tensor) -> Any:
        raise AssertionError("update_scalar must not call .item()")

    monkeypatch.setattr(torch.Tensor, "item", no_item)
    h = hub()
    for i in range(100):
        h.update_scalar("train/loss", torch.tensor(float(i)))
        h.update_scalars({"train/acc": torch.tensor(1.0), "train/lr": 0.1})
    assert h.get_scalar("train/loss").mean(10) == sum(range(90, 100)) / 10


def test_update_scalar_stores_what_history_buffer_update_stores() -> None:
    # update_scalar appends the per-iteration kinds (floats, detached 0-d tensors) itself: the
    # buffer must end up as HistoryBuffer.update leaves it, for every kind and across a flush of
    # MAX_PENDING tensors and the trimming of a full buffer.
    weight = torch.ones(2, requires_grad=True)
    values: list[Any] = [
        0.5,
        torch.tensor(2),  # int64: stays an int until a float arrives
        torch.tensor(True),
        (weight * 3).sum(),  # requires grad: detached
        torch.tensor([1.5]),  # one element, shape (1,)
        torch.tensor(0.25, dtype=torch.float64),
        7,
        np.float32(1.0),
    ]
    values += [torch.tensor(float(i)) for i in range(2 * MAX_PENDING + 3)]
    values += [0.125] * 70
    for max_length in (1000000, 40):
        h = hub()
        h._log_scalars["x"] = HistoryBuffer(max_length=max_length)
        expected = HistoryBuffer(max_length=max_length)
        for i, value in enumerate(values):
            h.update_scalar("x", value, count=1 + i % 3)
            expected.update(value, 1 + i % 3)
            assert len(h.get_scalar("x")._pending) < MAX_PENDING
        buffer = h.get_scalar("x")
        assert not any(isinstance(v, torch.Tensor) and v.requires_grad for v in buffer._values)
        assert buffer.log_history == expected.log_history
        assert buffer.count_history == expected.count_history
        assert repr(buffer.current()) == repr(expected.current())
        assert buffer.mean() == expected.mean()


def test_update_scalar_keeps_int_tensors_ints() -> None:
    h = hub()
    h.update_scalar("n", torch.tensor(3))
    h.update_scalar("n", torch.tensor(4))
    assert h.get_scalar("n").log_history == [3, 4]
    assert isinstance(h.get_scalar("n").current(), int)
    assert isinstance(h.get_scalar("n").max(), int)
    h.update_scalar("n", torch.tensor(0.5))
    assert isinstance(h.get_scalar("n").max(), float)  # like numpy once a float is in
    h.update_scalar("m", 3)
    h.update_scalar("m", 0.5)
    assert repr(h.get_scalar("m").max()) == "3.0"


def test_update_scalar_errors() -> None:
    h = hub()
    with pytest.raises(TypeError, match="scalar 'loss' must have one element, got a tensor"):
        h.update_scalar("loss", torch.ones(3))
    with pytest.raises(TypeError, match="scalar 'loss' must have one element, got an array"):
        h.update_scalar("loss", np.ones(3))
    with pytest.raises(TypeError, match="scalar 'loss' must be an int, a float"):
        h.update_scalar("loss", "0.5")
    with pytest.raises(TypeError, match="count must be an int, got float"):
        h.update_scalar("loss", 0.5, count=1.5)  # type: ignore[arg-type]


def test_get_scalar_names_known_keys() -> None:
    h = hub()
    h.update_scalar("train/loss", 1.0)
    h.update_scalar("train/lr", 0.1)
    with pytest.raises(
        KeyError,
        match=r"'val/acc' is not a scalar of MessageHub 'hub-.*' "
        r"\(known: train/loss, train/lr\)",
    ):
        h.get_scalar("val/acc")


def test_update_scalars() -> None:
    h = hub()
    h.update_scalars(
        {"a": 1, "b": {"value": 2.0, "count": 4}, "c": {"value": 3, "count": torch.tensor(2)}}
    )
    assert h.get_scalar("a").log_history == [1]
    assert h.get_scalar("b").count_history == [4]
    assert h.get_scalar("c").count_history == [2]
    with pytest.raises(KeyError, match=r"log_dict\['d'\] is a dict without 'value'"):
        h.update_scalars({"d": {"count": 1}})
    with pytest.raises(TypeError, match="log_dict must be a dict, got list"):
        h.update_scalars([1])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="count must be an int, got float"):
        h.update_scalars({"e": {"value": 1.0, "count": 0.5}})


def test_resumed_flag_cannot_change() -> None:
    h = hub()
    h.update_scalar("loss", 1.0, resumed=False)
    h.update_scalar("loss", 2.0, resumed=False)
    with pytest.raises(
        ValueError, match="'loss' was updated with resumed=False, now with resumed=True"
    ):
        h.update_scalar("loss", 3.0)
    h.update_info("iter", 1)
    with pytest.raises(ValueError, match="'iter' was updated with resumed=True"):
        h.update_info("iter", 2, resumed=False)


# ---------------------------------------------------------------------- runtime info


def test_runtime_info() -> None:
    h = hub()
    h.update_info("iter", 1)
    h.update_info("iter", 2)
    h.update_info_dict({"epoch": 3, "meta": {"a": 1}})
    assert h.get_info("iter") == 2
    assert h.runtime_info == {"iter": 2, "epoch": 3, "meta": {"a": 1}}
    assert h.get_info("missing") is None
    assert h.get_info("missing", 7) == 7
    assert h.pop_info("epoch") == 3
    assert h.pop_info("epoch", "gone") == "gone"
    with pytest.raises(TypeError, match="info_dict must be a dict, got tuple"):
        h.update_info_dict(("a", 1))  # type: ignore[arg-type]


# ---------------------------------------------------------------------- state


def make_trained_hub() -> MessageHub:
    h = hub()
    for i in range(25):
        h.update_scalar("train/loss", torch.tensor(1.0 / (i + 1)))
        h.update_scalar("train/lr", 0.1 * 0.9**i)
        h.update_scalar("train/time", 0.5, resumed=False)
    h.update_scalar("val/acc", 91.0)
    h.update_info_dict({"epoch": 2, "iter": 24, "dataset_meta": {"classes": ("a", "b")}})
    h.update_info("val/confusion", np.array([[1, 2], [3, 4]]))
    h.update_info("val/score", np.float32(0.25))
    h.update_info("scratch", object(), resumed=False)
    return h


def test_state_dict_holds_only_resumed_plain_data() -> None:
    h = make_trained_hub()
    state = h.state_dict()
    assert set(state) == {"log_scalars", "runtime_info", "resumed_keys"}
    assert list(state["log_scalars"]) == ["train/loss", "train/lr", "val/acc"]  # not train/time
    assert state["log_scalars"]["train/loss"]["log_history"][:2].tolist() == [1.0, 0.5]
    assert "scratch" not in state["runtime_info"]
    assert isinstance(state["runtime_info"]["val/confusion"], torch.Tensor)  # numpy → tensor
    assert type(state["runtime_info"]["val/score"]) is float
    assert all(state["resumed_keys"].values())
    assert "train/time" not in state["resumed_keys"]


def test_state_dict_round_trip_through_weights_only_load() -> None:
    h = make_trained_hub()
    loaded = torch_round_trip(h.state_dict())
    resumed = hub()
    resumed.load_state_dict(loaded)
    for key in ("train/loss", "train/lr", "val/acc"):
        assert resumed.get_scalar(key).log_history == h.get_scalar(key).log_history
        assert resumed.get_scalar(key).mean(10) == h.get_scalar(key).mean(10)
    assert resumed.get_info("epoch") == 2
    assert resumed.get_info("dataset_meta") == {"classes": ("a", "b")}
    assert resumed.get_info("val/confusion").tolist() == [[1, 2], [3, 4]]
    # Training goes on: the resumed buffer continues the history.
    resumed.update_scalar("train/loss", torch.tensor(0.0))
    assert resumed.get_scalar("train/loss").current() == 0.0
    assert len(resumed.get_scalar("train/loss").log_history) == 26


def test_unsavable_runtime_info_is_reported(warnings_logged: list[str]) -> None:
    h = hub()
    h.update_info("fn", print)
    h.update_info("ok", [1, {"x": (2.5, None)}])
    state = h.state_dict()
    assert "fn" not in state["runtime_info"]
    assert state["runtime_info"]["ok"] == [1, {"x": (2.5, None)}]
    assert state["resumed_keys"] == {"ok": True}
    assert len(warnings_logged) == 1
    assert "runtime info 'fn' (builtin_function_or_method) is not saved" in warnings_logged[0]


def test_load_state_dict_errors_and_skips(warnings_logged: list[str]) -> None:
    h = hub()
    with pytest.raises(KeyError, match=r"missing \['resumed_keys'\]"):
        h.load_state_dict({"log_scalars": {}, "runtime_info": {}})
    with pytest.raises(TypeError, match="state_dict must be a dict or a MessageHub, got list"):
        h.load_state_dict([])  # type: ignore[arg-type]
    h.load_state_dict(
        {
            "log_scalars": {"bad": [1, 2], "good": {"log_history": [1], "count_history": [1]}},
            "runtime_info": {"iter": 3},
            "resumed_keys": {"bad": True, "good": True, "iter": False},
        }
    )
    assert list(h.log_scalars) == ["good"]
    assert h.get_info("iter") == 3
    assert len(warnings_logged) == 3
    assert "bad in message_hub is not a HistoryBuffer" in warnings_logged[0]
    assert "resumed key 'bad' is not defined" in warnings_logged[1]
    assert "resumed key 'iter' is False but is loaded this time" in warnings_logged[2]
    assert "iter" not in h.state_dict()["runtime_info"]


def test_loads_mmengine_checkpoint_state(warnings_logged: list[str]) -> None:
    # The message hub part of an MMEngine 0.10.7 checkpoint, read by treadle's checkpoint loader
    # (no MMEngine installed): its HistoryBuffer objects arrive as treadle HistoryBuffers.
    from treadle.core.runner.checkpoint import load_checkpoint_file

    state = load_checkpoint_file(FIXTURES / "mmengine_message_hub.pth", "cpu")["message_hub"]
    expected = json.loads((FIXTURES / "mmengine_message_hub.json").read_text())
    h = hub()
    h.load_state_dict(state)
    assert list(h.log_scalars) == [k for k in expected if k != "train/debug"]  # not resumed
    for key, buffer in h.log_scalars.items():
        assert buffer.log_history == expected[key]["log_history"]
        assert buffer.mean(10) == expected[key]["mean10"]
        assert buffer.current() == expected[key]["current"]
    assert h.get_info("iter") == 29
    assert h.get_info("dataset_meta") == {"classes": ("cat", "dog")}
    # Resumed keys of entries MMEngine did not save are skipped, as MMEngine does.
    assert [m for m in warnings_logged if "is not defined" in m] == [
        "resumed key 'train/debug' is not defined in the message hub; skipped.",
        "resumed key 'scratch' is not defined in the message hub; skipped.",
    ]
    # And it saves in treadle's weights_only form from then on.
    again = torch_round_trip(h.state_dict())
    assert (
        again["log_scalars"]["train/loss"]["log_history"].tolist()
        == expected["train/loss"]["log_history"]
    )
    assert again["runtime_info"]["val/confusion"].tolist() == [[3, 1], [0, 4]]


def test_loads_a_pickled_mmengine_hub_object() -> None:
    # Old MMEngine checkpoints pickled the hub object itself; map its classes to ours.
    renames = {
        ("mmengine.logging.message_hub", "MessageHub"): MessageHub,
        ("mmengine.logging.history_buffer", "HistoryBuffer"): HistoryBuffer,
    }

    class Unpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            return renames.get((module, name)) or super().find_class(module, name)

    pickle_module = types.ModuleType("mmengine_compat_pickle")
    pickle_module.__dict__.update(
        Unpickler=Unpickler, load=lambda f, **kw: Unpickler(f, **kw).load()
    )
    old = torch.load(
        FIXTURES / "mmengine_message_hub_object.pth",
        weights_only=False,
        pickle_module=pickle_module,
    )["message_hub"]
    h = hub()
    h.load_state_dict(old)
    expected = json.loads((FIXTURES / "mmengine_message_hub.json").read_text())
    assert list(h.log_scalars) == list(expected)  # the whole hub, unresumed keys too
    assert h.get_scalar("train/debug").log_history == expected["train/debug"]["log_history"]
    assert h.get_info("scratch") == "not resumed"
    assert h.get_scalar("train/loss") is not old.get_scalar("train/loss")  # copied


def test_load_from_own_hub_instance_copies() -> None:
    source = make_trained_hub()
    target = hub()
    target.load_state_dict(source)
    assert target.get_scalar("train/time").log_history == [0.5] * 25
    assert target.get_scalar("train/loss") is not source.get_scalar("train/loss")

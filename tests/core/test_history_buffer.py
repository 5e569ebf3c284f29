"""HistoryBuffer: MMEngine's statistics (bit-exact vs numpy), pending tensors, state dicts."""

from __future__ import annotations

import copy
import io
import json
import math
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from treadle.core.logging import HistoryBuffer, flush_history_buffers
from treadle.core.logging.history_buffer import MAX_PENDING

FIXTURES = Path(__file__).parent / "fixtures" / "logging"


def numpy_stats(values: list[Any], counts: list[Any], window: int | None) -> dict[str, Any]:
    """MMEngine's statistics, computed the way MMEngine computes them (numpy arrays)."""
    logs, cnts = np.array(values), np.array(counts)
    w = len(logs) if window is None else window
    return {
        "mean": logs[-w:].sum() / cnts[-w:].sum(),
        "max": logs[-w:].max(),
        "min": logs[-w:].min(),
        "current": logs[-1],
    }


@pytest.mark.parametrize("kind", ["float", "int", "mixed", "weighted"])
def test_statistics_equal_numpy_bit_for_bit(kind: str) -> None:
    rng = random.Random(kind)
    for n in (1, 2, 7, 8, 9, 10, 17, 64, 129, 300, 1000):
        if kind == "float":
            values: list[Any] = [rng.uniform(-5, 5) * 10 ** rng.randint(-6, 6) for _ in range(n)]
        elif kind == "int":
            values = [rng.randint(-100, 10_000) for _ in range(n)]
        else:
            values = [rng.choice([rng.randint(0, 9), rng.random()]) for _ in range(n)]
        counts = [rng.randint(1, 5) if kind == "weighted" else 1 for _ in range(n)]
        buffer = HistoryBuffer()
        for value, count in zip(values, counts):
            buffer.update(value, count)
        for window in (None, 1, 5, 10, n - 1 if n > 1 else 1, n + 7):
            expected = numpy_stats(values, counts, window)
            assert buffer.mean(window) == expected["mean"], (kind, n, window)
            for name in ("max", "min"):
                got = getattr(buffer, name)(window)
                assert got == expected[name]
                # numpy's dtype decides: int arrays give ints, anything with a float gives floats
                assert isinstance(got, float) == (expected[name].dtype.kind == "f")
            assert buffer.current() == expected["current"]
            assert isinstance(buffer.current(), float) == (expected["current"].dtype.kind == "f")
            assert buffer.statistics("mean", window) == buffer.mean(window)


def test_window_zero_means_everything_like_numpy_slicing() -> None:
    buffer = HistoryBuffer([1, 2, 3, 10], [1, 1, 1, 1])
    assert buffer.mean(0) == 4.0
    assert buffer.max(0) == 10


def test_nan_propagates_through_max_and_min() -> None:
    buffer = HistoryBuffer([1.0, math.nan, 3.0], [1, 1, 1])
    assert math.isnan(buffer.max())
    assert math.isnan(buffer.min())
    assert buffer.max(1) == 3.0


def test_empty_buffer() -> None:
    buffer = HistoryBuffer()
    assert math.isnan(buffer.mean())
    with pytest.raises(ValueError, match="empty"):
        buffer.current()
    with pytest.raises(ValueError, match=r"max\(\) of an empty buffer"):
        buffer.max()


def test_docstring_example() -> None:
    buffer = HistoryBuffer()
    buffer.update(1)
    buffer.update(2)
    assert (buffer.min(), buffer.max(), buffer.mean(), buffer.statistics("current")) == (
        1,
        2,
        1.5,
        2,
    )


# ---------------------------------------------------------------------- tensors


@pytest.fixture
def count_syncs(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Count Tensor.item / Tensor.tolist calls (each is a host sync on an accelerator)."""
    calls = {"item": 0, "tolist": 0}
    for name in calls:
        original = getattr(torch.Tensor, name)

        def counting(
            self: torch.Tensor, *args: Any, _name: str = name, _orig: Any = original
        ) -> Any:
            calls[_name] += 1
            return _orig(self, *args)

        monkeypatch.setattr(torch.Tensor, name, counting)
    return calls


def test_updates_with_tensors_do_not_sync(count_syncs: dict[str, int]) -> None:
    buffer = HistoryBuffer()
    values = [1.0 / (i + 1) for i in range(100)]
    for v in values:
        buffer.update(torch.tensor(v, dtype=torch.float64))
    assert count_syncs == {"item": 0, "tolist": 0}
    assert buffer.mean(10) == numpy_stats(values, [1] * 100, 10)["mean"]
    assert count_syncs == {"item": 0, "tolist": 1}  # all 100 converted in one go
    buffer.mean()
    buffer.max(3)
    assert count_syncs == {"item": 0, "tolist": 1}  # nothing pending any more


def test_pending_tensors_are_bounded_without_logging(count_syncs: dict[str, int]) -> None:
    # Nobody asks for statistics (no LoggerHook): convert every MAX_PENDING updates, so memory
    # held by pending tensors stays bounded.
    buffer = HistoryBuffer()
    for i in range(2 * MAX_PENDING + 500):
        buffer.update(torch.tensor(float(i)))
    assert count_syncs == {"item": 0, "tolist": 2}
    assert len(buffer._pending) == 500
    assert buffer.current() == 2 * MAX_PENDING + 499.0
    assert buffer.log_history == [float(i) for i in range(2 * MAX_PENDING + 500)]


def test_flush_many_buffers_at_once(count_syncs: dict[str, int]) -> None:
    loss, acc, lr = HistoryBuffer(), HistoryBuffer(), HistoryBuffer()
    for i in range(50):
        loss.update(torch.tensor(float(i)))
        acc.update(torch.tensor(2.0 * i))
        lr.update(0.1)  # Python numbers mixed in
    flush_history_buffers([loss, acc, lr])
    assert count_syncs["tolist"] == 1
    assert count_syncs["item"] == 0
    assert loss.current() == 49.0
    assert acc.mean() == sum(2.0 * i for i in range(50)) / 50
    assert count_syncs["tolist"] == 1


def test_tensor_dtypes_are_grouped_and_typed_like_numbers() -> None:
    buffer = HistoryBuffer()
    buffer.update(torch.tensor(3))  # int64
    buffer.update(torch.tensor([4]))  # one-element, shape (1,)
    assert buffer.current() == 4
    assert isinstance(buffer.current(), int)
    assert buffer.log_history == [3, 4]
    buffer.update(torch.tensor(0.5, dtype=torch.float32))
    buffer.update(torch.tensor(0.25, dtype=torch.bfloat16))
    assert buffer.log_history == [3, 4, 0.5, 0.25]
    assert isinstance(buffer.current(), float)
    assert isinstance(buffer.max(), float)  # like numpy once a float is in the array
    assert buffer.max() == 4.0


def test_tensors_are_detached() -> None:
    weight = torch.ones(3, requires_grad=True)
    loss = (weight * 2).sum()
    buffer = HistoryBuffer()
    buffer.update(loss)
    stored = buffer._values[0]
    assert not stored.requires_grad  # the autograd graph is not kept alive until logging
    assert buffer.current() == 6.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_updates_never_synchronise() -> None:
    weight = torch.ones(4, device="cuda", requires_grad=True)
    losses = [(weight * (i + 1)).sum() for i in range(100)]
    counts = [torch.tensor(i, device="cuda") for i in range(100)]
    buffer = HistoryBuffer()
    torch.cuda.set_sync_debug_mode("error")  # any host-device sync raises
    try:
        for loss, count in zip(losses, counts):
            buffer.update(loss)
            buffer.update(count.reshape(1))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert buffer.log_history[:4] == [4.0, 0, 8.0, 1]
    assert buffer.max() == 400.0


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (torch.ones(2), r"one-element tensor, got shape \(2,\)"),
        ("1.0", "log_val must be an int, a float or a one-element tensor, got str"),
        (None, "got NoneType"),
        (np.ones(2), "got ndarray"),
    ],
)
def test_bad_values(value: Any, match: str) -> None:
    with pytest.raises(TypeError, match=match):
        HistoryBuffer().update(value)


def test_numpy_scalars_and_bools() -> None:
    buffer = HistoryBuffer()
    buffer.update(np.float32(0.5))
    buffer.update(np.int64(2))
    buffer.update(np.array([3.0]))
    buffer.update(True)
    assert buffer.log_history == [0.5, 2, 3.0, 1]
    assert all(type(v) in (int, float) for v in buffer.log_history)


def test_bad_counts_and_windows() -> None:
    buffer = HistoryBuffer([1.0], [1])
    with pytest.raises(TypeError, match="count must be an int or a float, got str"):
        buffer.update(1.0, "2")
    with pytest.raises(TypeError, match="window_size must be an int or None, got str"):
        buffer.mean("10")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="window_size must be >= 0, got -1"):
        buffer.max(-1)
    assert buffer.mean(np.int64(1)) == 1.0  # type: ignore[arg-type]


def test_constructor_checks() -> None:
    with pytest.raises(ValueError, match="same length, got 2 and 1"):
        HistoryBuffer([1, 2], [1])
    with pytest.raises(ValueError, match="max_length must be a positive int"):
        HistoryBuffer(max_length=0)
    with pytest.raises(TypeError, match="log_history must be a sequence"):
        HistoryBuffer(5, [1])  # type: ignore[arg-type]
    with pytest.warns(UserWarning, match=r"exceeds max_length \(2\)"):
        buffer = HistoryBuffer([1, 2, 3], [1, 1, 1], max_length=2)
    assert buffer.log_history == [2, 3]


def test_max_length_keeps_the_latest_values() -> None:
    buffer = HistoryBuffer(max_length=100)
    for i in range(1000):
        buffer.update(torch.tensor(float(i)) if i % 3 else float(i))
    assert buffer.log_history == [float(i) for i in range(900, 1000)]
    assert buffer.count_history == [1] * 100
    assert buffer.mean() == sum(range(900, 1000)) / 100
    assert buffer.min() == 900.0
    assert len(buffer._values) <= 100 + 64  # trimmed in batches, never unbounded
    assert buffer.state_dict()["log_history"].tolist() == buffer.log_history


# ---------------------------------------------------------------------- statistics registry


def test_register_statistics() -> None:
    def spread(self: HistoryBuffer, window_size: int | None = None) -> float:
        return float(self.max(window_size) - self.min(window_size))

    try:
        assert HistoryBuffer.register_statistics(spread) is spread
        buffer = HistoryBuffer([1, 5, 2], [1, 1, 1])
        assert buffer.statistics("spread") == 4.0
        assert buffer.statistics("spread", window_size=2) == 3.0
        with pytest.raises(ValueError, match="'spread' is already registered"):
            HistoryBuffer.register_statistics(spread)
    finally:
        del HistoryBuffer._statistics_methods["spread"]
    with pytest.raises(KeyError, match=r"'spread' is not a registered .*known: current, max"):
        HistoryBuffer().statistics("spread")


def test_mmengine_style_numpy_views() -> None:
    buffer = HistoryBuffer()
    buffer.update(torch.tensor(1.0))
    buffer.update(2, count=3)
    logs, counts = buffer.data
    assert isinstance(logs, np.ndarray)
    assert logs.dtype == np.float64
    assert logs.tolist() == [1.0, 2.0]
    assert counts.tolist() == [1, 3]
    assert buffer._log_history.tolist() == [1.0, 2.0]


# ---------------------------------------------------------------------- state


def test_state_dict_round_trip_weights_only() -> None:
    buffer = HistoryBuffer(max_length=50)
    for i in range(60):
        buffer.update(torch.tensor(i / 7) if i % 2 else i, count=1 + i % 3)
    state = buffer.state_dict()
    assert set(state) == {"log_history", "count_history", "max_length"}
    assert all(type(v) in (int, float) for v in state["log_history"])
    stream = io.BytesIO()
    torch.save(state, stream)
    stream.seek(0)
    loaded = torch.load(stream, weights_only=True)
    restored = HistoryBuffer.from_state_dict(loaded)
    assert restored.log_history == buffer.log_history
    assert restored.count_history == buffer.count_history
    assert restored.max_length == 50
    for window in (None, 3, 10):
        assert restored.mean(window) == buffer.mean(window)
    other = HistoryBuffer([99], [1])
    other.load_state_dict(loaded)
    assert other.log_history == buffer.log_history


@pytest.mark.parametrize(
    ("values", "dtype"),
    [
        ([0.1, 1 / 3, 2.5e300, -0.0, float("inf")], torch.float64),
        ([1, -7, 2**62], torch.int64),
        ([1, 2.5], None),  # mixed: a list, so each value keeps its type
        ([2**70, 1], None),  # beyond int64: a list
    ],
)
def test_state_dict_packs_homogeneous_histories_into_tensors(
    values: list[float], dtype: torch.dtype | None
) -> None:
    # One tensor per history: torch.save pickles a list element by element.
    buffer = HistoryBuffer(values, [1] * len(values))
    state = buffer.state_dict()
    if dtype is None:
        assert isinstance(state["log_history"], list)
    else:
        assert isinstance(state["log_history"], torch.Tensor)
        assert state["log_history"].dtype == dtype
    assert isinstance(state["count_history"], torch.Tensor)
    stream = io.BytesIO()
    torch.save(state, stream)
    stream.seek(0)
    restored = HistoryBuffer.from_state_dict(torch.load(stream, weights_only=True))
    assert restored.log_history == buffer.log_history
    assert [type(v) for v in restored.log_history] == [type(v) for v in values]
    assert restored.count_history == [1] * len(values)
    assert all(type(c) is int for c in restored.count_history)
    assert HistoryBuffer().state_dict()["log_history"] == []


def test_pickle_and_deepcopy_flush_pending_tensors() -> None:
    buffer = HistoryBuffer()
    buffer.update(torch.tensor(1.5))
    buffer.update(2)
    for clone in (pickle.loads(pickle.dumps(buffer)), copy.deepcopy(buffer)):
        assert clone.log_history == [1.5, 2.0]
        assert clone.current() == 2.0
        assert isinstance(clone.current(), float)
    assert "HistoryBuffer(len=2" in repr(buffer)


def test_loads_mmengine_pickled_state() -> None:
    # What MMEngine's HistoryBuffer.__getstate__ produces (its __dict__).
    state = {
        "max_length": 5,
        "_log_history": np.array([1.0, 2.5, 4.0]),
        "_count_history": np.array([1, 1, 2]),
        "statistics_methods": {"min": object()},  # non-callables are ignored
    }
    buffer = HistoryBuffer.__new__(HistoryBuffer)
    buffer.__setstate__(state)
    assert buffer.log_history == [1.0, 2.5, 4.0]
    assert buffer.mean() == 7.5 / 4
    assert buffer.max_length == 5
    assert HistoryBuffer.from_state_dict(state).count_history == [1, 1, 2]
    with pytest.raises(KeyError, match="missing"):
        HistoryBuffer.from_state_dict({"log_history": [1]})


def test_statistics_of_mmengine_buffers_match_mmengine() -> None:
    # Values and the statistics MMEngine 0.10.7 computed (make_mmengine_message_hub.py).
    expected = json.loads((FIXTURES / "mmengine_message_hub.json").read_text())
    for key, stats in expected.items():
        buffer = HistoryBuffer(stats["log_history"], stats["count_history"])
        assert buffer.mean() == stats["mean"], key
        assert buffer.mean(10) == stats["mean10"], key
        assert buffer.max() == stats["max"], key
        assert buffer.min() == stats["min"], key
        assert buffer.current() == stats["current"], key


def test_flush_falls_back_to_one_stack_per_device(monkeypatch: pytest.MonkeyPatch) -> None:
    """When the one stack per dtype fails (tensors on several devices: CUDA is not needed to
    take this path), the tensors are grouped by device and dtype and still all converted."""
    real_stack = torch.stack
    calls: list[int] = []

    def stack(tensors: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
        calls.append(len(tensors))
        if len(calls) == 1:
            raise RuntimeError("Expected all tensors to be on the same device")
        return real_stack(tensors, *args, **kwargs)

    loss, acc = HistoryBuffer(), HistoryBuffer()
    for i in range(3):
        loss.update(torch.tensor(float(i)))
        acc.update(torch.tensor(10.0 * i))
    monkeypatch.setattr(torch, "stack", stack)
    flush_history_buffers([loss, acc])
    assert calls == [6, 6]  # the failed stack per dtype, then the one per (device, dtype)
    assert loss.log_history == [0.0, 1.0, 2.0]
    assert acc.log_history == [0.0, 10.0, 20.0]


def test_flush_puts_numbers_back_at_scattered_and_consecutive_positions() -> None:
    scattered, consecutive, trimmed = HistoryBuffer(), HistoryBuffer(), HistoryBuffer(max_length=4)
    for i in range(6):
        scattered.update(torch.tensor(float(i)) if i % 2 else float(10 * i))
        consecutive.update(float(i) if i < 2 else torch.tensor(i))
    for i in range(80):  # past max_length and its trimming slack: pending indices shift
        trimmed.update(torch.tensor(i) if i % 3 else i)
    flush_history_buffers([scattered, consecutive, trimmed])
    assert scattered.log_history == [0.0, 1.0, 20.0, 3.0, 40.0, 5.0]
    assert consecutive.log_history == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert trimmed.log_history == [76, 77, 78, 79]
    assert all(type(v) is int for v in trimmed.log_history)

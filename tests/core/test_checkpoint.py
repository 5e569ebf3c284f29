"""treadle.core.runner.checkpoint: atomic saves, restricted loads, MMEngine checkpoints, models."""

from __future__ import annotations

import io
import json
import logging
import os
import pickle
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, OrderedDict
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from treadle.core import fileio
from treadle.core.config import ConfigDict
from treadle.core.logging.history_buffer import HistoryBuffer
from treadle.core.runner import checkpoint as ckpt
from treadle.core.runner.checkpoint import (
    CorruptCheckpointError,
    UnsafeCheckpointError,
    _load_checkpoint,
    _load_checkpoint_to_model,
    _load_checkpoint_with_prefix,
    find_latest_checkpoint,
    get_state_dict,
    load_checkpoint,
    load_checkpoint_file,
    load_state_dict,
    save_checkpoint,
    weights_to_cpu,
    write_last_checkpoint,
)

FIXTURES = Path(__file__).parent / "fixtures" / "checkpoints"
MMENGINE_CKPT = FIXTURES / "mmengine_epoch_2.pth"


class ToyModel(nn.Module):
    """The fixture's model (tests/core/fixtures/checkpoints/make_mmengine_checkpoint.py)."""

    def __init__(self, head_out: int = 2) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 3)
        self.bn = nn.BatchNorm1d(3)
        self.head = nn.Linear(3, head_out)


class ListLogger(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[tuple[int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append((record.levelno, record.getMessage()))


@pytest.fixture
def capture_logger():
    logger = logging.getLogger(f"test-checkpoint-{uuid.uuid4().hex}")
    logger.propagate = False
    handler = ListLogger()
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.messages = handler.messages  # type: ignore[attr-defined]
    return logger


def hidden_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def sample_checkpoint() -> dict:
    model = ToyModel()
    # SGD's state_dict layout, built by hand: creating a torch.optim optimizer imports
    # torch._dynamo (seconds), which this file does not otherwise need.
    optimizer = {
        "state": {
            i: {"momentum_buffer": torch.randn(p.shape)} for i, p in enumerate(model.parameters())
        },
        "param_groups": [
            {
                "lr": 0.1,
                "momentum": 0.9,
                "dampening": 0,
                "weight_decay": 0,
                "nesterov": False,
                "maximize": False,
                "foreach": None,
                "differentiable": False,
                "fused": None,
                "params": list(range(len(list(model.parameters())))),
            }
        ],
    }
    return {
        "meta": {"epoch": 3, "iter": 30, "seed": 7, "cfg": "model = dict(type='ToyModel')"},
        "state_dict": weights_to_cpu(model.state_dict()),
        "optimizer": optimizer,
        "param_schedulers": [{"milestones": Counter({1: 1}), "gamma": 0.1, "last_step": 3}],
        "message_hub": {
            "log_scalars": OrderedDict(
                {"train/loss": {"log_history": [1.0, 0.5], "count_history": [1, 1]}}
            ),
            "runtime_info": OrderedDict({"epoch": 3, "iter": 30}),
            "resumed_keys": OrderedDict({"train/loss": True, "epoch": True, "iter": True}),
        },
    }


def assert_same(a, b) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor)
        assert a.dtype == b.dtype
        assert torch.equal(a, b)
    elif isinstance(a, dict):
        assert isinstance(b, dict)
        assert list(a) == list(b)
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b)
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    else:
        assert a == b


# ---------------------------------------------------------------------------------- saving


def test_round_trip_local_and_plain_torch_load(tmp_path: Path) -> None:
    checkpoint = sample_checkpoint()
    path = tmp_path / "sub" / "epoch_3.pth"
    save_checkpoint(checkpoint, str(path))

    loaded = load_checkpoint(str(path), map_location="cpu")
    assert_same(checkpoint, loaded)
    assert loaded["state_dict"]._metadata == checkpoint["state_dict"]._metadata
    # The file is an ordinary torch checkpoint: PyTorch's own safe loader reads it directly.
    assert_same(checkpoint, torch.load(path, weights_only=True))
    assert hidden_files(path.parent) == []  # no temporary file left behind


def test_round_trip_through_fsspec_uri() -> None:
    uri = f"memory://treadle-ckpt/{uuid.uuid4().hex}/epoch_1.pth"
    checkpoint = sample_checkpoint()
    save_checkpoint(checkpoint, uri)
    assert_same(checkpoint, torch.load(io.BytesIO(fileio.get(uri)), weights_only=True))
    assert_same(checkpoint, load_checkpoint(uri))


def test_save_replaces_an_existing_file_and_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "latest.pth"
    save_checkpoint({"v": torch.tensor(1)}, path)
    os.chmod(path, 0o640)
    save_checkpoint({"v": torch.tensor(2)}, path)
    assert load_checkpoint(path)["v"].item() == 2
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert hidden_files(tmp_path) == []


def test_save_writes_through_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "real.pth"
    link = tmp_path / "link.pth"
    save_checkpoint({"v": torch.tensor(1)}, target)
    link.symlink_to(target)
    save_checkpoint({"v": torch.tensor(2)}, link)
    assert link.is_symlink()
    assert load_checkpoint(target)["v"].item() == 2


def test_failed_save_keeps_the_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "epoch_1.pth"
    save_checkpoint({"v": torch.tensor(1)}, path)
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        save_checkpoint({"v": torch.tensor(2), "bad": lambda: None}, path)
    assert load_checkpoint(path)["v"].item() == 1
    assert hidden_files(tmp_path) == []


def test_save_fsyncs_only_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real_fsync(fd))[1])
    save_checkpoint({"v": torch.tensor(1)}, tmp_path / "a.pth", backend_args={"fsync": True})
    assert len(calls) == 2  # the file, then its directory
    calls.clear()
    save_checkpoint({"v": torch.tensor(1)}, tmp_path / "b.pth")  # default: atomic, no flush
    assert calls == []
    assert load_checkpoint(tmp_path / "b.pth")["v"].item() == 1


def test_file_client_args_is_deprecated(tmp_path: Path) -> None:
    with pytest.warns(DeprecationWarning, match="backend_args"):
        save_checkpoint({"v": torch.tensor(1)}, tmp_path / "a.pth", file_client_args={})
    with pytest.raises(ValueError, match="cannot be set at the same time"):
        save_checkpoint(
            {"v": torch.tensor(1)}, tmp_path / "a.pth", file_client_args={}, backend_args={}
        )


def test_save_removes_temp_files_of_dead_writers_only(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(dead.stdout)
    host = ckpt._HOST_TAG
    other_host = "0" * 8 if host != "0" * 8 else "1" * 8
    stale = tmp_path / f".epoch_1.pth.{host}-{dead_pid}-0123abcd.tmp"
    live = tmp_path / f".epoch_1.pth.{host}-{os.getppid()}-0123abcd.tmp"
    foreign = tmp_path / f".epoch_1.pth.{other_host}-{dead_pid}-0123abcd.tmp"
    unrelated = tmp_path / ".notes.txt.0123456789ab.tmp"  # the file I/O layer's own temp name
    own_leftover = tmp_path / f".epoch_0.pth.{host}-{os.getpid()}-0123abcd.tmp"
    for p in (stale, live, foreign, unrelated, own_leftover):
        p.write_bytes(b"partial")
    save_checkpoint({"v": torch.tensor(1)}, tmp_path / "epoch_2.pth")
    assert hidden_files(tmp_path) == sorted(p.name for p in (live, foreign, unrelated))


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def join_background_frees() -> None:
    for thread in threading.enumerate():
        if thread.name == "treadle-free-old":
            thread.join(timeout=10)


@pytest.mark.parametrize("links", [True, False])
def test_replacing_a_big_file_frees_it_in_the_background(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, links: bool
) -> None:
    monkeypatch.setattr(ckpt, "_DEFER_FREE_BYTES", 1024)
    if not links:  # a filesystem without hard links: plain replace

        def no_link(src, dst):
            raise OSError("hard links not supported")

        monkeypatch.setattr(os, "link", no_link)
    path = tmp_path / "latest.pth"
    save_checkpoint({"w": torch.zeros(4096)}, path)
    old_inode = path.stat().st_ino
    save_checkpoint({"w": torch.ones(4096)}, path)
    join_background_frees()
    assert path.stat().st_ino != old_inode
    assert torch.equal(load_checkpoint(path)["w"], torch.ones(4096))
    assert hidden_files(tmp_path) == []


def test_syncing_writer_flushes_in_the_background(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (synced.append(fd), real(fd))[1])
    path = tmp_path / "data.bin"
    with open(path, "wb") as f:
        writer = ckpt._SyncingWriter(f, chunk=1000)
        for _ in range(10):
            assert writer.write(b"x" * 700) == 700
        wait_for(lambda: synced)  # the helper thread ran while writing went on
        writer.sync()
    assert path.read_bytes() == b"x" * 7000
    assert writer._thread is not None
    assert not writer._thread.is_alive()


def test_syncing_writer_reports_writeback_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", broken)
    with open(tmp_path / "data.bin", "wb") as f:
        writer = ckpt._SyncingWriter(f, chunk=10)
        writer.write(b"y" * 20)
        wait_for(lambda: writer._error is not None)
        with pytest.raises(OSError, match="Input/output error"):
            writer.sync()


def test_a_failed_fsync_keeps_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "epoch_1.pth"
    save_checkpoint({"v": torch.tensor(1)}, path)

    def broken(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint({"v": torch.tensor(2)}, path, backend_args={"fsync": True})
    monkeypatch.undo()
    assert load_checkpoint(path)["v"].item() == 1
    assert hidden_files(tmp_path) == []


# ---------------------------------------------------------------------------------- loading


def test_missing_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pth"
    with pytest.raises(FileNotFoundError, match=r"nope\.pth"):
        load_checkpoint(missing)
    with pytest.raises(FileNotFoundError, match=r"nope\.pth"):
        load_checkpoint(f"memory://treadle-ckpt/{uuid.uuid4().hex}/nope.pth")
    with pytest.raises(IsADirectoryError):
        load_checkpoint(tmp_path)


def test_model_zoo_schemes_are_refused_clearly() -> None:
    with pytest.raises(ValueError, match="model-zoo"):
        load_checkpoint("torchvision://resnet50")


@pytest.mark.parametrize("damage", ["truncated", "head", "empty", "garbage", "plain_pickle"])
def test_corrupt_file_is_named(tmp_path: Path, damage: str) -> None:
    good = tmp_path / "good.pth"
    save_checkpoint(sample_checkpoint(), good)
    data = good.read_bytes()
    content = {
        "truncated": data[: len(data) // 2],
        "head": data[:100],
        "empty": b"",
        "garbage": bytes(range(256)) * 8,
        "plain_pickle": pickle.dumps({"a": 1}, protocol=2),
    }[damage]
    bad = tmp_path / f"{damage}.pth"
    bad.write_bytes(content)
    with pytest.raises(CorruptCheckpointError, match=f"{damage}.pth.*truncated or corrupt") as info:
        load_checkpoint(bad)
    assert info.value.__cause__ is not None  # the low-level error stays visible


def test_errors_that_are_not_the_files_fault_pass_through(tmp_path: Path) -> None:
    path = tmp_path / "a.pth"
    save_checkpoint({"w": torch.ones(2)}, path)

    def refuse(storage, location):
        raise ValueError("no room on that device")

    with pytest.raises(ValueError, match="no room on that device"):
        load_checkpoint(path, map_location=refuse)
    assert torch.equal(load_checkpoint(path, map_location=lambda s, loc: s)["w"], torch.ones(2))


class Evil:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))  # type: ignore[attr-defined]


@pytest.mark.parametrize("zip_format", [True, False])
def test_malicious_pickle_is_refused(tmp_path: Path, zip_format: bool) -> None:
    marker = tmp_path / "pwned"
    evil = Evil()
    evil.marker = marker  # type: ignore[attr-defined]
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "x": evil}, path, _use_new_zipfile_serialization=zip_format)
    with pytest.raises(UnsafeCheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert f"{os.system.__module__}.system" in message
    assert str(path) in message
    assert "weights_only=False" in message
    assert info.value.global_name == f"{os.system.__module__}.system"
    assert not marker.exists()
    assert isinstance(info.value, pickle.UnpicklingError)
    copy = pickle.loads(pickle.dumps(info.value))  # travels between processes intact
    assert str(copy) == message


def test_getattr_gadget_is_refused(tmp_path: Path) -> None:
    class Gadget:
        def __reduce__(self):
            return (getattr, (OrderedDict, "fromkeys"))

    path = tmp_path / "gadget.pth"
    torch.save({"x": Gadget()}, path)
    with pytest.raises(UnsafeCheckpointError, match=r"getattr\(.*OrderedDict.*'fromkeys'\)"):
        load_checkpoint(path)


def test_unknown_class_needs_trust_or_an_allowlist_entry(tmp_path: Path) -> None:
    path = tmp_path / "fraction.pth"
    torch.save({"ratio": Fraction(1, 3)}, path)
    with pytest.raises(UnsafeCheckpointError, match=r"fractions\.Fraction"):
        load_checkpoint(path)
    assert load_checkpoint(path, weights_only=False) == {"ratio": Fraction(1, 3)}
    with torch.serialization.safe_globals([Fraction]):
        assert load_checkpoint(path) == {"ratio": Fraction(1, 3)}


def test_numpy_treadle_and_container_types_load_restricted(tmp_path: Path) -> None:
    buffer = HistoryBuffer([1.0, 2.0], [1, 2], max_length=5)
    content = {
        "array": np.arange(6, dtype=np.int16).reshape(2, 3),
        "scalar": np.float32(1.5),
        "dtype": np.dtype("float64"),
        "cfg": ConfigDict(model={"type": "X", "layers": [1, 2]}),
        "buffer": buffer,
        "set": {1, 2},
        "complex": 1 + 2j,
        "ordered": OrderedDict(a=1),
        "version": torch.__version__,
        "device": torch.device("cpu"),
        "dtype_t": torch.bfloat16,
    }
    path = tmp_path / "mixed.pth"
    save_checkpoint(content, path)
    loaded = load_checkpoint(path)
    assert np.array_equal(loaded["array"], content["array"])
    assert loaded["array"].dtype == np.int16
    assert loaded["scalar"] == np.float32(1.5)
    assert loaded["scalar"].dtype == np.float32
    assert loaded["dtype"] == np.dtype("float64")
    assert type(loaded["cfg"]) is ConfigDict
    assert loaded["cfg"].model.layers == [1, 2]
    assert isinstance(loaded["buffer"], HistoryBuffer)
    assert loaded["buffer"].data[0].tolist() == [1.0, 2.0]
    assert loaded["buffer"].mean() == buffer.mean()
    for key in ("set", "complex", "ordered", "version", "device", "dtype_t"):
        assert loaded[key] == content[key]


def test_numpy_1_names_resolve_without_deprecation_warnings() -> None:
    data = pickle.dumps({"a": np.arange(3.0), "s": np.float64(2.5)}, protocol=2)
    assert b"numpy._core.multiarray" in data
    old = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    module = ckpt._pickle_module("old-numpy.pth", restricted=True)
    loaded = module.load(io.BytesIO(old))
    assert loaded["a"].tolist() == [0.0, 1.0, 2.0]
    assert loaded["s"] == 2.5


def test_force_weights_only_environment_uses_torch_loader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "a.pth"
    save_checkpoint(sample_checkpoint(), path)
    monkeypatch.setenv("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "1")
    assert load_checkpoint(path)["meta"]["epoch"] == 3


# --------------------------------------------------------------------- MMEngine checkpoints


def expect(actual, expected, where: str = "") -> None:
    """Compare a loaded value with the JSON the fixture script recorded from MMEngine."""
    if isinstance(expected, dict) and "tensor" in expected:
        assert isinstance(actual, torch.Tensor), where
        assert str(actual.dtype) == expected["dtype"], where
        assert actual.tolist() == expected["tensor"], where
    elif isinstance(expected, dict) and "ndarray" in expected:
        assert isinstance(actual, np.ndarray), where
        assert str(actual.dtype) == expected["dtype"], where
        assert actual.tolist() == expected["ndarray"], where
    elif isinstance(expected, dict) and "npscalar" in expected:
        assert isinstance(actual, np.generic), where
        assert str(actual.dtype) == expected["dtype"], where
        assert actual.item() == expected["npscalar"], where
    elif isinstance(expected, dict):
        assert isinstance(actual, dict), where
        assert sorted(str(k) for k in actual) == sorted(expected), where
        for key, value in actual.items():
            expect(value, expected[str(key)], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, (list, tuple)), where
        assert len(actual) == len(expected), where
        for i, (a, e) in enumerate(zip(actual, expected)):
            expect(a, e, f"{where}[{i}]")
    else:
        assert actual == expected, where


@pytest.fixture
def no_mmengine(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(sys.modules):
        if name == "mmengine" or name.startswith("mmengine."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "mmengine", None)  # `import mmengine` now fails


@pytest.mark.usefixtures("no_mmengine")
def test_mmengine_checkpoint_loads_without_mmengine() -> None:
    expected = json.loads((FIXTURES / "mmengine_epoch_2.json").read_text())
    checkpoint = load_checkpoint(MMENGINE_CKPT, map_location="cpu")

    assert sorted(checkpoint) == expected["top_level_keys"]
    expect(dict(checkpoint["state_dict"]), expected["state_dict"], "state_dict")
    expect(checkpoint["optimizer"], expected["optimizer"], "optimizer")
    expect(checkpoint["param_schedulers"], expected["param_schedulers"], "param_schedulers")
    assert isinstance(checkpoint["param_schedulers"][0]["milestones"], Counter)

    meta = checkpoint["meta"]
    expect({k: v for k, v in meta.items() if k not in ("cfg", "time")}, expected["meta"], "meta")
    assert type(meta["extra_cfg"]) is ConfigDict
    assert meta["extra_cfg"].model.depth == 2
    assert meta["dataset_meta"]["classes"] == ("cat", "dog")

    hub = checkpoint["message_hub"]
    exp_hub = expected["message_hub"]
    assert list(hub["log_scalars"]) == sorted(exp_hub["log_scalars"]) or sorted(
        hub["log_scalars"]
    ) == sorted(exp_hub["log_scalars"])
    for key, buffer in hub["log_scalars"].items():
        assert isinstance(buffer, HistoryBuffer), key
        values, counts = buffer.data
        assert values.tolist() == exp_hub["log_scalars"][key]["log_history"], key
        assert counts.tolist() == exp_hub["log_scalars"][key]["count_history"], key
        assert buffer.max_length == exp_hub["log_scalars"][key]["max_length"]
    loss = exp_hub["log_scalars"]["train/loss"]["log_history"]
    assert hub["log_scalars"]["train/loss"].mean() == pytest.approx(sum(loss) / len(loss))
    expect(dict(hub["runtime_info"]), exp_hub["runtime_info"], "runtime_info")
    assert dict(hub["resumed_keys"]) == exp_hub["resumed_keys"]


@pytest.mark.usefixtures("no_mmengine")
def test_mmengine_checkpoint_loads_into_a_model(capture_logger) -> None:
    expected = json.loads((FIXTURES / "mmengine_epoch_2.json").read_text())["state_dict"]
    model = ToyModel()
    returned = load_checkpoint(model, str(MMENGINE_CKPT), "cpu", True, capture_logger)
    assert set(returned) >= {"meta", "state_dict"}
    for key, value in model.state_dict().items():
        assert value.tolist() == expected[key]["tensor"], key
    assert [lvl for lvl, _ in capture_logger.messages] == [logging.INFO]
    assert "mmengine_epoch_2.pth" in capture_logger.messages[0][1]


def test_mmengine_checkpoint_is_refused_by_plain_torch_weights_only() -> None:
    """Why the restricted unpickler exists: PyTorch's own safe loader rejects this file."""
    with pytest.raises(pickle.UnpicklingError):
        torch.load(MMENGINE_CKPT, weights_only=True)


# --------------------------------------------------------------------------- model weights


def test_revise_keys_default_strips_module_prefix(capture_logger) -> None:
    source = ToyModel()
    wrapped = OrderedDict((f"module.{k}", v) for k, v in source.state_dict().items())
    target = ToyModel()
    _load_checkpoint_to_model(target, {"state_dict": wrapped}, logger=capture_logger)
    assert_same(source.state_dict(), target.state_dict())
    assert capture_logger.messages == []


def test_revise_keys_custom_patterns_apply_in_order(capture_logger) -> None:
    source = ToyModel()
    renamed = {f"backbone.{k}": v for k, v in source.state_dict().items()}
    target = ToyModel()
    _load_checkpoint_to_model(
        target,
        renamed,  # a bare state dict: no "state_dict" key
        logger=capture_logger,
        revise_keys=[(r"^backbone\.", "net."), (r"^net\.", "")],
    )
    assert_same(source.state_dict(), target.state_dict())
    assert capture_logger.messages == []


def test_mismatch_report_is_mmengines_text(capture_logger) -> None:
    source = ToyModel(head_out=5)  # head has another shape
    state = source.state_dict()
    state["extra.weight"] = torch.zeros(1)
    del state["linear.bias"]
    del state["bn.num_batches_tracked"]  # never reported
    target = ToyModel()
    head_before = target.head.weight.clone()
    load_state_dict(target, state, logger=capture_logger)

    assert torch.equal(target.head.weight, head_before)  # mismatched shape: skipped
    assert torch.equal(target.linear.weight, source.linear.weight)  # the rest is loaded
    assert len(capture_logger.messages) == 1
    level, message = capture_logger.messages[0]
    assert level == logging.WARNING
    assert message == (
        "The model and loaded state dict do not match exactly\n\n"
        "size mismatch for head.weight: copying a param with shape torch.Size([5, 3]) from "
        "checkpoint, the shape in current model is torch.Size([2, 3]).\n"
        "size mismatch for head.bias: copying a param with shape torch.Size([5]) from "
        "checkpoint, the shape in current model is torch.Size([2]).\n"
        "unexpected key in source state_dict: extra.weight\n\n"
        "missing keys in source state_dict: linear.bias\n"
    )


def test_strict_raises_with_the_keys() -> None:
    state = ToyModel().state_dict()
    state["extra.weight"] = torch.zeros(1)
    del state["head.bias"]
    with pytest.raises(RuntimeError) as info:
        load_state_dict(ToyModel(), state, strict=True)
    message = str(info.value)
    assert "unexpected key in source state_dict: extra.weight" in message
    assert "missing keys in source state_dict: head.bias" in message


def test_default_logger_none_prints(capsys: pytest.CaptureFixture[str]) -> None:
    state = ToyModel().state_dict()
    del state["head.bias"]
    load_state_dict(ToyModel(), state)
    assert "missing keys in source state_dict: head.bias" in capsys.readouterr().out


def test_wrappers_are_looked_through() -> None:
    inner = ToyModel()
    wrapped = nn.DataParallel(inner)
    state = get_state_dict(wrapped)
    assert list(state) == list(inner.state_dict())
    assert_same(dict(state), dict(inner.state_dict()))
    assert state._metadata[""] == {"version": inner._version}
    assert "linear" in state._metadata

    target = ToyModel()
    load_state_dict(nn.DataParallel(target), state, strict=True)
    assert_same(target.state_dict(), inner.state_dict())


def test_load_state_dict_runs_post_hooks() -> None:
    target = ToyModel()
    seen: list[list[str]] = []
    target.register_load_state_dict_post_hook(lambda m, keys: seen.append(list(keys.missing_keys)))
    state = ToyModel().state_dict()
    del state["head.bias"]
    load_state_dict(target, state, logger="silent")
    assert seen == [["head.bias"]]


def test_weights_to_cpu_keeps_metadata_and_non_tensors() -> None:
    state = ToyModel().state_dict()
    state["extra_state"] = {"note": 1}
    cpu = weights_to_cpu(state)
    assert isinstance(cpu, OrderedDict)
    assert cpu._metadata == state._metadata
    assert cpu["extra_state"] == {"note": 1}
    assert all(v.device.type == "cpu" for k, v in cpu.items() if k != "extra_state")


def test_model_form_and_file_form_of_load_checkpoint(tmp_path: Path) -> None:
    source = ToyModel()
    path = tmp_path / "m.pth"
    save_checkpoint({"state_dict": source.state_dict(), "meta": {"epoch": 1}}, path)
    target = ToyModel()
    checkpoint = load_checkpoint(model=target, filename=str(path), strict=True)
    assert checkpoint["meta"] == {"epoch": 1}
    assert_same(source.state_dict(), target.state_dict())
    assert load_checkpoint(filename=path, map_location="cpu")["meta"] == {"epoch": 1}
    assert _load_checkpoint(path, logger="silent")["meta"] == {"epoch": 1}

    save_checkpoint([1, 2], tmp_path / "list.pth")
    with pytest.raises(RuntimeError, match="No state_dict found in checkpoint file"):
        load_checkpoint(ToyModel(), str(tmp_path / "list.pth"))


def test_load_checkpoint_with_prefix(tmp_path: Path) -> None:
    model = ToyModel()
    path = tmp_path / "m.pth"
    save_checkpoint(
        {"state_dict": {f"backbone.{k}": v for k, v in model.state_dict().items()}}, path
    )
    weights = _load_checkpoint_with_prefix("backbone", path)
    assert_same(dict(model.state_dict()), {k: weights[k] for k in model.state_dict()})
    with pytest.raises(ValueError, match=r"neck\."):
        _load_checkpoint_with_prefix("neck", path)


# -------------------------------------------------------------------------- last_checkpoint


@pytest.mark.parametrize("kind", ["local", "memory"])
def test_last_checkpoint_round_trip(tmp_path: Path, kind: str) -> None:
    work_dir = str(tmp_path) if kind == "local" else f"memory://treadle-ckpt/{uuid.uuid4().hex}"
    assert find_latest_checkpoint(work_dir, logger="silent") is None
    target = fileio.join_path(work_dir, "epoch_2.pth")
    save_checkpoint({"v": torch.tensor(2)}, target)
    written = write_last_checkpoint(work_dir, target)
    assert fileio.get_text(written) == target
    assert find_latest_checkpoint(work_dir) == target
    assert load_checkpoint(find_latest_checkpoint(work_dir))["v"].item() == 2


def test_empty_last_checkpoint_means_none(tmp_path: Path) -> None:
    (tmp_path / "last_checkpoint").write_text("\n")
    assert find_latest_checkpoint(tmp_path, logger="silent") is None


def test_load_checkpoint_file_logs_where_it_reads(tmp_path: Path, capture_logger) -> None:
    path = tmp_path / "a.pth"
    save_checkpoint({"v": 1}, path)
    assert load_checkpoint_file(path, logger=capture_logger) == {"v": 1}
    assert capture_logger.messages == [
        (logging.INFO, f"Loads checkpoint by LocalBackend from path: {path}")
    ]

"""Visualizer fan-out and failure isolation; LocalVisBackend files (scalars.json, config, PNG)."""

from __future__ import annotations

import json
import re
import struct
import zlib
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from treadle.core import plugins
from treadle.core.config import Config
from treadle.core.logging import set_rank
from treadle.core.registry import VISBACKENDS, VISUALIZERS
from treadle.core.visualization import (
    BaseVisBackend,
    LocalVisBackend,
    Visualizer,
    encode_png,
    force_init_env,
)
from treadle.core.visualization import visualizer as visualizer_module
from treadle.core.visualization.components import COMPONENTS

FIXTURES = Path(__file__).parent / "fixtures" / "logging"


class RecordingBackend(BaseVisBackend):
    """Records every call; fails on the calls named in ``fail_on`` (every time)."""

    def __init__(
        self, save_dir: str | None = None, fail_on: tuple[str, ...] = (), fail_init: bool = False
    ) -> None:
        super().__init__(save_dir)
        self.calls: list[tuple[Any, ...]] = []
        self.fail_on = fail_on
        self.fail_init = fail_init
        self.init_count = 0

    def _init_env(self) -> None:
        self.init_count += 1
        if self.fail_init:
            raise ConnectionError("tracker unreachable")

    @property
    @force_init_env
    def experiment(self) -> RecordingBackend:
        return self

    def _record(self, *call: Any) -> None:
        self.calls.append(call)
        if call[0] in self.fail_on:
            raise RuntimeError(f"quota exceeded in {call[0]}")

    @force_init_env
    def add_config(self, config: Any, **kwargs: Any) -> None:
        self._record("add_config", config)

    @force_init_env
    def add_graph(self, model: Any, data_batch: Any, **kwargs: Any) -> None:
        self._record("add_graph", model, data_batch)

    @force_init_env
    def add_image(self, name: str, image: Any, step: int = 0, **kwargs: Any) -> None:
        self._record("add_image", name, step)

    @force_init_env
    def add_scalar(self, name: str, value: Any, step: int = 0, **kwargs: Any) -> None:
        self._record("add_scalar", name, value, step)

    @force_init_env
    def add_scalars(
        self, scalar_dict: dict, step: int = 0, file_path: str | None = None, **kwargs: Any
    ) -> None:
        self._record("add_scalars", dict(scalar_dict), step, file_path)

    def close(self) -> None:
        self._record("close")


class NeedsSaveDir(BaseVisBackend):
    def __init__(self, save_dir: str) -> None:
        super().__init__(save_dir)

    def _init_env(self) -> None:
        pass

    @property
    def experiment(self) -> None:
        return None


@pytest.fixture(autouse=True, scope="module")
def _components():
    plugins.load_plugins()
    added = []
    for registry_name, registry in (("VISBACKENDS", VISBACKENDS), ("VISUALIZERS", VISUALIZERS)):
        for name, target in COMPONENTS[registry_name].items():
            if name not in registry:
                registry.register_lazy(name, target)
                added.append((registry, name))
    for name, cls in (
        ("_TestRecordingBackend", RecordingBackend),
        ("_TestNeedsSaveDir", NeedsSaveDir),
    ):
        VISBACKENDS.register_module(name=name, module=cls)
        added.append((VISBACKENDS, name))
    yield
    for registry, name in added:
        registry.unregister(name)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch):
    for var in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    set_rank(None)
    saved = OrderedDict(Visualizer._instance_dict)
    Visualizer._instance_dict.clear()
    yield
    Visualizer._instance_dict.clear()
    Visualizer._instance_dict.update(saved)
    set_rank(None)


@pytest.fixture
def errors_logged(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    messages: list[str] = []
    monkeypatch.setattr(
        visualizer_module, "print_log", lambda msg, logger=None, level=0: messages.append(msg)
    )
    return messages


def recording(**kwargs: Any) -> dict[str, Any]:
    return {"type": "_TestRecordingBackend", **kwargs}


# ---------------------------------------------------------------------- fan-out


def test_every_call_reaches_every_backend() -> None:
    vis = Visualizer(vis_backends=[recording(name="a"), recording(name="b")])
    image = np.zeros((2, 3, 3), dtype=np.uint8)
    vis.add_config("cfg")
    vis.add_scalar("lr", 0.1, step=1)
    vis.add_scalars({"loss": 0.5}, step=2, file_path="x.json")
    vis.add_image("img", image, step=3)
    vis.add_graph("model", [{"x": 1}])
    vis.close()
    expected = [
        ("add_config", "cfg"),
        ("add_scalar", "lr", 0.1, 1),
        ("add_scalars", {"loss": 0.5}, 2, "x.json"),
        ("add_image", "img", 3),
        ("add_graph", "model", [{"x": 1}]),
        ("close",),
    ]
    for name in ("a", "b"):
        backend = vis.get_backend(name)
        assert isinstance(backend, RecordingBackend)
        assert backend.calls == expected
        assert backend.init_count == 1  # lazily, once
    assert vis.get_backend("missing") is None
    assert list(vis.vis_backends) == ["a", "b"]


def test_backend_names_and_config_handling() -> None:
    cfg = recording(name="mine", required=True)
    instance = RecordingBackend()
    vis = Visualizer(vis_backends=[cfg, instance], save_dir="/tmp/unused")
    assert cfg == {"type": "_TestRecordingBackend", "name": "mine", "required": True}  # untouched
    assert list(vis.vis_backends) == ["mine", "RecordingBackend"]  # class name by default
    assert vis.get_backend("mine")._save_dir == "/tmp/unused/vis_data"  # type: ignore[union-attr]
    assert vis.get_backend("RecordingBackend") is instance
    with pytest.raises(RuntimeError, match="vis_backend name RecordingBackend already exists"):
        Visualizer(vis_backends=[recording(), recording()])
    with pytest.raises(TypeError, match="vis_backends must be a list"):
        Visualizer(vis_backends="LocalVisBackend")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"vis_backends\[1\] must be a config dict"):
        Visualizer(vis_backends=[recording(), 3])  # type: ignore[list-item]
    single = Visualizer(name="single", vis_backends=recording())
    assert list(single.vis_backends) == ["RecordingBackend"]


def test_unknown_backend_type_is_a_config_error() -> None:
    with pytest.raises(KeyError, match="NoSuchVisBackend"):
        Visualizer(vis_backends=[{"type": "NoSuchVisBackend"}])


def test_backend_without_required_save_dir_is_left_out() -> None:
    with pytest.warns(UserWarning, match="please provide the `save_dir` argument"):
        vis = Visualizer(vis_backends=[{"type": "_TestNeedsSaveDir"}, recording()])
    assert list(vis.vis_backends) == ["RecordingBackend"]


def test_only_rank_zero_records() -> None:
    set_rank(1, 2)
    vis = Visualizer(vis_backends=[recording()])
    vis.add_scalars({"loss": 1.0})
    vis.add_config("cfg")
    backend = vis.get_backend("RecordingBackend")
    assert isinstance(backend, RecordingBackend)
    assert backend.calls == []
    assert backend.init_count == 0


def test_get_instance_of_a_subclass_is_the_current_visualizer() -> None:
    class DetVisualizer(Visualizer):
        def __init__(self, name: str = "det") -> None:
            super().__init__(name)

    det = DetVisualizer.get_instance("det-vis")
    assert Visualizer.get_current_instance() is det
    assert DetVisualizer.get_current_instance() is det
    assert VISUALIZERS.build({"type": "Visualizer", "name": "built"}).instance_name == "built"


def test_image_and_dataset_meta() -> None:
    vis = Visualizer(image=np.ones((2, 2, 3), dtype=np.uint8))
    assert vis.get_image().shape == (2, 2, 3)
    vis.dataset_meta = {"classes": ("a",)}
    assert vis.dataset_meta == {"classes": ("a",)}
    with pytest.raises(ValueError, match="No image set"):
        Visualizer(name="other").get_image()


# ---------------------------------------------------------------------- failure isolation


def test_failing_backend_is_logged_once_and_disabled(errors_logged: list[str]) -> None:
    vis = Visualizer(
        vis_backends=[recording(name="tracker", fail_on=("add_scalars",)), recording(name="local")]
    )
    for step in range(1, 21):  # a training run's logging calls
        vis.add_scalars({"loss": 1.0 / step}, step=step)
        vis.add_scalar("lr", 0.1, step=step)
    vis.close()
    tracker = vis.get_backend("tracker")
    local = vis.get_backend("local")
    assert isinstance(tracker, RecordingBackend)
    assert isinstance(local, RecordingBackend)
    assert tracker.calls == [("add_scalars", {"loss": 1.0}, 1, None), ("close",)]
    assert len(local.calls) == 41  # every call reached the healthy backend
    assert len(errors_logged) == 1
    assert errors_logged[0].startswith(
        "Vis backend 'tracker' (RecordingBackend) failed in add_scalars(): RuntimeError: quota "
        "exceeded in add_scalars. It is disabled for the rest of the run"
    )
    assert "required=True" in errors_logged[0]
    assert list(vis.failed_backends) == ["tracker"]
    assert isinstance(vis.failed_backends["tracker"], RuntimeError)


def test_failing_lazy_initialisation_disables_the_backend(errors_logged: list[str]) -> None:
    vis = Visualizer(vis_backends=[recording(fail_init=True)])
    vis.add_config("cfg")
    vis.add_scalars({"loss": 1.0})
    backend = vis.get_backend("RecordingBackend")
    assert isinstance(backend, RecordingBackend)
    assert backend.init_count == 1
    assert len(errors_logged) == 1
    assert "failed in add_config(): ConnectionError: tracker unreachable" in errors_logged[0]


def test_required_backend_errors_stop_the_run(errors_logged: list[str]) -> None:
    vis = Visualizer(vis_backends=[recording(fail_on=("add_scalars",), required=True)])
    vis.add_scalar("lr", 0.1)
    with pytest.raises(RuntimeError, match="quota exceeded in add_scalars"):
        vis.add_scalars({"loss": 1.0})
    with pytest.raises(RuntimeError, match="quota exceeded"):
        vis.add_scalars({"loss": 2.0})  # not disabled: it keeps raising
    assert errors_logged == []
    instance = RecordingBackend(fail_on=("add_config",))
    instance.required = True  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError, match="add_config"):
        Visualizer(name="v2", vis_backends=[instance]).add_config("cfg")


def test_close_failures(errors_logged: list[str]) -> None:
    vis = Visualizer(vis_backends=[recording(name="a", fail_on=("close",)), recording(name="b")])
    vis.close()
    assert len(errors_logged) == 1
    assert "'a' (RecordingBackend) failed to close" in errors_logged[0]
    assert vis.get_backend("b").calls == [("close",)]  # type: ignore[union-attr]
    required = Visualizer(
        name="req",
        vis_backends=[recording(name="a", fail_on=("close",), required=True), recording(name="b")],
    )
    with pytest.raises(RuntimeError, match="quota exceeded in close"):
        required.close()
    assert required.get_backend("b").calls == [("close",)]  # type: ignore[union-attr]


def test_keyboard_interrupt_is_not_swallowed() -> None:
    class Interrupting(RecordingBackend):
        def add_scalars(self, *args: Any, **kwargs: Any) -> None:
            raise KeyboardInterrupt

    vis = Visualizer(vis_backends=[Interrupting()])
    with pytest.raises(KeyboardInterrupt):
        vis.add_scalars({"loss": 1.0})


# ---------------------------------------------------------------------- LocalVisBackend


def decode(value: Any) -> Any:
    if isinstance(value, dict) and "__ndarray__" in value:
        return np.array(value["__ndarray__"])
    if isinstance(value, dict) and "__float__" in value:
        return float(value["__float__"])
    return value


def test_scalars_json_equals_mmengine(tmp_path: Path) -> None:
    golden = json.loads((FIXTURES / "mmengine_scalars_golden.json").read_text())
    tags = json.loads((FIXTURES / "log_processor_goldens.json").read_text())
    vis = Visualizer(vis_backends=[{"type": "LocalVisBackend"}], save_dir=str(tmp_path))
    for name, step in golden["calls"]:
        tag = {key: decode(value) for key, value in tags[name]["tag"]}
        vis.add_scalars(tag, step=step, file_path="20240101_000000.json")
    vis.add_scalar("mAP", 0.6, step=3)
    vis.add_scalars({"loss": float("nan"), "acc": np.int64(7)}, step=4)
    vis_data = tmp_path / "vis_data"
    written = {p.name: p.read_text() for p in sorted(vis_data.iterdir()) if p.is_file()}
    assert written == golden["files"]


def test_scalars_from_tensors(tmp_path: Path) -> None:
    backend = LocalVisBackend(str(tmp_path))
    backend.add_scalars({"loss": torch.tensor(0.5), "hist": torch.tensor([1, 2])}, step=7)
    backend.add_scalar("acc", torch.tensor(3))
    lines = (tmp_path / "scalars.json").read_text().splitlines()
    assert lines == ['{"loss": 0.5, "hist": [1, 2], "step": 7}', '{"acc": 3, "step": 0}']


def test_local_backend_argument_checks(tmp_path: Path) -> None:
    with pytest.raises(
        ValueError, match=re.escape("config_save_file must be a .py file name, got 'cfg.yaml'")
    ):
        LocalVisBackend(str(tmp_path), config_save_file="cfg.yaml")
    with pytest.raises(ValueError, match=re.escape("scalar_save_file must be a .json file name")):
        LocalVisBackend(str(tmp_path), scalar_save_file="scalars.txt")
    backend = LocalVisBackend(str(tmp_path))
    with pytest.raises(
        ValueError, match=re.escape("file_path 'scalars.json' is the scalars file itself")
    ):
        backend.add_scalars({"a": 1}, file_path="scalars.json")
    with pytest.raises(ValueError, match=re.escape("file_path must be a .json file name")):
        backend.add_scalars({"a": 1}, file_path="log.txt")
    with pytest.raises(TypeError, match="scalar_dict must be a dict"):
        backend.add_scalars([("a", 1)])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=re.escape("object cannot be written to scalars.json")):
        backend.add_scalar("x", object())


def test_environment_is_created_lazily(tmp_path: Path) -> None:
    save_dir = tmp_path / "run" / "vis_data"
    backend = LocalVisBackend(str(save_dir))
    assert not save_dir.exists()
    assert backend.experiment is backend
    assert save_dir.is_dir()


def test_config_is_written_and_loads_back(tmp_path: Path) -> None:
    cfg = Config({"model": {"type": "Net", "depth": 3}, "lrs": [0.1, 0.01], "name": "run"})
    vis = Visualizer(vis_backends=[{"type": "LocalVisBackend"}], save_dir=str(tmp_path))
    vis.add_config(cfg)
    path = tmp_path / "vis_data" / "config.py"
    assert Config.fromfile(str(path)).to_dict() == cfg.to_dict()
    backend = LocalVisBackend(str(tmp_path / "other"), config_save_file="c.py")
    backend.add_config({"a": 1})
    assert Config.fromfile(str(tmp_path / "other" / "c.py")).to_dict() == {"a": 1}
    with pytest.raises(TypeError, match="config must be a Config, got int"):
        backend.add_config(3)


def read_png(data: bytes) -> tuple[int, int, int, bytes]:
    """Parse a PNG: (width, height, colour type, raw filtered scanlines)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body)
        chunks.append((kind, body))
        pos += 12 + length
    assert chunks[0][0] == b"IHDR"
    assert chunks[-1] == (b"IEND", b"")
    width, height, depth, color, _, _, _ = struct.unpack(">IIBBBBB", chunks[0][1])
    assert depth == 8
    idat = b"".join(body for kind, body in chunks if kind == b"IDAT")
    return width, height, color, zlib.decompress(idat)


@pytest.mark.parametrize(
    ("shape", "color"), [((5, 7, 3), 2), ((4, 6), 0), ((3, 2, 4), 6), ((2, 2, 1), 0)]
)
def test_png_pixels_round_trip(shape: tuple[int, ...], color: int) -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=shape, dtype=np.uint8)
    width, height, color_type, raw = read_png(encode_png(image))
    assert (height, width, color_type) == (shape[0], shape[1], color)
    channels = 1 if len(shape) == 2 else shape[2]
    stride = width * channels
    rows = [raw[r * (stride + 1) : (r + 1) * (stride + 1)] for r in range(height)]
    assert all(row[0] == 0 for row in rows)  # filter type "none"
    pixels = np.frombuffer(b"".join(row[1:] for row in rows), dtype=np.uint8)
    assert np.array_equal(pixels.reshape(image.shape), image)


def test_png_of_a_non_contiguous_array_and_a_tensor() -> None:
    image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(3, 2, 3).transpose(1, 0, 2)
    _, _, _, raw = read_png(encode_png(image))
    assert raw[1:10] == image[0].tobytes()
    assert encode_png(torch.from_numpy(np.ascontiguousarray(image))) == encode_png(image)


@pytest.mark.parametrize(
    ("image", "error", "match"),
    [
        (np.zeros((2, 2, 3), dtype=np.float32), TypeError, "dtype uint8, got float32"),
        (np.zeros((2, 2, 5), dtype=np.uint8), ValueError, r"got \(2, 2, 5\)"),
        (np.zeros((0, 2), dtype=np.uint8), ValueError, "must not be empty"),
        ([[0, 1]], TypeError, "must be a numpy array, got list"),
    ],
)
def test_png_bad_images(image: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        encode_png(image)


def test_add_image_writes_png(tmp_path: Path) -> None:
    vis = Visualizer(vis_backends=[{"type": "LocalVisBackend"}], save_dir=str(tmp_path))
    image = np.zeros((4, 5, 3), dtype=np.uint8)
    image[..., 0] = 255  # pure red, in RGB order
    vis.add_image("pred", image, step=12)
    path = tmp_path / "vis_data" / "vis_image" / "pred_12.png"
    width, height, color, raw = read_png(path.read_bytes())
    assert (width, height, color) == (5, 4, 2)
    assert raw[:4] == b"\x00\xff\x00\x00"  # first pixel: R=255, G=0, B=0


def test_local_backend_json_values_as_fileio(tmp_path: Path) -> None:
    # The backend converts values as fileio's json handler does, under its own message.
    backend = LocalVisBackend(str(tmp_path))
    backend.add_scalars({"t": torch.tensor(1.5), "v": torch.arange(2), "s": {3}}, step=1)
    lines = (tmp_path / "scalars.json").read_text().splitlines()
    assert lines == ['{"t": 1.5, "v": [0, 1], "s": [3], "step": 1}']
    with pytest.raises(TypeError, match=re.escape("object cannot be written to scalars.json")):
        backend.add_scalar("x", object())

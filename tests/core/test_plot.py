"""``treadle plot`` and the built-in rasterizer behind it."""

from __future__ import annotations

import json
import math
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest

from treadle.core.cli import main
from treadle.core.runner import Runner
from treadle.core.visualization import encode_png
from treadle.core.visualization.plot import (
    Curves,
    default_keys,
    find_run_dir,
    format_tick,
    load_scalars,
    nice_ticks,
    plot_curves,
    render_curves,
    split_curves,
)

TRAIN = (31, 119, 180)
VAL = (230, 97, 1)


def decode_png(data: bytes) -> tuple[int, int, list[list[tuple[int, int, int]]]]:
    """Width, height and RGB rows of a PNG written by ``encode_png`` (8-bit RGB, filter 0)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(body, zlib.crc32(kind)) & 0xFFFFFFFF
        chunks.append((kind, body))
        pos += 12 + length
    assert chunks[0][0] == b"IHDR"
    assert chunks[-1][0] == b"IEND"
    width, height, depth, color_type = struct.unpack(">IIBB", chunks[0][1][:10])
    assert (depth, color_type) == (8, 2)  # 8-bit RGB
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    stride = width * 3 + 1
    assert len(raw) == stride * height
    rows = []
    for y in range(height):
        line = raw[y * stride : (y + 1) * stride]
        assert line[0] == 0
        rows.append([tuple(line[1 + 3 * x : 4 + 3 * x]) for x in range(width)])
    return width, height, rows  # type: ignore[return-value]


def pixels_of(rows: list[list[tuple[int, int, int]]], color: tuple[int, int, int]) -> list[Any]:
    """``(x, y)`` of the pixels within a small distance of ``color``."""
    return [
        (x, y)
        for y, row in enumerate(rows)
        for x, px in enumerate(row)
        if sum(abs(a - b) for a, b in zip(px, color, strict=True)) <= 12
    ]


def write_scalars(work_dir: Path, records: list[dict[str, Any]], run: str = "20250101_000000"):
    path = work_dir / run / "vis_data" / "scalars.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def synthetic(n_epochs: int = 5, per_epoch: int = 8) -> list[dict[str, Any]]:
    """A by-epoch run: the loss falls from 2 to 0, validation accuracy climbs, steps like
    LoggerHook writes them (validation's step is the epoch)."""
    records: list[dict[str, Any]] = []
    total = n_epochs * per_epoch
    for i in range(1, total + 1):
        epoch = (i - 1) // per_epoch + 1
        loss = 2.0 * (total - i) / (total - 1)
        records.append(
            {"lr": 0.1, "data_time": 0.01, "loss": loss, "time": 0.1, "epoch": epoch, "iter": i,
             "step": i}
        )  # fmt: skip
        if i % per_epoch == 0:
            records.append(
                {"accuracy/top1": 50.0 + 10 * epoch, "loss": loss + 0.5, "data_time": 0.01,
                 "time": 0.01, "step": epoch}
            )  # fmt: skip
    return records


# ------------------------------------------------------------------ the data


def test_val_records_placed_at_the_iteration_they_followed() -> None:
    records = synthetic(n_epochs=3, per_epoch=4)
    (loss, acc) = split_curves(records, ["loss", "accuracy/top1"])
    assert [x for x, _ in loss.train] == list(range(1, 13))
    assert loss.val == [(4, pytest.approx(loss.train[3][1] + 0.5)), (8, pytest.approx(0.5 + loss.train[7][1])), (12, 0.5)]  # fmt: skip
    assert acc.train == []
    assert acc.val == [(4, 60.0), (8, 70.0), (12, 80.0)]


def test_val_steps_that_are_iterations_are_kept() -> None:
    # LoggerHook(log_metric_by_epoch=False): validation's step is already the iteration.
    records = [
        {"loss": 1.0, "iter": 10, "step": 10},
        {"acc": 0.5, "step": 10},
        {"loss": 0.5, "iter": 20, "step": 20},
        {"acc": 0.7, "step": 20},
    ]
    (acc,) = split_curves(records, ["acc"])
    assert acc.val == [(10, 0.5), (20, 0.7)]
    # A val-only file keeps its steps.
    (only,) = split_curves([{"acc": 0.1, "step": 1}, {"acc": 0.2, "step": 2}], ["acc"])
    assert only.val == [(1, 0.1), (2, 0.2)]


def test_non_finite_values_are_left_out() -> None:
    records = [
        {"loss": 1.0, "iter": 1, "step": 1},
        {"loss": float("nan"), "iter": 2, "step": 2},
        {"loss": "x", "iter": 3, "step": 3},
        {"loss": 0.5, "iter": 4, "step": 4},
    ]
    (loss,) = split_curves(records, ["loss"])
    assert loss.train == [(1, 1.0), (4, 0.5)]


def test_unknown_key_lists_available_keys() -> None:
    with pytest.raises(KeyError, match=r"'acc'.*available keys: lr, loss, accuracy/top1"):
        split_curves(synthetic(), ["loss", "acc"])


def test_default_keys() -> None:
    assert default_keys(synthetic()) == ["loss", "accuracy/top1"]
    assert default_keys([{"lr": 0.1, "iter": 1, "step": 1}]) == ["lr"]


def test_load_scalars_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.json"
    empty.write_text("\n")
    with pytest.raises(ValueError, match="holds no scalars"):
        load_scalars(str(empty))
    bad = tmp_path / "bad.json"
    bad.write_text('{"loss": 1, "step": 1}\n{"loss": \n')
    with pytest.raises(ValueError, match="line 2: not JSON"):
        load_scalars(str(bad))
    with pytest.raises(FileNotFoundError):
        load_scalars(str(tmp_path / "missing.json"))


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (0.0, 1.0, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]),
        (0.62, 0.74, [0.62, 0.64, 0.66, 0.68, 0.7, 0.72, 0.74]),
        (1, 6, [1, 2, 3, 4, 5, 6]),
        (-3, 97, [0, 20, 40, 60, 80]),
    ],
)
def test_nice_ticks(low: float, high: float, expected: list[float]) -> None:
    ticks, _ = nice_ticks(low, high)
    assert ticks == pytest.approx(expected)


def test_nice_ticks_for_iterations_are_whole() -> None:
    assert nice_ticks(0.9, 3.1, target=8, integer=True) == ([1, 2, 3], 1.0)
    assert nice_ticks(-400, 20400, target=8) == ([0, 5000, 10000, 15000, 20000], 5000)


def test_format_tick() -> None:
    assert format_tick(0.7, 0.02) == "0.70"
    assert format_tick(15000, 5000) == "15000"
    assert format_tick(0.25, 0.25) == "0.25"
    assert format_tick(0, 0.1) == "0"
    assert format_tick(2e-5, 1e-5) == "2.0e-5"


# ------------------------------------------------------------------ the picture


def test_render_panels_colours_and_curve_shape() -> None:
    curves = split_curves(synthetic(), ["loss", "accuracy/top1"])
    canvas = render_curves(curves, title="run", width=600, panel_height=250)
    width, height, rows = decode_png(encode_png(canvas))
    assert width == 600
    assert height > 2 * 250
    train = pixels_of(rows, TRAIN)
    val = pixels_of(rows, VAL)
    assert len(train) > 200
    assert len(val) > 100
    assert not set(train) & set(val)
    panel1 = height // 2  # the loss panel is the upper half
    train_in_plot = [(x, y) for x, y in train if y < panel1 and x > 100]
    # Falling loss: the line starts high on the left and ends low on the right.
    xs = [x for x, _ in train_in_plot]
    left = [y for x, y in train_in_plot if x < min(xs) + 20]
    right = [y for x, y in train_in_plot if x > max(xs) - 20]
    assert max(left) < min(right)
    assert max(xs) - min(xs) > 400  # it spans the width
    # Validation starts after the first epoch: its leftmost pixel is right of the train start.
    val_lower = [(x, y) for x, y in val if y > panel1]
    assert val_lower  # accuracy is in the lower panel
    assert min(x for x, _ in val_lower) > min(xs) + 40
    # Rising accuracy: up (smaller y) to the right.
    vx = [x for x, _ in val_lower]
    first = [y for x, y in val_lower if x < min(vx) + 5]
    last = [y for x, y in val_lower if x > max(vx) - 5]
    assert min(first) > max(last)


def test_render_edge_cases() -> None:
    # One point, flat values, a panel with nothing, smoothing off and on: all draw.
    curves = [
        Curves("one", train=[(1.0, 3.0)]),
        Curves("flat", train=[(float(i), 2.0) for i in range(1, 50)], val=[(25.0, 2.0)]),
        Curves("none"),
        Curves("noisy", train=[(float(i), math.sin(i) + i / 10) for i in range(200)]),
    ]
    for smooth in (None, 0.0, 0.9):
        *_, rows = decode_png(encode_png(render_curves(curves, smooth=smooth)))
        assert pixels_of(rows, TRAIN)
    with pytest.raises(ValueError, match="smooth"):
        render_curves(curves, smooth=1.0)
    with pytest.raises(ValueError, match="nothing to plot"):
        render_curves([])


# ------------------------------------------------------------------ the command


@pytest.fixture
def trained_work_dir(toy_cfg: Any) -> Path:
    cfg = toy_cfg()
    Runner.from_cfg(cfg).train()
    return Path(cfg["work_dir"])


def test_plot_command_on_a_real_run(
    trained_work_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (run,) = [p for p in trained_work_dir.iterdir() if (p / "vis_data" / "scalars.json").exists()]
    assert main(["plot", str(trained_work_dir), "--keys", "loss", "accuracy/top1"]) == 0
    out = run / "curves.png"
    assert f"wrote {out}" in capsys.readouterr().err
    width, _, rows = decode_png(out.read_bytes())
    assert width == 1000
    assert pixels_of(rows, TRAIN)
    assert pixels_of(rows, VAL)
    # -o and --run; and the run folder itself as WORK_DIR.
    other = trained_work_dir / "out" / "c.png"
    assert main(["plot", str(trained_work_dir), "--run", run.name, "-o", str(other)]) == 0
    assert other.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert find_run_dir(str(run)) == str(run)


def test_newest_run_is_plotted(tmp_path: Path) -> None:
    write_scalars(tmp_path, synthetic(), run="20250101_000000")
    write_scalars(tmp_path, synthetic(), run="20250102_000000")
    (tmp_path / "20250103_000000").mkdir()  # a run that logged nothing yet is skipped
    out = plot_curves(str(tmp_path))
    assert out == str(tmp_path / "20250102_000000" / "curves.png")


def error_of(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err


def test_plot_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = error_of(["plot", str(tmp_path / "nope")], capsys)
    assert code != 0
    assert "work dir" in err
    assert "does not exist" in err

    empty = tmp_path / "empty"
    empty.mkdir()
    code, err = error_of(["plot", str(empty)], capsys)
    assert code != 0
    assert "no run in" in err
    assert "Traceback" not in err

    write_scalars(tmp_path / "w", synthetic())
    code, err = error_of(["plot", str(tmp_path / "w"), "--keys", "loss", "top5"], capsys)
    assert code != 0
    assert "no scalar 'top5'" in err
    assert "available keys: lr, loss, accuracy/top1" in err

    code, err = error_of(["plot", str(tmp_path / "w"), "--run", "2024"], capsys)
    assert code != 0
    assert "runs: 20250101_000000" in err

    write_scalars(tmp_path / "e", [])
    code, err = error_of(["plot", str(tmp_path / "e")], capsys)
    assert code != 0
    assert "holds no scalars" in err

    with pytest.raises(SystemExit) as exc_info:
        main(["plot", str(tmp_path / "w"), "--smooth", "1.5"])
    assert exc_info.value.code == 2
    assert "must be in [0, 1)" in capsys.readouterr().err


def test_plot_in_a_subprocess(tmp_path: Path) -> None:
    write_scalars(tmp_path, synthetic())
    env = {k: v for k, v in os.environ.items() if not k.startswith("TREADLE_")}
    out = tmp_path / "curves.png"
    result = subprocess.run(
        [sys.executable, "-m", "treadle.core", "plot", str(tmp_path), "-o", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert decode_png(out.read_bytes())[0] == 1000

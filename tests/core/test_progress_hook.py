"""ProgressHook: the one-line terminal display, in real Runner runs."""

from __future__ import annotations

import io
import logging
import re
import sys
from typing import Any

import pytest

from treadle.core.hooks import Hook
from treadle.core.hooks.progress_hook import ProgressHook
from treadle.core.registry import HOOKS
from treadle.core.runner import Runner


class FakeTTY(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def screen(text: str) -> list[str]:
    """What a terminal shows for ``text``: ``\\r`` returns to column 0 and overwrites."""
    lines: list[list[str]] = [[]]
    col = 0
    for ch in text:
        if ch == "\n":
            lines.append([])
            col = 0
        elif ch == "\r":
            col = 0
        else:
            line = lines[-1]
            if col < len(line):
                line[col] = ch
            else:
                line.append(ch)
            col += 1
    return ["".join(line).rstrip() for line in lines]


def with_progress(toy_cfg: Any, hook: ProgressHook, **overrides: Any) -> dict[str, Any]:
    """A toy config whose ``default_hooks['progress']`` is ``hook`` (replacing a default one)."""
    cfg: dict[str, Any] = toy_cfg(**overrides)
    cfg["default_hooks"] = {**cfg["default_hooks"], "progress": hook}
    return cfg


def find_hook(runner: Runner) -> ProgressHook:
    return next(h for h in runner.hooks if isinstance(h, ProgressHook))


def build(cfg: dict[str, Any], stream: io.StringIO, monkeypatch: Any) -> Runner:
    """A Runner with ``sys.stdout`` (where the logger and the hook write) replaced by ``stream``.

    ``from_cfg`` deep-copies the config: the hook that runs is ``find_hook(runner)``.
    """
    monkeypatch.setattr(sys, "stdout", stream)
    return Runner.from_cfg(cfg)


def run_train(cfg: dict[str, Any], stream: io.StringIO, monkeypatch: Any) -> Runner:
    """Train with ``sys.stdout`` replaced by ``stream``."""
    runner = build(cfg, stream, monkeypatch)
    runner.train()
    return runner


def test_registered() -> None:
    hook = HOOKS.build({"type": "ProgressHook", "refresh_interval": 1.0})
    assert isinstance(hook, ProgressHook)
    assert hook.refresh_interval == 1.0


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"enable": 1}, TypeError),
        ({"refresh_interval": -1}, ValueError),
        ({"refresh_interval": "fast"}, TypeError),
        ({"loss_key": 3}, TypeError),
        ({"window_size": 0}, ValueError),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        ProgressHook(**kwargs)


def test_tty_shows_progress_and_clears_before_log_lines(toy_cfg: Any, monkeypatch: Any) -> None:
    stream = FakeTTY()
    cfg = with_progress(toy_cfg, ProgressHook(refresh_interval=0))
    runner = run_train(cfg, stream, monkeypatch)
    out = stream.getvalue()

    # In-place updates of the training line: every iteration, with counts, ETA and loss.
    for i in range(1, 7):
        assert re.search(
            rf"\rtrain \[epoch [12]/2\]  {i}/6 +\d+%  \[[#.]+\]  eta \d+:\d\d:\d\d", out
        )
    assert re.search(r"\rtrain .*  loss \d+\.\d{4}", out)
    # ... and of the validation line.
    assert re.search(r"\rval  1/3 +33%  \[[#.]+\]  eta \d+:\d\d:\d\d", out)
    assert "\rval  3/3  100%" in out

    shown = screen(out)
    log_lines = [line for line in shown if " - treadle - " in line]
    assert any("Epoch(train) [2][3/3]" in line for line in log_lines)
    assert any("accuracy/top1" in line for line in log_lines)
    # Every log line was written on a wiped line: no progress text left in front of or behind it.
    for line in log_lines:
        assert re.match(r"\d\d/\d\d \d\d:\d\d:\d\d - treadle - ", line), line
        assert "[epoch" not in line
        assert "eta 0" not in line
    # At the end the progress line is gone, and the hook has left the logger's handlers.
    assert shown[-1] == ""
    hook = find_hook(runner)
    assert not hook.active
    for handler in runner.logger.handlers:
        assert hook._filter not in handler.filters


def test_no_output_when_not_a_tty(toy_cfg: Any, monkeypatch: Any) -> None:
    stream = io.StringIO()  # isatty() is False
    cfg = with_progress(toy_cfg, ProgressHook(refresh_interval=0))
    run_train(cfg, stream, monkeypatch)
    out = stream.getvalue()
    assert "Epoch(train)" in out  # the plain log lines are the output
    assert "\r" not in out
    assert "[epoch" not in out


def test_disabled_and_forced(toy_cfg: Any, monkeypatch: Any) -> None:
    stream = FakeTTY()
    run_train(with_progress(toy_cfg, ProgressHook(enable=False)), stream, monkeypatch)
    assert "\r" not in stream.getvalue()

    # Not a terminal, but forced; on a stream of its own.
    cfg = with_progress(toy_cfg, ProgressHook(force=True, refresh_interval=0, stream=io.StringIO()))
    runner = run_train(cfg, io.StringIO(), monkeypatch)
    assert "\rtrain [epoch 1/2]  1/6" in find_hook(runner).stream.getvalue()


def test_only_rank_zero(toy_cfg: Any, monkeypatch: Any) -> None:
    cfg = with_progress(toy_cfg, ProgressHook(force=True, refresh_interval=0, stream=io.StringIO()))
    runner = build(cfg, io.StringIO(), monkeypatch)
    monkeypatch.setattr(type(runner), "rank", property(lambda self: 1))
    runner.train()
    assert find_hook(runner).stream.getvalue() == ""


def test_test_loop_display(toy_cfg: Any, monkeypatch: Any) -> None:
    stream = FakeTTY()
    cfg = with_progress(
        toy_cfg,
        ProgressHook(refresh_interval=0),
        test_dataloader=toy_cfg()["val_dataloader"],
        test_cfg={},
        test_evaluator={"type": "Accuracy"},
    )
    monkeypatch.setattr(sys, "stdout", stream)
    Runner.from_cfg(cfg).test()
    out = stream.getvalue()
    assert "\rtest  1/3 " in out
    assert "\rtest  3/3  100%" in out
    assert screen(out)[-1] == ""


class _Tick(Hook):
    """Advances a fake clock by ``step`` seconds before each training iteration."""

    priority = "HIGHEST"

    def __init__(self, clock: list[float], step: float) -> None:
        self.clock = clock
        self.step = step

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
        self.clock[0] += self.step


class _Boom(Hook):
    def after_train_iter(
        self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        if runner.iter == 2:
            raise RuntimeError("boom")


def _counting_run(
    toy_cfg: Any, monkeypatch: Any, stream: io.StringIO, hook: ProgressHook, step: float
) -> dict[str, int]:
    """Train 20 iterations (2 epochs of 10, few log lines) counting what the hook reads."""
    now = [0.0]
    counts = {"clock": 0, "read_loss": 0, "line": 0}
    cfg = toy_cfg(
        custom_hooks=[_Tick(now, step)],
        default_hooks={"logger": {"type": "LoggerHook", "interval": 100}, "progress": hook},
        val_cfg=None,
        val_dataloader=None,
        val_evaluator=None,
    )
    cfg["train_dataloader"]["dataset"]["n"] = 80  # 10 iterations per epoch
    runner = build(cfg, stream, monkeypatch)
    hook = find_hook(runner)
    now = next(h for h in runner.hooks if isinstance(h, _Tick)).clock

    def clock() -> float:
        counts["clock"] += 1
        return now[0]

    read_loss, line = hook._read_loss, hook._line

    def counted_read_loss(runner: Any) -> float | None:
        counts["read_loss"] += 1
        return read_loss(runner)

    def counted_line(*args: Any) -> str:
        counts["line"] += 1
        return line(*args)

    hook.clock = clock
    monkeypatch.setattr(hook, "_read_loss", counted_read_loss)
    monkeypatch.setattr(hook, "_line", counted_line)
    runner.train()
    return counts


def test_cost_per_iteration_is_one_clock_read(toy_cfg: Any, monkeypatch: Any) -> None:
    # The clock never moves past refresh_interval: after the first draw an iteration only reads
    # the clock. Redraws come only after log lines wiped the display (LoggerHook's end-of-epoch
    # lines, in the same iteration; CheckpointHook's "Saving checkpoint", before the next one),
    # and they reuse the loss read at the first draw.
    hook = ProgressHook(refresh_interval=3600)
    stream = FakeTTY()
    counts = _counting_run(toy_cfg, monkeypatch, stream, hook, step=0.0)
    assert counts["clock"] == 20
    assert counts["read_loss"] == 1
    assert counts["line"] == 4
    drawn = re.findall(r"\rtrain \[epoch \d/2\] +(\d+)/20", stream.getvalue())
    assert drawn == ["1", "10", "11", "20"]


def test_refresh_interval_throttles_draws_and_loss_reads(toy_cfg: Any, monkeypatch: Any) -> None:
    # 0.125 s per iteration, a redraw every 0.5 s: iterations 1, 5, 9, 15, 19 by the clock; 10,
    # 11 and 20 after log lines. The loss is read at most every 0.5 s: at 1, 5, 9, 15 and 19.
    hook = ProgressHook(refresh_interval=0.5)
    stream = FakeTTY()
    counts = _counting_run(toy_cfg, monkeypatch, stream, hook, step=0.125)
    assert counts["clock"] == 20
    drawn = re.findall(r"\rtrain \[epoch \d/2\] +(\d+)/20", stream.getvalue())
    assert drawn == ["1", "5", "9", "10", "11", "15", "19", "20"]
    assert counts["line"] == 8
    assert counts["read_loss"] == 5


def test_inactive_hook_reads_nothing(toy_cfg: Any, monkeypatch: Any) -> None:
    hook = ProgressHook(refresh_interval=0)
    counts = _counting_run(toy_cfg, monkeypatch, io.StringIO(), hook, step=0.1)
    assert counts == {"clock": 0, "read_loss": 0, "line": 0}


def test_exception_wipes_line_and_detaches(toy_cfg: Any, monkeypatch: Any) -> None:
    stream = FakeTTY()
    runner = build(
        with_progress(toy_cfg, ProgressHook(refresh_interval=0), custom_hooks=[_Boom()]),
        stream,
        monkeypatch,
    )
    with pytest.raises(RuntimeError, match="boom"):
        runner.train()
    assert "\rtrain [epoch 1/2]  2/6" in stream.getvalue()
    assert screen(stream.getvalue())[-1] == ""
    assert not find_hook(runner).active
    assert all(
        not isinstance(f, logging.Filter) or "ClearBeforeRecord" not in type(f).__name__
        for handler in runner.logger.handlers
        for f in handler.filters
    )


def test_line_fits_the_terminal(toy_cfg: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("COLUMNS", "30")
    stream = FakeTTY()
    run_train(with_progress(toy_cfg, ProgressHook(refresh_interval=0)), stream, monkeypatch)
    progress = [s for s in stream.getvalue().split("\r") if s.startswith("train")]
    assert progress
    assert all(len(s.rstrip()) <= 29 for s in progress)

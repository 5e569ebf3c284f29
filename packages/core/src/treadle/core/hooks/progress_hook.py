"""``ProgressHook``: a one-line progress display on a terminal (new in treadle; MMEngine has none).

On a terminal the hook keeps one line up to date, redrawn in place with ``\\r``::

    train [epoch 2/10]   150/1000   15%  [###.................]  eta 0:01:23  loss 0.6543
    val  12/50   24%  [####................]  eta 0:00:03

Everything else the run prints goes through the logger, and the log lines stay the permanent
record: before the logger's terminal handler writes a record, a :class:`logging.Filter` the hook
adds to that handler wipes the progress line, and the hook redraws it after the next iteration.
The hook's priority is ``VERY_LOW``, after :class:`~treadle.core.hooks.LoggerHook`
(``BELOW_NORMAL``) and :class:`~treadle.core.hooks.IterTimerHook` (``NORMAL``, which sets the
``eta`` info this hook shows), so within an iteration the log line comes first and the progress
line is always the last line on the screen. ``print()`` output that bypasses the logger is not
coordinated: it lands after the progress line until the next redraw.

Cost. When the output is not a terminal (a file, a pipe, pytest's capture, a rank other than 0)
the hook does nothing: the train loops do not call its per-iteration point
(``after_train_iter``, see :meth:`~treadle.core.hooks.Hook.idle_points`), and in evaluation
(``after_val_iter`` / ``after_test_iter``) it returns after one attribute test.
``default_hooks=dict(progress=None)`` removes it altogether.

When it is active, an iteration costs one clock read. A redraw (at most every
``refresh_interval`` seconds, or after a log line wiped the display) formats and writes one line,
and reads the smoothed loss from the message hub at most once per ``refresh_interval``. Reading
the loss converts the loss tensors logged since the last read to numbers — one host-device
synchronisation — which is why it is throttled; there is no ``.item()`` per iteration.
"""

from __future__ import annotations

import logging
import math
import shutil
import sys
import time
from typing import IO, TYPE_CHECKING, Any

from treadle.core.hooks._utils import check_bool, is_main_process
from treadle.core.hooks.hook import DATA_BATCH, Hook
from treadle.core.logging.log_processor import _format_eta

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["ProgressHook"]

_BAR_WIDTH = 20


class _ClearBeforeRecord(logging.Filter):
    """Handler filter that wipes the progress line before the handler writes a record."""

    def __init__(self, hook: ProgressHook) -> None:
        super().__init__()
        self.hook = hook

    def filter(self, record: logging.LogRecord) -> bool:
        self.hook.clear()
        return True


class ProgressHook(Hook):
    """Shows iteration, percentage, ETA and smoothed loss on one terminal line.

    Active only on rank 0 and only when the stream is a terminal (``stream.isatty()``), unless
    ``force`` is set; otherwise every point returns at once and the log lines of
    :class:`~treadle.core.hooks.LoggerHook` are the only output. See the module docstring for how
    the line and the logger share the terminal, and for the cost.

    Args:
        enable: ``False`` turns the display off whatever the stream is.
        force: Show the display even when the stream is not a terminal (for a log file that is
            viewed with ``less -r`` or ``tail -f``).
        refresh_interval: Seconds between redraws, and the most often the loss is read.
        loss_key: The training scalar shown (``train/<loss_key>`` in the message hub); ``None``
            shows no loss.
        window_size: How many of the latest logged values of the loss are averaged.
        stream: Where the line goes; ``None`` means ``sys.stdout`` as it is when the run starts
            (where the logger writes too).

    Raises:
        TypeError, ValueError: For arguments of the wrong type or value.
    """

    priority = "VERY_LOW"

    def __init__(
        self,
        enable: bool = True,
        force: bool = False,
        refresh_interval: float = 0.5,
        loss_key: str | None = "loss",
        window_size: int = 10,
        stream: IO[str] | None = None,
    ) -> None:
        check_bool(enable, "enable")
        check_bool(force, "force")
        if isinstance(refresh_interval, bool) or not isinstance(refresh_interval, (int, float)):
            raise TypeError(
                f"refresh_interval must be a number, got {type(refresh_interval).__name__}"
            )
        if not refresh_interval >= 0:
            raise ValueError(f"refresh_interval must be >= 0, got {refresh_interval!r}")
        if loss_key is not None and not isinstance(loss_key, str):
            raise TypeError(f"loss_key must be a str or None, got {type(loss_key).__name__}")
        if isinstance(window_size, bool) or not isinstance(window_size, int) or window_size < 1:
            raise ValueError(f"window_size must be a positive int, got {window_size!r}")
        self.enable = enable
        self.force = force
        self.refresh_interval = float(refresh_interval)
        self.loss_key = loss_key
        self.window_size = window_size
        self.stream = stream
        #: The clock; tests may replace it.
        self.clock: Callable[[], float] = time.monotonic

        self._active = False
        self._out: IO[str] | None = None
        self._filter = _ClearBeforeRecord(self)
        self._filtered: list[logging.Handler] = []
        self._shown = 0  # length of the line on screen; 0 when none is
        self._next_draw = 0.0
        self._mode = "train"
        self._training = False
        self._total = 0  # iterations of the current val/test pass
        self._epochs = 0  # max_epochs of an epoch-based training, else 0
        self._loss: float | None = None
        self._loss_time = -math.inf
        self._columns = 80

    # ------------------------------------------------------------------ display

    @property
    def active(self) -> bool:
        """Whether the display is on for the current run."""
        return self._active

    def clear(self) -> None:
        """Wipe the progress line, if one is shown; it comes back at the next iteration."""
        if self._shown and self._out is not None:
            self._out.write("\r" + " " * self._shown + "\r")
            self._out.flush()
            self._shown = 0
        self._next_draw = 0.0

    def _write(self, line: str) -> None:
        out = self._out
        if out is None:
            return
        line = line[: max(self._columns - 1, 10)]  # a wrapped line cannot be redrawn with \r
        pad = " " * max(self._shown - len(line), 0)
        out.write("\r" + line + pad)
        out.flush()
        self._shown = len(line)

    def _smoothed_loss(self, runner: Any, now: float) -> float | None:
        if self.loss_key is None:
            return None
        if now - self._loss_time >= self.refresh_interval:
            self._loss_time = now
            self._loss = self._read_loss(runner)
        return self._loss

    def _read_loss(self, runner: Any) -> float | None:
        """The mean of the latest ``window_size`` losses: one host sync for the pending ones."""
        buffer = runner.message_hub.log_scalars.get(f"train/{self.loss_key}")
        if buffer is None:
            return None
        value = buffer.mean(self.window_size)
        return None if math.isnan(value) else float(value)

    def _line(self, runner: Any, done: int, total: int, now: float) -> str:
        parts = [self._mode]
        if self._mode == "train" and self._epochs:
            parts[0] += f" [epoch {min(runner.epoch + 1, self._epochs)}/{self._epochs}]"
        width = len(str(total))
        fraction = min(done / total, 1.0) if total > 0 else 0.0
        filled = int(fraction * _BAR_WIDTH)
        parts.append(f"{done:>{width}}/{total}")
        parts.append(f"{fraction * 100:3.0f}%")
        parts.append("[" + "#" * filled + "." * (_BAR_WIDTH - filled) + "]")
        eta = runner.message_hub.get_info("eta")
        if isinstance(eta, (int, float)) and math.isfinite(eta):
            parts.append(f"eta {_format_eta(max(eta, 0))}")
        if self._mode == "train":
            loss = self._smoothed_loss(runner, now)
            if loss is not None:
                parts.append(f"{self.loss_key} {loss:.4f}")
        return "  ".join(parts)

    def _draw(self, runner: Any, done: int, total: int, now: float) -> None:
        self._next_draw = now + self.refresh_interval
        self._write(self._line(runner, done, total, now))

    # ------------------------------------------------------------------ lifecycle

    def before_run(self, runner: Any) -> None:
        """Decide whether to show the display; coordinate with the logger's terminal handlers."""
        self._active = False
        if not self.enable or not is_main_process(runner):
            return
        out = self.stream if self.stream is not None else sys.stdout
        if out is None:
            return
        if not self.force:
            isatty = getattr(out, "isatty", None)
            try:
                if not (callable(isatty) and isatty()):
                    return
            except (OSError, ValueError):  # a closed or detached stream
                return
        self._out = out
        self._active = True
        self._shown = 0
        self._loss = None
        self._loss_time = -math.inf
        self._columns = shutil.get_terminal_size().columns
        for handler in getattr(runner.logger, "handlers", ()):
            if isinstance(handler, logging.StreamHandler) and not isinstance(
                handler, logging.FileHandler
            ):
                handler.addFilter(self._filter)
                self._filtered.append(handler)

    def _finish(self) -> None:
        self.clear()
        for handler in self._filtered:
            handler.removeFilter(self._filter)
        self._filtered = []
        self._active = False
        self._out = None

    def after_run(self, runner: Any) -> None:
        """Wipe the line and detach from the logger."""
        if self._active:
            self._finish()

    def on_exception(self, runner: Any, exception: BaseException) -> None:
        """Wipe the line so that the error message starts on a clean line."""
        if self._active:
            self._finish()

    def before_train(self, runner: Any) -> None:
        """Start the training display."""
        if not self._active:
            return
        from treadle.core.runner.loops import EpochBasedTrainLoop

        self._training = True
        self._mode = "train"
        loop = runner.train_loop
        self._epochs = loop.max_epochs if isinstance(loop, EpochBasedTrainLoop) else 0
        self._next_draw = 0.0

    def after_train(self, runner: Any) -> None:
        """Wipe the training display."""
        self._training = False
        if self._active:
            self.clear()

    def idle_points(self, runner: Any) -> tuple[str, ...]:
        """Without a display (decided in ``before_run``), nothing to do per iteration."""
        return () if self._active else ("after_train_iter",)

    def after_train_iter(
        self, runner: Any, batch_idx: int, data_batch: DATA_BATCH = None, outputs: Any = None
    ) -> None:
        """Redraw when ``refresh_interval`` has passed (or the line was wiped)."""
        if not self._active:
            return
        now = self.clock()
        if now >= self._next_draw:
            self._draw(runner, runner.iter + 1, runner.max_iters, now)

    def _start_eval(self, runner: Any, mode: str) -> None:
        self.clear()
        self._mode = mode
        dataloader = runner.val_dataloader if mode == "val" else runner.test_dataloader
        try:
            self._total = len(dataloader)
        except TypeError:  # a dataloader without a length
            self._total = 0

    def _end_eval(self) -> None:
        self.clear()
        self._mode = "train" if self._training else self._mode

    def _after_eval_iter(self, runner: Any, batch_idx: int) -> None:
        now = self.clock()
        if now >= self._next_draw:
            self._draw(runner, batch_idx + 1, self._total, now)

    def before_val_epoch(self, runner: Any) -> None:
        """Start the validation display (the training line is wiped until training goes on)."""
        if self._active:
            self._start_eval(runner, "val")

    def after_val_iter(
        self, runner: Any, batch_idx: int, data_batch: DATA_BATCH = None, outputs: Any = None
    ) -> None:
        """Redraw the validation line when ``refresh_interval`` has passed."""
        if self._active:
            self._after_eval_iter(runner, batch_idx)

    def after_val_epoch(self, runner: Any, metrics: dict[str, Any] | None = None) -> None:
        """Wipe the validation line."""
        if self._active:
            self._end_eval()

    def before_test_epoch(self, runner: Any) -> None:
        """Start the test display."""
        if self._active:
            self._start_eval(runner, "test")

    def after_test_iter(
        self, runner: Any, batch_idx: int, data_batch: DATA_BATCH = None, outputs: Any = None
    ) -> None:
        """Redraw the test line when ``refresh_interval`` has passed."""
        if self._active:
            self._after_eval_iter(runner, batch_idx)

    def after_test_epoch(self, runner: Any, metrics: dict[str, Any] | None = None) -> None:
        """Wipe the test line."""
        if self._active:
            self._end_eval()

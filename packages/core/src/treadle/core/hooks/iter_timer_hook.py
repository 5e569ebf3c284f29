"""``IterTimerHook``: data and iteration times, and the ETA (MMEngine's hook)."""

from __future__ import annotations

import time
from typing import Any

from treadle.core.hooks.hook import DATA_BATCH, Hook

__all__ = ["IterTimerHook"]


class IterTimerHook(Hook):
    """Measures ``<mode>/data_time`` and ``<mode>/time`` of every iteration and the ``eta``.

    ``data_time`` is the wall time from the end of the previous iteration (or the start of the
    epoch) to ``before_*_iter``: the time spent waiting for the batch. ``time`` is the whole
    iteration. Both go to ``runner.message_hub`` as scalars; ``eta`` (seconds) as info: for
    training it extrapolates the mean iteration time since training (re)started over the remaining
    ``max_iters``, for val/test over the rest of the dataloader. Times come from
    :func:`time.perf_counter`; nothing here waits for the device.
    """

    priority = "NORMAL"

    def __init__(self) -> None:
        self.time_sec_tot = 0.0
        self.time_sec_test_val = 0.0
        self.start_iter = 0
        self.t = time.perf_counter()

    def before_train(self, runner: Any) -> None:
        """Start the ETA average at the (possibly resumed) iteration."""
        self.start_iter = runner.iter

    def _before_epoch(self, runner: Any, mode: str = "train") -> None:
        self.t = time.perf_counter()

    def _after_epoch(self, runner: Any, mode: str = "train") -> None:
        self.time_sec_test_val = 0.0

    # Training's two points are written out rather than inherited from Hook (which goes through
    # _before_iter/_after_iter with a mode): they run every iteration. A subclass that extends
    # the MMEngine way, by overriding _before_iter/_after_iter, gets Hook's delegating points back.

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for helper, point in (
            ("_before_iter", "before_train_iter"),
            ("_after_iter", "after_train_iter"),
        ):
            if getattr(cls, helper) is not getattr(IterTimerHook, helper) and getattr(
                cls, point
            ) is getattr(IterTimerHook, point):
                setattr(cls, point, getattr(Hook, point))

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: DATA_BATCH = None) -> None:
        """Record ``train/data_time``."""
        runner.message_hub.update_scalar("train/data_time", time.perf_counter() - self.t)

    def after_train_iter(
        self, runner: Any, batch_idx: int, data_batch: DATA_BATCH = None, outputs: Any = None
    ) -> None:
        """Record ``train/time`` and the ETA of training."""
        now = time.perf_counter()
        iter_time = now - self.t
        self.t = now
        hub = runner.message_hub
        hub.update_scalar("train/time", iter_time)
        self.time_sec_tot += iter_time
        done = runner.iter + 1
        time_sec_avg = self.time_sec_tot / (done - self.start_iter)
        hub.update_info("eta", time_sec_avg * (runner.max_iters - done))

    def _before_iter(
        self, runner: Any, batch_idx: int, data_batch: DATA_BATCH = None, mode: str = "train"
    ) -> None:
        runner.message_hub.update_scalar(f"{mode}/data_time", time.perf_counter() - self.t)

    def _after_iter(
        self,
        runner: Any,
        batch_idx: int,
        data_batch: DATA_BATCH = None,
        outputs: Any = None,
        mode: str = "train",
    ) -> None:
        if mode == "train":
            IterTimerHook.after_train_iter(self, runner, batch_idx, data_batch, outputs)
            return
        now = time.perf_counter()
        iter_time = now - self.t
        self.t = now
        hub = runner.message_hub
        hub.update_scalar(f"{mode}/time", iter_time)
        dataloader = runner.val_dataloader if mode == "val" else runner.test_dataloader
        self.time_sec_test_val += iter_time
        time_sec_avg = self.time_sec_test_val / (batch_idx + 1)
        hub.update_info("eta", time_sec_avg * (len(dataloader) - batch_idx - 1))

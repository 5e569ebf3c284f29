"""``LoggerHook``: writes the LogProcessor's lines and scalars at logging intervals (MMEngine's
hook)."""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from treadle.core.hooks._utils import (
    backend_args_from,
    check_bool,
    check_int,
    resolve_out_dir,
)
from treadle.core.hooks.hook import DATA_BATCH, Hook
from treadle.core.utils.overrides import keeps_methods
from treadle.core.utils.runner_state import train_loop_built

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["LoggerHook"]


class LoggerHook(Hook):
    """Logs training, validation and test progress through the runner's log processor.

    Every ``interval`` iterations (within the epoch) it asks
    ``runner.log_processor.get_log_after_iter(runner, batch_idx, mode)`` for ``(tag, log_str)``,
    writes ``log_str`` to ``runner.logger`` and, in training, hands ``tag`` to
    ``runner.visualizer.add_scalars(tag, step=runner.iter + 1, file_path=...)``. This is the one
    place per interval where the logged tensors become numbers (a host sync). After each
    validation/test pass it logs ``get_log_after_epoch``; test results are also dumped to
    ``<log_dir>/<timestamp>.json``. After the run it closes the visualizer and, with ``out_dir``,
    copies the log files to ``out_dir/<basename of work_dir>``; when the run fails, it closes the
    scalar files that local vis backends keep open.

    Args:
        interval: Log every ``interval`` iterations.
        ignore_last: Skip the log of the last iterations of an epoch when fewer than ``interval``
            remain (unless the epoch is shorter than ``interval``).
        interval_exp_name: Log ``Exp name: ...`` every ``interval_exp_name`` iterations (and at
            the end of every epoch).
        out_dir: Where to copy the logs after the run (any URI the file I/O API knows), joined
            with the last directory of ``runner.work_dir``. ``None`` keeps them in the log dir.
        out_suffix: Files of the log dir whose names end with one of these are copied.
        keep_local: Keep the local log files after copying them to ``out_dir``.
        file_client_args: Deprecated MMEngine spelling of ``backend_args``; needs ``out_dir``.
        log_metric_by_epoch: Log validation metrics with the epoch as step (else the iteration).
        backend_args: Arguments of ``out_dir``'s storage backend.

    Raises:
        TypeError, ValueError: For arguments of the wrong type or value (the message names it).
    """

    priority = "BELOW_NORMAL"

    def __init__(
        self,
        interval: int = 10,
        ignore_last: bool = True,
        interval_exp_name: int = 1000,
        out_dir: str | Path | None = None,
        out_suffix: str | Sequence[str] = (".json", ".log", ".py", "yaml"),
        keep_local: bool = True,
        file_client_args: dict[str, Any] | None = None,
        log_metric_by_epoch: bool = True,
        backend_args: dict[str, Any] | None = None,
    ) -> None:
        check_int(interval, "interval", minimum=1)
        check_bool(ignore_last, "ignore_last")
        check_int(interval_exp_name, "interval_exp_name", minimum=1)
        if out_dir is not None and not isinstance(out_dir, (str, Path)):
            raise TypeError(f"out_dir must be a str or a Path, but got {type(out_dir).__name__}")
        check_bool(keep_local, "keep_local")
        check_bool(log_metric_by_epoch, "log_metric_by_epoch")
        if out_dir is None and file_client_args is not None:
            raise ValueError("file_client_args must be None when out_dir is not given")
        backend_args = backend_args_from(file_client_args, backend_args)
        if isinstance(out_suffix, str):
            suffixes: tuple[str, ...] = (out_suffix,)
        elif isinstance(out_suffix, (list, tuple)) and all(isinstance(s, str) for s in out_suffix):
            suffixes = tuple(out_suffix)
        else:
            raise TypeError(
                f"out_suffix must be a str or a sequence of str, but got {out_suffix!r}"
            )

        self.interval = interval
        self.interval_exp_name = interval_exp_name
        self.ignore_last = ignore_last
        #: ``out_dir`` as given; :attr:`out_dir` is it joined with the run's work dir name.
        self._given_out_dir: str | None = None if out_dir is None else os.fspath(out_dir)
        self.out_dir = self._given_out_dir
        self.out_suffix = suffixes
        self.keep_local = keep_local
        self.file_client_args = file_client_args
        self.backend_args = backend_args
        self.log_metric_by_epoch = log_metric_by_epoch
        self.json_log_path: str | None = None
        # after_train_iter's reading of the train dataloader's length: the length, the id of the
        # runner it was read for, and the last batch index seen.
        self._train_len = 0
        self._len_runner: int | None = None
        self._len_last_idx = 0
        # The batch index before which nothing is due (see _next_due); 0: ask every iteration.
        self._quiet_below: float = 0

    @property
    def interval(self) -> int:
        """Log every this many iterations."""
        return self._interval

    @interval.setter
    def interval(self, value: int) -> None:
        self._interval = value
        self._quiet_below = 0  # ask again from the next iteration on

    @property
    def interval_exp_name(self) -> int:
        """Log the experiment name every this many iterations."""
        return self._interval_exp_name

    @interval_exp_name.setter
    def interval_exp_name(self, value: int) -> None:
        self._interval_exp_name = value
        self._quiet_below = 0

    def before_run(self, runner: Any) -> None:
        """Resolve ``out_dir`` and name the JSON scalar log after the run's timestamp."""
        if self._given_out_dir is not None:
            self.out_dir = resolve_out_dir(runner, self._given_out_dir, self.backend_args)
            runner.logger.info(f"Text logs will be saved to {self.out_dir} after the run.")
        self.json_log_path = f"{runner.timestamp}.json"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._stock_predicates = keeps_methods(
            cls, Hook, ("end_of_epoch", "every_n_inner_iters", "every_n_train_iters")
        )

    #: Whether the class keeps Hook's predicates, so that after_train_iter may write them out
    #: (set per subclass).
    _stock_predicates: bool = True

    def after_train_iter(
        self, runner: Any, batch_idx: int, data_batch: DATA_BATCH = None, outputs: Any = None
    ) -> None:
        """Log the training state every ``interval`` iterations (and at the end of an epoch).

        The train dataloader's length is read when ``batch_idx`` starts over (a new epoch) or the
        runner changes, not every iteration as MMEngine does: a dataloader whose length changes
        within an epoch is not followed.
        """
        if self._stock_predicates:  # Hook's predicates, written out: this runs every iteration
            if (
                self._len_last_idx < batch_idx < self._quiet_below
                and id(runner) == self._len_runner
            ):
                self._len_last_idx = batch_idx  # nothing is due yet (see _next_due)
                return
            if id(runner) != self._len_runner or batch_idx <= self._len_last_idx:
                self._train_len = len(runner.train_dataloader)
                self._len_runner = id(runner)
            self._len_last_idx = batch_idx
            length = self._train_len
            end_of_epoch = batch_idx + 1 == length
            done = runner.iter + 1
            n = self.interval_exp_name
            exp_name_due = n > 0 and done % n == 0
            n = self.interval
            log_due = n > 0 and (batch_idx + 1) % n == 0
            self._quiet_below = self._next_due(batch_idx, done, length)
        else:  # a subclass's own predicates, asked as MMEngine asks them
            dataloader = runner.train_dataloader
            length = len(dataloader)
            end_of_epoch = self.end_of_epoch(dataloader, batch_idx)
            exp_name_due = self.every_n_train_iters(runner, self.interval_exp_name)
            log_due = self.every_n_inner_iters(batch_idx, self.interval)
        if exp_name_due or end_of_epoch:
            runner.logger.info(f"Exp name: {runner.experiment_name}")
        if log_due or (end_of_epoch and (not self.ignore_last or length <= self.interval)):
            tag, log_str = runner.log_processor.get_log_after_iter(runner, batch_idx, "train")
            runner.logger.info(log_str)
            runner.visualizer.add_scalars(tag, step=runner.iter + 1, file_path=self.json_log_path)

    def _next_due(self, batch_idx: int, done: int, length: int) -> float:
        """The next batch index of this epoch at which after_train_iter has something to do:
        the next logging interval, the next experiment-name line or the end of the epoch.

        Until then after_train_iter only notes the batch index. Its answers stay those of the
        predicates asked every iteration as long as ``runner.iter`` advances with ``batch_idx``
        (``done`` is ``runner.iter + 1`` at ``batch_idx``), as in every train loop that calls
        the hook once per iteration; a new epoch (``batch_idx`` not above the last one), another
        runner, or a new ``interval`` or ``interval_exp_name`` asks again at once.
        """
        due: float = length - 1 if length - 1 > batch_idx else float("inf")
        n = self.interval
        if n > 0:
            due = min(due, ((batch_idx + 1) // n + 1) * n - 1)
        n = self.interval_exp_name
        if n > 0:
            due = min(due, batch_idx + (done // n + 1) * n - done)
        return due

    def after_val_iter(
        self, runner: Any, batch_idx: int, data_batch: DATA_BATCH = None, outputs: Any = None
    ) -> None:
        """Log validation progress every ``interval`` iterations."""
        if self.every_n_inner_iters(batch_idx, self.interval):
            _, log_str = runner.log_processor.get_log_after_iter(runner, batch_idx, "val")
            runner.logger.info(log_str)

    def after_test_iter(
        self, runner: Any, batch_idx: int, data_batch: DATA_BATCH = None, outputs: Any = None
    ) -> None:
        """Log test progress every ``interval`` iterations."""
        if self.every_n_inner_iters(batch_idx, self.interval):
            _, log_str = runner.log_processor.get_log_after_iter(runner, batch_idx, "test")
            runner.logger.info(log_str)

    def after_val_epoch(self, runner: Any, metrics: dict[str, Any] | None = None) -> None:
        """Log the validation metrics; step is the epoch (or the iteration)."""
        tag, log_str = runner.log_processor.get_log_after_epoch(
            runner, len(runner.val_dataloader), "val"
        )
        runner.logger.info(log_str)
        # Reading runner.epoch/iter would build the train loop during a val-only run: don't.
        built = train_loop_built(runner)
        if self.log_metric_by_epoch:
            step = runner.epoch if built else 0
        else:
            step = runner.iter if built else 0
        runner.visualizer.add_scalars(tag, step=step, file_path=self.json_log_path)

    def after_test_epoch(self, runner: Any, metrics: dict[str, Any] | None = None) -> None:
        """Log the test metrics and dump them (non-scalars too) to ``<log_dir>/<timestamp>.json``."""
        from treadle.core.fileio import dump, join_path

        tag, log_str = runner.log_processor.get_log_after_epoch(
            runner, len(runner.test_dataloader), "test", with_non_scalar=True
        )
        runner.logger.info(log_str)
        json_log_path = self.json_log_path or f"{runner.timestamp}.json"
        dump(self._process_tags(tag), join_path(runner.log_dir, json_log_path))

    @staticmethod
    def _process_tags(tags: dict[str, Any]) -> OrderedDict[str, Any]:
        """Make ``tags`` JSON-friendly: tensors and arrays become lists, unknown types are dropped."""
        import numpy as np
        import torch

        def process(value: Any) -> Any:
            if isinstance(value, (list, tuple)):
                return [process(item) for item in value]
            if isinstance(value, dict):
                return {k: process(v) for k, v in value.items()}
            if isinstance(value, (str, int, float, bool)) or value is None:
                return value
            if isinstance(value, (torch.Tensor, np.ndarray)):
                return value.tolist()
            return None

        return OrderedDict(process(tags))

    def after_run(self, runner: Any) -> None:
        """Close the visualizer; copy (or move, without ``keep_local``) the logs to ``out_dir``."""
        self._len_runner = None
        runner.visualizer.close()
        if self.out_dir is None:
            return
        from treadle.core.fileio import copyfile_from_local, join_path

        log_dir = os.fspath(runner.log_dir)
        copied: list[str] = []
        for filename in _scan(log_dir, self.out_suffix):
            local_path = os.path.join(log_dir, filename)
            out_path = join_path(self.out_dir, filename, backend_args=self.backend_args)
            copyfile_from_local(local_path, out_path, backend_args=self.backend_args)
            copied.append(local_path)
            runner.logger.info(f"The file {local_path} has been uploaded to {out_path}.")
            if not self.keep_local:
                runner.logger.info(
                    f"{local_path} was removed due to the `self.keep_local=False`. You can check "
                    f"the running logs in {out_path}"
                )
        if not self.keep_local:
            # Close the file handlers first: Windows cannot remove an open file.
            for handler in runner.logger.handlers:
                if isinstance(handler, logging.FileHandler):
                    handler.close()
            for path in copied:
                os.remove(path)


def _scan(root: str, suffixes: tuple[str, ...]) -> list[str]:
    """Files under ``root`` (recursively, hidden ones skipped) ending with a suffix, relative."""
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and name.endswith(suffixes):
                found.append(os.path.relpath(os.path.join(dirpath, name), root))
    return found

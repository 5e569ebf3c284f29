"""``ProfilerHook``: profile the first epoch(s) or iterations with ``torch.profiler``
(MMEngine's hook)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from treadle.core.hooks._utils import check_bool, check_int
from treadle.core.hooks.hook import DATA_BATCH, Hook

if TYPE_CHECKING:
    from collections.abc import Callable

    import torch.profiler

__all__ = ["ProfilerHook"]

#: The chrome trace's file name in ``runner.log_dir`` when ``json_trace_path`` is not given.
DEFAULT_TRACE_NAME = "profiler_trace.json"


class ProfilerHook(Hook):
    """Runs ``torch.profiler.profile`` from the start of the run over the first
    ``profile_times`` epochs (``by_epoch``) or iterations, then writes a Chrome trace.

    The profiler is entered in ``before_run``, stepped after every training iteration (so a
    ``schedule`` counts iterations) and closed after the last profiled epoch/iteration, or at
    the end of the run if training stopped earlier.

    The trace (open it in ``chrome://tracing`` or Perfetto) goes to ``json_trace_path``: a
    relative path is taken inside ``runner.log_dir``, and by default (no ``json_trace_path`` and
    no ``on_trace_ready``) it is ``<log_dir>/profiler_trace.json``. With an ``on_trace_ready``
    handler and no ``json_trace_path``, the handler alone decides what is written.

    Args:
        by_epoch: Profile whole epochs (only ``profile_times=1`` is allowed) or iterations.
        profile_times: How many epochs/iterations to profile.
        activity_with_cpu: Profile CPU activity.
        activity_with_cuda: Profile CUDA activity.
        schedule: Keyword arguments of ``torch.profiler.schedule`` (``wait``, ``warmup``,
            ``active``, ``repeat``, ``skip_first``).
        on_trace_ready: A callable taking the profiler, or ``dict(type='log_trace', **kwargs)``
            (print ``key_averages().table(**kwargs)``) or ``dict(type='tb_trace', dir_name=...)``
            (``torch.profiler.tensorboard_trace_handler``; a relative ``dir_name`` is taken inside
            ``runner.log_dir``, the default is ``<log_dir>/tf_tracing_logs``).
        record_shapes: Record the operators' input shapes.
        profile_memory: Track tensor memory allocation.
        with_stack: Record source locations.
        with_flops: Estimate FLOPs of matrix multiplications and convolutions.
        json_trace_path: Where to export the Chrome trace (see above).

    Raises:
        ImportError: This PyTorch build has no Kineto profiler.
        ValueError, TypeError: Bad arguments (the message names them); in ``before_run``, when
            ``profile_times`` exceeds the run's epochs/iterations.
    """

    priority = "VERY_LOW"

    def __init__(
        self,
        *,
        by_epoch: bool = True,
        profile_times: int = 1,
        activity_with_cpu: bool = True,
        activity_with_cuda: bool = False,
        schedule: dict[str, Any] | None = None,
        on_trace_ready: Callable[..., Any] | dict[str, Any] | None = None,
        record_shapes: bool = False,
        profile_memory: bool = False,
        with_stack: bool = False,
        with_flops: bool = False,
        json_trace_path: str | None = None,
    ) -> None:
        import torch
        from torch import profiler

        if not torch.autograd.kineto_available():  # type: ignore[attr-defined]
            raise ImportError("ProfilerHook needs a PyTorch build with the Kineto profiler")
        check_bool(by_epoch, "by_epoch")
        check_int(profile_times, "profile_times", minimum=1)
        if by_epoch and profile_times > 1:
            raise ValueError(
                f"Profiler will profile 0-{profile_times} epochs.\nSince profiler will slow down "
                "the training, it is recommended to train 1 epoch with ProfilerHook and adjust "
                "your setting according to the profiler summary.\nDuring normal training "
                "(epoch > 1), you may disable the ProfilerHook."
            )
        check_bool(activity_with_cpu, "activity_with_cpu")
        check_bool(activity_with_cuda, "activity_with_cuda")
        for name, flag in (
            ("record_shapes", record_shapes),
            ("profile_memory", profile_memory),
            ("with_stack", with_stack),
            ("with_flops", with_flops),
        ):
            check_bool(flag, name)
        if schedule is not None and not isinstance(schedule, dict):
            raise TypeError(f"schedule must be a dict or None, but got {schedule!r}")
        if not (
            on_trace_ready is None or callable(on_trace_ready) or isinstance(on_trace_ready, dict)
        ):
            raise ValueError(
                "``on_trace_ready`` should be a handler, or dict, or None, but got "
                f"{on_trace_ready!r}"
            )
        if isinstance(on_trace_ready, dict) and on_trace_ready.get("type") not in (
            "log_trace",
            "tb_trace",
        ):
            raise ValueError(
                'on_trace_ready["type"] should be "log_trace" or "tb_trace", but got '
                f"{on_trace_ready.get('type')!r}"
            )
        if json_trace_path is not None and not isinstance(json_trace_path, str):
            raise TypeError(f"json_trace_path must be a str or None, but got {json_trace_path!r}")

        self.by_epoch = by_epoch
        self.profile_times = profile_times
        self.activities: list[profiler.ProfilerActivity] = []
        if activity_with_cpu:
            self.activities.append(profiler.ProfilerActivity.CPU)
        if activity_with_cuda:
            self.activities.append(profiler.ProfilerActivity.CUDA)
        self.schedule = profiler.schedule(**schedule) if schedule is not None else None
        self.on_trace_ready = on_trace_ready
        self.record_shapes = record_shapes
        self.profile_memory = profile_memory
        self.with_stack = with_stack
        self.with_flops = with_flops
        self.json_trace_path = json_trace_path
        self.trace_path: str | None = None
        self.profiler: torch.profiler.profile | None = None
        self._closed = False

    def before_run(self, runner: Any) -> None:
        """Check ``profile_times`` against the run and start profiling."""
        import torch.profiler

        max_times = runner.max_epochs if self.by_epoch else runner.max_iters
        if max_times < self.profile_times:
            raise ValueError(f"``profile_times`` should not be greater than {max_times}")
        on_trace_ready = self._parse_trace_config(runner)
        if self.json_trace_path is not None:
            self.trace_path = os.path.join(os.fspath(runner.log_dir), self.json_trace_path)
        elif self.on_trace_ready is None:
            self.trace_path = os.path.join(os.fspath(runner.log_dir), DEFAULT_TRACE_NAME)
        self.profiler = torch.profiler.profile(
            activities=self.activities,
            schedule=self.schedule,
            on_trace_ready=on_trace_ready,
            record_shapes=self.record_shapes,
            profile_memory=self.profile_memory,
            with_stack=self.with_stack,
            with_flops=self.with_flops,
        )
        self.profiler.__enter__()  # type: ignore[no-untyped-call]
        self._closed = False
        runner.logger.info("profiler is profiling...")

    def _parse_trace_config(self, runner: Any) -> Callable[..., Any] | None:
        """Turn ``on_trace_ready`` into the profiler's handler."""
        if self.on_trace_ready is None or callable(self.on_trace_ready):
            return self.on_trace_ready
        import torch.profiler

        trace_cfg = dict(self.on_trace_ready)
        trace_type = trace_cfg.pop("type")
        if trace_type == "log_trace":

            def _log_handler(prof: torch.profiler.profile) -> None:
                print(prof.key_averages().table(**trace_cfg))

            return _log_handler
        # tb_trace
        log_dir = os.fspath(runner.log_dir)
        trace_cfg["dir_name"] = os.path.join(log_dir, trace_cfg.get("dir_name", "tf_tracing_logs"))
        runner.logger.info(f"trace_files of ProfilerHook will be saved to {trace_cfg['dir_name']}.")
        if self.json_trace_path is not None:
            runner.logger.warning(
                "When using tensorboard_trace, it is recommended to save json files by setting "
                "``worker_name`` instead of setting ``json_trace_path``"
            )
        handler: Callable[..., Any] = torch.profiler.tensorboard_trace_handler(**trace_cfg)
        return handler

    def after_train_iter(
        self, runner: Any, batch_idx: int, data_batch: DATA_BATCH = None, outputs: Any = None
    ) -> None:
        """Step the profiler; close it after ``profile_times`` iterations (``by_epoch=False``)."""
        if self._closed or self.profiler is None:
            return
        self.profiler.step()
        if not self.by_epoch and runner.iter + 1 >= self.profile_times:
            self._export_chrome_trace(runner)

    def after_train_epoch(self, runner: Any) -> None:
        """Close the profiler after the first epoch."""
        if not self._closed and self.profiler is not None:
            self._export_chrome_trace(runner)

    def after_run(self, runner: Any) -> None:
        """Close the profiler if training ended before it was closed."""
        if not self._closed and self.profiler is not None:
            self._export_chrome_trace(runner)

    def _export_chrome_trace(self, runner: Any) -> None:
        assert self.profiler is not None
        self._closed = True
        runner.logger.info("profiler may take a few minutes...")
        self.profiler.__exit__(None, None, None)  # type: ignore[no-untyped-call]
        # With a schedule that is not recording when the profiler closes there is nothing to
        # export (the on_trace_ready handler saw each finished cycle).
        if self.trace_path is not None and self.profiler.profiler is not None:
            os.makedirs(os.path.dirname(self.trace_path) or ".", exist_ok=True)
            self.profiler.export_chrome_trace(self.trace_path)
            runner.logger.info(f"The profiler's chrome trace is saved to {self.trace_path}.")

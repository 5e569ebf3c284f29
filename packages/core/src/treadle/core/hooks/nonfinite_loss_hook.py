"""``NonFiniteLossHook``: stop (or skip the step) when a loss becomes NaN or infinite (new in
treadle)."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from treadle.core.hooks._utils import check_int
from treadle.core.hooks.hook import DATA_BATCH, Hook

if TYPE_CHECKING:
    from collections.abc import Sequence

    import torch

__all__ = ["NonFiniteLossError", "NonFiniteLossHook"]


class NonFiniteLossError(RuntimeError):
    """A watched loss became NaN or infinite.

    Attributes:
        first_iter: The first iteration (1-based, as in the log lines) of the checked window.
        last_iter: Its last iteration (equal to ``first_iter`` with ``interval=1``).
        keys: The non-finite loss keys.
    """

    def __init__(self, message: str, first_iter: int, last_iter: int, keys: list[str]) -> None:
        super().__init__(message)
        self.first_iter = first_iter
        self.last_iter = last_iter
        self.keys = keys


@dataclass
class _Window:
    """Non-finite flags of the iterations ``first``..``last`` (0-based), on their way to the host."""

    keys: tuple[str, ...]
    first: int
    last: int
    values: torch.Tensor  # on the host once `event` completed; NaN where a key was non-finite
    event: Any  # a torch.cuda.Event, or None when `values` is ready


class NonFiniteLossHook(Hook):
    """Guards training against NaN/infinite losses, without a host sync per iteration.

    The watched entries of the model's ``log_vars`` (``outputs`` of ``after_train_iter``; by
    default every key containing ``"loss"``) are checked after every training iteration.

    ``action='raise'`` (default): raise :class:`NonFiniteLossError` naming the iteration(s) and
    the non-finite keys. The check stays on the device: each iteration folds the losses into a
    small accumulator (one ``stack`` and one ``addcmul_``, which turns a non-finite value into a
    sticky NaN); every ``interval`` iterations the accumulator is copied to pinned host memory
    asynchronously behind a CUDA event and read when the copy has completed, at a later check,
    so reading it never stalls the GPU. Detection therefore lags by about one interval on CUDA (on
    CPU it is immediate; on other accelerators the copy is blocking). The error names the window
    the value fell in: exactly one iteration with ``interval=1``. Before a checkpoint is written
    (``before_save_checkpoint``), at the end of every train epoch, before validation and after
    training, the pending checks are completed (blocking), so a checkpoint is never written after
    an undetected non-finite loss: the exception aborts the save and the previous checkpoint stays.

    ``action='skip'``: do not apply the update of an iteration whose loss is non-finite. A hook
    runs after the step, so the decision is made where the step happens: the hook sets
    ``skip_nonfinite = True`` on the optimizer wrapper(s) in ``before_train``, and
    ``OptimWrapper.update_params`` then checks the loss before ``backward`` (one host sync per
    iteration, the price of deciding on the host, as AMP's grad scaler pays) and skips backward
    and step when it is not finite, setting ``last_step_skipped``. The hook reads that flag,
    warns with the iteration and the non-finite keys, counts skips in the message hub
    (``nonfinite_skips``, saved in checkpoints) and raises :class:`NonFiniteLossError` after
    ``max_consecutive_skips`` skips in a row. A model whose ``train_step`` does not go through
    ``update_params`` cannot be skipped this way.

    Args:
        action: ``'raise'`` or ``'skip'``.
        interval: With ``'raise'``, read the device flags every ``interval`` iterations.
        keys: The ``log_vars`` keys to watch; ``None`` watches every key containing ``"loss"``.
        max_consecutive_skips: With ``'skip'``, raise after this many skipped iterations in a
            row; ``None`` never raises.

    Raises:
        ValueError, TypeError: Bad arguments (the message names them).
    """

    priority = "HIGH"
    #: Unread windows allowed before a check blocks on the oldest one.
    max_pending = 2

    def __init__(
        self,
        action: str = "raise",
        interval: int = 1,
        keys: Sequence[str] | None = None,
        max_consecutive_skips: int | None = 10,
    ) -> None:
        if action not in ("raise", "skip"):
            raise ValueError(f"action must be 'raise' or 'skip', but got {action!r}")
        check_int(interval, "interval", minimum=1)
        if keys is not None and (
            isinstance(keys, str)
            or not isinstance(keys, (list, tuple))
            or not keys
            or not all(isinstance(k, str) for k in keys)
        ):
            raise TypeError(f"keys must be a non-empty list of str or None, but got {keys!r}")
        if max_consecutive_skips is not None:
            check_int(max_consecutive_skips, "max_consecutive_skips", minimum=1)
        self.action = action
        self.interval = interval
        self.keys: tuple[str, ...] | None = None if keys is None else tuple(keys)
        self.max_consecutive_skips = max_consecutive_skips
        # 'raise': the open window and the windows on their way to the host.
        self._acc: torch.Tensor | None = None
        self._zeros: torch.Tensor | None = None
        self._acc_keys: tuple[str, ...] = ()
        self._acc_first = 0
        self._acc_last = 0
        self._pending: deque[_Window] = deque()
        # 'skip'
        self._wrappers: list[Any] = []
        self._previous_flags: list[bool] = []
        self.consecutive_skips = 0

    # -- lifecycle --------------------------------------------------------------------------

    def before_train(self, runner: Any) -> None:
        """With ``'skip'``, switch the optimizer wrappers' non-finite check on."""
        self._reset_raise_state()
        self.consecutive_skips = 0
        if self.action != "skip":
            return
        wrappers = _optim_wrappers(runner.optim_wrapper)
        unsupported = [type(w).__name__ for w in wrappers if not hasattr(w, "skip_nonfinite")]
        if unsupported:
            raise TypeError(
                "NonFiniteLossHook(action='skip') needs optimizer wrappers with a "
                f"`skip_nonfinite` switch, but {', '.join(unsupported)} has none; use "
                "action='raise' or an OptimWrapper that supports it"
            )
        self._wrappers = wrappers
        self._previous_flags = [bool(w.skip_nonfinite) for w in wrappers]
        for wrapper in wrappers:
            wrapper.skip_nonfinite = True

    def after_train_iter(
        self, runner: Any, batch_idx: int, data_batch: DATA_BATCH = None, outputs: Any = None
    ) -> None:
        """Fold this iteration's losses into the check (``'raise'``) or report a skip."""
        if self.action == "skip":
            self._after_iter_skip(runner, outputs)
            return
        watched = self._watched(outputs)
        if not watched:
            return
        import torch

        keys = tuple(watched)
        if self._acc is not None and keys != self._acc_keys:
            self._close_window()
        first = next(iter(watched.values()))
        device = first.device
        stacked = torch.stack(
            [
                (v if v.numel() == 1 else v.float().sum()).detach().reshape(()).to(device).float()
                for v in watched.values()
            ]
        )
        if self._acc is None:
            self._acc = torch.zeros_like(stacked)
            self._zeros = self._acc.clone()
            self._acc_keys = keys
            self._acc_first = runner.iter
        # acc + stacked * 0: NaN where a value is NaN or ±inf, 0 elsewhere; stays NaN.
        self._acc.addcmul_(stacked, self._zeros)  # type: ignore[arg-type]
        self._acc_last = runner.iter
        if self.every_n_train_iters(runner, self.interval):
            self._close_window()
            self._check(block=False)

    def after_train_epoch(self, runner: Any) -> None:
        """Complete the pending checks (once per epoch)."""
        self._drain()

    def before_val(self, runner: Any) -> None:
        """Complete the pending checks before evaluating the weights."""
        self._drain()

    def before_save_checkpoint(self, runner: Any, checkpoint: dict[str, Any]) -> None:
        """Complete the pending checks: never save after an undetected non-finite loss."""
        self._drain()

    def after_train(self, runner: Any) -> None:
        """Complete the pending checks; give the optimizer wrappers their switch back."""
        try:
            self._drain()
        finally:
            for wrapper, flag in zip(self._wrappers, self._previous_flags, strict=True):
                wrapper.skip_nonfinite = flag
            self._wrappers, self._previous_flags = [], []

    # -- 'raise' ----------------------------------------------------------------------------

    def _watched(self, outputs: Any) -> dict[str, torch.Tensor]:
        import torch

        if not isinstance(outputs, dict):
            return {}
        if self.keys is None:
            return {
                k: v
                for k, v in outputs.items()
                if "loss" in k and isinstance(v, torch.Tensor) and v.is_floating_point()
            }
        return {
            k: outputs[k]
            for k in self.keys
            if isinstance(outputs.get(k), torch.Tensor) and outputs[k].is_floating_point()
        }

    def _reset_raise_state(self) -> None:
        self._acc = self._zeros = None
        self._acc_keys = ()
        self._pending.clear()

    def _close_window(self) -> None:
        """Start the open window's copy to the host and queue it."""
        if self._acc is None:
            return
        import torch

        acc = self._acc
        event = None
        if acc.device.type == "cuda":
            values = acc.to("cpu", non_blocking=True)  # pinned; ready when `event` completes
            event = torch.cuda.Event()  # type: ignore[no-untyped-call]
            event.record()
        else:
            values = acc.cpu() if acc.device.type != "cpu" else acc
        self._pending.append(
            _Window(self._acc_keys, self._acc_first, self._acc_last, values, event)
        )
        self._acc = self._zeros = None

    def _check(self, block: bool) -> None:
        """Read the windows whose copy completed (all of them when ``block``)."""
        while self._pending:
            window = self._pending[0]
            if window.event is not None:
                if not (block or len(self._pending) > self.max_pending or window.event.query()):
                    return
                window.event.synchronize()
            self._pending.popleft()
            bad = [
                k
                for k, x in zip(window.keys, window.values.tolist(), strict=True)
                if not math.isfinite(x)
            ]
            if bad:
                self._pending.clear()
                self._raise(window.first, window.last, bad)

    def _drain(self) -> None:
        if self.action == "raise":
            self._close_window()
            self._check(block=True)

    @staticmethod
    def _raise(first: int, last: int, keys: list[str]) -> None:
        where = f"iteration {first + 1}" if first == last else f"iterations {first + 1}-{last + 1}"
        raise NonFiniteLossError(
            f"Non-finite loss (NaN or inf) in {where}: {', '.join(keys)}. Lower the learning "
            "rate, clip gradients (optim_wrapper.clip_grad), check the data, or use "
            "NonFiniteLossHook(action='skip') to skip such steps.",
            first + 1,
            last + 1,
            keys,
        )

    # -- 'skip' -----------------------------------------------------------------------------

    def _after_iter_skip(self, runner: Any, outputs: Any) -> None:
        if not any(getattr(w, "last_step_skipped", False) for w in self._wrappers):
            self.consecutive_skips = 0
            return
        import torch

        self.consecutive_skips += 1
        hub = runner.message_hub
        total = int(hub.get_info("nonfinite_skips", 0)) + 1
        hub.update_info("nonfinite_skips", total)
        # Rare path: reading the values here is a host sync, and that is fine.
        watched = self._watched(outputs)
        bad = [k for k, v in watched.items() if not bool(torch.isfinite(v.detach()).all())]
        names = ", ".join(bad) if bad else "the loss"
        iteration = runner.iter + 1
        if (
            self.max_consecutive_skips is not None
            and self.consecutive_skips >= self.max_consecutive_skips
        ):
            raise NonFiniteLossError(
                f"Non-finite loss (NaN or inf) in iteration {iteration}: {names}; "
                f"{self.consecutive_skips} steps in a row were skipped "
                f"(max_consecutive_skips={self.max_consecutive_skips}), training has diverged.",
                iteration - self.consecutive_skips + 1,
                iteration,
                bad,
            )
        runner.logger.warning(
            f"Non-finite loss (NaN or inf) in iteration {iteration}: {names}; the optimizer step "
            f"was skipped ({self.consecutive_skips} in a row, {total} in this run)."
        )


def _optim_wrappers(optim_wrapper: Any) -> list[Any]:
    """The wrappers inside an ``OptimWrapperDict``, or the wrapper itself."""
    if hasattr(optim_wrapper, "optim_wrappers") and isinstance(optim_wrapper.optim_wrappers, dict):
        return list(optim_wrapper.optim_wrappers.values())
    return [optim_wrapper]

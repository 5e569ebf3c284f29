"""``EMAHook``: an exponential moving average of the weights (MMEngine's hook)."""

from __future__ import annotations

import itertools
import logging
from typing import TYPE_CHECKING, Any

from treadle.core.hooks._utils import check_int
from treadle.core.hooks.hook import DATA_BATCH, Hook

if TYPE_CHECKING:
    from collections.abc import Iterable

    import torch
    from torch import nn

    from treadle.core.model.averaged_model import BaseAveragedModel

__all__ = ["EMAHook"]


class EMAHook(Hook):
    """Keeps an averaged copy of the model and uses it for validation, test and checkpoints.

    - ``before_run``: builds the averaged model (``MODELS.build(dict(type=ema_type, **kwargs),
      default_args=dict(model=model))``) from the unwrapped model.
    - ``after_train_iter``: updates the average once it has started (from ``begin_iter`` /
      ``begin_epoch``); before that, the averaged copy just follows the model.
    - around every validation and test pass the model's and the average's weights are swapped,
      so the loops evaluate the average, and swapped back afterwards.
    - ``before_save_checkpoint``: stores the average's state as ``ema_state_dict`` and swaps the
      ``state_dict`` entries with it, so the checkpoint's ``state_dict`` holds the averaged
      weights (ready for deployment) and ``ema_state_dict`` the trained ones (MMEngine's layout).
    - ``after_load_checkpoint``: on resume, swaps them back and restores the average; when
      loading weights (or resuming from a checkpoint without ``ema_state_dict``) the average
      starts as a copy of the weights the model loads. MMEngine copies ``checkpoint["state_dict"]``
      itself, which fails for a file holding bare weights (no ``state_dict`` key) and misses every
      key when ``revise_keys`` renames them (``module.`` prefixes); the Runner calls this hook
      before it loads the weights (so hooks can still convert the checkpoint), so the copy is
      taken from the model when the next stage starts (``before_train``, ``before_val_epoch``
      or ``before_test_epoch``).

    Args:
        ema_type: Registered name (MODELS) of the averaging model.
        strict_load: Load ``ema_state_dict`` strictly.
        begin_iter: The iteration from which the average is updated.
        begin_epoch: The epoch from which the average is updated (not with ``begin_iter``).
        **kwargs: Passed to the averaging model (``momentum``, ``interval``, ``update_buffers``…).

    Raises:
        ValueError: Both ``begin_iter`` and ``begin_epoch`` are set, or one is negative.
    """

    priority = "NORMAL"

    def __init__(
        self,
        ema_type: str = "ExponentialMovingAverage",
        strict_load: bool = False,
        begin_iter: int = 0,
        begin_epoch: int = 0,
        **kwargs: Any,
    ) -> None:
        check_int(begin_iter, "begin_iter", minimum=0)
        check_int(begin_epoch, "begin_epoch", minimum=0)
        if begin_iter != 0 and begin_epoch != 0:
            raise ValueError(
                "begin_iter and begin_epoch cannot both be set, but got "
                f"begin_iter={begin_iter}, begin_epoch={begin_epoch}"
            )
        self.strict_load = strict_load
        self.ema_cfg: dict[str, Any] = {"type": ema_type, **kwargs}
        self.begin_iter = begin_iter
        self.begin_epoch = begin_epoch
        # Without begin_epoch, the average starts at iteration begin_iter (0 by default).
        self.enabled_by_epoch = begin_epoch > 0

    def before_run(self, runner: Any) -> None:
        """Build the averaged copy of the (unwrapped) model."""
        from treadle.core.registry import MODELS

        self.src_model: nn.Module = runner.strategy.unwrap_model(runner.model)
        self.ema_model: BaseAveragedModel = MODELS.build(
            self.ema_cfg, default_args={"model": self.src_model}
        )

    def before_train(self, runner: Any) -> None:
        """Check that the average starts within the run."""
        self._start_from_loaded_weights()
        if self.enabled_by_epoch:
            if self.begin_epoch > runner.max_epochs:
                raise ValueError(
                    f"begin_epoch of EMAHook should be <= runner.max_epochs "
                    f"({runner.max_epochs}), but got {self.begin_epoch}"
                )
        elif self.begin_iter > runner.max_iters:
            raise ValueError(
                f"begin_iter of EMAHook should be <= runner.max_iters ({runner.max_iters}), but "
                f"got {self.begin_iter}"
            )

    def after_train_iter(
        self, runner: Any, batch_idx: int, data_batch: DATA_BATCH = None, outputs: Any = None
    ) -> None:
        """Update the average (or, before it starts, copy the model into it)."""
        if self._ema_started(runner):
            self.ema_model.update_parameters(self.src_model)
        else:
            self._copy_model_into_average()

    def before_val_epoch(self, runner: Any) -> None:
        """Evaluate the averaged weights."""
        self._start_from_loaded_weights()
        self._swap_ema_parameters()

    def after_val_epoch(self, runner: Any, metrics: dict[str, Any] | None = None) -> None:
        """Put the trained weights back."""
        self._swap_ema_parameters()

    def before_test_epoch(self, runner: Any) -> None:
        """Test the averaged weights."""
        self._start_from_loaded_weights()
        self._swap_ema_parameters()

    def after_test_epoch(self, runner: Any, metrics: dict[str, Any] | None = None) -> None:
        """Put the trained weights back."""
        self._swap_ema_parameters()

    def before_save_checkpoint(self, runner: Any, checkpoint: dict[str, Any]) -> None:
        """Store the average as ``ema_state_dict``, swapped with ``state_dict``."""
        checkpoint["ema_state_dict"] = self.ema_model.state_dict()
        # Swap the dict entries, not the parameters: the state dicts hold references to them.
        self._swap_ema_state_dict(checkpoint)

    def after_load_checkpoint(self, runner: Any, checkpoint: dict[str, Any]) -> None:
        """Restore the average on resume; otherwise start it from the weights the model loads."""
        from treadle.core.logging import print_log

        resuming = bool(getattr(runner, "_resume", False))
        if "ema_state_dict" in checkpoint and resuming:
            # The checkpoint's state_dict holds the average: swap back, then load.
            self._swap_ema_state_dict(checkpoint)
            self.ema_model.load_state_dict(checkpoint["ema_state_dict"], strict=self.strict_load)
            self._copy_pending = False
        else:
            if resuming:
                print_log(
                    "There is no `ema_state_dict` in checkpoint. `EMAHook` will make a copy of "
                    "`state_dict` as the initial `ema_state_dict`",
                    "current",
                    logging.WARNING,
                )
            # The model's weights are loaded after this hook: copy them when the next stage starts.
            self._copy_pending = True

    #: Whether the average is still to start as a copy of the weights the model loaded.
    _copy_pending = False

    def _start_from_loaded_weights(self) -> None:
        if self._copy_pending:
            self._copy_pending = False
            self._copy_model_into_average()

    def _copy_model_into_average(self) -> None:
        """Copy the model's parameters and buffers into the average (in place)."""
        src = self.src_model.state_dict()
        for key, param in self.ema_model.module.state_dict().items():
            param.data.copy_(src[key].data)

    def _swap_ema_parameters(self) -> None:
        """Exchange the model's and the average's weights (and buffers with ``update_buffers``)."""
        avg: Iterable[torch.Tensor]
        src: Iterable[torch.Tensor]
        if self.ema_model.update_buffers:
            avg = itertools.chain(
                self.ema_model.module.parameters(), self.ema_model.module.buffers()
            )
            src = itertools.chain(self.src_model.parameters(), self.src_model.buffers())
        else:
            avg = self.ema_model.module.parameters()
            src = self.src_model.parameters()
        for p_avg, p_src in zip(avg, src, strict=True):
            tmp = p_avg.data.clone()
            p_avg.data.copy_(p_src.data)
            p_src.data.copy_(tmp)

    @staticmethod
    def _swap_ema_state_dict(checkpoint: dict[str, Any]) -> None:
        """Exchange ``ema_state_dict['module.<k>']`` with ``state_dict['<k>']``."""
        model_state = checkpoint["state_dict"]
        ema_state = checkpoint["ema_state_dict"]
        for key in ema_state:
            if key.startswith("module."):
                name = key[len("module.") :]
                ema_state[key], model_state[name] = model_state[name], ema_state[key]

    def _ema_started(self, runner: Any) -> bool:
        """Whether the average is updated at the current iteration/epoch."""
        if self.enabled_by_epoch:
            return bool(runner.epoch + 1 >= self.begin_epoch)
        return bool(runner.iter + 1 >= self.begin_iter)

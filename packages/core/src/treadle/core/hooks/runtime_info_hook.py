"""``RuntimeInfoHook``: publishes the run's state in the message hub (MMEngine's hook)."""

from __future__ import annotations

import sys
from typing import Any

from treadle.core.hooks.hook import DATA_BATCH, Hook

__all__ = ["RuntimeInfoHook"]


def _is_scalar(value: Any) -> bool:
    """Whether ``value`` is one number: a Python/numpy number or a one-element tensor/array."""
    if isinstance(value, (int, float)):
        return True
    # Without importing them: a tensor or an array can only exist once torch / numpy is imported.
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        return bool(value.numel() == 1)
    np = sys.modules.get("numpy")
    if np is not None:
        if isinstance(value, np.ndarray):
            return bool(value.size == 1)
        return isinstance(value, np.number)
    return False


class _TrainKeys(dict[str, str]):
    """``name -> "train/<name>"``, each key formatted once (it is looked up every iteration)."""

    def __missing__(self, name: str) -> str:
        key = self[name] = f"train/{name}"
        return key


class RuntimeInfoHook(Hook):
    """Puts the runner's state into ``runner.message_hub`` so that any component can read it.

    - ``before_run``: info ``cfg`` (the config's pretty text), ``seed``, ``experiment_name``,
      ``treadle_version``.
    - ``before_train``: info ``loop_stage='train'``, ``epoch``, ``iter``, ``max_epochs``,
      ``max_iters`` and ``dataset_meta`` (the train dataset's ``metainfo``, when it has one).
    - ``before_train_epoch``: info ``epoch``; ``before_train_iter``: info ``iter`` and scalars
      ``train/<name>`` for every entry of ``optim_wrapper.get_lr()`` (first parameter group, a
      Python float read from ``param_groups``: no device sync).
    - ``after_train_iter``: scalars ``train/<key>`` for every entry of the model's ``log_vars``.
      The values are handed over as they come (tensors stay tensors); the message hub turns them
      into numbers when the logger reads them, so this costs no host sync per iteration.
    - ``after_val_epoch`` / ``after_test_epoch``: scalar metrics as ``val/<key>`` / ``test/<key>``
      scalars, the others as info.
    - ``loop_stage`` follows the loops (``'train'``, ``'val'``, ``'test'``) and is restored after a
      validation that runs inside training.
    """

    priority = "VERY_HIGH"

    def __init__(self) -> None:
        self.last_loop_stage: str | None = None
        self._keys = _TrainKeys()

    def before_run(self, runner: Any) -> None:
        """Record the config text, seed, experiment name and version."""
        from treadle.core.version import __version__

        cfg = getattr(runner, "cfg", None)
        runner.message_hub.update_info_dict(
            {
                "cfg": cfg.pretty_text if cfg is not None else "",
                "seed": runner.seed,
                "experiment_name": runner.experiment_name,
                "treadle_version": __version__,
            }
        )
        self.last_loop_stage = None

    def before_train(self, runner: Any) -> None:
        """Record the (possibly resumed) training state."""
        hub = runner.message_hub
        hub.update_info("loop_stage", "train")
        hub.update_info("epoch", runner.epoch)
        hub.update_info("iter", runner.iter)
        hub.update_info("max_epochs", runner.max_epochs)
        hub.update_info("max_iters", runner.max_iters)
        dataset: Any = getattr(runner.train_dataloader, "dataset", None)
        if hasattr(dataset, "metainfo"):
            hub.update_info("dataset_meta", dataset.metainfo)

    def after_train(self, runner: Any) -> None:
        """Leave the ``train`` stage."""
        runner.message_hub.pop_info("loop_stage")

    def before_train_epoch(self, runner: Any) -> None:
        """Record the epoch about to start."""
        runner.message_hub.update_info("epoch", runner.epoch)

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: DATA_BATCH = None) -> None:
        """Record the iteration about to start and the learning rates."""
        hub = runner.message_hub
        hub.update_info("iter", runner.iter)
        wrapper = runner.optim_wrapper
        if (
            getattr(wrapper, "_plain_get_lr", False)  # a wrapper class keeping BaseOptimWrapper's
            and "get_lr" not in wrapper.__dict__
            and wrapper.base_param_settings is None
        ):  # get_lr() would return {"lr": [each group's lr]}: record the first one
            hub.update_scalar(self._keys["lr"], wrapper.optimizer.param_groups[0]["lr"])
            return
        lr_dict = wrapper.get_lr()
        if type(lr_dict) is not dict and not isinstance(lr_dict, dict):
            raise TypeError(
                "runner.optim_wrapper.get_lr() should return a dict of learning rates (an "
                "OptimWrapper or an OptimWrapperDict does), but got "
                f"{type(lr_dict).__name__}; check that the optimizer constructor returns one"
            )
        keys = self._keys
        for name, lr in lr_dict.items():
            hub.update_scalar(keys[name], lr[0])

    def after_train_iter(
        self, runner: Any, batch_idx: int, data_batch: DATA_BATCH = None, outputs: Any = None
    ) -> None:
        """Record the model's ``log_vars`` as ``train/<key>`` scalars."""
        if outputs is not None:
            hub = runner.message_hub
            keys = self._keys
            for name, value in outputs.items():
                hub.update_scalar(keys[name], value)

    def before_val(self, runner: Any) -> None:
        """Enter the ``val`` stage, remembering the stage it interrupts."""
        self.last_loop_stage = runner.message_hub.get_info("loop_stage")
        runner.message_hub.update_info("loop_stage", "val")

    def after_val_epoch(self, runner: Any, metrics: dict[str, Any] | None = None) -> None:
        """Record validation metrics (``val/<key>``)."""
        self._record_metrics(runner, "val", metrics)

    def after_val(self, runner: Any) -> None:
        """Return to ``train`` when validating inside training, else leave the stage."""
        if self.last_loop_stage == "train":
            runner.message_hub.update_info("loop_stage", self.last_loop_stage)
            self.last_loop_stage = None
        else:
            runner.message_hub.pop_info("loop_stage")

    def before_test(self, runner: Any) -> None:
        """Enter the ``test`` stage."""
        runner.message_hub.update_info("loop_stage", "test")

    def after_test_epoch(self, runner: Any, metrics: dict[str, Any] | None = None) -> None:
        """Record test metrics (``test/<key>``)."""
        self._record_metrics(runner, "test", metrics)

    def after_test(self, runner: Any) -> None:
        """Leave the ``test`` stage."""
        runner.message_hub.pop_info("loop_stage")

    @staticmethod
    def _record_metrics(runner: Any, mode: str, metrics: dict[str, Any] | None) -> None:
        if metrics is None:
            return
        hub = runner.message_hub
        for key, value in metrics.items():
            if _is_scalar(value):
                hub.update_scalar(f"{mode}/{key}", value)
            else:
                hub.update_info(f"{mode}/{key}", value)

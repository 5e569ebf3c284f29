"""The user module of the MMEngine-style example, loaded through the config's ``custom_imports``.

It registers, into treadle's root registries, what the config refers to by name:

- ``FlatDigits``: scikit-learn's digits (bundled, no download) as 64-pixel vectors;
- ``DigitsMLP``: a two-layer perceptron following MMEngine's ``BaseModel`` contract;
- ``ParamNormHook``: a custom hook that logs the L2 norm of the model's parameters as
  ``param_norm`` every ``interval`` iterations, so it shows up in the text log and in
  ``vis_data/scalars.json`` next to the loss, and reports how the norm changed over training.

``treadle train`` appends the config file's directory to ``sys.path`` before importing
``custom_imports``, so ``imports=['digits_project']`` finds this file from any working directory.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from treadle.core.hooks import Hook
from treadle.core.model import BaseModel
from treadle.core.registry import DATASETS, HOOKS, MODELS

__all__ = ["DigitsMLP", "FlatDigits", "ParamNormHook"]


@DATASETS.register_module()
class FlatDigits(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """scikit-learn's digits as 64-value vectors in 0-1, split by a fixed stratified seed.

    Args:
        split: ``"train"`` or ``"val"``.
        val_ratio: The fraction of the 1797 images kept for validation.
        split_seed: Seed of the split.
    """

    def __init__(self, split: str = "train", val_ratio: float = 0.2, split_seed: int = 0) -> None:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        digits = load_digits()
        train_idx, val_idx = train_test_split(
            range(len(digits.target)),
            test_size=val_ratio,
            random_state=split_seed,
            stratify=digits.target,
        )
        idx = train_idx if split == "train" else val_idx
        self.inputs = torch.as_tensor(digits.data[idx], dtype=torch.float32) / 16.0
        self.labels = torch.as_tensor(digits.target[idx], dtype=torch.long)
        self.metainfo = {"classes": tuple(str(i) for i in range(10))}

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"inputs": self.inputs[index], "labels": self.labels[index]}


@MODELS.register_module()
class DigitsMLP(BaseModel):
    """``Linear(64, hidden) -> ReLU -> Dropout -> Linear(hidden, 10)``.

    Args:
        hidden: Width of the hidden layer.
        dropout: Dropout probability.
        data_preprocessor: Passed to :class:`~treadle.core.model.BaseModel`.
    """

    def __init__(self, hidden: int = 128, dropout: float = 0.1, data_preprocessor: Any = None):
        super().__init__(data_preprocessor=data_preprocessor)
        self.net = nn.Sequential(
            nn.Linear(64, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 10)
        )

    def forward(  # type: ignore[override]
        self, inputs: torch.Tensor, labels: torch.Tensor | None = None, mode: str = "tensor"
    ) -> Any:
        logits = self.net(inputs)
        if mode == "tensor":
            return logits
        if labels is None:
            raise ValueError(f"mode={mode!r} needs labels")
        if mode == "loss":
            return {"loss": nn.functional.cross_entropy(logits, labels)}
        return [
            {"pred_score": score, "gt_label": int(label)}
            for score, label in zip(logits.float().softmax(-1), labels, strict=True)
        ]


@HOOKS.register_module()
class ParamNormHook(Hook):
    """Logs the L2 norm of all trainable parameters as ``param_norm``.

    Every ``interval`` training iterations the norm goes into the message hub as
    ``train/param_norm``; the ``LogProcessor`` then prints it in the iteration log lines and the
    ``LocalVisBackend`` writes it to ``scalars.json``. After training, one line says how the norm
    changed.

    Args:
        interval: Measure every ``interval`` iterations.
    """

    priority = (
        "NORMAL"  # before the LoggerHook (BELOW_NORMAL), so the value of this iteration is logged
    )

    def __init__(self, interval: int = 1) -> None:
        if interval < 1:
            raise ValueError(f"interval must be at least 1, got {interval}")
        self.interval = interval
        self.first: float | None = None
        self.last: float | None = None

    @staticmethod
    def param_norm(model: nn.Module) -> float:
        """The L2 norm of ``model``'s trainable parameters, all taken as one vector."""
        with torch.no_grad():
            squares = [
                p.detach().float().pow(2).sum() for p in model.parameters() if p.requires_grad
            ]
            return float(torch.stack(squares).sum().sqrt()) if squares else 0.0

    def after_train_iter(
        self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        """Measure and record the norm every ``interval`` iterations."""
        if not self.every_n_train_iters(runner, self.interval):
            return
        norm = self.param_norm(runner.model)
        if self.first is None:
            self.first = norm
        self.last = norm
        runner.message_hub.update_scalar("train/param_norm", norm)

    def after_train(self, runner: Any) -> None:
        """Say how the parameter norm changed."""
        if self.first is not None and self.last is not None:
            runner.logger.info(
                f"ParamNormHook: parameter L2 norm {self.first:.4f} -> {self.last:.4f}"
            )

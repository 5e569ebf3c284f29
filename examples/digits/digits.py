"""The digits example's dataset and model, imported by ``digits_cnn.py`` through ``custom_imports``.

``treadle train`` puts the config file's directory on ``sys.path`` before it imports the
config's ``custom_imports``, so this module is found from any working directory.

The data is scikit-learn's handwritten digits (1797 grey 8x8 images of 0-9), which ships inside
the scikit-learn package: nothing is downloaded.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from treadle.core.model import BaseModel
from treadle.core.registry import DATASETS, MODELS

__all__ = ["DigitsCNN", "DigitsDataset"]


@DATASETS.register_module()
class DigitsDataset(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """scikit-learn's digits, split into a train and a validation part.

    The split is stratified and fixed by ``split_seed``, so every run (and every process)
    sees the same samples in the same order. Pixels are scaled from 0-16 to 0-1.

    Args:
        split: ``"train"`` or ``"val"``.
        val_ratio: The fraction of the 1797 images kept for validation.
        split_seed: Seed of the train/val split (not of the training order).
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
        images = torch.as_tensor(digits.images[idx], dtype=torch.float32) / 16.0
        self.images = images.unsqueeze(1)  # N x 1 x 8 x 8
        self.labels = torch.as_tensor(digits.target[idx], dtype=torch.long)
        self.metainfo = {"classes": tuple(str(i) for i in range(10))}

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"inputs": self.images[index], "labels": self.labels[index]}


@MODELS.register_module()
class DigitsCNN(BaseModel):
    """Two 3x3 convolutions, a 2x2 max-pool and two linear layers.

    ``forward`` follows MMEngine's contract: ``mode="loss"`` returns a dict of losses,
    ``mode="predict"`` one dict per sample with ``pred_score`` and ``gt_label`` (what the
    ``Accuracy`` metric reads), ``mode="tensor"`` the logits.

    Args:
        channels: Output channels of the two convolutions.
        hidden: Width of the hidden linear layer.
        num_classes: Number of classes.
        dropout: Dropout before the classifier.
        data_preprocessor: Passed to :class:`~treadle.core.model.BaseModel`.
    """

    def __init__(
        self,
        channels: tuple[int, int] = (32, 64),
        hidden: int = 128,
        num_classes: int = 10,
        dropout: float = 0.25,
        data_preprocessor: Any = None,
    ) -> None:
        super().__init__(data_preprocessor=data_preprocessor)
        c1, c2 = channels
        self.features = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c1, c2, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),  # 8x8 -> 4x4
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(c2 * 4 * 4, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )

    def forward(  # type: ignore[override]
        self, inputs: torch.Tensor, labels: torch.Tensor | None = None, mode: str = "tensor"
    ) -> Any:
        logits = self.classifier(self.features(inputs))
        if mode == "tensor":
            return logits
        if labels is None:
            raise ValueError(f"mode={mode!r} needs labels")
        if mode == "loss":
            return {"loss": nn.functional.cross_entropy(logits, labels)}
        if mode == "predict":
            scores = logits.float().softmax(dim=-1)
            return [
                {"pred_score": score, "gt_label": int(label)}
                for score, label in zip(scores, labels, strict=True)
            ]
        raise ValueError(f"mode must be 'loss', 'predict' or 'tensor', got {mode!r}")

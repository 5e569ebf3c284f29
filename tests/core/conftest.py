"""Fixtures shared by the core tests: a tiny model, dataset and Runner config."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from torch import nn

from treadle.core.model import BaseModel
from treadle.core.registry import DATASETS, MODELS


class ToyDataset(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """``n`` samples of 8 features; the label is whether the first two features sum above 0."""

    def __init__(self, n: int = 24, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 8, generator=g)
        self.y = (self.x[:, 0] + self.x[:, 1] > 0).long()
        self.metainfo = {"classes": ("neg", "pos")}

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"inputs": self.x[i], "labels": self.y[i]}


class ToyNet(BaseModel):
    """An MLP with dropout (so resume must restore the RNG) that reports a validation loss."""

    def __init__(self, width: int = 16, data_preprocessor: Any = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor)
        self.net = nn.Sequential(
            nn.Linear(8, width), nn.ReLU(), nn.Dropout(0.2), nn.Linear(width, 2)
        )

    def forward(
        self, inputs: torch.Tensor, labels: torch.Tensor | None = None, mode: str = "tensor"
    ) -> Any:  # type: ignore[override]
        logits = self.net(inputs)
        if mode == "loss":
            return {"loss": nn.functional.cross_entropy(logits, labels)}
        if mode == "predict":
            scores = logits.softmax(-1)
            samples: list[Any] = [
                {"pred_score": s, "gt_label": int(y)} for s, y in zip(scores, labels, strict=True)
            ]
            loss = nn.functional.cross_entropy(logits, labels)
            return [*samples, {"loss": {"loss": loss}}]
        return logits


def register_toys() -> None:
    """Register the toys in the root registries (once per process)."""
    if "ToyNet" not in MODELS:
        MODELS.register_module(module=ToyNet)
    if "ToyDataset" not in DATASETS:
        DATASETS.register_module(module=ToyDataset)


BASE_CFG: dict[str, Any] = {
    "model": {"type": "ToyNet", "width": 16},
    "train_dataloader": {
        "dataset": {"type": "ToyDataset", "n": 24},
        "sampler": {"type": "DefaultSampler", "shuffle": True},
        "collate_fn": {"type": "default_collate"},
        "batch_size": 8,
    },
    "val_dataloader": {
        "dataset": {"type": "ToyDataset", "n": 10, "seed": 1},
        "sampler": {"type": "DefaultSampler", "shuffle": False},
        "collate_fn": {"type": "default_collate"},
        "batch_size": 4,
    },
    "train_cfg": {"by_epoch": True, "max_epochs": 2, "val_interval": 1},
    "val_cfg": {},
    "val_evaluator": {"type": "Accuracy"},
    "optim_wrapper": {"optimizer": {"type": "SGD", "lr": 0.1, "momentum": 0.9}},
    "param_scheduler": [{"type": "MultiStepLR", "milestones": [1], "gamma": 0.5}],
    "randomness": {"seed": 0, "deterministic": False},
    "default_hooks": {"logger": {"type": "LoggerHook", "interval": 1}},
}


def make_cfg(work_dir: str, **overrides: Any) -> dict[str, Any]:
    """A deep copy of :data:`BASE_CFG` with ``work_dir`` and top-level overrides."""
    register_toys()
    cfg = copy.deepcopy(BASE_CFG)
    cfg["work_dir"] = work_dir
    for key, value in overrides.items():
        if value is None:
            cfg.pop(key, None)
        else:
            cfg[key] = value
    return cfg


@pytest.fixture
def toy_cfg(tmp_path: Any) -> Any:
    """``toy_cfg(**overrides)`` → a Runner config training ToyNet in ``tmp_path/work``."""

    def make(**overrides: Any) -> dict[str, Any]:
        return make_cfg(str(tmp_path / "work"), **overrides)

    return make


@pytest.fixture
def toy_dataset_cls() -> type[ToyDataset]:
    """The toy dataset class, for tests that subclass it."""
    return ToyDataset


@pytest.fixture
def forget_run_instances() -> Any:
    """Make the loggers, visualizers and message hubs current before the test current again
    (a Runner makes its own current), and close the log files of the loggers it made."""
    from treadle.core.logging import MessageHub, TreadleLogger
    from treadle.core.visualization import Visualizer

    tables = [cls._instance_dict for cls in (TreadleLogger, Visualizer, MessageHub)]
    before = [list(table) for table in tables]
    yield
    for table, names in zip(tables, before, strict=True):
        for name in [n for n in table if n not in names]:
            for handler in getattr(table[name], "handlers", []):
                handler.close()
        if names and names[-1] in table:
            table.move_to_end(names[-1])

"""The ready-made metrics: Accuracy (hand-computed values, ties, torch.topk reference, inputs,
errors, distributed padding) and DumpResults (pickle written and loadable, bad suffix)."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from treadle.core.evaluator import Accuracy, DumpResults, Evaluator
from treadle.core.fileio import load

# ----------------------------------------------------------------------------- Accuracy

# Six classes; the ranking of each row under "ties go to the lower class index":
TIED_SCORES = [
    [0.1, 0.5, 0.5, 0.2, 0.0, 0.3],  # 1, 2, 5, 3, 0, 4
    [0.1, 0.5, 0.5, 0.2, 0.0, 0.3],  # 1, 2, 5, 3, 0, 4
    [1.0, 1.0, 1.0, 1.0, 1.0, 1.0],  # 0, 1, 2, 3, 4, 5
    [1.0, 1.0, 1.0, 1.0, 1.0, 1.0],  # 0, 1, 2, 3, 4, 5
    [0.0, 0.0, 0.0, 0.0, 0.0, 9.0],  # 5, 0, 1, 2, 3, 4
    [3.0, 2.0, 2.0, 2.0, 2.0, 2.0],  # 0, 1, 2, 3, 4, 5
]
TIED_LABELS = [2, 1, 5, 4, 5, 5]
# top1 hits: rows 1 and 4 -> 2/6.  top5 hits: rows 0, 1, 3, 4 (row 2 and 5 rank class 5 sixth).


def accuracy(scores: Any, labels: Any, **kwargs: Any) -> dict[str, Any]:
    evaluator = Evaluator(Accuracy(**kwargs))
    evaluator.process(
        [{"pred_score": s, "gt_label": g} for s, g in zip(scores, labels, strict=True)]
    )
    return evaluator.evaluate(len(labels))


def test_accuracy_with_ties_is_hand_computed() -> None:
    result = accuracy(torch.tensor(TIED_SCORES), torch.tensor(TIED_LABELS), topk=(1, 5))
    assert result == {
        "accuracy/top1": pytest.approx(100 * 2 / 6),
        "accuracy/top5": pytest.approx(100 * 4 / 6),
    }
    assert list(result) == ["accuracy/top1", "accuracy/top5"]


def test_accuracy_matches_torch_topk_without_ties() -> None:
    generator = torch.Generator().manual_seed(0)
    scores = torch.rand(200, 10, generator=generator)
    labels = torch.randint(0, 10, (200,), generator=generator)
    result = accuracy(scores, labels, topk=(1, 3, 10), prefix="val")
    top = scores.topk(10, dim=1).indices
    for k in (1, 3, 10):
        expected = (top[:, :k] == labels[:, None]).any(dim=1).float().mean().item() * 100
        assert result[f"val/top{k}"] == pytest.approx(expected)
    assert result["val/top10"] == 100.0


def test_accuracy_accepts_ints_arrays_lists_and_label_mappings() -> None:
    samples = [
        {"pred_score": [0.1, 0.9], "gt_label": 1},
        {"pred_score": np.array([0.7, 0.3]), "gt_label": np.array([1])},
        {"pred_score": torch.tensor([0.6, 0.4]), "gt_label": torch.tensor(0)},
        {"pred_score": torch.tensor([0.2, 0.8]), "gt_label": {"label": torch.tensor([1])}},
    ]
    evaluator = Evaluator(Accuracy(topk=1))
    evaluator.process(samples)
    assert evaluator.evaluate(4) == {"accuracy/top1": 75.0}


def test_accuracy_from_labels_only_computes_top1() -> None:
    samples = [
        {"pred_label": p, "gt_label": g}
        for p, g in zip([0, 1, 2, torch.tensor([2])], [0, 1, 1, 2], strict=True)
    ]
    evaluator = Evaluator(Accuracy(topk=(1, 5)))
    evaluator.process(samples)
    assert evaluator.evaluate(4) == {"accuracy/top1": 75.0}


def test_accuracy_excludes_the_samplers_padding_across_ranks() -> None:
    # 5 samples on 2 ranks: rank 1 gets sample 0 again. With the padding, top1 would be 4/6.
    samples = [
        {"pred_score": [0.9, 0.1], "gt_label": g} for g in [0, 1, 1, 0, 0]
    ]  # correct: 0, 3, 4 -> 60 %
    parts: list[list[Any]] = []
    metrics = [Accuracy(), Accuracy()]
    for rank, metric in enumerate(metrics):
        metric.process(None, [samples[i] for i in ([0, 2, 4], [1, 3, 0])[rank]])
        parts.append(list(metric.results))

    class Rank:
        def __init__(self, rank: int) -> None:
            self.rank, self.world_size = rank, 2

        def all_gather_object(self, obj: Any) -> list[Any]:
            return parts

        def broadcast_object(self, obj: Any, src: int = 0) -> Any:
            broadcast.append(obj)
            return broadcast[0]

    broadcast: list[Any] = []
    for rank, metric in enumerate(metrics):
        metric.collectives = Rank(rank)
    assert [m.evaluate(5) for m in metrics] == [{"accuracy/top1": 60.0}] * 2


@pytest.mark.parametrize("topk", [0, (), (1, 0), (1, "2"), True])
def test_accuracy_rejects_bad_topk(topk: Any) -> None:
    with pytest.raises(ValueError, match="topk must be a positive int or a non-empty sequence"):
        Accuracy(topk=topk)


def test_accuracy_topk_above_the_number_of_classes() -> None:
    with pytest.raises(
        ValueError, match="Top-5 accuracy is unavailable since the number of categories is 3"
    ):
        accuracy(torch.rand(2, 3), [0, 1], topk=(1, 5))


@pytest.mark.parametrize(
    ("sample", "message"),
    [
        ({"pred_score": [0.5, 0.5]}, r"needs 'gt_label'.*data_samples\[0\] has \['pred_score'\]"),
        ({"gt_label": 1}, r"needs 'pred_score' or 'pred_label'.*has \['gt_label'\]"),
        ({"pred_label": 1, "gt_label": [0, 1]}, "gt_label must hold one class index, got 2 values"),
    ],
)
def test_accuracy_bad_samples(sample: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Accuracy().process(None, [sample])


def test_accuracy_mixed_or_ragged_predictions() -> None:
    metric = Accuracy()
    metric.process(
        None, [{"pred_score": [0.1, 0.9], "gt_label": 1}, {"pred_label": 0, "gt_label": 0}]
    )
    with pytest.raises(ValueError, match="same kind of prediction for every sample"):
        metric.evaluate(2)
    metric.process(
        None, [{"pred_score": [0.1, 0.9], "gt_label": 1}, {"pred_score": [1.0], "gt_label": 0}]
    )
    with pytest.raises(ValueError, match=r"pred_score must have the same length .* got \[1, 2\]"):
        metric.evaluate(2)


# ----------------------------------------------------------------------------- DumpResults


@pytest.mark.parametrize("suffix", [".pkl", ".pickle"])
def test_dump_results_writes_a_loadable_pickle(tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"results{suffix}"
    metric = DumpResults(str(out))
    metric.process(None, [{"pred": torch.tensor([1.0, 2.0]), "idx": 0}])
    metric.process(None, [{"pred": torch.tensor([3.0]), "idx": 1}])
    assert metric.evaluate(2) == {}
    with out.open("rb") as f:
        data = pickle.load(f)
    assert [d["idx"] for d in data] == [0, 1]
    assert torch.equal(data[0]["pred"], torch.tensor([1.0, 2.0]))
    assert [d["idx"] for d in load(str(out))] == [0, 1]


def test_dump_results_truncates_to_size(tmp_path: Path) -> None:
    out = tmp_path / "r.pkl"
    metric = DumpResults(str(out))
    metric.process(None, [{"i": i} for i in range(4)])
    metric.evaluate(3)
    assert load(str(out)) == [{"i": 0}, {"i": 1}, {"i": 2}]


@pytest.mark.parametrize("path", ["results.json", "results.pkl.gz", "results"])
def test_dump_results_rejects_other_suffixes(path: str) -> None:
    with pytest.raises(ValueError, match=rf"out_file_path must be a pickle file .*got '{path}'"):
        DumpResults(path)

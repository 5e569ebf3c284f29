"""The ready-made metrics: Accuracy (hand-computed values, ties, torch.topk reference, inputs,
errors, distributed padding) and DumpResults (pickle written and loadable, bad suffix)."""

from __future__ import annotations

import pickle
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from treadle.core.evaluator import Accuracy, DumpResults, Evaluator
from treadle.core.evaluator import metrics as metrics_module
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


# ------------------------------------------------ Accuracy: batch fast path vs per-sample path

_reference_result = metrics_module._sample_result  # the per-sample conversion, unpatched


def per_sample(samples: list[Any]) -> list[dict[str, torch.Tensor]]:
    return [_reference_result(index, sample) for index, sample in enumerate(samples)]


def assert_same_results(got: list[Any], expected: list[Any]) -> None:
    assert len(got) == len(expected)
    for result, reference in zip(got, expected, strict=True):
        assert list(result) == list(reference)
        for key, value in result.items():
            if type(reference[key]) is int:  # class indices are kept as Python ints
                assert type(value) is int
                assert value == reference[key]
                continue
            assert type(value) is torch.Tensor
            assert value.device.type == "cpu"
            assert not value.requires_grad
            assert value.dtype == reference[key].dtype
            assert value.shape == reference[key].shape
            assert torch.equal(value, reference[key])


@pytest.fixture
def per_sample_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The indices the per-sample path was called with (empty: the batch path took them all)."""
    calls: list[int] = []

    def spy(index: int, sample: Any) -> dict[str, torch.Tensor]:
        calls.append(index)
        return _reference_result(index, sample)

    monkeypatch.setattr(metrics_module, "_sample_result", spy)
    return calls


def _batches() -> dict[str, list[dict[str, Any]]]:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 4, generator=generator)
    labels = torch.randint(0, 4, (6,), generator=generator)
    grad_logits = logits.clone().requires_grad_()
    return {
        "0-d labels": [
            {"pred_label": p, "gt_label": g} for p, g in zip(logits.argmax(-1), labels, strict=True)
        ],
        "1-element labels": [
            {"pred_label": p.reshape(1), "gt_label": g.reshape(1, 1)}
            for p, g in zip(logits.argmax(-1), labels, strict=True)
        ],
        "scores": [
            {"pred_score": s, "gt_label": g, "extra": "kept out"}
            for s, g in zip(logits, labels, strict=True)
        ],
        "float64 scores, int32 labels": [
            {"pred_score": s.double().reshape(1, 4), "gt_label": g.int()}
            for s, g in zip(logits, labels, strict=True)
        ],
        "scores requiring grad": [
            {"pred_score": s, "gt_label": g} for s, g in zip(grad_logits, labels, strict=True)
        ],
        "mixed integer label dtypes": [
            {"pred_label": p.to(torch.uint8 if i % 2 else torch.int64), "gt_label": g}
            for i, (p, g) in enumerate(zip(logits.argmax(-1), labels, strict=True))
        ],
        "integer and float scores": [
            {"pred_score": s if i % 2 else (s * 10).long(), "gt_label": g}
            for i, (s, g) in enumerate(zip(logits, labels, strict=True))
        ],
        "one sample": [{"pred_label": torch.tensor(1), "gt_label": torch.tensor([1])}],
    }


@pytest.mark.parametrize("name", list(_batches()))
def test_accuracy_batch_path_stores_what_the_per_sample_path_would(
    name: str, per_sample_calls: list[int]
) -> None:
    samples = _batches()[name]
    metric = Accuracy()
    metric.process(None, samples)
    metric.process(None, tuple(samples))  # any sequence
    assert per_sample_calls == []  # the batch path took them
    assert_same_results(metric.results, per_sample(samples) * 2)


def _per_sample_batches() -> dict[str, list[Any]]:
    big = 2**53 + 1  # not representable in float64: promotion would change it
    return {
        "int64 and float64 labels": [
            {"pred_label": torch.tensor(big), "gt_label": torch.tensor(big)},
            {"pred_label": torch.tensor(3.0, dtype=torch.float64), "gt_label": torch.tensor(3)},
        ],
        "float16 and int64 scores": [
            {"pred_score": torch.tensor([2049, 1]), "gt_label": torch.tensor(0)},
            {"pred_score": torch.tensor([0.5, 1.0], dtype=torch.float16), "gt_label": 1},
        ],
        "ints and arrays": [
            {"pred_label": 1, "gt_label": np.array([1])},
            {"pred_label": torch.tensor(0), "gt_label": torch.tensor(0)},
        ],
        "label mappings": [
            {"pred_label": torch.tensor(1), "gt_label": {"label": torch.tensor([1])}},
            {"pred_label": torch.tensor(0), "gt_label": {"label": torch.tensor([0])}},
        ],
        "dict subclass": [
            OrderedDict(pred_label=torch.tensor(1), gt_label=torch.tensor(1)),
            OrderedDict(pred_label=torch.tensor(0), gt_label=torch.tensor(1)),
        ],
        "0-d and 1-element labels": [
            {"pred_label": torch.tensor(1), "gt_label": torch.tensor(1)},
            {"pred_label": torch.tensor([0]), "gt_label": torch.tensor(1)},
        ],
        "ragged scores": [
            {"pred_score": torch.tensor([0.1, 0.9]), "gt_label": torch.tensor(1)},
            {"pred_score": torch.tensor([1.0]), "gt_label": torch.tensor(0)},
        ],
        "empty scores": [
            {"pred_score": torch.zeros(0), "gt_label": torch.tensor(1)},
            {"pred_score": torch.zeros(0), "gt_label": torch.tensor(1)},
        ],
        "complex scores": [
            {"pred_score": torch.tensor([1.0, 2.0j]), "gt_label": torch.tensor(1)},
            {"pred_score": torch.tensor([1.0, 2.0j]), "gt_label": torch.tensor(1)},
        ],
        # The second sample's pred_score wins over its pred_label, as per sample.
        "a later sample with pred_score": [
            {"pred_label": torch.tensor(1), "gt_label": torch.tensor(1)},
            {"pred_label": torch.tensor(0), "pred_score": torch.tensor([0.4, 0.6]), "gt_label": 1},
        ],
        "a later sample without pred_score": [
            {"pred_score": torch.tensor([0.4, 0.6]), "gt_label": torch.tensor(1)},
            {"pred_label": torch.tensor(0), "gt_label": torch.tensor(1)},
        ],
    }


@pytest.mark.parametrize("name", list(_per_sample_batches()))
@pytest.mark.filterwarnings("ignore:Casting complex values to real")
def test_accuracy_other_batches_go_sample_by_sample(name: str, per_sample_calls: list[int]) -> None:
    samples = _per_sample_batches()[name]
    metric = Accuracy()
    metric.process(None, samples)
    assert per_sample_calls == list(range(len(samples)))
    assert_same_results(metric.results, per_sample(samples))


def test_accuracy_batch_path_keeps_values_that_promotion_would_round() -> None:
    metric = Accuracy()
    metric.process(None, _per_sample_batches()["int64 and float64 labels"])
    assert [int(r["gt_label"]) for r in metric.results] == [2**53 + 1, 3]
    assert [int(r["pred_label"]) for r in metric.results] == [2**53 + 1, 3]
    metric = Accuracy()
    metric.process(None, _per_sample_batches()["float16 and int64 scores"])
    assert metric.results[0]["pred_score"].tolist() == [2049.0, 1.0]  # float16 has no 2049


@pytest.mark.parametrize(
    ("bad_index", "bad_sample", "message"),
    [
        (2, {"pred_label": torch.tensor(1)}, r"data_samples\[2\] has \['pred_label'\]"),
        (1, (torch.tensor(1), torch.tensor(1)), r"data_samples\[1\] has tuple"),
        (3, {"gt_label": torch.tensor(1)}, r"data_samples\[3\] has \['gt_label'\]"),
        (
            1,
            {"pred_label": torch.tensor(1), "gt_label": torch.tensor([0, 1])},
            "gt_label must hold one class index, got 2 values",
        ),
        (
            2,
            {"pred_label": torch.tensor([0, 1]), "gt_label": torch.tensor(1)},
            "pred_label must hold one class index, got 2 values",
        ),
    ],
)
def test_accuracy_bad_sample_in_a_tensor_batch(
    bad_index: int, bad_sample: Any, message: str
) -> None:
    samples: list[Any] = [
        {"pred_label": torch.tensor(i), "gt_label": torch.tensor(i)} for i in range(4)
    ]
    samples[bad_index] = bad_sample
    metric = Accuracy()
    with pytest.raises(ValueError, match=message):
        metric.process(None, samples)
    # As before: the samples ahead of the bad one were stored.
    assert_same_results(metric.results, per_sample(samples[:bad_index]))


@pytest.mark.parametrize("key", ["gt_label", "pred_label"])
def test_accuracy_batch_of_two_values_per_label_is_rejected_like_one(key: str) -> None:
    samples = [{"pred_label": torch.tensor(1), "gt_label": torch.tensor(1)} for _ in range(3)]
    for sample in samples:
        sample[key] = torch.tensor([1, 2])
    with pytest.raises(ValueError, match=f"{key} must hold one class index, got 2 values"):
        Accuracy().process(None, samples)


def test_accuracy_tensor_subclasses_go_sample_by_sample(per_sample_calls: list[int]) -> None:
    class Labels(torch.Tensor):
        pass

    samples = [
        {"pred_label": torch.tensor(i).as_subclass(Labels), "gt_label": torch.tensor(1)}
        for i in range(2)
    ]
    metric = Accuracy()
    metric.process(None, samples)
    assert per_sample_calls == [0, 1]
    assert [r["pred_label"] for r in metric.results] == [0, 1]  # class indices as ints
    assert metric.compute_metrics(metric.results) == {"top1": 50.0}


@pytest.mark.parametrize(
    "samples",
    [
        [
            {"pred_score": torch.tensor([0.1, 0.9]), "gt_label": torch.tensor(1)},
            {"pred_label": torch.tensor(0), "gt_label": torch.tensor(0)},
        ],
        [
            {"pred_label": torch.tensor(0), "gt_label": torch.tensor(0)},
            {"pred_score": torch.tensor([0.1, 0.9]), "gt_label": torch.tensor(1)},
        ],
    ],
)
def test_accuracy_mixed_kind_tensor_batch_still_fails_at_compute(samples: list[Any]) -> None:
    metric = Accuracy()
    metric.process(None, samples)
    with pytest.raises(ValueError, match="same kind of prediction for every sample"):
        metric.evaluate(2)


def test_accuracy_batches_of_both_paths_evaluate_together() -> None:
    metric = Accuracy(topk=(1, 2))
    scores = torch.tensor([[0.1, 0.5, 0.4], [0.7, 0.2, 0.1], [0.3, 0.3, 0.4]])
    metric.process(
        None, [{"pred_score": s, "gt_label": g} for s, g in zip(scores, [2, 0, 1], strict=True)]
    )
    metric.process(
        None,
        [
            {"pred_score": s, "gt_label": torch.tensor(g)}
            for s, g in zip(scores, [1, 1, 2], strict=True)
        ],
    )
    # top1: rows 1 (first batch), 0 and 2 (second) -> 3/6; top2: all but row 1 of the second.
    assert metric.evaluate(6) == {"accuracy/top1": 50.0, "accuracy/top2": pytest.approx(500 / 6)}


def test_accuracy_empty_batch_stores_nothing() -> None:
    metric = Accuracy()
    metric.process(None, [])
    assert metric.results == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", list(_batches()))
def test_accuracy_batch_path_moves_cuda_batches_to_the_cpu(
    name: str, per_sample_calls: list[int]
) -> None:
    samples = [
        {k: v.cuda() if isinstance(v, torch.Tensor) else v for k, v in sample.items()}
        for sample in _batches()[name]
    ]
    metric = Accuracy()
    metric.process(None, samples)
    assert per_sample_calls == []
    assert_same_results(metric.results, per_sample(_batches()[name]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_accuracy_mixed_device_batch() -> None:
    samples = [
        {"pred_label": torch.tensor(1, device="cuda"), "gt_label": torch.tensor(1)},
        {"pred_label": torch.tensor(0), "gt_label": torch.tensor(1, device="cuda")},
    ]
    metric = Accuracy()
    metric.process(None, samples)
    assert all(v.device.type == "cpu" for r in metric.results for v in r.values())
    assert metric.evaluate(2) == {"accuracy/top1": 50.0}


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


def test_accuracy_skips_the_cpu_copy_of_its_own_results_but_not_a_subclass_s(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from treadle.core.evaluator import metric as metric_module

    copied: list[int] = []
    real = metric_module._to_cpu

    def spy(data: Any) -> Any:
        copied.append(len(data))
        return real(data)

    monkeypatch.setattr(metric_module, "_to_cpu", spy)
    samples = [{"pred_label": torch.tensor(i % 2), "gt_label": torch.tensor(1)} for i in range(4)]

    plain = Accuracy()
    plain.process(None, samples)
    assert plain.evaluate(4) == {"accuracy/top1": 50.0}
    assert copied == []  # Accuracy.process stores CPU tensors only

    class Scaled(Accuracy):  # its own process could store anything, on any device
        def process(self, data_batch: Any, data_samples: Any) -> None:
            super().process(data_batch, data_samples[:2])

    scaled = Scaled()
    scaled.process(None, samples)
    assert scaled.evaluate(2) == {"accuracy/top1": 50.0}
    assert copied == [2]

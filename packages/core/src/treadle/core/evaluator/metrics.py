"""Ready-made metrics: :class:`Accuracy` (single-label classification, after mmpretrain's)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import repeat
from operator import contains, itemgetter
from typing import TYPE_CHECKING, Any, ClassVar

from treadle.core.evaluator.metric import BaseMetric, batch_length

if TYPE_CHECKING:
    import torch


class Accuracy(BaseMetric):
    """Top-k accuracy of single-label classification, in percent (mmpretrain's ``Accuracy``).

    A sample counts as correct at top-``k`` when its ground-truth class is among the ``k``
    highest scores. Ties are broken by class index: among classes with equal scores the lower
    index ranks first (a stable descending sort), so the result does not depend on the
    device or on ``torch.topk``'s tie order.

    Each data sample (a dict, or a data element converted by the Evaluator) must hold:

    - ``gt_label``: the true class: an ``int``, or a one-element tensor/array/sequence;
    - and either ``pred_score``: the class scores, a tensor/array/sequence of ``C`` numbers
      (logits or probabilities: only their order matters),
    - or ``pred_label``: the predicted class (``int`` or one element). With labels only, just
      ``top1`` is computed, whatever ``topk`` says (as mmpretrain).

    ``gt_label``/``pred_label`` may also be mappings with a ``"label"`` key (old mmcls style).

    Results are ``{"top1": 93.5, "top5": 99.0}`` before the prefix (``"accuracy/top1"`` with the
    default prefix). mmpretrain's ``thrs`` (score thresholds) is not supported.

    Args:
        topk: One ``k`` or several; each must be at least 1 and at most the number of classes.
        collect_device: See :class:`~treadle.core.evaluator.BaseMetric`.
        prefix: Metric name prefix; ``"accuracy"`` by default.

    Raises:
        ValueError: ``topk`` is empty or holds something other than positive ints.
    """

    default_prefix: ClassVar[str | None] = "accuracy"

    def __init__(
        self,
        topk: int | Sequence[int] = (1,),
        collect_device: str = "cpu",
        prefix: str | None = None,
    ) -> None:
        ks = (topk,) if isinstance(topk, int) else tuple(topk)
        if not ks or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in ks):
            raise ValueError(
                f"topk must be a positive int or a non-empty sequence of them, got {topk!r}"
            )
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.topk: tuple[int, ...] = ks

    def process(self, data_batch: Any, data_samples: Sequence[dict[str, Any]]) -> None:
        """Keep each sample's ``pred_score`` (or ``pred_label``) and ``gt_label`` on the CPU."""
        samples = data_samples if type(data_samples) is list else list(data_samples)
        results = _batch_results(samples)
        if results is not None:
            self.results.extend(results)
            return
        for index, sample in enumerate(samples):
            self.results.append(_sample_result(index, sample))

    def process_batch(self, data_batch: Any, outputs: Mapping[str, Any]) -> None:
        """Keep the results of a batched output, ``{"gt_label": N labels, "pred_label": N
        labels}`` or ``{"gt_label": N labels, "pred_score": (N, C) scores}``, without
        per-sample objects from the model (see :meth:`BaseMetric.process_batch`).

        Raises:
            ValueError: ``gt_label`` or both predictions are missing, or a value does not hold
                one label (or one row of scores) per sample; the message names the key.
        """
        n = batch_length(outputs)
        if "gt_label" not in outputs or not ("pred_score" in outputs or "pred_label" in outputs):
            raise ValueError(
                "Accuracy needs 'gt_label' and 'pred_score' or 'pred_label' in batched outputs; "
                f"got keys {sorted(outputs)}"
            )
        gt = _batch_labels(outputs["gt_label"], "gt_label", n)
        if "pred_score" in outputs:
            scores = _as_tensor(outputs["pred_score"])
            if scores.dim() != 2:
                raise ValueError(
                    "Accuracy's batched pred_score must be (batch, classes), got shape "
                    f"{tuple(scores.shape)}"
                )
            rows = scores.float().unbind()
            self.results += [
                {"gt_label": g, "pred_score": s} for g, s in zip(gt, rows, strict=True)
            ]
            return
        pred = _batch_labels(outputs["pred_label"], "pred_label", n)
        self.results += [{"gt_label": g, "pred_label": p} for g, p in zip(gt, pred, strict=True)]

    def _results_to_cpu(self, results: list[Any]) -> list[Any]:
        # This class's process() stores CPU tensors only; a subclass's own process() may not.
        if type(self).process is Accuracy.process:
            return results
        return super()._results_to_cpu(results)

    def compute_metrics(self, results: list[Any]) -> dict[str, Any]:
        """Top-k accuracies in percent, keyed ``top{k}``."""
        import torch

        if not results:
            raise ValueError("Accuracy has no results to compute on (empty validation set?)")
        target = _label_tensor(list(map(_GT_LABEL, results)))
        num = int(target.numel())
        if all(map(contains, results, repeat("pred_score"))):
            scores = list(map(_PRED_SCORE, results))
            sizes = set(map(torch.Tensor.numel, scores))
            if len(sizes) != 1:
                raise ValueError(
                    f"pred_score must have the same length for every sample, got {sorted(sizes)}"
                )
            num_classes = sizes.pop()
            maxk = max(self.topk)
            if maxk > num_classes:
                raise ValueError(
                    f"Top-{maxk} accuracy is unavailable since the number of categories is "
                    f"{num_classes}. Please check topk of Accuracy in the val_evaluator and "
                    "test_evaluator fields of your config."
                )
            ranked = torch.sort(torch.stack(scores), dim=1, descending=True, stable=True).indices[
                :, :maxk
            ]
            hits = ranked == target.unsqueeze(1)
            return {f"top{k}": 100.0 * int(hits[:, :k].any(dim=1).sum()) / num for k in self.topk}
        if all(map(contains, results, repeat("pred_label"))):
            pred = _label_tensor(list(map(_PRED_LABEL, results)))
            return {"top1": 100.0 * int((pred == target).sum()) / num}
        raise ValueError(
            "Accuracy needs the same kind of prediction for every sample: some have "
            "'pred_score' and others only 'pred_label'"
        )

    def __repr__(self) -> str:
        return f"Accuracy(topk={self.topk}, prefix={self.prefix!r})"


_GT_LABEL = itemgetter("gt_label")
_PRED_LABEL = itemgetter("pred_label")
_PRED_SCORE = itemgetter("pred_score")


def _sample_result(index: int, sample: Any) -> dict[str, Any]:
    """One sample's result (checked and converted on its own)."""
    if not isinstance(sample, Mapping) or "gt_label" not in sample:
        keys = sorted(sample) if isinstance(sample, Mapping) else type(sample).__name__
        raise ValueError(
            f"Accuracy needs 'gt_label' and 'pred_score' or 'pred_label' in each data "
            f"sample; data_samples[{index}] has {keys}"
        )
    result: dict[str, Any] = {"gt_label": _label(sample["gt_label"], "gt_label")}
    if "pred_score" in sample:
        result["pred_score"] = _as_tensor(sample["pred_score"]).reshape(-1).float()
    elif "pred_label" in sample:
        result["pred_label"] = _label(sample["pred_label"], "pred_label")
    else:
        raise ValueError(
            f"Accuracy needs 'pred_score' or 'pred_label' in each data sample; "
            f"data_samples[{index}] has {sorted(sample)}"
        )
    return result


def _batch_results(samples: list[Any]) -> list[dict[str, Any]] | None:
    """The results of a whole batch at once, or ``None`` when the batch is not the common case.

    The common case: plain dicts that all hold tensors of one shape under the same keys (every
    sample ``pred_score``, or every sample ``pred_label`` and none ``pred_score``). Each key's
    values are then stacked, converted and moved in one operation and split back into
    per-sample views, giving the same results as :func:`_sample_result` per sample. Anything
    else (other types, missing keys, ragged or mixed predictions, shapes that are not one label
    per sample, mixed dtypes whose promotion could change values) takes the per-sample path,
    which also raises the errors naming the offending sample.
    """
    if not samples or set(map(type, samples)) != {dict}:
        return None
    try:
        gt_values = list(map(_GT_LABEL, samples))
        if "pred_score" in samples[0]:
            pred_key = "pred_score"
            pred_values = list(map(_PRED_SCORE, samples))
        else:
            if any(map(contains, samples, repeat("pred_score"))):
                return None
            pred_key = "pred_label"
            pred_values = list(map(_PRED_LABEL, samples))
    except KeyError:
        return None
    import torch

    gt = _stacked(gt_values, torch.int64)
    if gt is None or gt.numel() != len(samples):
        return None
    preds: list[Any] | tuple[torch.Tensor, ...]
    if pred_key == "pred_label":
        pred = _stacked(pred_values, torch.int64)
        if pred is None or pred.numel() != len(samples):
            return None
        preds = pred.reshape(-1).long().tolist()
    else:
        pred = _stacked(pred_values, torch.float32)
        if pred is None or pred.numel() == 0:
            return None
        preds = pred.reshape(len(samples), -1).float().unbind()
    # Labels as Python ints: one tolist() instead of a tensor view per sample.
    return [
        {"gt_label": g, pred_key: p}
        for g, p in zip(gt.reshape(-1).long().tolist(), preds, strict=True)
    ]


def _batch_labels(value: Any, key: str, n: int) -> list[int]:
    """The ``n`` class indices of a batched ``key`` (``N`` or ``(N, 1)`` values) as ints."""
    labels = _as_tensor(value)  # its first dimension is n (batch_length checked it)
    if labels.numel() != n:
        raise ValueError(
            f"Accuracy is for single-label classification: batched {key} must hold one class "
            f"index per sample ({n}), got shape {tuple(labels.shape)}"
        )
    if labels.is_floating_point() or labels.is_complex():
        raise ValueError(f"batched {key} must hold integer class indices, got {labels.dtype}")
    return labels.reshape(-1).long().tolist()


def _label_tensor(values: list[Any]) -> torch.Tensor:
    """The labels of every sample (ints, or one-element tensors) as one int64 tensor."""
    import torch

    if set(map(type, values)) == {int}:  # the usual case, without a Python step per sample
        return torch.tensor(values, dtype=torch.int64)
    return torch.cat(
        [
            torch.tensor([value]) if type(value) is int else value.reshape(-1).long()
            for value in values
        ]
    )


def _stacked(values: list[Any], target: torch.dtype) -> torch.Tensor | None:
    """``values`` stacked, detached and on the CPU, to be converted to ``target``.

    ``None`` when they are not all tensors of one shape on one device, or when converting the
    stack could give other values than converting each value: promotion only keeps values when
    the stack already has the ``target`` dtype (integers into ``int64``; integers, halves and
    floats into ``float32``), so any other stack needs every value of one dtype.
    """
    import torch

    try:
        stacked = torch.stack(values)
        if type(stacked) is not torch.Tensor or stacked.is_complex():
            return None
        if stacked.dtype is not target and len({value.dtype for value in values}) != 1:
            return None
        if stacked.requires_grad:
            stacked = stacked.detach()
        return stacked if stacked.is_cpu else stacked.cpu()
    except Exception:  # whatever stacking rejects, the per-sample path handles or reports
        return None


def _as_tensor(value: Any) -> torch.Tensor:
    import torch

    if isinstance(value, torch.Tensor):
        if value.is_cpu and not value.requires_grad:  # the common case: nothing to do
            return value
        return value.detach().cpu()
    return torch.as_tensor(value)


def _label(value: Any, key: str) -> int:
    """One class index, as a Python int (stored so by both of process()'s paths)."""
    if isinstance(value, Mapping):
        value = value["label"]
    label = _as_tensor(value).reshape(-1)
    if label.numel() != 1:
        raise ValueError(
            f"Accuracy is for single-label classification: {key} must hold one class index, "
            f"got {label.numel()} values"
        )
    return int(label.long().item())

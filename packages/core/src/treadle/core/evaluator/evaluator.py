"""``Evaluator``: several metrics evaluated together (MMEngine's ``Evaluator``)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from treadle.core.evaluator.metric import BaseMetric

if TYPE_CHECKING:
    from treadle.core.evaluator.collectives import Collectives


class Evaluator:
    """Runs a list of metrics over the same outputs and merges their results.

    The val/test loops call :meth:`process` once per batch and :meth:`evaluate` once at the end.
    In a distributed run, the loop first hands the evaluator the Runner's strategy with
    :meth:`set_collectives` (or pass ``collectives=`` here), which the metrics use to gather
    results across ranks; without it they assume a single process.

    Args:
        metrics: One metric or a list of them, each a :class:`BaseMetric` or a config dict built
            through the ``METRICS`` registry.
        collectives: The collectives (normally the Runner's strategy) the metrics gather with;
            ``None`` for a single process. Can be set later with :meth:`set_collectives`.

    Raises:
        TypeError: An entry of ``metrics`` is neither a dict nor a :class:`BaseMetric`.

    Example:
        >>> evaluator = Evaluator(dict(type="Accuracy", topk=(1, 2)))
        >>> evaluator.process([dict(pred_score=[0.1, 0.7, 0.2], gt_label=2),
        ...                    dict(pred_score=[0.6, 0.3, 0.1], gt_label=0)])
        >>> evaluator.evaluate(size=2)
        {'accuracy/top1': 50.0, 'accuracy/top2': 100.0}
    """

    def __init__(
        self,
        metrics: Mapping[str, Any] | BaseMetric | Sequence[Mapping[str, Any] | BaseMetric],
        collectives: Collectives | None = None,
    ) -> None:
        from treadle.core.registry import METRICS

        self._dataset_meta: dict[str, Any] | None = None
        items: Sequence[Any] = (
            [metrics] if isinstance(metrics, (Mapping, BaseMetric, str)) else list(metrics)
        )
        self.metrics: list[BaseMetric] = []
        for index, metric in enumerate(items):
            if isinstance(metric, Mapping):
                metric = METRICS.build(metric)
            if not isinstance(metric, BaseMetric):
                raise TypeError(
                    f"metrics[{index}] must be a BaseMetric or a config dict building one, "
                    f"got {type(metric).__name__}: {metric!r}"
                )
            self.metrics.append(metric)
        self._collectives: Collectives | None = None
        if collectives is not None:
            self.set_collectives(collectives)

    @property
    def dataset_meta(self) -> dict[str, Any] | None:
        """Meta information of the dataset; setting it sets it on every metric."""
        return self._dataset_meta

    @dataset_meta.setter
    def dataset_meta(self, dataset_meta: dict[str, Any] | None) -> None:
        self._dataset_meta = dataset_meta
        for metric in self.metrics:
            metric.dataset_meta = dataset_meta

    @property
    def collectives(self) -> Collectives | None:
        """The collectives given to :meth:`set_collectives` (``None``: single process)."""
        return self._collectives

    def set_collectives(self, collectives: Collectives | None) -> None:
        """Give every metric the collectives to gather results with.

        Args:
            collectives: An object with ``rank``, ``world_size``, ``all_gather_object(obj)`` and
                ``broadcast_object(obj, src=0)``: the Runner's strategy. ``None`` restores the
                single-process fallback.

        Raises:
            TypeError: ``collectives`` lacks one of those members.
        """
        if collectives is not None:
            missing = [
                name
                for name in ("rank", "world_size", "all_gather_object", "broadcast_object")
                if not hasattr(collectives, name)
            ]
            if missing:
                raise TypeError(
                    f"collectives ({type(collectives).__name__}) lacks {', '.join(missing)}; "
                    "pass the Runner's strategy or an object with rank, world_size, "
                    "all_gather_object and broadcast_object"
                )
        self._collectives = collectives
        for metric in self.metrics:
            metric.collectives = collectives

    def process(
        self, data_samples: Sequence[Any] | Mapping[str, Any], data_batch: Any = None
    ) -> None:
        """Hand one batch of outputs to every metric.

        Data elements (objects with ``to_dict()``, such as ``BaseDataElement``) are converted to
        dicts first, as in MMEngine; dicts and other objects pass unchanged. Batched outputs, one
        dict of batch-major values (``{"pred_label": tensor of N, "gt_label": tensor of N}``),
        go to each metric's :meth:`~BaseMetric.process_batch`: metrics that work on whole
        batches skip MMEngine's per-sample objects, the others get them split out.

        Args:
            data_samples: The model's outputs (predictions with their ground truth): a sequence
                of per-sample results, or one dict of batched values.
            data_batch: The batch from the dataloader.

        Raises:
            ValueError: Batched outputs whose values differ in length (raised by the metrics,
                each of which checks the batch it splits or reads).
        """
        if isinstance(data_samples, Mapping):  # batched outputs: {key: batch-major values}
            for metric in self.metrics:
                metric.process_batch(data_batch, data_samples)
            return
        samples = list(data_samples)
        if set(map(type, samples)) - {dict}:  # not all plain dicts (which pass unchanged)
            samples = [_as_dict(sample) for sample in samples]
        for metric in self.metrics:
            metric.process(data_batch, samples)

    def evaluate(self, size: int) -> dict[str, Any]:
        """Evaluate every metric and merge their results.

        Args:
            size: The dataset size (see :meth:`BaseMetric.evaluate`).

        Returns:
            All metrics' results in one dict.

        Raises:
            ValueError: Two metrics returned the same name (give them different prefixes).
        """
        merged: dict[str, Any] = {}
        owner: dict[str, int] = {}
        for index, metric in enumerate(self.metrics):
            results = metric.evaluate(size)
            for name in results:
                if name in merged:
                    first = owner[name]
                    raise ValueError(
                        "There are multiple evaluation results with the same metric name "
                        f"{name!r}: metrics[{first}] ({self.metrics[first]!r}) and "
                        f"metrics[{index}] ({metric!r}) both returned it. Please make sure all "
                        "metrics have different prefixes."
                    )
                owner[name] = index
            merged.update(results)
        return merged

    def offline_evaluate(
        self, data_samples: Sequence[Any], data: Sequence[Any] | None = None, chunk_size: int = 1
    ) -> dict[str, Any]:
        """Evaluate saved outputs (e.g. loaded from a :class:`DumpResults` file).

        Args:
            data_samples: Every output of the model on the dataset, in dataset order.
            data: The matching dataset items, if the metrics need them; each chunk is collated
                with ``pseudo_collate`` before it reaches :meth:`process`.
            chunk_size: How many samples make one :meth:`process` call.

        Returns:
            The merged metrics, as :meth:`evaluate`.

        Raises:
            ValueError: ``chunk_size`` is below 1, or ``data`` and ``data_samples`` differ in
                length.
        """
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
        data_chunks: Iterator[list[Any]] | None = None
        collate: Any = None
        if data is not None:
            if len(data) != len(data_samples):
                raise ValueError(
                    "data_samples and data should have the same length, but got "
                    f"data_samples length: {len(data_samples)} data length: {len(data)}"
                )
            from treadle.core.dataset.utils import pseudo_collate

            collate = pseudo_collate
            data_chunks = _chunks(data, chunk_size)
        size = 0
        for sample_chunk in _chunks(data_samples, chunk_size):
            data_batch = None if data_chunks is None else collate(next(data_chunks))
            size += len(sample_chunk)
            self.process(sample_chunk, data_batch)
        return self.evaluate(size)

    def __repr__(self) -> str:
        return f"Evaluator(metrics={self.metrics!r})"


def _as_dict(sample: Any) -> Any:
    if not isinstance(sample, dict) and callable(getattr(sample, "to_dict", None)):
        return sample.to_dict()
    return sample


def _chunks(items: Sequence[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk

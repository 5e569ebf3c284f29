"""``BaseMetric`` (MMEngine's metric interface) and the ``DumpResults`` metric.

A metric sees the validation set batch by batch in :meth:`BaseMetric.process`, which appends
whatever it needs to ``self.results``; :meth:`BaseMetric.evaluate` then gathers the results of
every rank on rank 0 in dataset order, drops the sampler's padding, calls
:meth:`BaseMetric.compute_metrics` there, prefixes the keys and sends the metrics to every rank.
A metric written for MMEngine (``process`` + ``compute_metrics``, ``default_prefix``) works
unchanged.
"""

from __future__ import annotations

import logging
from abc import ABCMeta, abstractmethod
from dataclasses import dataclass
from itertools import chain
from operator import attrgetter
from typing import TYPE_CHECKING, Any, ClassVar

from treadle.core.evaluator.collectives import LOCAL_COLLECTIVES, Collectives, collect_results
from treadle.core.logging import print_log

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

#: Values accepted for ``collect_device`` (MMEngine's). Results travel through the collectives
#: object either way; the strategy decides the transport.
_COLLECT_DEVICES = ("cpu", "gpu", "npu")

_IS_CPU = attrgetter("is_cpu")


@dataclass(frozen=True)
class _RemoteFailure:
    """Broadcast by rank 0 instead of the metrics when ``compute_metrics`` raised there."""

    metric: str
    error: str


class BaseMetric(metaclass=ABCMeta):
    """Base class for a metric (MMEngine's ``BaseMetric``).

    Subclasses implement :meth:`process` (append per-sample results to ``self.results``) and
    :meth:`compute_metrics` (turn the full list into a ``dict``), and usually set the class
    attribute ``default_prefix``.

    Collectives: the metric gathers results through :attr:`collectives` (the Runner's strategy,
    set by :meth:`Evaluator.set_collectives <treadle.core.evaluator.Evaluator.set_collectives>`),
    or a single-process fallback when none was set.

    Args:
        collect_device: ``"cpu"`` (default), ``"gpu"`` or ``"npu"``, as in MMEngine. Kept for
            config compatibility: results are gathered with the collectives'
            ``all_gather_object`` in every case.
        prefix: Prepended to each metric name as ``"prefix/name"`` to tell metrics of different
            evaluators apart; ``default_prefix`` when not given (or empty). A warning is logged
            when neither is set.
        collect_dir: MMEngine's shared directory for collecting results in ``cpu`` mode.
            Accepted (only with ``collect_device="cpu"``, as in MMEngine) but unused: results
            travel through ``all_gather_object``.

    Raises:
        ValueError: ``collect_device`` is not one of ``cpu``/``gpu``/``npu``, or ``collect_dir``
            is given with another ``collect_device``.
    """

    default_prefix: ClassVar[str | None] = None

    def __init__(
        self,
        collect_device: str = "cpu",
        prefix: str | None = None,
        collect_dir: str | None = None,
    ) -> None:
        if collect_device not in _COLLECT_DEVICES:
            raise ValueError(
                f"collect_device must be one of {', '.join(map(repr, _COLLECT_DEVICES))}, "
                f"got {collect_device!r}"
            )
        if collect_dir is not None and collect_device != "cpu":
            raise ValueError(
                "collect_dir can only be set when collect_device='cpu', "
                f"got collect_device={collect_device!r}"
            )
        self._dataset_meta: dict[str, Any] | None = None
        self._collectives: Collectives | None = None
        self.collect_device = collect_device
        self.collect_dir = collect_dir
        self.results: list[Any] = []
        self.prefix: str | None = prefix or self.default_prefix
        if self.prefix is None:
            print_log(
                f"The prefix is not set in metric class {type(self).__name__}.",
                logger="current",
                level=logging.WARNING,
            )

    @property
    def dataset_meta(self) -> dict[str, Any] | None:
        """Meta information of the dataset (class names, palette, …), set by the loop."""
        return self._dataset_meta

    @dataset_meta.setter
    def dataset_meta(self, dataset_meta: dict[str, Any] | None) -> None:
        self._dataset_meta = dataset_meta

    @property
    def collectives(self) -> Collectives:
        """What :meth:`evaluate` gathers and broadcasts with; setting ``None`` restores the
        single-process fallback."""
        # getattr: a subclass that forgot ``super().__init__()`` still evaluates on one process.
        collectives = getattr(self, "_collectives", None)
        return LOCAL_COLLECTIVES if collectives is None else collectives

    @collectives.setter
    def collectives(self, collectives: Collectives | None) -> None:
        self._collectives = collectives

    @abstractmethod
    def process(self, data_batch: Any, data_samples: Sequence[dict[str, Any]]) -> None:
        """Process one batch; store what :meth:`compute_metrics` needs in ``self.results``.

        Store one item per sample so that results gathered from several ranks come back in
        dataset order and the sampler's padding can be dropped.

        Args:
            data_batch: The batch from the dataloader (``None`` in offline evaluation without
                data).
            data_samples: The model's outputs for the batch, as dicts.
        """

    def process_batch(self, data_batch: Any, outputs: Mapping[str, Any]) -> None:
        """Process one batch of *batched* outputs: ``{key: batch-major values}``.

        A model's ``val_step``/``test_step`` may return one dict of batch tensors (e.g.
        ``{"pred_label": logits.argmax(-1), "gt_label": labels}``) instead of MMEngine's list of
        per-sample results; the :class:`~treadle.core.evaluator.Evaluator` then calls this. Here
        the batch is split into per-sample dicts (sample ``i`` holds every key's ``i``-th
        element) and handed to :meth:`process`, so every metric works with batched outputs;
        a metric that can work on the whole batch (as :class:`Accuracy` does) overrides this
        and skips the per-sample objects.

        Args:
            data_batch: The batch from the dataloader.
            outputs: The model's batched outputs; every value has the same length.
        """
        self.process(data_batch, split_batch(outputs))

    @abstractmethod
    def compute_metrics(self, results: list[Any]) -> dict[str, Any]:
        """Compute the metrics from every sample's results (called on rank 0 only).

        Args:
            results: The results of the whole dataset, in dataset order. Use this argument, not
                ``self.results``, which only holds this rank's part.

        Returns:
            Metric names (without prefix) to values.
        """

    def evaluate(self, size: int) -> dict[str, Any]:
        """Gather the results of all ranks, compute the metrics on rank 0 and share them.

        ``self.results`` is cleared afterwards (also when computing fails).

        Args:
            size: The dataset size. The sampler may pad the last round so that every rank gets
                as many samples; results beyond ``size`` are that padding and are dropped.

        Returns:
            The metrics, with keys ``"prefix/name"`` when a prefix is set; the same dict on every
            rank.

        Raises:
            TypeError: ``compute_metrics`` did not return a dict.
            RuntimeError: On ranks other than 0, when ``compute_metrics`` failed on rank 0 (rank
                0 raises the original error).
        """
        if not self.results:
            print_log(
                f"{type(self).__name__} got empty `self.results`. Please ensure that the "
                "processed results are properly added into `self.results` in `process` method.",
                logger="current",
                level=logging.WARNING,
            )
        collectives = self.collectives
        distributed = collectives.world_size > 1
        try:
            results = collect_results(self.results, size, collectives)
            metrics: dict[str, Any] | _RemoteFailure | None = None
            if collectives.rank == 0:
                assert results is not None
                try:
                    metrics = self._compute_prefixed(self._results_to_cpu(results))
                except Exception as exc:
                    if distributed:  # let the other ranks fail instead of waiting forever
                        collectives.broadcast_object(
                            _RemoteFailure(type(self).__name__, f"{type(exc).__name__}: {exc}"),
                            src=0,
                        )
                    raise
            if distributed:
                metrics = collectives.broadcast_object(metrics, src=0)
        finally:
            self.results.clear()
        if isinstance(metrics, _RemoteFailure):
            raise RuntimeError(
                f"{metrics.metric}.compute_metrics failed on rank 0: {metrics.error}"
            )
        if not isinstance(metrics, dict):
            raise RuntimeError(
                f"{type(self).__name__}.evaluate received {type(metrics).__name__} from rank 0 "
                "instead of the metrics dict"
            )
        return metrics

    def _results_to_cpu(self, results: list[Any]) -> list[Any]:
        """The gathered results with every tensor on the CPU, for :meth:`compute_metrics`
        (MMEngine's ``_to_cpu``). A metric whose :meth:`process` only ever stores CPU tensors may
        return ``results`` as they are."""
        return _to_cpu(results)  # type: ignore[no-any-return]

    def _compute_prefixed(self, results: list[Any]) -> dict[str, Any]:
        metrics = self.compute_metrics(results)
        if not isinstance(metrics, dict):
            raise TypeError(
                f"{type(self).__name__}.compute_metrics must return a dict, "
                f"got {type(metrics).__name__}"
            )
        if self.prefix:
            return {f"{self.prefix}/{name}": value for name, value in metrics.items()}
        return metrics

    def __repr__(self) -> str:
        return f"{type(self).__name__}(prefix={self.prefix!r})"


class DumpResults(BaseMetric):
    """Dump the model's outputs to a pickle file, for offline evaluation (computes nothing).

    Args:
        out_file_path: Path or URI of the file (any backend of :mod:`treadle.core.fileio`); must
            end with ``.pkl`` or ``.pickle``. Written on rank 0, atomically.
        collect_device: See :class:`BaseMetric`.
        collect_dir: See :class:`BaseMetric`.

    Raises:
        ValueError: ``out_file_path`` does not end with ``.pkl`` or ``.pickle``.
    """

    def __init__(
        self, out_file_path: str, collect_device: str = "cpu", collect_dir: str | None = None
    ) -> None:
        if not isinstance(out_file_path, str) or not out_file_path.endswith((".pkl", ".pickle")):
            raise ValueError(
                f"out_file_path must be a pickle file ending with '.pkl' or '.pickle', "
                f"got {out_file_path!r}"
            )
        super().__init__(collect_device=collect_device, collect_dir=collect_dir)
        self.out_file_path = out_file_path

    def process(self, data_batch: Any, data_samples: Sequence[dict[str, Any]]) -> None:
        """Keep the outputs, with tensors moved to the CPU."""
        self.results.extend(_to_cpu(list(data_samples)))

    def compute_metrics(self, results: list[Any]) -> dict[str, Any]:
        """Write ``results`` to :attr:`out_file_path`; return no metrics."""
        from treadle.core.fileio import dump

        dump(results, self.out_file_path)
        print_log(f"Results has been saved to {self.out_file_path}.", logger="current")
        return {}

    def __repr__(self) -> str:
        return f"DumpResults(out_file_path={self.out_file_path!r})"


#: Leaf types :func:`_to_cpu` returns as they are (no ``to_dict``/``cpu``, not containers).
_INERT_TYPES = frozenset({int, float, bool, str, bytes, complex, type(None)})


def _to_cpu(data: Any) -> Any:
    """Move tensors and data elements (anything with ``to_dict`` and ``cpu``) to the CPU,
    through lists, tuples and dicts (MMEngine's ``_to_cpu``).

    Containers are rebuilt (lists, tuples and dicts come back as new plain ``list``/``tuple``/
    ``dict`` objects); leaves that need no move come back as they are.
    """
    import torch

    tensor = torch.Tensor

    def convert(obj: Any) -> Any:
        cls = type(obj)
        if cls in _INERT_TYPES:
            return obj
        if isinstance(obj, tensor):
            return obj if obj.is_cpu else obj.cpu()
        if isinstance(obj, list):
            flat = _flat_cpu_list(obj, tensor) if cls is list else None
            return flat if flat is not None else [convert(item) for item in obj]
        if isinstance(obj, tuple):
            return tuple(convert(item) for item in obj)
        if isinstance(obj, dict):
            return {key: convert(value) for key, value in obj.items()}
        if callable(getattr(obj, "to_dict", None)) and callable(getattr(obj, "cpu", None)):
            return obj.cpu()
        return obj

    return convert(data)


def _flat_cpu_list(items: list[Any], tensor: type) -> list[Any] | None:
    """The fast path of :func:`_to_cpu` for what metrics store most: a list of flat dicts (or of
    leaves) whose values are plain CPU tensors and numbers/strings, where converting is copying
    each dict (or the list).

    Returns the copy, or ``None`` (nothing done) when the list is empty or anything in it needs
    the general conversion.
    """
    if not items:
        return None
    kinds = set(map(type, items))
    if kinds == {dict}:
        values = list(chain.from_iterable(map(dict.values, items)))
        if not _cpu_leaves(values, set(map(type, values)), tensor):
            return None
        return list(map(dict, items))
    if not _cpu_leaves(items, kinds, tensor):
        return None
    return list(items)


def _cpu_leaves(values: list[Any], kinds: set[type], tensor: type) -> bool:
    """Whether ``values`` (of the types ``kinds``) are all plain CPU tensors or inert leaves."""
    has_tensors = tensor in kinds
    kinds.discard(tensor)
    if not kinds <= _INERT_TYPES:
        return False
    if has_tensors:
        tensors = [v for v in values if type(v) is tensor] if kinds else values
        return all(map(_IS_CPU, tensors))
    return True


def batch_length(outputs: Mapping[str, Any]) -> int:
    """The number of samples in batched outputs: the common length of every value.

    Raises:
        ValueError: ``outputs`` is empty, or its values differ in length or have none (the
            message names each key's length).
    """
    lengths: dict[str, Any] = {}
    for key, value in outputs.items():
        try:
            lengths[key] = len(value)
        except TypeError:
            lengths[key] = f"no length ({type(value).__name__})"
    values = set(lengths.values())
    if len(values) != 1 or type(next(iter(values))) is not int:
        raise ValueError(
            "batched outputs must be a non-empty dict whose values all have the batch's length "
            f"(one entry per sample), got lengths {lengths}"
        )
    return int(values.pop())


def split_batch(outputs: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Batched outputs as per-sample dicts (MMEngine's form): sample ``i`` holds every key's
    ``i``-th element (tensors are split into views with ``unbind``)."""
    batch_length(outputs)
    columns = []
    for value in outputs.values():
        unbind = getattr(value, "unbind", None)  # a tensor: views, without Python iteration
        columns.append(unbind() if callable(unbind) else list(value))
    keys = list(outputs)
    return [dict(zip(keys, row, strict=True)) for row in zip(*columns, strict=True)]

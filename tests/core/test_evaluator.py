"""BaseMetric and Evaluator: prefixes, result collection across (simulated) ranks in dataset
order with the sampler's padding dropped, broadcasting, duplicate names, warnings,
offline evaluation and registration.

Multi-rank behaviour is simulated here with a collectives double whose ``all_gather_object``
returns every rank's precomputed part, sharded exactly as the DefaultSampler shards (rank-strided,
padded by repeating the first indices). A real multi-process gloo test comes with treadle-dist.
"""

from __future__ import annotations

import importlib
import logging
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from treadle.core.evaluator import (
    LOCAL_COLLECTIVES,
    Accuracy,
    BaseMetric,
    Collectives,
    DumpResults,
    Evaluator,
    collect_results,
    get_metric_value,
)
from treadle.core.evaluator.components import COMPONENTS
from treadle.core.evaluator.metric import _to_cpu
from treadle.core.logging import TreadleLogger
from treadle.core.registry import EVALUATOR, METRICS

# ----------------------------------------------------------------------------- helpers


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


class RecordIds(BaseMetric):
    """Stores each sample's ``id``; its metric is the list of ids in the order received."""

    default_prefix = "ids"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.computed_on: list[list[Any]] = []

    def process(self, data_batch: Any, data_samples: Sequence[dict[str, Any]]) -> None:
        self.results.extend(sample["id"] for sample in data_samples)

    def compute_metrics(self, results: list[Any]) -> dict[str, Any]:
        self.computed_on.append(list(results))
        return {"order": list(results), "count": len(results)}


class Fixed(BaseMetric):
    """Returns a fixed dict (after processing anything)."""

    def __init__(self, values: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.values = values

    def process(self, data_batch: Any, data_samples: Sequence[dict[str, Any]]) -> None:
        self.results.extend(data_samples)

    def compute_metrics(self, results: list[Any]) -> dict[str, Any]:
        return dict(self.values)


class Failing(RecordIds):
    def compute_metrics(self, results: list[Any]) -> dict[str, Any]:
        raise ZeroDivisionError("no samples of class 3")


def shard(size: int, world_size: int, round_up: bool = True) -> list[list[int]]:
    """The DefaultSampler's (unshuffled) indices per rank: rank-strided, padded when round_up."""
    indices = list(range(size))
    if round_up:
        total = -(-size // world_size) * world_size
        indices = (indices * (total // max(size, 1) + 1))[:total]
        return [indices[rank:total:world_size] for rank in range(world_size)]
    return [indices[rank:size:world_size] for rank in range(world_size)]


class SimulatedRank:
    """Collectives of one rank of a simulated world.

    ``all_gather_object`` checks that this rank contributes its own part and returns every
    rank's part; the n-th ``broadcast_object`` call returns what rank ``src`` sent in its n-th
    call (rank 0 runs first).
    """

    def __init__(self, rank: int, world: SimulatedWorld) -> None:
        self.rank = rank
        self.world_size = world.world_size
        self.world = world
        self.broadcasts_seen = 0

    def all_gather_object(self, obj: Any) -> list[Any]:
        assert obj == self.world.parts[self.rank]
        self.world.gathers.append(self.rank)
        return [list(part) for part in self.world.parts]

    def broadcast_object(self, obj: Any, src: int = 0) -> Any:
        if self.rank == src:
            self.world.broadcast.append(obj)
            return obj
        assert obj is None
        self.broadcasts_seen += 1
        return self.world.broadcast[self.broadcasts_seen - 1]


class SimulatedWorld:
    def __init__(self, world_size: int) -> None:
        self.world_size = world_size
        self.parts: list[list[Any]] = []
        self.broadcast: list[Any] = []
        self.gathers: list[int] = []

    def ranks(self) -> list[SimulatedRank]:
        return [SimulatedRank(rank, self) for rank in range(self.world_size)]


def run_world(
    make_metric: Any,
    samples: list[dict[str, Any]],
    world_size: int,
    batch_size: int,
    round_up: bool = True,
) -> tuple[list[dict[str, Any]], list[BaseMetric]]:
    """Each rank processes its shard in batches; then every rank evaluates (rank 0 first)."""
    world = SimulatedWorld(world_size)
    metrics = [make_metric() for _ in range(world_size)]
    for rank, (metric, indices) in enumerate(
        zip(metrics, shard(len(samples), world_size, round_up), strict=True)
    ):
        metric.collectives = SimulatedRank(rank, world)
        for start in range(0, len(indices), batch_size):
            metric.process(None, [samples[i] for i in indices[start : start + batch_size]])
    world.parts = [list(metric.results) for metric in metrics]
    outputs = [metric.evaluate(len(samples)) for metric in metrics]
    return outputs, metrics


@pytest.fixture
def log_records() -> Iterator[list[logging.LogRecord]]:
    """Records of the current TreadleLogger (which does not propagate to the root logger)."""
    records: list[logging.LogRecord] = []

    class _Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = TreadleLogger.get_current_instance()
    handler = _Handler(logging.DEBUG)
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def warnings_of(records: list[logging.LogRecord]) -> list[str]:
    return [r.getMessage() for r in records if r.levelno == logging.WARNING]


@pytest.fixture
def registered() -> Iterator[None]:
    """The evaluator components in the root registries (until the built-in plugin adds them)."""
    from treadle.core.plugins import load_plugins
    from treadle.core.registry import REGISTRIES

    load_plugins()
    added: list[tuple[Any, str]] = []
    for registry_name, entries in COMPONENTS.items():
        registry = REGISTRIES[registry_name]
        for name, target in entries.items():
            if name not in registry:
                registry.register_lazy(name, target)
                added.append((registry, name))
    yield
    for registry, name in added:
        registry.unregister(name)


# ----------------------------------------------------------------------------- collect_results


@pytest.mark.parametrize("world_size", [2, 3, 4])
@pytest.mark.parametrize("size", [1, 5, 7, 10, 12])
@pytest.mark.parametrize("round_up", [True, False])
def test_collect_results_restores_dataset_order_and_drops_padding(
    world_size: int, size: int, round_up: bool
) -> None:
    parts = [[f"s{i}" for i in idx] for idx in shard(size, world_size, round_up)]
    world = SimulatedWorld(world_size)
    world.parts = parts
    outputs = [collect_results(parts[r.rank], size, r) for r in world.ranks()]
    assert outputs[0] == [f"s{i}" for i in range(size)]
    assert outputs[1:] == [None] * (world_size - 1)


def test_collect_results_padding_really_is_cut_off() -> None:
    # 7 samples on 4 ranks: rank 3 gets index 0 again as padding.
    parts = [[0, 4], [1, 5], [2, 6], [3, 0]]
    world = SimulatedWorld(4)
    world.parts = parts
    assert collect_results(parts[0], 7, world.ranks()[0]) == [0, 1, 2, 3, 4, 5, 6]
    # Without truncation the merge would be [0, 1, 2, 3, 4, 5, 6, 0].
    assert collect_results(parts[0], 8, world.ranks()[0]) == [0, 1, 2, 3, 4, 5, 6, 0]


def test_collect_results_keeps_none_results() -> None:
    world = SimulatedWorld(2)
    world.parts = [[None, "c"], ["b"]]
    assert collect_results(world.parts[0], 3, world.ranks()[0]) == [None, "b", "c"]


def test_collect_results_single_process_truncates_without_collectives() -> None:
    assert collect_results([1, 2, 3, 4], 3, LOCAL_COLLECTIVES) == [1, 2, 3]
    assert collect_results([1, 2], 5, LOCAL_COLLECTIVES) == [1, 2]
    with pytest.raises(ValueError, match="size must be >= 0, got -1"):
        collect_results([1], -1, LOCAL_COLLECTIVES)


def test_local_collectives_are_identities() -> None:
    assert (LOCAL_COLLECTIVES.rank, LOCAL_COLLECTIVES.world_size) == (0, 1)
    obj = {"a": 1}
    assert LOCAL_COLLECTIVES.all_gather_object(obj) == [obj]
    assert LOCAL_COLLECTIVES.broadcast_object(obj) is obj
    assert isinstance(LOCAL_COLLECTIVES, Collectives)


def test_the_strategy_is_a_collectives_object() -> None:
    from treadle.core.strategy.base import Strategy

    assert isinstance(Strategy(), Collectives)


# ----------------------------------------------------------------------------- BaseMetric


def test_metric_is_computed_prefixed_and_results_cleared() -> None:
    metric = RecordIds()
    metric.process(None, [{"id": 0}, {"id": 1}])
    metric.process(None, [{"id": 2}])
    assert metric.evaluate(3) == {"ids/order": [0, 1, 2], "ids/count": 3}
    assert metric.results == []


def test_prefix_argument_overrides_default_prefix_and_empty_falls_back() -> None:
    metric = RecordIds(prefix="val")
    metric.process(None, [{"id": 0}])
    assert metric.evaluate(1) == {"val/order": [0], "val/count": 1}
    assert RecordIds(prefix="").prefix == "ids"


def test_metric_without_prefix_keeps_names_and_warns_at_init(
    log_records: list[logging.LogRecord],
) -> None:
    metric = Fixed({"acc": 1.0})
    assert warnings_of(log_records) == ["The prefix is not set in metric class Fixed."]
    metric.process(None, [{}])
    assert metric.evaluate(1) == {"acc": 1.0}


def test_evaluate_truncates_to_size_on_one_process() -> None:
    metric = RecordIds()
    metric.process(None, [{"id": i} for i in range(5)])
    assert metric.evaluate(3)["ids/order"] == [0, 1, 2]


def test_empty_results_warn_and_still_compute(log_records: list[logging.LogRecord]) -> None:
    metric = RecordIds()
    assert metric.evaluate(0) == {"ids/order": [], "ids/count": 0}
    assert warnings_of(log_records) == [
        "RecordIds got empty `self.results`. Please ensure that the processed results are "
        "properly added into `self.results` in `process` method."
    ]


def test_tensors_are_moved_to_cpu_before_compute() -> None:
    import torch

    class Keep(RecordIds):
        def process(self, data_batch: Any, data_samples: Sequence[dict[str, Any]]) -> None:
            self.results.extend(data_samples)

    metric = Keep()
    value = torch.arange(3)
    metric.process(None, [{"t": value, "nested": [(value,)]}])
    (result,) = metric.evaluate(1)["ids/order"]
    assert result["t"].device.type == "cpu"
    assert torch.equal(result["nested"][0][0], value)


class CpuElement:
    """A data element double: ``to_dict`` and ``cpu`` (which records the call)."""

    def __init__(self) -> None:
        self.moved: list[CpuElement] = []

    def to_dict(self) -> dict[str, Any]:
        return {}

    def cpu(self) -> str:
        self.moved.append(self)
        return "moved"


def test_to_cpu_copies_flat_dicts_of_cpu_tensors_and_keeps_the_leaves() -> None:
    import torch

    tensor = torch.arange(3)
    items = [{"t": tensor, "i": 1, "f": 2.0, "s": "x", "n": None, "b": True}, {"t": tensor}]
    converted = _to_cpu(items)
    assert converted == items
    assert converted is not items
    assert all(new is not old for new, old in zip(converted, items, strict=True))
    assert all(type(new) is dict for new in converted)
    assert converted[0]["t"] is tensor
    assert converted[1]["t"] is tensor
    assert _to_cpu([]) == []
    assert _to_cpu(tensor) is tensor
    leaves = [tensor, 1, "s", None, tensor]
    converted_leaves = _to_cpu(leaves)
    assert converted_leaves == leaves
    assert converted_leaves is not leaves
    assert converted_leaves[0] is tensor


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(lambda element: element, id="data element"),
        pytest.param(lambda element: [element], id="nested list"),
        pytest.param(lambda element: (element,), id="nested tuple"),
        pytest.param(lambda element: {"inner": element}, id="nested dict"),
    ],
)
def test_to_cpu_list_of_dicts_with_a_data_element_is_converted(other: Any) -> None:
    import torch

    element = CpuElement()
    tensor = torch.arange(2)
    items = [{"t": tensor}, {"t": tensor, "other": other(element)}]
    converted = _to_cpu(items)
    assert element.moved == [element]
    assert converted[0] == {"t": tensor}
    assert converted[1]["t"] is tensor
    assert converted[1]["other"] == other("moved")
    assert type(converted[1]["other"]) is type(other("moved"))


def test_to_cpu_leaves_other_objects_and_rebuilds_container_subclasses() -> None:
    import torch

    class CpuOnly:
        def cpu(self) -> str:
            raise AssertionError("only data elements (to_dict and cpu) are moved")

    class Items(list):  # type: ignore[type-arg]
        pass

    keep = CpuOnly()
    parameter = torch.nn.Parameter(torch.ones(2))
    items = [OrderedDict(a=keep), {"b": keep}, Items([parameter])]
    converted = _to_cpu(items)
    assert converted == [{"a": keep}, {"b": keep}, [parameter]]
    assert [type(item) for item in converted] == [dict, dict, list]
    assert converted[0]["a"] is keep
    assert converted[2][0] is parameter  # a CPU tensor subclass: its cpu() is itself


def test_to_cpu_moves_tensors_that_are_not_on_the_cpu() -> None:
    import torch

    # Meta tensors are not on the CPU, and cannot be copied there: the error shows the move was
    # attempted (a CUDA-free stand-in for a GPU tensor).
    meta = torch.empty(2, device="meta")
    for data in ([{"t": torch.arange(2)}, {"t": meta}], [1, meta], {"t": meta}, meta):
        with pytest.raises(NotImplementedError, match="meta tensor"):
            _to_cpu(data)


@pytest.mark.skipif(not _cuda_available(), reason="needs CUDA")
def test_to_cpu_moves_cuda_tensors() -> None:
    import torch

    cuda = torch.arange(3, device="cuda")
    converted = _to_cpu([{"t": torch.arange(3), "g": cuda, "n": [cuda]}])
    assert [
        v.device.type for v in (converted[0]["t"], converted[0]["g"], converted[0]["n"][0])
    ] == ["cpu"] * 3
    assert torch.equal(converted[0]["g"], torch.arange(3))


@pytest.mark.parametrize("world_size", [2, 3])
@pytest.mark.parametrize("size", [5, 7, 9])
@pytest.mark.parametrize("batch_size", [1, 2])
def test_distributed_evaluate_merges_in_dataset_order_and_broadcasts(
    world_size: int, size: int, batch_size: int
) -> None:
    samples = [{"id": i} for i in range(size)]
    outputs, metrics = run_world(RecordIds, samples, world_size, batch_size)
    expected = {"ids/order": list(range(size)), "ids/count": size}
    assert outputs == [expected] * world_size  # every rank gets rank 0's metrics
    computed = [m.computed_on for m in metrics]  # type: ignore[attr-defined]
    assert computed == [[list(range(size))]] + [[]] * (world_size - 1)  # rank 0 only
    assert all(m.results == [] for m in metrics)


def test_distributed_evaluate_without_round_up() -> None:
    outputs, _ = run_world(RecordIds, [{"id": i} for i in range(7)], 3, 2, round_up=False)
    assert outputs[0]["ids/order"] == list(range(7))


@pytest.mark.parametrize("world_size", [2, 3])
@pytest.mark.parametrize("size", [5, 7, 9])
@pytest.mark.parametrize("batch_size", [2, 4])
def test_distributed_accuracy_of_batched_outputs_counts_each_sample_once(
    world_size: int, size: int, batch_size: int
) -> None:
    """Batched outputs (one dict of batch tensors per step) are kept one result per sample, so
    merging the ranks' results puts them in dataset order and drops the padding as for
    per-sample outputs: the accuracy is that of the dataset, each sample counted once."""
    import torch

    from treadle.core.evaluator import Accuracy

    gt = [i % 3 for i in range(size)]
    pred = [0] * size  # right exactly where gt is 0; the padding repeats sample 0, a right one
    world = SimulatedWorld(world_size)
    metrics = [Accuracy() for _ in range(world_size)]
    for rank, (metric, indices) in enumerate(zip(metrics, shard(size, world_size), strict=True)):
        metric.collectives = SimulatedRank(rank, world)
        for start in range(0, len(indices), batch_size):
            batch = indices[start : start + batch_size]
            metric.process_batch(
                None,
                {
                    "gt_label": torch.tensor([gt[i] for i in batch]),
                    "pred_label": torch.tensor([pred[i] for i in batch]),
                },
            )
    world.parts = [list(metric.results) for metric in metrics]
    outputs = [metric.evaluate(size) for metric in metrics]
    expected = 100 * sum(g == p for g, p in zip(gt, pred, strict=True)) / size
    assert outputs == [{"accuracy/top1": pytest.approx(expected)}] * world_size


def test_failure_on_rank0_reaches_the_other_ranks() -> None:
    samples = [{"id": i} for i in range(4)]
    world = SimulatedWorld(2)
    metrics = [Failing(), Failing()]
    for rank, metric in enumerate(metrics):
        metric.collectives = SimulatedRank(rank, world)
        metric.process(None, [samples[i] for i in shard(4, 2)[rank]])
    world.parts = [list(m.results) for m in metrics]
    with pytest.raises(ZeroDivisionError, match="no samples of class 3"):
        metrics[0].evaluate(4)
    with pytest.raises(
        RuntimeError,
        match=r"Failing.compute_metrics failed on rank 0: ZeroDivisionError: no samples of class 3",
    ):
        metrics[1].evaluate(4)
    assert metrics[0].results == []
    assert metrics[1].results == []


def test_compute_metrics_must_return_a_dict() -> None:
    class Bad(RecordIds):
        def compute_metrics(self, results: list[Any]) -> dict[str, Any]:
            return [1]  # type: ignore[return-value]

    metric = Bad()
    metric.process(None, [{"id": 0}])
    with pytest.raises(TypeError, match=r"Bad\.compute_metrics must return a dict, got list"):
        metric.evaluate(1)


def test_collectives_default_and_reset() -> None:
    metric = RecordIds()
    assert metric.collectives is LOCAL_COLLECTIVES
    world = SimulatedWorld(2)
    metric.collectives = world.ranks()[1]
    assert metric.collectives.rank == 1
    metric.collectives = None
    assert metric.collectives is LOCAL_COLLECTIVES


def test_dataset_meta_property() -> None:
    metric = RecordIds()
    assert metric.dataset_meta is None
    metric.dataset_meta = {"classes": ("cat", "dog")}
    assert metric.dataset_meta == {"classes": ("cat", "dog")}


def test_bad_collect_arguments() -> None:
    with pytest.raises(ValueError, match=r"collect_device must be one of 'cpu', 'gpu', 'npu'"):
        RecordIds(collect_device="cuda")
    with pytest.raises(ValueError, match=r"collect_dir can only be set when collect_device='cpu'"):
        RecordIds(collect_device="gpu", collect_dir="/tmp/x")
    metric = RecordIds(collect_device="gpu")
    assert metric.collect_device == "gpu"
    assert metric.collect_dir is None


def test_base_metric_is_abstract() -> None:
    with pytest.raises(TypeError, match="abstract"):
        BaseMetric()  # type: ignore[abstract]


# ----------------------------------------------------------------------------- Evaluator


def test_evaluator_merges_metrics_and_converts_data_elements() -> None:
    class Element:
        def __init__(self, id_: int) -> None:
            self.id_ = id_

        def to_dict(self) -> dict[str, Any]:
            return {"id": self.id_}

    ids, fixed = RecordIds(), Fixed({"x": 2}, prefix="f")
    evaluator = Evaluator([ids, fixed])
    evaluator.process([Element(0), {"id": 1}], data_batch={"inputs": [0, 1]})
    evaluator.process([Element(2)])
    assert evaluator.evaluate(3) == {"ids/order": [0, 1, 2], "ids/count": 3, "f/x": 2}
    assert evaluator.metrics == [ids, fixed]


def test_evaluator_passes_dicts_and_dict_subclasses_unchanged_in_a_new_list() -> None:
    class Sample(dict):  # type: ignore[type-arg]
        def to_dict(self) -> dict[str, Any]:
            raise AssertionError("dicts are not converted")

    seen: list[Sequence[Any]] = []

    class Spy(RecordIds):
        def process(self, data_batch: Any, data_samples: Sequence[dict[str, Any]]) -> None:
            seen.append(data_samples)

    evaluator = Evaluator(Spy())
    plain = [{"id": 0}, {"id": 1}]
    evaluator.process(plain)
    subclassed = [{"id": 0}, Sample(id=1)]
    evaluator.process(tuple(subclassed))
    assert seen == [plain, subclassed]
    assert type(seen[0]) is list
    assert seen[0] is not plain
    assert all(new is old for new, old in zip(seen[0], plain, strict=True))
    assert all(new is old for new, old in zip(seen[1], subclassed, strict=True))


def test_evaluator_passes_data_batch_to_metrics() -> None:
    seen: list[Any] = []

    class Spy(RecordIds):
        def process(self, data_batch: Any, data_samples: Sequence[dict[str, Any]]) -> None:
            seen.append((data_batch, list(data_samples)))

    evaluator = Evaluator(Spy())
    evaluator.process([{"id": 0}], data_batch={"inputs": "x"})
    assert seen == [({"inputs": "x"}, [{"id": 0}])]


def test_duplicate_metric_name_names_both_metrics() -> None:
    evaluator = Evaluator([Fixed({"a": 1, "b": 2}, prefix="m"), Fixed({"b": 3}, prefix="m")])
    for metric in evaluator.metrics:
        metric.process(None, [{}])
    with pytest.raises(ValueError) as info:
        evaluator.evaluate(1)
    message = str(info.value)
    assert "same metric name 'm/b'" in message
    assert "metrics[0] (Fixed(prefix='m'))" in message
    assert "metrics[1] (Fixed(prefix='m'))" in message
    assert "different prefixes" in message


def test_dataset_meta_propagates_to_metrics() -> None:
    evaluator = Evaluator([RecordIds(), RecordIds(prefix="b")])
    meta = {"classes": ["a", "b"]}
    evaluator.dataset_meta = meta
    assert evaluator.dataset_meta is meta
    assert [m.dataset_meta for m in evaluator.metrics] == [meta, meta]


def test_set_collectives_reaches_every_metric_and_runs_distributed() -> None:
    samples = [{"id": i} for i in range(5)]
    world = SimulatedWorld(2)
    evaluators = [Evaluator([RecordIds(), RecordIds(prefix="b")]) for _ in range(2)]
    for rank, evaluator in zip(world.ranks(), evaluators, strict=True):
        evaluator.set_collectives(rank)
        assert all(m.collectives is rank for m in evaluator.metrics)
        evaluator.process([samples[i] for i in shard(5, 2)[rank.rank]])
    world.parts = [list(m.results) for m in (evaluators[0].metrics[0], evaluators[1].metrics[0])]
    results = [evaluator.evaluate(5) for evaluator in evaluators]
    order = [0, 1, 2, 3, 4]
    expected = {"ids/order": order, "ids/count": 5, "b/order": order, "b/count": 5}
    assert results == [expected, expected]
    evaluators[0].set_collectives(None)
    assert evaluators[0].metrics[0].collectives is LOCAL_COLLECTIVES


def test_collectives_constructor_argument_and_validation() -> None:
    rank = SimulatedWorld(2).ranks()[1]
    evaluator = Evaluator(RecordIds(), collectives=rank)
    assert evaluator.collectives is rank
    assert evaluator.metrics[0].collectives is rank
    with pytest.raises(
        TypeError, match=r"\(object\) lacks rank, world_size, all_gather_object, broadc"
    ):
        Evaluator(RecordIds()).set_collectives(object())  # type: ignore[arg-type]


def test_evaluator_rejects_other_entries() -> None:
    with pytest.raises(TypeError, match=r"metrics\[1\] must be a BaseMetric or a config dict"):
        Evaluator([RecordIds(), 3])  # type: ignore[list-item]


def test_offline_evaluate_in_chunks() -> None:
    calls: list[tuple[Any, list[int]]] = []

    class Spy(RecordIds):
        def process(self, data_batch: Any, data_samples: Sequence[dict[str, Any]]) -> None:
            calls.append((data_batch, [s["id"] for s in data_samples]))
            super().process(data_batch, data_samples)

    evaluator = Evaluator(Spy())
    result = evaluator.offline_evaluate([{"id": i} for i in range(5)], chunk_size=2)
    assert result == {"ids/order": [0, 1, 2, 3, 4], "ids/count": 5}
    assert calls == [(None, [0, 1]), (None, [2, 3]), (None, [4])]


def test_offline_evaluate_collates_data_chunks() -> None:
    batches: list[Any] = []

    class Spy(RecordIds):
        def process(self, data_batch: Any, data_samples: Sequence[dict[str, Any]]) -> None:
            batches.append(data_batch)
            super().process(data_batch, data_samples)

    data = [{"inputs": i * 10, "name": f"n{i}"} for i in range(3)]
    result = Evaluator(Spy()).offline_evaluate([{"id": i} for i in range(3)], data, chunk_size=2)
    assert result["ids/count"] == 3
    assert batches == [{"inputs": [0, 10], "name": ["n0", "n1"]}, {"inputs": [20], "name": ["n2"]}]


def test_offline_evaluate_bad_arguments() -> None:
    evaluator = Evaluator(RecordIds())
    with pytest.raises(ValueError, match="data_samples length: 2 data length: 1"):
        evaluator.offline_evaluate([{"id": 0}, {"id": 1}], [{}])
    with pytest.raises(ValueError, match="chunk_size must be a positive int, got 0"):
        evaluator.offline_evaluate([{"id": 0}], chunk_size=0)


def test_offline_evaluate_reads_dump_results_back(tmp_path: Any) -> None:
    import torch

    from treadle.core.fileio import load

    out = str(tmp_path / "preds.pkl")
    samples = [{"pred_score": torch.tensor([0.2, 0.8]), "gt_label": i % 2} for i in range(4)]
    dumper = Evaluator(DumpResults(out))
    dumper.process(samples[:3])
    dumper.process(samples[3:])
    assert dumper.evaluate(4) == {}
    reloaded = load(out)
    assert Evaluator(Accuracy()).offline_evaluate(reloaded, chunk_size=3) == {"accuracy/top1": 50.0}


# ----------------------------------------------------------------------------- registration


def test_components_point_at_the_classes() -> None:
    expected = {
        "EVALUATOR": {"Evaluator": Evaluator},
        "METRICS": {"DumpResults": DumpResults, "Accuracy": Accuracy},
    }
    resolved = {
        registry: {
            name: getattr(importlib.import_module(target.split(":")[0]), target.split(":")[1])
            for name, target in entries.items()
        }
        for registry, entries in COMPONENTS.items()
    }
    assert resolved == expected


@pytest.mark.usefixtures("registered")
def test_build_evaluator_and_metrics_from_config() -> None:
    evaluator = EVALUATOR.build(
        {
            "type": "Evaluator",
            "metrics": [{"type": "Accuracy", "topk": (1, 2)}, {"type": "Accuracy", "prefix": "b"}],
        }
    )
    assert isinstance(evaluator, Evaluator)
    assert [type(m) for m in evaluator.metrics] == [Accuracy, Accuracy]
    assert evaluator.metrics[0].topk == (1, 2)  # type: ignore[attr-defined]
    single = Evaluator({"type": "Accuracy"})
    assert isinstance(single.metrics[0], Accuracy)
    assert isinstance(METRICS.build({"type": "DumpResults", "out_file_path": "x.pkl"}), DumpResults)


# ----------------------------------------------------------------------------- utils


def test_get_metric_value() -> None:
    metrics = {"accuracy/top1": 90.0, "accuracy/top5": 99.0, "coco/AP": 0.5, "b/top1": 1.0}
    assert get_metric_value("accuracy/top1", metrics) == 90.0
    assert get_metric_value("AP", metrics) == 0.5
    with pytest.raises(ValueError, match='"top1" matches multiple metrics'):
        get_metric_value("top1", metrics)
    with pytest.raises(ValueError, match='"mAP" can not match any metric'):
        get_metric_value("mAP", metrics)
    with pytest.raises(ValueError, match='"x/top1" can not match any metric'):
        get_metric_value("x/top1", metrics)


def test_gathered_results_do_not_drag_their_batch_storage_along() -> None:
    # Accuracy keeps rows of batch tensors; pickled as they are, each row would carry its whole
    # batch to the other ranks (MMEngine's metrics clone for this reason).
    import pickle

    import torch

    from treadle.core.evaluator.collectives import collect_results

    class Recording:
        rank, world_size = 0, 2

        def __init__(self) -> None:
            self.sent: list[Any] = []

        def all_gather_object(self, obj: Any) -> list[Any]:
            self.sent.append(obj)
            return [obj, obj]

    scores = torch.randn(256, 1000)
    labels = torch.arange(256)
    results: list[Any] = [
        {"pred_score": s, "gt_label": g, "pair": (s[:2], [g])}
        for s, g in zip(scores.unbind(), labels.unbind(), strict=True)
    ]
    results.append({"whole": torch.ones(3)})  # owns its storage: sent as it is
    collectives = Recording()
    merged = collect_results(results, 10_000, collectives)  # type: ignore[arg-type]
    sent = collectives.sent[0]
    assert len(pickle.dumps(sent)) < 2 * scores.nbytes  # not 256 copies of the batch
    assert sent[-1]["whole"] is results[-1]["whole"]
    assert merged is not None
    assert len(merged) == 2 * len(results)
    for original, copy_ in zip(results, sent, strict=True):
        assert original.keys() == copy_.keys()
    assert torch.equal(sent[3]["pred_score"], scores[3])
    assert torch.equal(sent[3]["pair"][0], scores[3, :2])
    assert sent[3]["pair"][1][0] == 3


# ----------------------------------------------------------------------------- batched outputs


def _batched_and_per_sample(kind: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The same predictions as one batched dict and as MMEngine's per-sample list."""
    import torch

    g = torch.Generator().manual_seed(0)
    scores = torch.randn(12, 5, generator=g)
    labels = torch.randint(0, 5, (12,), generator=g)
    if kind == "labels":
        batched = {"pred_label": scores.argmax(-1), "gt_label": labels}
    elif kind == "labels (N, 1)":
        batched = {"pred_label": scores.argmax(-1, keepdim=True), "gt_label": labels[:, None]}
    else:
        batched = {"pred_score": scores, "gt_label": labels}
    keys = list(batched)
    samples = [dict(zip(keys, row, strict=True)) for row in zip(*batched.values(), strict=True)]
    return batched, samples


@pytest.mark.parametrize("kind", ["labels", "labels (N, 1)", "scores"])
def test_batched_outputs_give_the_per_sample_metrics(kind: str) -> None:
    batched, samples = _batched_and_per_sample(kind)
    topk = (1,) if kind != "scores" else (1, 3)
    ours, reference = Evaluator(Accuracy(topk=topk)), Evaluator(Accuracy(topk=topk))
    for start in (0, 5):  # two batches of different sizes
        stop = 5 if start == 0 else 12
        ours.process({k: v[start:stop] for k, v in batched.items()})
        reference.process(samples[start:stop])
    import torch

    got, expected = ours.metrics[0].results, reference.metrics[0].results
    assert len(got) == len(expected) == 12
    for result, ref in zip(got, expected, strict=True):
        assert list(result) == list(ref)
        for key, value in result.items():
            assert type(value) is type(ref[key])
            assert (
                torch.equal(value, ref[key]) if type(value) is torch.Tensor else value == ref[key]
            )
    assert ours.evaluate(12) == reference.evaluate(12)


def test_batched_outputs_are_split_for_metrics_that_take_samples() -> None:
    import torch

    ids, fixed = RecordIds(), Fixed({"x": 1})
    evaluator = Evaluator([ids, fixed])
    data_batch = {"inputs": "batch"}
    evaluator.process({"id": torch.tensor([3, 4]), "name": ["a", "b"]}, data_batch)
    assert [int(i) for i in ids.results] == [3, 4]
    assert [(int(s["id"]), s["name"]) for s in fixed.results] == [(3, "a"), (4, "b")]


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        ({"pred_label": [1, 2], "gt_label": [1]}, r"lengths \{'pred_label': 2, 'gt_label': 1\}"),
        ({}, "non-empty dict"),
        ({"pred_label": 3, "gt_label": [1]}, "no length"),
    ],
)
def test_batched_outputs_of_different_lengths_are_rejected(
    outputs: dict[str, Any], message: str
) -> None:
    metric = Accuracy()
    with pytest.raises(ValueError, match=message):
        Evaluator(metric).process(outputs)
    assert metric.results == []


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        ({"pred_label": [1, 2]}, r"needs 'gt_label' and .* got keys \['pred_label'\]"),
        ({"gt_label": [1, 2], "scores": [0, 1]}, "needs 'gt_label' and 'pred_score'"),
        ({"pred_label": [[1, 2], [0, 1]], "gt_label": [1, 2]}, r"pred_label must hold one"),
        ({"pred_label": [1.0, 2.0], "gt_label": [1, 2]}, "integer class indices"),
        ({"pred_score": [0.1, 0.9], "gt_label": [1, 2]}, r"must be \(batch, classes\)"),
    ],
)
def test_accuracy_rejects_bad_batched_outputs(outputs: dict[str, Any], message: str) -> None:
    metric = Accuracy()
    with pytest.raises(ValueError, match=message):
        metric.process_batch(None, outputs)
    assert metric.results == []

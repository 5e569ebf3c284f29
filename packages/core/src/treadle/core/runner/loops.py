"""Training, validation and test loops (MMEngine's loops, registered in LOOPS).

Each hook point is one visible line. The per-iteration path does no host sync: ``outputs`` stay
tensors, and only the hooks that implement a point are called for it.

Resuming: a loop restored from a checkpoint taken after iteration ``k`` starts at the same place
in the same data order without loading the batches it already trained on; samplers that have
``skip(n)`` (treadle's DefaultSampler and InfiniteSampler) jump forward, others are replayed with a
warning. Each dataloader built by the Runner owns a ``torch.Generator`` reseeded per epoch, so
creating an iterator never draws from the global RNG, and the RNG state restored from the
checkpoint is put back after the iterator exists: the random stream the model sees is the one an
uninterrupted run would have seen.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch

from treadle.core.utils.overrides import keeps_methods

if TYPE_CHECKING:
    from torch.utils.data import DataLoader

    from treadle.core.runner.runner import Runner

__all__ = [
    "BaseLoop",
    "EpochBasedTrainLoop",
    "IterBasedTrainLoop",
    "TestLoop",
    "ValLoop",
    "calc_dynamic_intervals",
]


class BaseLoop:
    """A loop over one dataloader.

    Args:
        runner: The Runner.
        dataloader: A DataLoader, or its config (built with the Runner's seed).
    """

    def __init__(self, runner: Runner, dataloader: DataLoader[Any] | Mapping[str, Any]) -> None:
        self._runner = runner
        self.dataloader: DataLoader[Any] = runner.build_dataloader(dataloader)

    @property
    def runner(self) -> Runner:
        """The Runner this loop belongs to."""
        return self._runner

    def run(self) -> Any:
        """Run the loop."""
        raise NotImplementedError


def calc_dynamic_intervals(
    start_interval: int, dynamic_interval_list: Sequence[tuple[int, int]] | None = None
) -> tuple[list[int], list[int]]:
    """Return MMEngine's ``(milestones, intervals)`` for ``dynamic_intervals``.

    Args:
        start_interval: The interval before the first milestone.
        dynamic_interval_list: ``[(milestone, interval), …]``, milestones increasing.
    """
    if dynamic_interval_list is None:
        return [0], [start_interval]
    milestones = [0]
    intervals = [start_interval]
    for milestone, interval in sorted(dynamic_interval_list):
        if not isinstance(milestone, int) or not isinstance(interval, int) or interval <= 0:
            raise ValueError(
                f"dynamic_intervals entries must be (milestone: int, interval: int > 0), "
                f"got {(milestone, interval)!r}"
            )
        milestones.append(milestone)
        intervals.append(interval)
    return milestones, intervals


def _sampler(dataloader: DataLoader[Any]) -> Any:
    batch_sampler = dataloader.batch_sampler
    inner = getattr(batch_sampler, "sampler", None)
    return inner if inner is not None else dataloader.sampler


def _set_epoch(dataloader: Any, epoch: int) -> None:
    """Call ``set_epoch(epoch)`` on the dataloader's sampler, MMEngine's way: on
    ``dataloader.sampler`` when it has one, else on ``dataloader.batch_sampler.sampler``; samplers
    without ``set_epoch`` are left alone."""
    sampler: Any = getattr(dataloader, "sampler", None)
    if not hasattr(sampler, "set_epoch"):
        sampler = getattr(getattr(dataloader, "batch_sampler", None), "sampler", None)
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)


def _reseed(dataloader: DataLoader[Any], epoch: int) -> None:
    seed = getattr(dataloader, "_treadle_seed", None)
    if seed is not None and dataloader.generator is not None:
        dataloader.generator.manual_seed(seed + epoch)


def _iterate_from(
    dataloader: DataLoader[Any], start_batch: int, runner: Runner, what: str
) -> Iterator[Any]:
    """Iterate ``dataloader`` from batch ``start_batch`` of its current order."""
    from treadle.core.dataset import skip_batches

    if start_batch == 0 or skip_batches(dataloader, start_batch):
        return iter(dataloader)
    sampler = _sampler(dataloader)
    runner.logger.warning(
        f"{what}: the sampler {type(sampler).__name__} cannot skip ahead; replaying "
        f"{start_batch} batches to reach the resumed position"
    )
    iterator = iter(dataloader)
    for _ in range(start_batch):
        next(iterator)
    return iterator


class _TrainLoopMixin:
    """What both train loops share: counters, validation schedule, resume state."""

    runner: Runner
    _runner: Runner
    dataloader: DataLoader[Any]
    _epoch: int
    _iter: int
    _max_iters: int
    _max_epochs: int
    val_begin: int
    val_interval: int
    dynamic_milestones: list[int]
    dynamic_intervals: list[int]
    stop_training: bool
    _pending_rng_state: dict[str, Any] | None
    #: Whether the class keeps the counter properties below, so that the Runner may read
    #: ``_epoch``/``_iter``/``_max_epochs``/``_max_iters`` directly (set per subclass).
    _plain_counters: bool = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._plain_counters = keeps_methods(
            cls, _TrainLoopMixin, ("epoch", "iter", "max_epochs", "max_iters")
        )

    @property
    def max_epochs(self) -> int:
        """Total training epochs."""
        return self._max_epochs

    @property
    def max_iters(self) -> int:
        """Total training iterations."""
        return self._max_iters

    @property
    def epoch(self) -> int:
        """Current epoch (0-based; the number of finished epochs)."""
        return self._epoch

    @property
    def iter(self) -> int:
        """Current iteration (0-based; the number of finished iterations)."""
        return self._iter

    def _train_iter(self, idx: int, data_batch: Any) -> None:
        """One training step between ``before_train_iter`` and ``after_train_iter``."""
        runner = self._runner
        functions = runner._hooks.train_iter_plan
        if functions is None:  # decided once per epoch, and again after hooks change
            functions = runner._hooks.train_iter_functions(runner)
        if functions and runner._direct_hooks:  # the usual case: call the implementations
            for function in functions[0]:
                function(runner, idx, data_batch)
            outputs = runner.model.train_step(data_batch, optim_wrapper=runner.optim_wrapper)
            for function in functions[1]:
                function(runner, idx, data_batch, outputs)
        else:
            runner.call_hook("before_train_iter", batch_idx=idx, data_batch=data_batch)
            outputs = runner.model.train_step(data_batch, optim_wrapper=runner.optim_wrapper)
            runner.call_hook(
                "after_train_iter", batch_idx=idx, data_batch=data_batch, outputs=outputs
            )
        self._iter += 1

    def restore_rng_after_iterator(self, state: dict[str, Any] | None) -> None:
        """Put ``state`` back once the next data iterator exists (set by resume)."""
        self._pending_rng_state = state

    def _apply_pending_rng(self) -> None:
        if self._pending_rng_state is not None:
            from treadle.core.runner.rng import set_rng_state

            set_rng_state(self._pending_rng_state)
            self._pending_rng_state = None

    def _decide_current_val_interval(self, done: int) -> None:
        # MMEngine looks up the milestone of the next epoch/iteration: bisect(milestones, done+1).
        index = bisect.bisect(self.dynamic_milestones, done + 1)
        self.val_interval = self.dynamic_intervals[index - 1]

    def _init_common(
        self, val_begin: int, val_interval: int, dynamic_intervals: Sequence[tuple[int, int]] | None
    ) -> None:
        self.val_begin = val_begin
        self.val_interval = val_interval
        self.stop_training = False
        self._pending_rng_state = None
        self.dynamic_milestones, self.dynamic_intervals = calc_dynamic_intervals(
            val_interval, dynamic_intervals
        )
        dataset = getattr(self.dataloader, "dataset", None)
        metainfo = getattr(dataset, "metainfo", None)
        visualizer = getattr(self.runner, "visualizer", None)
        if metainfo is not None and visualizer is not None:
            visualizer.dataset_meta = metainfo


class EpochBasedTrainLoop(_TrainLoopMixin, BaseLoop):
    """Train by epochs (MMEngine's ``EpochBasedTrainLoop``).

    Args:
        runner: The Runner.
        dataloader: A DataLoader or its config.
        max_epochs: Total training epochs.
        val_begin: The epoch from which validation runs.
        val_interval: Validate every this many epochs (and after the last one).
        dynamic_intervals: ``[(epoch, interval), …]``: change ``val_interval`` from ``epoch`` on.
    """

    def __init__(
        self,
        runner: Runner,
        dataloader: DataLoader[Any] | Mapping[str, Any],
        max_epochs: int,
        val_begin: int = 1,
        val_interval: int = 1,
        dynamic_intervals: Sequence[tuple[int, int]] | None = None,
    ) -> None:
        super().__init__(runner, dataloader)
        if not isinstance(max_epochs, int) or max_epochs <= 0:
            raise ValueError(f"train_cfg.max_epochs must be a positive int, got {max_epochs!r}")
        self._max_epochs = max_epochs
        self._max_iters = max_epochs * len(self.dataloader)
        self._epoch = 0
        self._iter = 0
        self._init_common(val_begin, val_interval, dynamic_intervals)

    def run(self) -> Any:
        """Train until ``max_epochs`` or until a hook sets ``stop_training``."""
        runner = self.runner
        runner.call_hook("before_train")
        while self._epoch < self._max_epochs and not self.stop_training:
            self.run_epoch()
            self._decide_current_val_interval(self._epoch)
            if (
                runner.val_loop is not None
                and self._epoch >= self.val_begin
                and (self._epoch % self.val_interval == 0 or self._epoch == self._max_epochs)
            ):
                runner.val_loop.run()
        runner.call_hook("after_train")
        return runner.model

    def run_epoch(self) -> None:
        """Train one epoch (from the resumed batch when resuming mid-epoch)."""
        runner = self.runner
        runner.call_hook("before_train_epoch")
        runner._hooks.forget_train_iter_plan()
        runner.model.train()
        start = self._iter - self._epoch * len(self.dataloader)  # > 0 only when resumed mid-epoch
        _reseed(self.dataloader, self._epoch)
        batches = _iterate_from(self.dataloader, start, runner, "EpochBasedTrainLoop")
        self._apply_pending_rng()
        # run_iter, unless a subclass overrides it, is _train_iter: call that without the hop.
        step = (
            self._train_iter
            if type(self).run_iter is EpochBasedTrainLoop.run_iter
            else self.run_iter
        )
        for idx, data_batch in enumerate(batches, start):
            step(idx, data_batch)
        runner.call_hook("after_train_epoch")
        self._epoch += 1

    def run_iter(self, idx: int, data_batch: Any) -> None:
        """Train one iteration."""
        self._train_iter(idx, data_batch)


def _infinite_batches(
    dataloader: DataLoader[Any], start_iter: int, runner: Runner
) -> Iterator[Any]:
    """The batches of ``dataloader`` from iteration ``start_iter`` on, one epoch of the sampler
    after another, forever.

    Raises:
        RuntimeError: A whole epoch gave no batch (max_iters could never be reached).
    """
    from treadle.core.dataset import InfiniteSampler

    try:
        length = len(dataloader)
    except TypeError:  # an iterable dataset: no epochs to count
        length = 0
    if isinstance(_sampler(dataloader), InfiniteSampler) or length == 0:
        epoch, start_batch = 0, start_iter
    else:
        epoch, start_batch = divmod(start_iter, length)
    _set_epoch(dataloader, epoch)
    _reseed(dataloader, epoch)
    # Not a generator itself: the first iterator exists when this returns (resume restores the
    # RNG states after that, see restore_rng_after_iterator).
    return _cycle(
        dataloader, epoch, _iterate_from(dataloader, start_batch, runner, "IterBasedTrainLoop")
    )


def _cycle(dataloader: DataLoader[Any], epoch: int, first: Iterator[Any]) -> Iterator[Any]:
    """``first``'s batches, then each later epoch's (see :func:`_infinite_batches`)."""
    yield from first
    while True:
        epoch += 1
        _set_epoch(dataloader, epoch)
        _reseed(dataloader, epoch)
        empty = True
        for batch in dataloader:
            empty = False
            yield batch
        if empty:
            raise RuntimeError(
                "the train dataloader gave no batch in a whole epoch: IterBasedTrainLoop cannot "
                "reach max_iters (is the dataset empty, or smaller than the batch size with "
                "drop_last=True?)"
            )


class IterBasedTrainLoop(_TrainLoopMixin, BaseLoop):
    """Train by iterations (MMEngine's ``IterBasedTrainLoop``): one long "epoch".

    Args:
        runner: The Runner.
        dataloader: A DataLoader or its config.
        max_iters: Total training iterations.
        val_begin: The iteration from which validation runs.
        val_interval: Validate every this many iterations (and after the last one).
        dynamic_intervals: ``[(iteration, interval), …]``.
    """

    def __init__(
        self,
        runner: Runner,
        dataloader: DataLoader[Any] | Mapping[str, Any],
        max_iters: int,
        val_begin: int = 1,
        val_interval: int = 1000,
        dynamic_intervals: Sequence[tuple[int, int]] | None = None,
    ) -> None:
        super().__init__(runner, dataloader)
        if not isinstance(max_iters, int) or max_iters <= 0:
            raise ValueError(f"train_cfg.max_iters must be a positive int, got {max_iters!r}")
        self._max_iters = max_iters
        self._max_epochs = 1  # MMEngine's convention for iteration-based training
        self._epoch = 0
        self._iter = 0
        self._init_common(val_begin, val_interval, dynamic_intervals)

    def run(self) -> Any:
        """Train until ``max_iters`` or until a hook sets ``stop_training``."""
        runner = self.runner
        runner.call_hook("before_train")
        runner.call_hook("before_train_epoch")
        runner._hooks.forget_train_iter_plan()
        batches = _infinite_batches(self.dataloader, self._iter, runner)
        self._apply_pending_rng()
        runner.model.train()
        dynamic = len(self.dynamic_milestones) > 1
        plain_step = type(self).run_iter is IterBasedTrainLoop.run_iter
        train_iter = self._train_iter
        # The stopping test runs before each batch is fetched, as in a ``while`` loop.
        if self._iter < self._max_iters and not self.stop_training:
            for data_batch in batches:
                if plain_step:
                    train_iter(self._iter, data_batch)
                else:
                    self.run_iter(data_batch)
                done = self._iter
                if dynamic:
                    self._decide_current_val_interval(done)
                if (
                    done >= self.val_begin
                    and (done % self.val_interval == 0 or done == self._max_iters)
                    and runner.val_loop is not None
                ):
                    runner.val_loop.run()
                    runner.model.train()
                if done >= self._max_iters or self.stop_training:
                    break
        runner.call_hook("after_train_epoch")
        runner.call_hook("after_train")
        return runner.model

    def run_iter(self, data_batch: Any) -> None:
        """Train one iteration."""
        self._train_iter(self._iter, data_batch)


# -- evaluation --------------------------------------------------------------------------------


def _split_loss(outputs: Any) -> tuple[Any, dict[str, Any]]:
    """Split MMEngine's validation loss off the end of ``outputs``.

    A model's ``val_step`` reports a validation loss by appending an element whose only key is
    ``loss`` (a dict or a data element) holding ``{name: tensor or list of tensors}``; batched
    outputs (one dict of batch-major values) hold that ``{name: ...}`` dict under ``loss``.
    """
    if isinstance(outputs, dict):
        losses = outputs.get("loss")
        if isinstance(losses, Mapping):
            return {k: v for k, v in outputs.items() if k != "loss"}, dict(losses)
        return outputs, {}
    if isinstance(outputs, list) and outputs:
        last = outputs[-1]
        keys = list(last.keys()) if hasattr(last, "keys") else None
        if keys == ["loss"]:
            loss = last["loss"] if isinstance(last, Mapping) else last.loss
            return outputs[:-1], dict(loss)
    return outputs, {}


class _Evaluation:
    """One dataloader with its evaluator and metric prefix."""

    def __init__(self, dataloader: DataLoader[Any], evaluator: Any, prefix: str | None) -> None:
        self.dataloader = dataloader
        self.evaluator = evaluator
        self.prefix = prefix
        self.losses: dict[str, list[torch.Tensor]] = {}

    def add_losses(self, losses: Mapping[str, Any]) -> None:
        for name, value in losses.items():
            values = value if isinstance(value, (list, tuple)) else [value]
            self.losses.setdefault(name, []).extend(v.detach() for v in values)

    def loss_metrics(self, stage: str) -> dict[str, float]:
        """MMEngine's ``_parse_losses``: mean per loss, plus ``<stage>_loss`` over 'loss' keys."""
        metrics: dict[str, float] = {}
        total = 0.0
        for name, values in self.losses.items():
            mean = torch.stack([v.float().mean() for v in values]).mean().item()  # one sync
            metrics[name] = mean
            if "loss" in name:
                total += mean
        metrics[f"{stage}_loss"] = total
        self.losses.clear()
        return metrics


class _EvalLoop(BaseLoop):
    """What ValLoop and TestLoop share: one or several (dataloader, evaluator) pairs, run as
    ``stage`` (``'val'`` or ``'test'``: the hook points and the model's ``<stage>_step``)."""

    stage = "val"

    def __init__(
        self,
        runner: Runner,
        dataloader: DataLoader[Any] | Mapping[str, Any],
        evaluator: Any,
        fp16: bool = False,
    ) -> None:
        self._runner = runner
        self.fp16 = fp16
        self.evaluations: list[_Evaluation] = []
        if _is_named_collection(dataloader):
            named = dict(dataloader)
            if not isinstance(evaluator, Mapping) or set(evaluator) != set(named):
                raise ValueError(
                    f"{self.stage}_dataloader has several named dataloaders {sorted(named)}; "
                    f"{self.stage}_evaluator must be a dict with the same names, got "
                    f"{sorted(evaluator) if isinstance(evaluator, Mapping) else type(evaluator).__name__}"
                )
            for name, loader_cfg in named.items():
                self.evaluations.append(
                    _Evaluation(
                        runner.build_dataloader(loader_cfg),
                        runner.build_evaluator(evaluator[name]),
                        name,
                    )
                )
        else:
            self.evaluations.append(
                _Evaluation(
                    runner.build_dataloader(dataloader), runner.build_evaluator(evaluator), None
                )
            )
        self.dataloader = self.evaluations[0].dataloader
        self.evaluator = self.evaluations[0].evaluator
        for evaluation in self.evaluations:
            dataset = getattr(evaluation.dataloader, "dataset", None)
            metainfo = getattr(dataset, "metainfo", None)
            if metainfo is not None and hasattr(evaluation.evaluator, "dataset_meta"):
                evaluation.evaluator.dataset_meta = metainfo

    def _autocast(self) -> Any:
        import contextlib

        if not self.fp16:
            return contextlib.nullcontext()
        device = self.runner.strategy.device.type
        dtype = torch.float16 if device == "cuda" else torch.bfloat16
        return torch.autocast(device_type=device, dtype=dtype)

    def run(self) -> dict[str, Any]:
        """Evaluate every dataloader and return the metrics."""
        runner = self.runner
        stage = self.stage
        runner.call_hook(f"before_{stage}")
        runner.call_hook(f"before_{stage}_epoch")
        runner.model.eval()
        metrics = self._evaluate_all(f"{stage}_step")
        runner.call_hook(f"after_{stage}_epoch", metrics=metrics)
        runner.call_hook(f"after_{stage}")
        return metrics

    def _evaluate_all(self, step_name: str) -> dict[str, Any]:
        metrics: dict[str, Any] = {}
        for evaluation in self.evaluations:
            for idx, data_batch in enumerate(evaluation.dataloader):
                self.run_iter(idx, data_batch, evaluation, step_name)
            size = len(evaluation.dataloader.dataset)  # type: ignore[arg-type]
            result = dict(evaluation.evaluator.evaluate(size))
            if evaluation.losses:
                result.update(evaluation.loss_metrics(self.stage))
            if evaluation.prefix is not None:
                result = {f"{evaluation.prefix}/{k}": v for k, v in result.items()}
            clash = set(result) & set(metrics)
            if clash:
                raise ValueError(f"{self.stage} metrics {sorted(clash)} are reported twice")
            metrics.update(result)
        return metrics

    @torch.no_grad()
    def run_iter(self, idx: int, data_batch: Any, evaluation: _Evaluation, step_name: str) -> None:
        """Evaluate one batch."""
        runner = self.runner
        runner.call_hook(f"before_{self.stage}_iter", batch_idx=idx, data_batch=data_batch)
        with self._autocast():
            outputs = getattr(runner.model, step_name)(data_batch)
        outputs, losses = _split_loss(outputs)
        if losses:
            evaluation.add_losses(losses)
        evaluation.evaluator.process(data_samples=outputs, data_batch=data_batch)
        runner.call_hook(
            f"after_{self.stage}_iter", batch_idx=idx, data_batch=data_batch, outputs=outputs
        )


def _is_named_collection(value: Any) -> bool:
    """A dict of dataloaders (or their configs), as opposed to one dataloader config."""
    from torch.utils.data import DataLoader

    if not isinstance(value, Mapping) or not value or "dataset" in value:
        return False
    return all(
        isinstance(v, DataLoader) or (isinstance(v, Mapping) and "dataset" in v)
        for v in value.values()
    )


class ValLoop(_EvalLoop):
    """Validation (MMEngine's ``ValLoop``), over one or several dataloaders.

    Args:
        runner: The Runner.
        dataloader: A DataLoader or its config; or ``{name: dataloader}`` for several, in which
            case ``evaluator`` is ``{name: evaluator}`` and metrics are prefixed ``name/``.
        evaluator: An Evaluator, its config, or a list of metric configs.
        fp16: Run the model under autocast (fp16 on CUDA, bf16 on CPU).
    """

    stage = "val"


class TestLoop(_EvalLoop):
    """Test (MMEngine's ``TestLoop``); arguments as :class:`ValLoop`."""

    stage = "test"
    __test__ = False  # not a pytest test class

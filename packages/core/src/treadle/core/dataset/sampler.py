"""Samplers: :class:`DefaultSampler` (epoch-based) and :class:`InfiniteSampler` (iteration-based).

Both produce exactly MMEngine 0.10.7's index order for the same seed, epoch, rank and world size
(``torch.randperm`` with a generator seeded from ``seed`` (+ ``epoch``), strided by rank), so a
run moved from MMEngine sees its data in the same order.

New in treadle: :meth:`DefaultSampler.skip` and :meth:`InfiniteSampler.skip` move the next
iteration forward without producing, let alone loading, the skipped samples. The Runner calls them
when it resumes in the middle of an epoch or an iteration-based run.

Rank and world size come from ``torch.distributed`` when a process group is initialized (else
0 and 1), or from the ``rank``/``world_size`` arguments.
"""

from __future__ import annotations

import itertools
import math
from numbers import Integral
from typing import TYPE_CHECKING

import torch
from torch.utils.data import BatchSampler, Sampler

if TYPE_CHECKING:
    from collections.abc import Iterator, Sized

    from torch.utils.data import DataLoader

__all__ = ["DefaultSampler", "InfiniteSampler", "skip_batches"]


def _dist_info() -> tuple[int, int]:
    """``(rank, world_size)`` of the default process group, or ``(0, 1)`` when there is none."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _draw_seed() -> int:
    """A random seed below 2**31, drawn as MMEngine draws it (numpy's global generator).

    Using numpy's generator (when numpy is installed) keeps runs that seed numpy globally, as
    ``randomness=dict(seed=...)`` does, reproducible; Python's ``random`` is the fallback.
    """
    try:
        import numpy as np
    except ImportError:  # numpy is optional for treadle-core
        import random

        return random.randrange(2**31)
    return int(np.random.randint(2**31))


def _sync_random_seed() -> int:
    """A random seed, the same on every rank (rank 0's, broadcast when a group is initialized)."""
    seed = _draw_seed()
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        box: list[object] = [seed]
        dist.broadcast_object_list(box, src=0)
        seed = int(box[0])  # type: ignore[call-overload]
    return seed


def _check_int(value: object, name: str, minimum: int) -> int:
    """``value`` as an ``int`` when it is an integer ``>= minimum``; else a clear error."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an int, but got {type(value).__name__}: {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, but got {value}")
    return int(value)


def _resolve_placement(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """The ``(rank, world_size)`` to use: the arguments, else the process group's."""
    dist_rank, dist_world = _dist_info()
    world = dist_world if world_size is None else _check_int(world_size, "world_size", 1)
    rank_ = dist_rank if rank is None else _check_int(rank, "rank", 0)
    if rank_ >= world:
        raise ValueError(f"rank must be < world_size ({world}), but got {rank_}")
    return rank_, world


def _resolve_seed(seed: int | None) -> int:
    """``seed`` as an int, or a random seed shared by all ranks when it is ``None``."""
    if seed is None:
        return _sync_random_seed()
    if isinstance(seed, bool) or not isinstance(seed, Integral):
        raise TypeError(f"seed must be an int or None, but got {type(seed).__name__}: {seed!r}")
    return int(seed)


def _dataset_len(dataset: Sized) -> int:
    """``len(dataset)``, or a clear error when the dataset has no length."""
    try:
        return len(dataset)
    except TypeError:
        raise TypeError(
            f"dataset must be Sized (have __len__), but got {type(dataset).__name__}"
        ) from None


class DefaultSampler(Sampler[int]):
    """The default sampler, distributed or not (MMEngine's ``DefaultSampler``).

    Every epoch, the indices are shuffled with a generator seeded with ``seed + epoch`` (the same
    order on every rank), padded by repetition to a multiple of the world size when ``round_up``,
    and rank ``r`` takes every ``world_size``-th index starting at ``r``.

    Differences from PyTorch's ``DistributedSampler``: it works without a process group, and with
    ``round_up=False`` it neither adds nor drops samples (ranks may get one sample fewer).

    Args:
        dataset: The dataset (only its length is used).
        shuffle: Whether to shuffle the indices every epoch.
        seed: The shuffling seed; it must be the same on every rank. ``None`` draws a random one
            (broadcast from rank 0 when a process group is initialized).
        round_up: Whether to repeat indices so that every rank gets the same number.
        rank: This process's rank; by default the process group's (0 without one). New in treadle.
        world_size: The number of ranks; by default the process group's (1 without one).
            New in treadle.

    Raises:
        TypeError: When ``dataset`` has no length, or an argument has the wrong type.
        ValueError: When ``rank``/``world_size`` are out of range.

    Examples:
        >>> sampler = DefaultSampler(range(5), seed=0, rank=1, world_size=2)
        >>> len(sampler)
        3
        >>> sampler.skip(1)  # resume after the first sample of this epoch
        >>> len(list(sampler))
        2
    """

    def __init__(
        self,
        dataset: Sized,
        shuffle: bool = True,
        seed: int | None = None,
        round_up: bool = True,
        *,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        self.rank, self.world_size = _resolve_placement(rank, world_size)
        self.dataset = dataset
        self.shuffle = shuffle
        self.seed = _resolve_seed(seed)
        self.epoch = 0
        self.round_up = round_up
        size = _dataset_len(dataset)
        if round_up:
            self.num_samples = math.ceil(size / self.world_size)
            self.total_size = self.num_samples * self.world_size
        else:
            self.num_samples = max(0, math.ceil((size - self.rank) / self.world_size))
            self.total_size = size
        self._skip = 0

    def _rank_indices(self) -> list[int]:
        """This rank's indices for the current epoch, in order (nothing skipped)."""
        size = len(self.dataset)
        if self.shuffle:
            generator = torch.Generator()
            generator.manual_seed(self.seed + self.epoch)
            indices = torch.randperm(size, generator=generator)
        else:
            indices = torch.arange(size)
        if self.round_up and size:
            # Repeat the whole order until it covers total_size, as MMEngine pads.
            repeats = -(-self.total_size // size)
            indices = indices.repeat(repeats)[: self.total_size]
        rank_indices: list[int] = indices[self.rank : self.total_size : self.world_size].tolist()
        return rank_indices

    def __iter__(self) -> Iterator[int]:
        """Iterate over this rank's indices of the current epoch (after a pending :meth:`skip`)."""
        skip, self._skip = self._skip, 0  # a skip applies to one iteration only
        indices = self._rank_indices()
        return iter(indices[skip:] if skip else indices)

    def __len__(self) -> int:
        """The number of samples of this rank per epoch (a pending :meth:`skip` not deducted)."""
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch, which seeds the shuffle (``seed + epoch``).

        Args:
            epoch: The epoch number.
        """
        self.epoch = epoch

    def skip(self, num_samples: int) -> None:
        """Start the next iteration ``num_samples`` samples into this epoch's order.

        The skipped indices are not produced, so their samples are never loaded. The offset
        applies to the next ``iter()`` only; the iteration after it starts from the beginning
        again. Call it after :meth:`set_epoch`, or before — the epoch is read when iteration
        starts. ``len()`` is unchanged.

        Args:
            num_samples: How many of this rank's samples to skip, ``0 <= num_samples <=
                len(self)``. It replaces a pending skip.

        Raises:
            TypeError: When ``num_samples`` is not an int.
            ValueError: When ``num_samples`` is negative or larger than the epoch.
        """
        num_samples = _check_int(num_samples, "num_samples", 0)
        if num_samples > self.num_samples:
            raise ValueError(
                f"num_samples must be <= the {self.num_samples} samples of an epoch on this rank, "
                f"but got {num_samples}"
            )
        self._skip = num_samples


class InfiniteSampler(Sampler[int]):
    """An endless index stream for iteration-based training (MMEngine's ``InfiniteSampler``).

    The stream is the concatenation of permutations drawn one after another from one generator
    seeded with ``seed`` (or of ``range(len(dataset))`` repeated when ``shuffle`` is false);
    rank ``r`` takes every ``world_size``-th element starting at ``r``. As in MMEngine, the stream
    is made once and continued by every ``iter()`` (a new ``iter()`` does not restart it;
    :meth:`skip` does).

    Args:
        dataset: The dataset (only its length is used; it must not be empty).
        shuffle: Whether to shuffle (a new permutation for each pass over the dataset).
        seed: The seed; it must be the same on every rank. ``None`` draws a random one
            (broadcast from rank 0 when a process group is initialized).
        rank: This process's rank; by default the process group's (0 without one). New in treadle.
        world_size: The number of ranks; by default the process group's (1 without one).
            New in treadle.

    Raises:
        TypeError: When ``dataset`` has no length, or an argument has the wrong type.
        ValueError: When the dataset is empty, or ``rank``/``world_size`` are out of range.
    """

    def __init__(
        self,
        dataset: Sized,
        shuffle: bool = True,
        seed: int | None = None,
        *,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        self.rank, self.world_size = _resolve_placement(rank, world_size)
        self.dataset = dataset
        self.shuffle = shuffle
        self.seed = _resolve_seed(seed)
        self.size = _dataset_len(dataset)
        if self.size == 0:
            # MMEngine loops forever on an empty dataset; say why instead.
            raise ValueError("InfiniteSampler needs a non-empty dataset, but len(dataset) is 0")
        self.indices = self._indices_of_rank()

    def _infinite_indices(self) -> Iterator[int]:
        """The whole stream, all ranks together (MMEngine's; subclasses may override it)."""
        generator = torch.Generator()
        generator.manual_seed(self.seed)
        while True:
            if self.shuffle:
                yield from torch.randperm(self.size, generator=generator).tolist()
            else:
                yield from range(self.size)

    def _indices_of_rank(self, start: int = 0) -> Iterator[int]:
        """This rank's part of the stream, from its ``start``-th element on.

        Args:
            start: How many of this rank's elements to leave out at the front.
        """
        if type(self)._infinite_indices is not InfiniteSampler._infinite_indices:
            # A subclass changed the stream: slice it element by element, as MMEngine does.
            first = self.rank + start * self.world_size
            yield from itertools.islice(self._infinite_indices(), first, None, self.world_size)
            return
        yield from self._strided_stream(start)

    def _strided_stream(self, start: int) -> Iterator[int]:
        """This rank's part of the stream, cut from each permutation with one strided slice.

        The permutations before the one holding the ``start``-th element are drawn (to advance
        the generator) and thrown away; no element before ``start`` is visited one by one.
        """
        size, step = self.size, self.world_size
        # Position of this rank's start-th element in the all-ranks stream, and in its pass.
        passes, offset = divmod(self.rank + start * step, size)
        generator = torch.Generator()
        generator.manual_seed(self.seed)
        if self.shuffle:
            for _ in range(passes):
                torch.randperm(size, generator=generator)
        order = None if self.shuffle else torch.arange(size)
        while True:
            perm = torch.randperm(size, generator=generator) if order is None else order
            if offset < size:
                yield from perm[offset::step].tolist()
            # The first position of the next pass this rank takes: past the last one taken here.
            offset += step * ((size - 1 - offset) // step + 1) - size

    def __iter__(self) -> Iterator[int]:
        """Continue this rank's stream (from a :meth:`skip` position when one was set).

        Every call returns the same stream object, so a consumer that stops early and is
        dropped leaves the stream open for the next (MMEngine's ``yield from`` closed it).
        """
        return self.indices

    def __len__(self) -> int:
        """The length of the dataset (as MMEngine; the stream itself never ends)."""
        return self.size

    def set_epoch(self, epoch: int) -> None:
        """Do nothing: the stream does not depend on epochs (kept for the sampler interface).

        Args:
            epoch: Ignored.
        """

    def skip(self, num_samples: int) -> None:
        """Restart the stream at this rank's ``num_samples``-th element, counted from its start.

        The position is counted from the beginning of the stream (not from where iteration has
        got to, which a prefetching DataLoader runs ahead of), so a resumed run that has consumed
        ``k`` samples per rank calls ``skip(k)`` on a fresh sampler. The permutations wholly
        before that position are generated and discarded; their elements are never produced.
        Later ``iter()`` calls continue from there, as without a skip.

        Args:
            num_samples: How many of this rank's elements to leave out, ``>= 0``.

        Raises:
            TypeError: When ``num_samples`` is not an int.
            ValueError: When ``num_samples`` is negative.
        """
        num_samples = _check_int(num_samples, "num_samples", 0)
        self.indices = self._indices_of_rank(num_samples)


def skip_batches(dataloader: DataLoader[object], num_batches: int) -> bool:
    """Make the next iteration of ``dataloader`` start after ``num_batches`` batches.

    For resuming: the sampler skips ``num_batches * batch_size`` indices (see
    :meth:`DefaultSampler.skip`, :meth:`InfiniteSampler.skip`), so the skipped samples are
    never loaded. This works when the DataLoader batches with PyTorch's own ``BatchSampler``
    (``batch_size=...``, or ``batch_sampler=dict(type=<BatchSampler>)``) over a sampler that
    has a ``skip`` method. Otherwise (a custom batch sampler, whose batches need not take
    ``batch_size`` consecutive indices; an iterable-style dataset; a sampler without ``skip``)
    nothing is changed and ``False`` is returned: the caller replays the batches instead.

    A :class:`DefaultSampler` skip is capped at the epoch (the last batch may be short).

    Args:
        dataloader: The DataLoader, before its next ``iter()``.
        num_batches: How many batches were consumed already.

    Returns:
        Whether the sampler was moved forward.

    Raises:
        TypeError: When ``num_batches`` is not an int.
        ValueError: When ``num_batches`` is negative.
    """
    num_batches = _check_int(num_batches, "num_batches", 0)
    batch_sampler = getattr(dataloader, "batch_sampler", None)
    if type(batch_sampler) is not BatchSampler:
        return False
    sampler = batch_sampler.sampler
    skip = getattr(sampler, "skip", None)
    if not callable(skip):
        return False
    num_samples = num_batches * batch_sampler.batch_size
    if isinstance(sampler, DefaultSampler):
        num_samples = min(num_samples, len(sampler))
    skip(num_samples)
    return True

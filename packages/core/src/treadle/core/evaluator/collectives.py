"""The collectives evaluation needs, and MMEngine's ordered result collection on top of them.

Metrics never import ``torch.distributed``. They talk to a *collectives* object: anything with
``rank``, ``world_size``, ``all_gather_object(obj) -> list`` and ``broadcast_object(obj, src=0)``.
The Runner's strategy (``runner.strategy``) is exactly such an object; the ValLoop/TestLoop hand
it to the evaluator with :meth:`~treadle.core.evaluator.Evaluator.set_collectives`. Without one,
metrics use :data:`LOCAL_COLLECTIVES` (one process: rank 0 of 1).
"""

from __future__ import annotations

from itertools import chain, zip_longest
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Collectives(Protocol):
    """What evaluation needs from a process group (a subset of the Strategy interface).

    Attributes:
        rank: This process's rank among ``world_size`` processes.
        world_size: The number of processes.
    """

    @property
    def rank(self) -> int:
        """This process's rank."""
        ...

    @property
    def world_size(self) -> int:
        """The number of processes."""
        ...

    def all_gather_object(self, obj: Any) -> list[Any]:
        """Return every rank's ``obj``, in rank order (on every rank)."""
        ...

    def broadcast_object(self, obj: Any, src: int = 0) -> Any:
        """Return rank ``src``'s ``obj`` on every rank."""
        ...


class _LocalCollectives:
    """The non-distributed fallback: one process, rank 0 of 1; the collectives are identities."""

    rank: int = 0
    world_size: int = 1

    def all_gather_object(self, obj: Any) -> list[Any]:
        """Return ``[obj]``."""
        return [obj]

    def broadcast_object(self, obj: Any, src: int = 0) -> Any:
        """Return ``obj``."""
        if src != 0:
            raise ValueError(f"src must be 0 without a process group, got {src}")
        return obj

    def __repr__(self) -> str:
        return "_LocalCollectives(rank=0, world_size=1)"


#: The collectives used when none were set: a single process.
LOCAL_COLLECTIVES: Collectives = _LocalCollectives()

#: Pads the shorter per-rank lists in :func:`collect_results` (``None`` is a legal result).
_MISSING = object()


def _compact(results: list[Any]) -> list[Any]:
    """``results`` with every tensor that views a larger storage replaced by a copy of itself.

    Pickling a tensor pickles its whole storage: a per-sample result that is a row of its batch's
    tensor (``unbind``, indexing, iterating) would send the whole batch, once per sample, across
    ranks. Through lists, tuples and dicts; other objects are sent as they are.
    """
    import sys

    torch = sys.modules.get("torch")
    if torch is None:  # no tensor can exist
        return results
    tensor_type = torch.Tensor

    def walk(obj: Any) -> Any:
        if isinstance(obj, tensor_type):
            try:
                larger = obj.untyped_storage().nbytes() > obj.nelement() * obj.element_size()
            except (RuntimeError, NotImplementedError):  # sparse, nested, …: as it is
                return obj
            return obj.clone() if larger else obj
        kind = type(obj)
        if kind is list:
            return [walk(item) for item in obj]
        if kind is tuple:
            return tuple(walk(item) for item in obj)
        if kind is dict:
            return {key: walk(value) for key, value in obj.items()}
        return obj

    compact: list[Any] = walk(results)
    return compact


def collect_results(results: list[Any], size: int, collectives: Collectives) -> list[Any] | None:
    """Gather every rank's results on rank 0 in dataset order and drop the sampler's padding.

    The :class:`~treadle.core.dataset.DefaultSampler` deals indices out rank-strided (rank ``r``
    gets samples ``r, r + W, r + 2W, …``, padded by repeating the first indices so every rank has
    as many), so interleaving the per-rank lists in rank order restores dataset order, and the
    first ``size`` items are the dataset with the padding cut off. This is MMEngine's
    ``collect_results`` (both its ``cpu`` and ``gpu`` modes give this order); the transport is
    ``collectives.all_gather_object``.

    Args:
        results: This rank's results, one item per sample, in the order this rank saw them.
        size: The dataset size: the length of the returned list (when enough results exist).
        collectives: Rank, world size and ``all_gather_object``.

    Returns:
        On rank 0 the merged list, at most ``size`` long; ``None`` on the other ranks.

    Raises:
        ValueError: ``size`` is negative.
    """
    if size < 0:
        raise ValueError(f"size must be >= 0, got {size}")
    if collectives.world_size == 1:
        return results[:size]
    parts = collectives.all_gather_object(_compact(results))
    if collectives.rank != 0:
        return None
    # Unlike MMEngine (which drops every ``None``), only the padding of shorter parts is dropped:
    # a metric may legitimately store ``None`` for a sample.
    merged = chain.from_iterable(zip_longest(*parts, fillvalue=_MISSING))
    return [item for item in merged if item is not _MISSING][:size]

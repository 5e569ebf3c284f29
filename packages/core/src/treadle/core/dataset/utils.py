"""Collate functions (``pseudo_collate``, ``default_collate``) and ``worker_init_fn`` seeding.

MMEngine 0.10.7's ``mmengine.dataset.utils``: the collate functions are registered in FUNCTIONS
under the same names (see :mod:`treadle.core.dataset.components`), so configs that say
``collate_fn=dict(type='default_collate')`` keep working.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch.utils.data import default_collate as _torch_default_collate

__all__ = ["default_collate", "pseudo_collate", "worker_init_fn"]


def worker_init_fn(
    worker_id: int,
    num_workers: int,
    rank: int,
    seed: int,
    disable_subprocess_warning: bool = False,
) -> None:
    """Seed a DataLoader worker: ``num_workers * rank + worker_id + seed``.

    Seeds Python's ``random``, torch and (when installed) numpy's global generator, so that
    random augmentations differ between workers and ranks but repeat from run to run.

    Args:
        worker_id: The worker's index, in ``[0, num_workers)``.
        num_workers: The number of workers of the DataLoader.
        rank: The process's rank (0 when not distributed).
        seed: The run's seed.
        disable_subprocess_warning: Silence warnings in every worker but the first.
    """
    worker_seed = num_workers * rank + worker_id + seed
    try:
        import numpy as np
    except ImportError:  # numpy is optional for treadle-core
        pass
    else:
        np.random.seed(worker_seed)
    random.seed(worker_seed)
    torch.manual_seed(worker_seed)
    if disable_subprocess_warning and worker_id != 0:
        warnings.simplefilter("ignore")


def _is_data_element(obj: object) -> bool:
    """Whether ``obj`` is a ``BaseDataElement`` (treadle's or MMEngine's), without importing one."""
    return any(cls.__name__ == "BaseDataElement" for cls in type(obj).__mro__)


def _collate(
    data_batch: Sequence[Any],
    leaf: Callable[[Any], Any],
    keep_elements: bool,
) -> Any:
    """Transpose a batch of samples into one sample of batches, recursing into containers.

    Args:
        data_batch: The samples (all of the same structure).
        leaf: What to do with a batch of values that are not containers.
        keep_elements: Return batches of data elements as they are (``default_collate``).
    """
    first = data_batch[0]
    kind = type(first)
    if isinstance(first, str | bytes) or (keep_elements and _is_data_element(first)):
        return data_batch
    if isinstance(first, tuple) and hasattr(first, "_fields"):  # a named tuple
        return kind(
            *(_collate(column, leaf, keep_elements) for column in zip(*data_batch, strict=False))
        )
    if isinstance(first, Sequence):
        size = len(first)
        for index, item in enumerate(data_batch):
            if len(item) != size:
                # MMEngine's message, plus the sizes that differ.
                raise RuntimeError(
                    "each data_itement in list of batch should be of equal size "
                    f"(sample 0 has {size} items, sample {index} has {len(item)})"
                )
        columns = [
            _collate(column, leaf, keep_elements) for column in zip(*data_batch, strict=False)
        ]
        if isinstance(first, tuple):
            return columns  # a list, as PyTorch's default_collate returns for tuples
        try:
            return kind(columns)
        except TypeError:  # a sequence type that cannot be built from a list (range, …)
            return columns
    if isinstance(first, Mapping):
        batched = {
            key: _collate([d[key] for d in data_batch], leaf, keep_elements) for key in first
        }
        return kind(batched)
    return leaf(data_batch)


def _keep(data_batch: Sequence[Any]) -> Any:
    return data_batch


def _check_batch(data_batch: object) -> None:
    """A clear error for what is not a non-empty sequence of samples."""
    if not isinstance(data_batch, Sequence) or isinstance(data_batch, str | bytes):
        raise TypeError(
            f"data_batch must be a sequence of samples, but got {type(data_batch).__name__}"
        )
    if not data_batch:
        raise ValueError("data_batch must hold at least one sample, but it is empty")


def pseudo_collate(data_batch: Sequence[Any]) -> Any:
    """Transpose a list of samples into a sample of lists, without stacking anything.

    Dicts, lists and named tuples are transposed recursively (a dict of lists for a list of
    dicts); tuples become lists, as in PyTorch; strings, tensors, arrays and numbers stay as
    the list of values they are. This is the Runner's default ``collate_fn``: the model's data
    preprocessor does the stacking.

    Args:
        data_batch: The samples the DataLoader fetched.

    Returns:
        The batch, structured like one sample.

    Raises:
        TypeError: When ``data_batch`` is not a sequence.
        ValueError: When ``data_batch`` is empty.
        RuntimeError: When sequences in the same place have different lengths.

    Examples:
        >>> pseudo_collate([dict(x=1, y="a"), dict(x=2, y="b")])
        {'x': [1, 2], 'y': ['a', 'b']}
    """
    _check_batch(data_batch)
    return _collate(data_batch, _keep, keep_elements=False)


def default_collate(data_batch: Sequence[Any]) -> Any:
    """Transpose a list of samples like :func:`pseudo_collate`, and stack the leaves.

    Leaves go through PyTorch's ``default_collate``: tensors (of equal shape) are stacked along
    a new first dimension, numpy arrays and numbers become tensors. Strings, bytes and
    ``BaseDataElement`` objects are returned as lists.

    Args:
        data_batch: The samples the DataLoader fetched.

    Returns:
        The batch, structured like one sample, with stacked tensors.

    Raises:
        TypeError: When ``data_batch`` is not a sequence, or a leaf type cannot be collated.
        ValueError: When ``data_batch`` is empty.
        RuntimeError: When sequences in the same place have different lengths, or tensors
            cannot be stacked.

    Examples:
        >>> batch = default_collate([dict(x=torch.zeros(2)), dict(x=torch.ones(2))])
        >>> batch["x"].shape
        torch.Size([2, 2])
    """
    _check_batch(data_batch)
    return _collate(data_batch, _torch_default_collate, keep_elements=True)

"""Dataset wrappers: ``ConcatDataset``, ``RepeatDataset``, ``ClassBalancedDataset``.

MMEngine 0.10.7's ``mmengine.dataset.dataset_wrapper``, registered in DATASETS under the same
names. Each takes datasets or dataset configs, supports ``lazy_init``, and refuses
``get_subset``/``get_subset_`` (take the subset of the wrapped dataset instead).

Differences from MMEngine, none of which changes a result MMEngine gives:

- Any map-style dataset (``__getitem__`` and ``__len__``) can be wrapped, not only a
  :class:`BaseDataset` instance: another wrapper, or a plain ``torch.utils.data.Dataset`` (whose
  ``metainfo`` is taken as ``{}`` when it has none).
- Indices past the end raise :class:`IndexError` (MMEngine's ``RepeatDataset`` wraps them around,
  so iterating over it never ends).
- ``ConcatDataset`` and ``RepeatDataset`` forward ``get_cat_ids``, so they can sit inside a
  ``ClassBalancedDataset``.
- Meta information holding tensors or numpy arrays is compared by value.
"""

from __future__ import annotations

import bisect
import copy
import logging
import math
import sys
from collections import defaultdict
from collections.abc import Mapping, Sequence
from numbers import Real
from typing import Any, ClassVar, NoReturn

import torch
from torch.utils.data.dataset import ConcatDataset as _TorchConcatDataset

from treadle.core.dataset.base_dataset import force_full_init
from treadle.core.logging import print_log
from treadle.core.registry import DATASETS

__all__ = ["ClassBalancedDataset", "ConcatDataset", "RepeatDataset"]


def _build_dataset(dataset: Any, what: str) -> Any:
    """``dataset`` itself, or the dataset its config builds from DATASETS."""
    if isinstance(dataset, Mapping):
        return DATASETS.build(dataset)
    if (
        hasattr(dataset, "__getitem__")
        and hasattr(dataset, "__len__")
        and not isinstance(dataset, str | bytes)
    ):
        return dataset
    raise TypeError(
        f"{what} should be a config dict or a dataset (such as a `BaseDataset` instance), "
        f"but got {type(dataset)}"
    )


def _metainfo_of(dataset: Any) -> dict[str, Any]:
    metainfo = getattr(dataset, "metainfo", None)
    return dict(metainfo) if isinstance(metainfo, Mapping) else {}


def _full_init(dataset: Any) -> None:
    full_init = getattr(dataset, "full_init", None)
    if callable(full_init):
        full_init()


def _meta_equal(a: Any, b: Any) -> bool:
    """Whether two meta values are equal, comparing tensors and numpy arrays by value."""
    if isinstance(a, torch.Tensor):
        return bool(a.shape == b.shape and torch.equal(a, b))
    np = sys.modules.get("numpy")  # an array can only exist if numpy was imported
    if np is not None and isinstance(a, np.ndarray):
        return bool(np.array_equal(a, b))
    return bool(a == b)


def _no_subset(wrapper: str) -> NoReturn:
    raise NotImplementedError(
        f"`{wrapper}` does not support `get_subset` and `get_subset_` interfaces because this "
        "will lead to ambiguous implementation of some methods. If you want to use "
        "`get_subset` or `get_subset_` interfaces, please use them in the wrapped dataset "
        f"first and then use `{wrapper}`."
    )


def _warn_lazy() -> None:
    print_log(
        "Please call `full_init` method manually to accelerate the speed.",
        logger="current",
        level=logging.WARNING,
    )


class _DatasetWrapper:
    """What every wrapper shares: meta information, lazy initialisation, and no subsets."""

    #: The class named by the ``get_subset`` error.
    _wrapper_name: ClassVar[str]
    _metainfo: dict[str, Any]
    _fully_initialized: bool

    def _init_state(self, metainfo: dict[str, Any], lazy_init: bool) -> None:
        """Keep ``metainfo``, then initialise the wrapper now unless ``lazy_init``."""
        self._metainfo = metainfo
        self._fully_initialized = False
        if not lazy_init:
            self.full_init()

    def full_init(self) -> None:
        """Initialise the wrapped datasets (once)."""
        raise NotImplementedError

    def _full_init_on_first_item(self) -> None:
        """``full_init`` with a warning, when a sample is read before the wrapper is ready."""
        if not self._fully_initialized:
            _warn_lazy()
            self.full_init()

    @property
    def metainfo(self) -> dict[str, Any]:
        """A copy of the (first) wrapped dataset's meta information."""
        return copy.deepcopy(self._metainfo)

    def get_subset_(self, indices: list[int] | int) -> None:
        """Not supported (ambiguous); take subsets of the wrapped datasets."""
        _no_subset(self._wrapper_name)

    def get_subset(self, indices: list[int] | int) -> Any:
        """Not supported (ambiguous); take subsets of the wrapped datasets."""
        _no_subset(self._wrapper_name)


class _SingleDatasetWrapper(_DatasetWrapper):
    """A wrapper of one ``dataset``, whose sample ``idx`` is ``_get_ori_dataset_idx(idx)`` there."""

    dataset: Any

    def _get_ori_dataset_idx(self, idx: int) -> int:
        """The index in the wrapped dataset of global index ``idx``."""
        raise NotImplementedError

    @force_full_init
    def get_data_info(self, idx: int) -> Any:
        """The data info of global index ``idx``."""
        return self.dataset.get_data_info(self._get_ori_dataset_idx(idx))

    @force_full_init
    def get_cat_ids(self, idx: int) -> Any:
        """The category ids of global index ``idx``."""
        return self.dataset.get_cat_ids(self._get_ori_dataset_idx(idx))

    def __getitem__(self, idx: int) -> Any:
        """Sample ``idx`` of the wrapper."""
        self._full_init_on_first_item()
        return self.dataset[self._get_ori_dataset_idx(idx)]


class ConcatDataset(_DatasetWrapper, _TorchConcatDataset):  # type: ignore[type-arg]
    """Datasets one after the other, with lazy initialisation and a meta information check.

    ``torch.utils.data.ConcatDataset`` plus ``lazy_init``. Every dataset must have the same
    meta information (same keys, types and values), except for the keys in ``ignore_keys``;
    :attr:`metainfo` is the first dataset's.

    Args:
        datasets: The datasets, or their configs.
        lazy_init: Do not initialise the datasets now (:meth:`full_init` does, on first use).
        ignore_keys: Meta information keys that may differ between the datasets.

    Raises:
        TypeError: An item is neither a dataset nor a config, ``ignore_keys`` is neither a
            string nor a list, or a meta value's type differs from the first dataset's.
        ValueError: ``datasets`` is empty, or a meta key is missing or its value differs.

    Examples:
        >>> dataset = ConcatDataset([dict(type="MyDataset", ann_file="a.json"),
        ...                          dict(type="MyDataset", ann_file="b.json")])
    """

    _wrapper_name = "ConcatDataset"

    def __init__(
        self,
        datasets: Sequence[Any],
        lazy_init: bool = False,
        ignore_keys: str | list[str] | None = None,
    ) -> None:
        self.datasets: list[Any] = [
            _build_dataset(dataset, f"datasets[{i}]") for i, dataset in enumerate(datasets)
        ]
        if not self.datasets:
            raise ValueError("datasets should not be an empty sequence")
        if ignore_keys is None:
            self.ignore_keys: list[str] = []
        elif isinstance(ignore_keys, str):
            self.ignore_keys = [ignore_keys]
        elif isinstance(ignore_keys, list):
            self.ignore_keys = ignore_keys
        else:
            raise TypeError(f"ignore_keys should be a list or str, but got {type(ignore_keys)}")

        metainfos = [_metainfo_of(dataset) for dataset in self.datasets]
        meta_keys: set[str] = set()
        for metainfo in metainfos:
            meta_keys |= metainfo.keys()
        for i, metainfo in enumerate(metainfos, 1):
            for key in sorted(meta_keys, key=str):
                if key in self.ignore_keys:
                    continue
                if key not in metainfo:
                    raise ValueError(
                        f"{key} is not in the meta information of the {i}-th dataset "
                        f"({type(self.datasets[i - 1]).__name__}); add it, or pass "
                        f"ignore_keys=[{key!r}]"
                    )
                first, current = metainfos[0][key], metainfo[key]
                if type(first) is not type(current):
                    raise TypeError(
                        f"The type {type(current)} of {key} in the {i}-th dataset should be the "
                        f"same with the first dataset {type(first)}"
                    )
                if not _meta_equal(first, current):
                    raise ValueError(
                        f"The meta information of the {i}-th dataset does not match meta "
                        f"information of the first dataset: {key}={current!r} differs from "
                        f"{first!r} (pass ignore_keys=[{key!r}] if that is intended)"
                    )
        # Only the first dataset's meta information is kept.
        self._init_state(metainfos[0], lazy_init)

    def full_init(self) -> None:
        """Initialise every dataset and compute the cumulative sizes (once)."""
        if self._fully_initialized:
            return
        for dataset in self.datasets:
            _full_init(dataset)
        # Cumulative sizes: lengths [2, 3, 4] give [2, 5, 9].
        super().__init__(self.datasets)
        self._fully_initialized = True

    @force_full_init
    def _get_ori_dataset_idx(self, idx: int) -> tuple[int, int]:
        """``(dataset index, sample index in that dataset)`` of global index ``idx``."""
        length = len(self)
        if not -length <= idx < length:
            raise IndexError(f"index {idx} is out of range for a dataset of length {length}")
        if idx < 0:
            idx += length
        dataset_idx = bisect.bisect_right(self.cumulative_sizes, idx)
        sample_idx = idx if dataset_idx == 0 else idx - self.cumulative_sizes[dataset_idx - 1]
        return dataset_idx, sample_idx

    @force_full_init
    def get_data_info(self, idx: int) -> Any:
        """The data info of global index ``idx``, from the dataset that holds it."""
        dataset_idx, sample_idx = self._get_ori_dataset_idx(idx)
        return self.datasets[dataset_idx].get_data_info(sample_idx)

    @force_full_init
    def get_cat_ids(self, idx: int) -> Any:
        """The category ids of global index ``idx``, from the dataset that holds it."""
        dataset_idx, sample_idx = self._get_ori_dataset_idx(idx)
        return self.datasets[dataset_idx].get_cat_ids(sample_idx)

    @force_full_init
    def __len__(self) -> int:
        """The total number of samples."""
        return int(self.cumulative_sizes[-1])

    def __getitem__(self, idx: int) -> Any:
        """Sample ``idx`` of the concatenation."""
        self._full_init_on_first_item()
        dataset_idx, sample_idx = self._get_ori_dataset_idx(idx)
        return self.datasets[dataset_idx][sample_idx]


class RepeatDataset(_SingleDatasetWrapper):
    """A dataset repeated ``times`` times: sample ``i`` is sample ``i % len(dataset)``.

    Useful when a dataset is small and loading restarts at every epoch.

    Args:
        dataset: The dataset, or its config.
        times: How many times to repeat it.
        lazy_init: Do not initialise the dataset now (:meth:`full_init` does, on first use).

    Raises:
        TypeError: ``dataset`` is neither a dataset nor a config, or ``times`` is not an int.
        ValueError: ``times`` is negative.
    """

    _wrapper_name = "RepeatDataset"

    def __init__(self, dataset: Any, times: int, lazy_init: bool = False) -> None:
        self.dataset: Any = _build_dataset(dataset, "dataset")
        if not isinstance(times, int) or isinstance(times, bool):
            raise TypeError(f"times should be an int, but got {type(times)}")
        if times < 0:
            raise ValueError(f"times should not be negative, but got {times}")
        self.times: int = times
        self._init_state(_metainfo_of(self.dataset), lazy_init)

    def full_init(self) -> None:
        """Initialise the wrapped dataset (once)."""
        if self._fully_initialized:
            return
        _full_init(self.dataset)
        self._ori_len = len(self.dataset)
        self._fully_initialized = True

    @force_full_init
    def _get_ori_dataset_idx(self, idx: int) -> int:
        """The index in the wrapped dataset of global index ``idx``."""
        length = self.times * self._ori_len
        if not -length <= idx < length:
            raise IndexError(f"index {idx} is out of range for a dataset of length {length}")
        return idx % self._ori_len

    @force_full_init
    def __len__(self) -> int:
        """``times`` times the wrapped dataset's length."""
        return self.times * self._ori_len


class ClassBalancedDataset(_SingleDatasetWrapper):
    r"""A dataset whose samples of rare categories are repeated (repeat factor sampling).

    From `LVIS <https://arxiv.org/abs/1908.03195>`_: each sample appears ``ceil(r(I))`` times,
    where, with ``t = oversample_thr``,

    1. ``f(c)`` is the fraction of samples that contain category ``c``;
    2. ``r(c) = max(1, sqrt(t / f(c)))`` is the category's repeat factor;
    3. ``r(I) = max over the categories c of sample I of r(c)`` (1 for a sample without any).

    The wrapped dataset must implement ``get_cat_ids(idx)``.

    Args:
        dataset: The dataset, or its config.
        oversample_thr: The frequency below which a category's samples are repeated.
        lazy_init: Do not initialise the dataset now (:meth:`full_init` does, on first use).

    Raises:
        TypeError: ``dataset`` is neither a dataset nor a config, or ``oversample_thr`` is not
            a number.
        ValueError: ``oversample_thr`` is negative.
    """

    _wrapper_name = "ClassBalancedDataset"

    def __init__(self, dataset: Any, oversample_thr: float, lazy_init: bool = False) -> None:
        self.dataset: Any = _build_dataset(dataset, "dataset")
        if not isinstance(oversample_thr, Real) or isinstance(oversample_thr, bool):
            raise TypeError(f"oversample_thr should be a number, but got {type(oversample_thr)}")
        if oversample_thr < 0:
            raise ValueError(f"oversample_thr should not be negative, but got {oversample_thr}")
        self.oversample_thr: float = float(oversample_thr)
        self._init_state(_metainfo_of(self.dataset), lazy_init)

    def full_init(self) -> None:
        """Initialise the wrapped dataset and compute the repeated indices (once)."""
        if self._fully_initialized:
            return
        _full_init(self.dataset)
        if not callable(getattr(self.dataset, "get_cat_ids", None)):
            raise TypeError(
                f"ClassBalancedDataset needs a dataset with a get_cat_ids(idx) method, but "
                f"{type(self.dataset).__name__} has none"
            )
        repeat_factors = self._get_repeat_factors(self.dataset, self.oversample_thr)
        # Factors [1, 2, 3] over a dataset of 3 give the indices [0, 1, 1, 2, 2, 2].
        repeat_indices: list[int] = []
        for dataset_index, repeat_factor in enumerate(repeat_factors):
            repeat_indices.extend([dataset_index] * math.ceil(repeat_factor))
        self.repeat_indices = repeat_indices
        self._fully_initialized = True

    def _get_repeat_factors(self, dataset: Any, repeat_thr: float) -> list[float]:
        """The repeat factor ``r(I)`` of each sample of ``dataset``.

        Args:
            dataset: The dataset.
            repeat_thr: The frequency threshold.

        Returns:
            One factor per sample.
        """
        num_images = len(dataset)
        cat_ids_per_image = [set(dataset.get_cat_ids(idx)) for idx in range(num_images)]

        # 1. f(c): the fraction of samples that contain category c.
        category_freq: defaultdict[Any, float] = defaultdict(float)
        for cat_ids in cat_ids_per_image:
            for cat_id in cat_ids:
                category_freq[cat_id] += 1
        for cat_id, count in category_freq.items():
            category_freq[cat_id] = count / num_images

        # 2. r(c) = max(1, sqrt(t / f(c))).
        category_repeat = {
            cat_id: max(1.0, math.sqrt(repeat_thr / cat_freq))
            for cat_id, cat_freq in category_freq.items()
        }

        # 3. r(I) = max over the categories of I of r(c); 1 for a sample without categories.
        repeat_factors: list[float] = []
        for cat_ids in cat_ids_per_image:
            repeat_factor = 1.0
            if cat_ids:
                repeat_factor = max(category_repeat[cat_id] for cat_id in cat_ids)
            repeat_factors.append(repeat_factor)
        return repeat_factors

    @force_full_init
    def _get_ori_dataset_idx(self, idx: int) -> int:
        """The index in the wrapped dataset of global index ``idx``."""
        return self.repeat_indices[idx]

    @force_full_init
    def __len__(self) -> int:
        """The number of samples, repeats included."""
        return len(self.repeat_indices)

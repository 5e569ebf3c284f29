"""``BaseDataset``: MMEngine 0.10.7's annotation-file dataset (``mmengine.dataset.BaseDataset``).

The annotation file holds ``dict(metainfo=dict(...), data_list=[dict(...), ...])`` and is read
through :func:`treadle.core.fileio.load`, so it may live at any URI a file backend serves. Each raw
item goes through :meth:`BaseDataset.parse_data_info`, the list through
:meth:`BaseDataset.filter_data` and ``indices``, and the result is serialized into one shared
buffer (``serialize_data=True``) so that DataLoader workers read the parent's memory instead of
copying a list of dicts page by page.

Differences from MMEngine (results are the same wherever MMEngine gives one):

- The serialized buffer is a ``bytes`` object with an ``array.array("q")`` of end offsets
  (MMEngine: two numpy arrays), so treadle-core needs no numpy; an empty dataset serializes too
  (MMEngine fails).
- ``get_data_info``, ``get_subset`` and ``get_subset_`` accept every index in
  ``[-len, len)`` (MMEngine fails on ``-len`` when serialized), raise :class:`IndexError` outside
  it, and treat an int the same whether the data is serialized or not (the first/last ``n``
  items, clipped as slicing is).
- Each ``get_subset`` copy is independent (MMEngine's shared default ``memo`` makes later
  subsets share the first one's pipeline and other attributes).
- No ``gc.collect()`` after serializing (see :meth:`BaseDataset._serialize_data`).
- A ``metainfo`` string that names a directory or an unreadable path stays a string.
- Errors say what and where: the annotation file's path, the missing key, the index whose
  samples the pipeline kept rejecting (a :class:`RuntimeError`, where MMEngine raises a bare
  ``Exception``).
"""

from __future__ import annotations

import array
import copy
import functools
import io
import logging
import os
import os.path as osp
import pickle
from collections.abc import Callable, Mapping, Sequence
from numbers import Integral
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast

from torch.utils.data import Dataset

from treadle.core.dataset.compose import Compose
from treadle.core.fileio import UnsupportedSchemeError, get_text, join_path, load, parse_uri_scheme
from treadle.core.logging import print_log

if TYPE_CHECKING:
    from treadle.core.config import Config

__all__ = ["BaseDataset", "force_full_init"]

_F = TypeVar("_F", bound=Callable[..., Any])
_DatasetT = TypeVar("_DatasetT", bound="BaseDataset")

#: Attributes that hold the annotations; ``get_subset`` copies everything else.
_ANNOTATION_ATTRS = ("data_list", "data_address", "data_bytes")


def force_full_init(old_func: _F) -> _F:
    """Decorate a method so that it calls ``full_init()`` first when the object needs it.

    The object must have a ``full_init`` method; ``_fully_initialized`` says whether it ran.

    Args:
        old_func: The method (its first argument is the object).

    Returns:
        The wrapped method.
    """

    @functools.wraps(old_func)
    def wrapper(obj: Any, *args: Any, **kwargs: Any) -> Any:
        if not hasattr(obj, "full_init"):
            raise AttributeError(f"{type(obj)} does not have full_init method.")
        if not getattr(obj, "_fully_initialized", False):
            print_log(
                f"Attribute `_fully_initialized` is not defined in {type(obj)} or "
                f"`type(obj)._fully_initialized is False, `full_init` will be called and "
                f"{type(obj)}._fully_initialized will be set to True",
                logger="current",
                level=logging.WARNING,
            )
            obj.full_init()
            obj._fully_initialized = True
        return old_func(obj, *args, **kwargs)

    return cast("_F", wrapper)


def _is_abs(path: str) -> bool:
    """Whether ``path`` is absolute: an absolute local path or any ``scheme://`` URI."""
    return osp.isabs(path) or parse_uri_scheme(path) != "local"


def _list_from_file(filename: str) -> list[str]:
    """The lines of a text file at any URI, without line endings (MMEngine's ``list_from_file``)."""
    with io.StringIO(get_text(filename)) as text:
        return [line.rstrip("\n\r") for line in text]


def _short_repr(obj: object, limit: int = 200) -> str:
    text = repr(obj)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_index(index: object, length: int) -> int:
    """``index`` as a non-negative int in ``[0, length)``, or an IndexError/TypeError."""
    if not isinstance(index, Integral) or isinstance(index, bool):
        raise TypeError(f"an index must be an int, but got {type(index).__name__}")
    value = int(index)
    if not -length <= value < length:
        raise IndexError(f"index {value} is out of range for a dataset of length {length}")
    return value + length if value < 0 else value


def _subset_positions(indices: object, length: int) -> list[int]:
    """The positions selected by ``indices`` (an int: the first/last few; a sequence: those)."""
    if isinstance(indices, Integral) and not isinstance(indices, bool):
        count = int(indices)
        # The first `count` items, or the last `-count` ones; clipped to the length, as slicing is.
        return list(range(length)[:count] if count >= 0 else range(length)[count:])
    if isinstance(indices, Sequence) and not isinstance(indices, str | bytes):
        return [_check_index(index, length) for index in indices]
    raise TypeError(f"indices should be a int or sequence of int, but got {type(indices)}")


class BaseDataset(Dataset):  # type: ignore[type-arg]
    r"""A dataset read from an annotation file in the OpenMMLab 2.0 format.

    The annotation file (json, yaml or pickle, chosen by suffix) looks like:

    .. code-block:: none

        {
            "metainfo": {"classes": ["cat", "dog"], "task_name": "demo"},
            "data_list": [
                {"img_path": "a.jpg", "height": 604, "width": 640, "instances": [...]},
                ...
            ]
        }

    Meta information comes from the annotation file's ``metainfo`` (lowest priority), the class
    attribute :attr:`METAINFO`, and the ``metainfo`` argument (highest); a key from a higher
    source replaces the whole value of a lower one. A string value of the ``metainfo`` argument
    that names a readable file is replaced by the file's lines (a class-name list).

    Args:
        ann_file: The annotation file: a path or URI, relative to ``data_root`` unless absolute.
        metainfo: Meta information that overrides :attr:`METAINFO` and the annotation file's.
        data_root: The folder that relative ``ann_file`` and ``data_prefix`` paths are joined to.
        data_prefix: For each key of a data info that holds a path, the folder it is relative
            to. ``None`` means ``dict(img_path='')``.
        filter_cfg: Settings for :meth:`filter_data` (the base class ignores them).
        indices: Keep only part of the data: an int keeps the first ``n`` (or, negative, the
            last ``-n``) items, a sequence keeps the items at those positions.
        serialize_data: Hold the data infos as one pickled buffer, shared by DataLoader workers
            instead of copied.
        pipeline: Transforms (callables or TRANSFORMS configs) applied to each data info.
        test_mode: In test mode a sample the pipeline rejects (``None``) is an error instead of
            being replaced by another one.
        lazy_init: Do not read the annotations now; :meth:`full_init` (called on first use)
            does. Useful when only :attr:`metainfo` is needed.
        max_refetch: How many other random samples to try when the pipeline returns ``None``.

    Raises:
        TypeError: ``metainfo`` is not a mapping, or a ``data_prefix`` value is not a string.

    Examples:
        >>> class CatsAndDogs(BaseDataset):
        ...     METAINFO = dict(classes=("cat", "dog"))
        >>> dataset = CatsAndDogs("annotations.json", data_root="data/", lazy_init=True)
        >>> dataset.metainfo["classes"]
        ('cat', 'dog')
    """

    #: Class-level meta information (medium priority).
    METAINFO: ClassVar[dict[str, Any]] = {}
    _fully_initialized: bool = False

    data_bytes: bytes
    data_address: array.array[int]

    def __init__(
        self,
        ann_file: str | os.PathLike[str] | None = "",
        metainfo: Mapping[str, Any] | Config | None = None,
        data_root: str | os.PathLike[str] | None = "",
        data_prefix: Mapping[str, str] | None = None,
        filter_cfg: Mapping[str, Any] | None = None,
        indices: int | Sequence[int] | None = None,
        serialize_data: bool = True,
        pipeline: Sequence[Mapping[str, Any] | Callable[..., Any]] | None = None,
        test_mode: bool = False,
        lazy_init: bool = False,
        max_refetch: int = 1000,
    ) -> None:
        if not isinstance(max_refetch, int) or isinstance(max_refetch, bool) or max_refetch < 0:
            raise ValueError(f"max_refetch must be a non-negative int, but got {max_refetch!r}")
        self.ann_file = os.fspath(ann_file) if ann_file else ""
        self._metainfo = self._load_metainfo(copy.deepcopy(metainfo))
        self.data_root = os.fspath(data_root) if data_root else ""
        self.data_prefix = dict(data_prefix) if data_prefix is not None else {"img_path": ""}
        self.filter_cfg = copy.deepcopy(filter_cfg)
        self._indices = indices
        self.serialize_data = serialize_data
        self.test_mode = test_mode
        self.max_refetch = max_refetch
        self.data_list: list[dict[str, Any]] = []

        self._join_prefix()
        self.pipeline = Compose(pipeline)
        if not lazy_init:
            self.full_init()

    # ------------------------------------------------------------------------------ loading

    def full_init(self) -> None:
        """Load the annotations, filter them, apply ``indices`` and serialize them (once).

        Called by the constructor unless ``lazy_init=True``, and otherwise by the first method
        that needs the data (``len``, indexing, :meth:`get_data_info`, subsets).
        """
        if self._fully_initialized:
            return
        self.data_list = self.load_data_list()
        self.data_list = self.filter_data()
        if self._indices is not None:
            self.data_list = self._get_unserialized_subset(self._indices)
        if self.serialize_data:
            self.data_bytes, self.data_address = self._serialize_data()
        self._fully_initialized = True

    def load_data_list(self) -> list[dict[str, Any]]:
        """Read ``ann_file`` and parse each raw data info with :meth:`parse_data_info`.

        The file's ``metainfo`` fills in the keys that neither :attr:`METAINFO` nor the
        ``metainfo`` argument set. Override this method to read another annotation format.

        Returns:
            The data infos.

        Raises:
            ValueError: ``ann_file`` is not set, or the file lacks ``metainfo``/``data_list``.
            FileNotFoundError: ``ann_file`` does not exist.
            TypeError: The file's content, its ``metainfo`` or ``data_list``, or what
                :meth:`parse_data_info` returns has the wrong type.
        """
        if not self.ann_file:
            raise ValueError(
                f"{type(self).__name__} has no ann_file: BaseDataset.load_data_list reads the "
                "annotations from it. Pass ann_file=..., or override load_data_list."
            )
        try:
            annotations = load(self.ann_file)
        except FileNotFoundError as err:
            raise FileNotFoundError(
                f"The annotation file {self.ann_file!r} of {type(self).__name__} does not exist"
                + (f" (data_root={self.data_root!r})" if self.data_root else "")
            ) from err
        if not isinstance(annotations, Mapping):
            raise TypeError(
                f"The annotations loaded from annotation file {self.ann_file!r} should be a "
                f"dict, but got {type(annotations)}!"
            )
        missing = [key for key in ("metainfo", "data_list") if key not in annotations]
        if missing:
            raise ValueError(
                f"Annotation must have data_list and metainfo keys: {self.ann_file!r} has no "
                + " and no ".join(repr(key) for key in missing)
                + f" (its keys: {sorted(map(str, annotations))})"
            )
        metainfo = annotations["metainfo"]
        raw_data_list = annotations["data_list"]
        if not isinstance(metainfo, Mapping):
            raise TypeError(
                f"'metainfo' in {self.ann_file!r} should be a dict, but got {type(metainfo)}"
            )
        if not isinstance(raw_data_list, list):
            raise TypeError(
                f"'data_list' in {self.ann_file!r} should be a list, but got {type(raw_data_list)}"
            )

        # The file's meta information never overrides METAINFO or the metainfo argument.
        for key, value in metainfo.items():
            self._metainfo.setdefault(key, value)

        data_list: list[dict[str, Any]] = []
        for raw_data_info in raw_data_list:
            data_info = self.parse_data_info(raw_data_info)
            if isinstance(data_info, dict):
                data_list.append(data_info)
            elif isinstance(data_info, list):
                # Video-like data: one raw item gives several samples.
                for item in data_info:
                    if not isinstance(item, dict):
                        raise TypeError(f"data_info must be list of dict, but got {type(item)}")
                data_list.extend(data_info)
            else:
                raise TypeError(
                    f"data_info should be a dict or list of dict, but got {type(data_info)}"
                )
        return data_list

    def parse_data_info(
        self, raw_data_info: dict[str, Any]
    ) -> dict[str, Any] | list[dict[str, Any]]:
        """Turn one raw data info into the data info (or infos) of a sample.

        The base class joins each ``data_prefix`` folder to the value under the same key.
        Override it to change the parsing.

        Args:
            raw_data_info: One item of the annotation file's ``data_list``.

        Returns:
            A data info, or a list of them.

        Raises:
            TypeError: ``raw_data_info`` is not a dict.
            KeyError: ``raw_data_info`` lacks a key of ``data_prefix``.
        """
        if not isinstance(raw_data_info, dict):
            raise TypeError(
                f"each item of data_list should be a dict, but got {type(raw_data_info)}: "
                f"{_short_repr(raw_data_info)}"
            )
        for prefix_key, prefix in self.data_prefix.items():
            if prefix_key not in raw_data_info:
                raise KeyError(
                    f"raw_data_info {_short_repr(raw_data_info)} does not contain the prefix "
                    f"key {prefix_key!r} of data_prefix={self.data_prefix!r}; please check "
                    "your data_prefix."
                )
            raw_data_info[prefix_key] = join_path(prefix, raw_data_info[prefix_key])
        return raw_data_info

    def filter_data(self) -> list[dict[str, Any]]:
        """Filter ``self.data_list`` according to ``filter_cfg`` (the base class keeps all).

        Returns:
            The data infos to keep.
        """
        return self.data_list

    def get_cat_ids(self, idx: int) -> list[int]:
        """The category ids in sample ``idx``; :class:`ClassBalancedDataset` needs them.

        Args:
            idx: The index of the sample.

        Returns:
            The categories of the sample.

        Raises:
            NotImplementedError: The base class does not know the categories.
        """
        raise NotImplementedError(f"{type(self)} must implement `get_cat_ids` method")

    @classmethod
    def _load_metainfo(cls, metainfo: Mapping[str, Any] | Config | None = None) -> dict[str, Any]:
        """:attr:`METAINFO` updated with ``metainfo`` (a string naming a file: its lines)."""
        cls_metainfo = copy.deepcopy(cls.METAINFO)  # never modify the class attribute
        if metainfo is None:
            return cls_metainfo
        from treadle.core.config import Config

        if isinstance(metainfo, Config):
            metainfo = metainfo.to_dict()
        if not isinstance(metainfo, Mapping):
            raise TypeError(f"metainfo should be a Mapping or Config, but got {type(metainfo)}")
        for key, value in metainfo.items():
            if isinstance(value, str):
                # A string may name a file of class names, one per line.
                try:
                    cls_metainfo[key] = _list_from_file(value)
                except (TypeError, OSError, UnsupportedSchemeError):
                    print_log(
                        f"{value} is not a meta file, simply parsed as meta information",
                        logger="current",
                        level=logging.WARNING,
                    )
                    cls_metainfo[key] = value
            else:
                cls_metainfo[key] = value
        return cls_metainfo

    def _join_prefix(self) -> None:
        """Join ``data_root`` to ``ann_file`` and to each ``data_prefix`` path, unless absolute."""
        if self.ann_file and not _is_abs(self.ann_file) and self.data_root:
            self.ann_file = join_path(self.data_root, self.ann_file)
        for data_key, prefix in self.data_prefix.items():
            if not isinstance(prefix, str):
                raise TypeError(
                    f"prefix should be a string, but data_prefix[{data_key!r}] is {type(prefix)}"
                )
            if not _is_abs(prefix) and self.data_root:
                self.data_prefix[data_key] = join_path(self.data_root, prefix)

    # ------------------------------------------------------------------------------ access

    @property
    def metainfo(self) -> dict[str, Any]:
        """A copy of the meta information (METAINFO, annotation file and argument, merged)."""
        return copy.deepcopy(self._metainfo)

    @force_full_init
    def get_data_info(self, idx: int) -> dict[str, Any]:
        """The data info of sample ``idx`` (a fresh copy), with ``sample_idx`` set.

        Args:
            idx: The index, negative counting from the end.

        Returns:
            The data info.

        Raises:
            IndexError: ``idx`` is out of range.
        """
        length = len(self)
        index = _check_index(idx, length)
        if self.serialize_data:
            start = self.data_address[index - 1] if index > 0 else 0
            data_info: dict[str, Any] = pickle.loads(
                memoryview(self.data_bytes)[start : self.data_address[index]]
            )
        else:
            data_info = copy.deepcopy(self.data_list[index])
        # Some code bases need the (non-negative) index of the sample.
        data_info["sample_idx"] = index
        return data_info

    def prepare_data(self, idx: int) -> Any:
        """Sample ``idx`` after the pipeline (``None`` when the pipeline rejects it).

        Args:
            idx: The index.

        Returns:
            What the pipeline returns.
        """
        return self.pipeline(self.get_data_info(idx))

    def __getitem__(self, idx: int) -> Any:
        """Sample ``idx`` after the pipeline.

        Outside test mode, a sample the pipeline rejects (``None``) is replaced by a random other
        one, up to ``max_refetch`` times.

        Args:
            idx: The index.

        Returns:
            The processed sample.

        Raises:
            RuntimeError: The pipeline rejected the sample (test mode), or every try.
        """
        if not self._fully_initialized:
            # Workers that each initialize a lazy dataset read and parse the annotations once
            # per worker: call full_init() before the dataset reaches a DataLoader.
            print_log(
                "Please call `full_init()` method manually to accelerate the speed.",
                logger="current",
                level=logging.WARNING,
            )
            self.full_init()

        if self.test_mode:
            data = self.prepare_data(idx)
            if data is None:
                raise RuntimeError(
                    f"Test time pipeline should not get `None` data_sample: the pipeline of "
                    f"{type(self).__name__} returned None for index {idx} (in test mode samples "
                    "are not replaced by others)"
                )
            return data

        current = idx
        for _ in range(self.max_refetch + 1):
            data = self.prepare_data(current)
            # Broken images or random augmentations may give None: try another sample.
            if data is not None:
                return data
            current = self._rand_another()
        raise RuntimeError(
            f"Cannot find valid image after {self.max_refetch}! The pipeline of "
            f"{type(self).__name__} returned None for index {idx} and for "
            f"{self.max_refetch} random other indices (max_refetch={self.max_refetch}). "
            "Please check your image path and pipeline"
        )

    def _rand_another(self) -> int:
        """A random index in ``[0, len(self))``, drawn as MMEngine draws it.

        numpy's global generator (as MMEngine, so seeded runs pick the same samples) when numpy
        is installed, Python's ``random`` otherwise.
        """
        try:
            import numpy as np
        except ImportError:  # numpy is optional for treadle-core
            import random

            return random.randrange(len(self))
        return int(np.random.randint(0, len(self)))

    @force_full_init
    def __len__(self) -> int:
        """The number of samples (after filtering and ``indices``)."""
        if self.serialize_data:
            return len(self.data_address)
        return len(self.data_list)

    # ------------------------------------------------------------------------------ subsets

    @force_full_init
    def get_subset_(self, indices: int | Sequence[int]) -> None:
        """Keep only part of the data, in place.

        Args:
            indices: An int keeps the first ``n`` items (negative: the last ``-n``); a sequence
                keeps the items at those positions, in that order.

        Raises:
            TypeError: ``indices`` is neither an int nor a sequence of ints.
            IndexError: A position is out of range.
        """
        if self.serialize_data:
            self.data_bytes, self.data_address = self._get_serialized_subset(indices)
        else:
            self.data_list = self._get_unserialized_subset(indices)

    @force_full_init
    def get_subset(self: _DatasetT, indices: int | Sequence[int]) -> _DatasetT:
        """A copy of the dataset that holds only part of the data.

        Everything but the annotations is deep-copied (pipeline, meta information, settings).

        Args:
            indices: As for :meth:`get_subset_`.

        Returns:
            The subset, of the same class.

        Raises:
            TypeError: ``indices`` is neither an int nor a sequence of ints.
            IndexError: A position is out of range.
        """
        sub_dataset = self._copy_without_annotation()
        if self.serialize_data:
            sub_dataset.data_bytes, sub_dataset.data_address = self._get_serialized_subset(indices)
            sub_dataset.data_list = []
        else:
            sub_dataset.data_list = copy.deepcopy(self._get_unserialized_subset(indices))
        return sub_dataset

    def _get_serialized_subset(
        self, indices: int | Sequence[int]
    ) -> tuple[bytes, array.array[int]]:
        """The serialized buffer and end offsets of the items ``indices`` selects."""
        address = self.data_address
        positions = _subset_positions(indices, len(address))
        pieces: list[bytes] = []
        ends = array.array("q")
        end = 0
        buffer = memoryview(self.data_bytes)
        for position in positions:
            start = address[position - 1] if position > 0 else 0
            pieces.append(bytes(buffer[start : address[position]]))
            end += address[position] - start
            ends.append(end)
        return b"".join(pieces), ends

    def _get_unserialized_subset(self, indices: int | Sequence[int]) -> list[dict[str, Any]]:
        """The items of ``self.data_list`` that ``indices`` selects."""
        return [self.data_list[p] for p in _subset_positions(indices, len(self.data_list))]

    def _serialize_data(self) -> tuple[bytes, array.array[int]]:
        """Pickle each data info into one buffer, with the end offset of each.

        One ``bytes`` object is shared by forked DataLoader workers, where a list of dicts would
        be copied page by page as their reference counts change. ``self.data_list`` is emptied.

        Returns:
            The buffer and the end offsets.
        """
        pieces = [pickle.dumps(info, protocol=4) for info in self.data_list]
        ends = array.array("q")
        end = 0
        for piece in pieces:
            end += len(piece)
            ends.append(end)
        data_bytes = b"".join(pieces)
        del pieces
        # Drop the list now, so that workers do not inherit a copy of it. Reference counting
        # frees the data infos here; MMEngine's extra gc.collect() costs ~0.1 s once torch is
        # loaded and finds nothing more in plain annotation dicts.
        self.data_list.clear()
        return data_bytes, ends

    def _copy_without_annotation(self: _DatasetT) -> _DatasetT:
        """A deep copy of every attribute but the annotations (``data_list``, ``data_bytes``,
        ``data_address``)."""
        cls = self.__class__
        other = cls.__new__(cls)
        memo: dict[int, Any] = {id(self): other}
        for key, value in self.__dict__.items():
            if key in _ANNOTATION_ATTRS:
                continue
            object.__setattr__(other, key, copy.deepcopy(value, memo))
        return other

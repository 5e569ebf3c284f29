"""``build_dataloader``: a ``DataLoader`` from a config dict with MMEngine's keys.

MMEngine 0.10.7's ``Runner.build_dataloader``, as a function the Runner (and anyone else) calls::

    dataloader = build_dataloader(
        dict(
            dataset=dict(type="ToyDataset"),
            sampler=dict(type="DefaultSampler", shuffle=True),
            batch_size=32,
            num_workers=2,
        ),
        seed=42,
    )
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from torch.utils.data import DataLoader

from treadle.core.dataset.sampler import _dist_info
from treadle.core.dataset.utils import worker_init_fn as _default_worker_init_fn
from treadle.core.registry import DATA_SAMPLERS, DATASETS, FUNCTIONS, RegistryKeyError

__all__ = ["build_dataloader"]


class _ConfigKeyError(KeyError):
    """A :class:`KeyError` whose message prints as written (``KeyError`` quotes its message).

    For a key missing from the config; an unregistered ``type`` name raises the registry's
    :class:`~treadle.core.registry.RegistryKeyError` instead (the CLI's unknown-type exit code).
    """

    def __str__(self) -> str:
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class _SlicedDataset:
    """The first ``length`` samples of a dataset (for ``num_batch_per_epoch``); other
    attributes are the dataset's."""

    def __init__(self, dataset: Any, length: int) -> None:
        self._dataset = dataset
        self._length = length

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_dataset", "_length"):
            # Not set yet (unpickling) or a special name: do not recurse into the dataset.
            raise AttributeError(name)
        return getattr(self._dataset, name)

    def __getitem__(self, idx: int) -> Any:
        return self._dataset[idx]

    def __len__(self) -> int:
        return self._length


def _get_batch_size(cfg: Mapping[str, Any]) -> int:
    """The batch size of a dataloader config: its own, else its batch sampler's."""
    if "batch_size" in cfg:
        return int(cfg["batch_size"])
    batch_sampler = cfg.get("batch_sampler")
    if isinstance(batch_sampler, Mapping) and "batch_size" in batch_sampler:
        return int(batch_sampler["batch_size"])
    raise ValueError(
        "num_batch_per_epoch needs the batch size: set batch_size in the dataloader config or "
        "in its batch_sampler"
    )


def _lookup_function(type_: object, key: str) -> Callable[..., Any]:
    """The function a ``type`` of a ``key`` config names: a FUNCTIONS name, or a callable.

    Args:
        type_: The ``type`` value.
        key: The dataloader config key (for messages), e.g. ``"collate_fn"``.

    Raises:
        RegistryKeyError: When the name is not registered in FUNCTIONS (a ``KeyError``).
        TypeError: When ``type_`` is neither a string nor callable.
    """
    if isinstance(type_, str):
        function = FUNCTIONS.get(type_)
        if function is None:
            close = difflib.get_close_matches(type_, list(FUNCTIONS.keys()), n=3)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise RegistryKeyError(
                f"{key}: type {type_!r} is not registered in the FUNCTIONS registry{hint}"
            )
        if not callable(function):
            raise TypeError(f"{key}: FUNCTIONS entry {type_!r} is not callable: {function!r}")
        return function  # type: ignore[no-any-return]
    if callable(type_):
        return type_
    raise TypeError(
        f"{key}: type must be a FUNCTIONS name or a callable, but got "
        f"{type(type_).__name__}: {type_!r}"
    )


def _function_from_cfg(value: object, key: str) -> Callable[..., Any]:
    """A callable from a ``dict(type=..., **kwargs)`` config (kwargs bound with ``partial``)."""
    if isinstance(value, Mapping):
        args = dict(value)
        if "type" not in args:
            raise _ConfigKeyError(f"{key}: the config has no 'type' key: {dict(value)!r}")
        function = _lookup_function(args.pop("type"), key)
        return partial(function, **args)
    if callable(value):
        return value
    raise TypeError(
        f"{key} must be a dict with a 'type' key or a callable, but got "
        f"{type(value).__name__}: {value!r}"
    )


_DATALOADER_ARGS: frozenset[str] | None = None


def _check_dataloader_args(cfg: Mapping[str, Any]) -> None:
    """A clear error for keys left in the config that ``DataLoader`` does not take."""
    global _DATALOADER_ARGS
    if _DATALOADER_ARGS is None:
        _DATALOADER_ARGS = frozenset(inspect.signature(DataLoader.__init__).parameters) - {"self"}
    unknown = [key for key in cfg if key not in _DATALOADER_ARGS]
    if unknown:
        raise TypeError(
            f"dataloader config: unknown key(s) {', '.join(map(repr, unknown))}; DataLoader takes "
            f"{', '.join(sorted(_DATALOADER_ARGS))}"
        )


def build_dataloader(
    dataloader: DataLoader[Any] | Mapping[str, Any],
    seed: int | None = None,
    diff_rank_seed: bool = False,
) -> DataLoader[Any]:
    """Build a ``DataLoader`` from a config dict (MMEngine's ``Runner.build_dataloader``).

    The config holds ``dataset`` (a DATASETS config, or a dataset; a built dataset's
    ``full_init()`` is called when it has one), ``sampler`` (a DATA_SAMPLERS config, built with
    ``dataset`` and ``seed`` as defaults, or a sampler), optionally ``batch_sampler`` (a
    DATA_SAMPLERS config, built with ``sampler`` and ``batch_size`` as defaults),
    ``collate_fn`` (``dict(type=<FUNCTIONS name or callable>, **kwargs)`` or a callable; default
    :func:`~treadle.core.dataset.pseudo_collate`), ``worker_init_fn`` (the same forms; by default
    :func:`~treadle.core.dataset.worker_init_fn` seeding when ``seed`` is given),
    ``disable_subprocess_warning``, ``num_batch_per_epoch`` (cut each epoch to that many
    batches) and any other ``DataLoader`` argument (``batch_size``, ``num_workers``,
    ``persistent_workers``, ``pin_memory``, ``drop_last``, …).

    Args:
        dataloader: The config, or a ``DataLoader``, returned as it is.
        seed: The run's seed: the sampler's default seed and the workers' base seed.
        diff_rank_seed: Whether ranks use different seeds; then the sampler gets ``seed=None``
            and draws one random seed shared by all ranks.

    Returns:
        The DataLoader.

    Raises:
        KeyError: When ``dataset`` or ``sampler`` is missing, or a ``type`` is unknown.
        TypeError: When a value has the wrong type, or a key is not a ``DataLoader`` argument.
        ValueError: When ``shuffle`` is set (the sampler shuffles).
    """
    if isinstance(dataloader, DataLoader):
        return dataloader
    if not isinstance(dataloader, Mapping):
        raise TypeError(
            f"dataloader must be a DataLoader or a config dict, but got {type(dataloader).__name__}"
        )
    # A shallow copy: sub-configs are copied before they are changed, and a dataset or sampler
    # object given in the config is used as it is (MMEngine deep-copies it).
    cfg = dict(dataloader)

    if "dataset" not in cfg:
        raise _ConfigKeyError(
            "dataloader config has no 'dataset' key (a DATASETS config dict or a dataset); "
            f"its keys: {sorted(cfg)}"
        )
    dataset_cfg = cfg.pop("dataset")
    if isinstance(dataset_cfg, Mapping):
        dataset = DATASETS.build(dataset_cfg)
        if hasattr(dataset, "full_init"):
            dataset.full_init()
    else:
        dataset = dataset_cfg  # DataLoader says what is wrong with it, if anything

    num_batch_per_epoch = cfg.pop("num_batch_per_epoch", None)
    if num_batch_per_epoch is not None:
        world_size = _dist_info()[1]
        dataset = _SlicedDataset(dataset, num_batch_per_epoch * _get_batch_size(cfg) * world_size)

    if "sampler" not in cfg:
        raise _ConfigKeyError(
            "dataloader config has no 'sampler' key, e.g. sampler=dict(type='DefaultSampler', "
            f"shuffle=True) or dict(type='InfiniteSampler'); its keys: {sorted(cfg)}"
        )
    sampler_cfg = cfg.pop("sampler")
    if isinstance(sampler_cfg, Mapping):
        sampler_seed = None if diff_rank_seed else seed
        sampler = DATA_SAMPLERS.build(
            sampler_cfg, default_args={"dataset": dataset, "seed": sampler_seed}
        )
    else:
        sampler = sampler_cfg

    if cfg.get("shuffle"):
        raise ValueError(
            "dataloader config: 'shuffle' cannot be set, the sampler shuffles; use "
            "sampler=dict(type='DefaultSampler', shuffle=True) instead"
        )

    batch_sampler_cfg = cfg.pop("batch_sampler", None)
    if isinstance(batch_sampler_cfg, Mapping):
        default_args: dict[str, Any] = {"sampler": sampler}
        if "batch_size" in cfg:
            default_args["batch_size"] = cfg.pop("batch_size")
        batch_sampler = DATA_SAMPLERS.build(batch_sampler_cfg, default_args=default_args)
    else:
        batch_sampler = batch_sampler_cfg

    disable_subprocess_warning = cfg.pop("disable_subprocess_warning", False)
    if not isinstance(disable_subprocess_warning, bool):
        raise TypeError(
            "dataloader config: disable_subprocess_warning must be a bool, but got "
            f"{type(disable_subprocess_warning).__name__}"
        )
    init_fn: Callable[..., Any] | None
    if "worker_init_fn" in cfg:
        init_cfg = cfg.pop("worker_init_fn")
        init_fn = None if init_cfg is None else _function_from_cfg(init_cfg, "worker_init_fn")
    elif seed is not None:
        init_fn = partial(
            _default_worker_init_fn,
            num_workers=cfg.get("num_workers", 0),
            rank=_dist_info()[0],
            seed=seed,
            disable_subprocess_warning=disable_subprocess_warning,
        )
    else:
        init_fn = None

    # Not stacking by default: the model's data preprocessor stacks (MMEngine's choice).
    collate_fn = _function_from_cfg(cfg.pop("collate_fn", {"type": "pseudo_collate"}), "collate_fn")

    _check_dataloader_args(cfg)
    return DataLoader(
        dataset=dataset,
        sampler=sampler if batch_sampler is None else None,
        batch_sampler=batch_sampler,
        collate_fn=collate_fn,
        worker_init_fn=init_fn,
        **cfg,
    )

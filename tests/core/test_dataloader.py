"""build_dataloader: MMEngine's Runner.build_dataloader config keys, through the registries."""

from __future__ import annotations

import random
from functools import partial

import numpy as np
import pytest
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset

from treadle.core import plugins, registry
from treadle.core.dataset import (
    DefaultSampler,
    InfiniteSampler,
    build_dataloader,
    default_collate,
    pseudo_collate,
    worker_init_fn,
)
from treadle.core.dataset.components import COMPONENTS
from treadle.core.registry import DATA_SAMPLERS, DATASETS, FUNCTIONS


class ToyDataset(Dataset):
    """Sample i is {"x": tensor([i, i]), "y": i}; counts full_init calls."""

    def __init__(self, size=10):
        self.size = size
        self.full_init_calls = 0

    def full_init(self):
        self.full_init_calls += 1

    def __len__(self):
        return self.size

    def __getitem__(self, idx):
        return {"x": torch.tensor([idx, idx]), "y": idx}


class RandomDataset(Dataset):
    """Sample i is (i, the worker's first draws from random, numpy and torch)."""

    def __len__(self):
        return 4

    def __getitem__(self, idx):
        return idx, random.random(), float(np.random.random()), float(torch.rand(1))


def _scaled_collate(batch, scale):
    return [scale * item["y"] for item in batch]


@pytest.fixture(autouse=True, scope="module")
def _components():
    """Register the data components (unless the built-in plugin does) and the test's toys."""
    plugins.load_plugins()
    added = []
    for registry_name, entries in COMPONENTS.items():
        reg = getattr(registry, registry_name)
        for name, target in entries.items():
            if name not in reg:
                reg.register_lazy(name, target)
                added.append((reg, name))
    for reg, name, obj in [
        (DATASETS, "_TestToyDataset", ToyDataset),
        (DATA_SAMPLERS, "_TestBatchSampler", BatchSampler),
        (FUNCTIONS, "_test_scaled_collate", _scaled_collate),
    ]:
        reg.register_module(name=name, module=obj)
        added.append((reg, name))
    yield
    for reg, name in added:
        reg.unregister(name)


def _cfg(**overrides):
    cfg = {
        "dataset": {"type": "_TestToyDataset", "size": 5},
        "sampler": {"type": "DefaultSampler", "shuffle": False},
        "batch_size": 2,
    }
    cfg.update(overrides)
    return cfg


def test_components_resolve_to_the_implementations():
    assert DATA_SAMPLERS.get("DefaultSampler") is DefaultSampler
    assert DATA_SAMPLERS.get("InfiniteSampler") is InfiniteSampler
    assert FUNCTIONS.get("pseudo_collate") is pseudo_collate
    assert FUNCTIONS.get("default_collate") is default_collate
    assert FUNCTIONS.get("worker_init_fn") is worker_init_fn


def test_builds_from_a_config_with_pseudo_collate_by_default():
    loader = build_dataloader(_cfg())
    assert isinstance(loader, DataLoader)
    assert isinstance(loader.dataset, ToyDataset)
    assert loader.dataset.size == 5
    assert loader.dataset.full_init_calls == 1
    assert isinstance(loader.sampler, DefaultSampler)
    assert loader.sampler.shuffle is False
    assert isinstance(loader.collate_fn, partial)
    assert loader.collate_fn.func is pseudo_collate
    batches = list(loader)
    assert [b["y"] for b in batches] == [[0, 1], [2, 3], [4]]
    assert isinstance(batches[0]["x"], list)  # not stacked
    assert torch.equal(batches[0]["x"][1], torch.tensor([1, 1]))


def test_config_is_not_changed():
    cfg = _cfg(
        collate_fn={"type": "default_collate"},
        worker_init_fn={"type": "worker_init_fn", "num_workers": 0, "rank": 0, "seed": 1},
    )
    snapshot = repr(cfg)
    build_dataloader(cfg)
    assert repr(cfg) == snapshot


def test_default_collate_by_name_stacks():
    loader = build_dataloader(_cfg(collate_fn={"type": "default_collate"}))
    first = next(iter(loader))
    assert torch.equal(first["x"], torch.tensor([[0, 0], [1, 1]]))
    assert torch.equal(first["y"], torch.tensor([0, 1]))


def test_collate_fn_extra_arguments_are_bound():
    loader = build_dataloader(_cfg(collate_fn={"type": "_test_scaled_collate", "scale": 10}))
    assert list(loader) == [[0, 10], [20, 30], [40]]
    loader = build_dataloader(_cfg(collate_fn={"type": _scaled_collate, "scale": 2}))
    assert next(iter(loader)) == [0, 2]
    loader = build_dataloader(_cfg(collate_fn=default_collate))
    assert loader.collate_fn is default_collate


def test_seed_goes_to_the_sampler_and_the_workers():
    loader = build_dataloader(
        _cfg(sampler={"type": "DefaultSampler"}, num_workers=1, disable_subprocess_warning=True),
        seed=42,
    )
    assert loader.sampler.seed == 42
    init = loader.worker_init_fn
    assert isinstance(init, partial)
    assert init.func is worker_init_fn
    assert init.keywords == {
        "num_workers": 1,
        "rank": 0,
        "seed": 42,
        "disable_subprocess_warning": True,
    }
    # No seed: no worker seeding, and the sampler draws its own.
    loader = build_dataloader(_cfg(disable_subprocess_warning=False))
    assert loader.worker_init_fn is None
    assert isinstance(loader.sampler.seed, int)


def test_a_seed_in_the_sampler_config_wins():
    loader = build_dataloader(_cfg(sampler={"type": "DefaultSampler", "seed": 7}), seed=42)
    assert loader.sampler.seed == 7


def test_diff_rank_seed_gives_the_sampler_no_seed():
    state = np.random.get_state()
    try:
        np.random.seed(5)
        expected = int(np.random.randint(2**31))
        np.random.seed(5)
        loader = build_dataloader(_cfg(), seed=42, diff_rank_seed=True)
    finally:
        np.random.set_state(state)
    assert loader.sampler.seed == expected != 42
    assert loader.worker_init_fn.keywords["seed"] == 42


def test_worker_init_fn_from_config():
    loader = build_dataloader(
        _cfg(worker_init_fn={"type": "worker_init_fn", "num_workers": 2, "rank": 1, "seed": 3}),
        seed=42,
    )
    assert loader.worker_init_fn.func is worker_init_fn
    assert loader.worker_init_fn.keywords == {"num_workers": 2, "rank": 1, "seed": 3}
    loader = build_dataloader(_cfg(worker_init_fn=None), seed=42)
    assert loader.worker_init_fn is None


@pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")  # 1-CPU machines
def test_workers_are_seeded_per_worker():
    loader = build_dataloader(
        {
            "dataset": RandomDataset(),
            "sampler": {"type": "DefaultSampler", "shuffle": False},
            "batch_size": 1,
            "num_workers": 2,
        },
        seed=100,
    )
    samples = [tuple(column[0] for column in batch) for batch in loader]  # batch_size 1
    # Batches go to the workers in turn: 0, 1, 0, 1. Worker w is seeded with 100 + w.
    for idx, (index, py, npy, th) in enumerate(samples):
        assert index == idx
        seed = 100 + idx % 2
        rng = random.Random(seed)
        draws_before = idx // 2
        for _ in range(draws_before):
            rng.random()
        assert py == rng.random()
        if draws_before == 0:
            assert npy == float(np.random.RandomState(seed).random_sample())
            assert th == float(torch.rand(1, generator=torch.Generator().manual_seed(seed)))


def test_dataset_and_sampler_objects_are_used_as_they_are():
    dataset = ToyDataset(4)
    sampler = DefaultSampler(dataset, shuffle=False, seed=0)
    loader = build_dataloader({"dataset": dataset, "sampler": sampler, "batch_size": 4})
    assert loader.dataset is dataset
    assert loader.sampler is sampler
    assert dataset.full_init_calls == 0  # only a dataset built here is fully initialised
    loader = build_dataloader({"dataset": dataset, "sampler": {"type": "InfiniteSampler"}})
    assert loader.sampler.dataset is dataset


def test_a_dataloader_is_returned_unchanged():
    loader = DataLoader(ToyDataset(3))
    assert build_dataloader(loader) is loader


def test_batch_sampler_gets_sampler_and_batch_size():
    loader = build_dataloader(
        _cfg(batch_sampler={"type": "_TestBatchSampler", "drop_last": True}, batch_size=2)
    )
    assert isinstance(loader.batch_sampler, BatchSampler)
    assert loader.batch_sampler.batch_size == 2
    assert isinstance(loader.batch_sampler.sampler, DefaultSampler)
    assert [b["y"] for b in loader] == [[0, 1], [2, 3]]
    # The batch size may live in the batch sampler config alone.
    cfg = _cfg(batch_sampler={"type": "_TestBatchSampler", "batch_size": 3, "drop_last": False})
    del cfg["batch_size"]
    assert [b["y"] for b in build_dataloader(cfg)] == [[0, 1, 2], [3, 4]]


def test_num_batch_per_epoch_cuts_the_epoch():
    loader = build_dataloader(
        _cfg(dataset={"type": "_TestToyDataset", "size": 9}, num_batch_per_epoch=2)
    )
    assert len(loader) == 2
    assert len(loader.dataset) == 4
    assert loader.dataset.size == 9  # other attributes are the dataset's
    assert [b["y"] for b in loader] == [[0, 1], [2, 3]]
    cfg = _cfg(batch_sampler={"type": "_TestBatchSampler", "batch_size": 3, "drop_last": False})
    del cfg["batch_size"]
    cfg["num_batch_per_epoch"] = 1
    assert len(build_dataloader(cfg).dataset) == 3
    cfg = _cfg(num_batch_per_epoch=1)
    del cfg["batch_size"]
    with pytest.raises(ValueError, match="num_batch_per_epoch needs the batch size"):
        build_dataloader(cfg)


def test_infinite_sampler_resumes_through_the_dataloader():
    loader = build_dataloader(
        _cfg(sampler={"type": "InfiniteSampler", "shuffle": True}, batch_size=2), seed=3
    )
    stream = iter(loader)
    reference = [next(stream)["y"] for _ in range(6)]
    resumed = build_dataloader(
        _cfg(sampler={"type": "InfiniteSampler", "shuffle": True}, batch_size=2), seed=3
    )
    resumed.sampler.skip(4 * 2)  # four batches already trained
    stream = iter(resumed)
    assert [next(stream)["y"] for _ in range(2)] == reference[4:]


def test_default_sampler_resumes_mid_epoch_through_the_dataloader():
    loader = build_dataloader(_cfg(sampler={"type": "DefaultSampler"}, batch_size=2), seed=1)
    loader.sampler.set_epoch(2)
    epoch = [b["y"] for b in loader]
    loader.sampler.skip(2 * 2)
    assert [b["y"] for b in loader] == epoch[2:]
    assert [b["y"] for b in loader] == epoch


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


def test_missing_dataset_names_the_key():
    cfg = _cfg()
    del cfg["dataset"]
    with pytest.raises(KeyError, match=r"dataloader config has no 'dataset' key") as info:
        build_dataloader(cfg)
    assert "'batch_size', 'sampler'" in str(info.value)


def test_missing_sampler_names_the_key():
    cfg = _cfg()
    del cfg["sampler"]
    with pytest.raises(
        KeyError, match=r"no 'sampler' key, e\.g\. sampler=dict\(type='DefaultSampler'"
    ):
        build_dataloader(cfg)


def test_shuffle_is_an_error():
    with pytest.raises(ValueError, match="'shuffle' cannot be set, the sampler shuffles"):
        build_dataloader(_cfg(shuffle=True))
    assert build_dataloader(_cfg(shuffle=False)).batch_size == 2  # harmless, as in PyTorch


def test_unknown_collate_fn_suggests_close_names():
    with pytest.raises(
        KeyError,
        match=r"collate_fn: type 'pseudo_colate' is not registered in the FUNCTIONS registry; "
        r"did you mean 'pseudo_collate'",
    ):
        build_dataloader(_cfg(collate_fn={"type": "pseudo_colate"}))


def test_bad_collate_and_worker_init_configs():
    with pytest.raises(
        TypeError, match="collate_fn must be a dict with a 'type' key or a callable, but got int"
    ):
        build_dataloader(_cfg(collate_fn=3))
    with pytest.raises(KeyError, match="collate_fn: the config has no 'type' key"):
        build_dataloader(_cfg(collate_fn={"scale": 1}))
    with pytest.raises(
        TypeError, match="worker_init_fn: type must be a FUNCTIONS name or a callable, but got int"
    ):
        build_dataloader(_cfg(worker_init_fn={"type": 1}))
    with pytest.raises(KeyError, match="worker_init_fn: type 'nope' is not registered"):
        build_dataloader(_cfg(worker_init_fn={"type": "nope"}))
    with pytest.raises(TypeError, match="disable_subprocess_warning must be a bool, but got str"):
        build_dataloader(_cfg(disable_subprocess_warning="yes"), seed=1)


def test_unknown_dataloader_key_is_named():
    with pytest.raises(
        TypeError, match=r"unknown key\(s\) 'batchsize'; DataLoader takes .*batch_size"
    ):
        build_dataloader(_cfg(batchsize=4))


def test_not_a_config():
    with pytest.raises(
        TypeError, match="dataloader must be a DataLoader or a config dict, but got list"
    ):
        build_dataloader([1, 2])


def test_unknown_dataset_type_comes_from_the_registry():
    with pytest.raises(KeyError, match="NoSuchDataset"):
        build_dataloader(_cfg(dataset={"type": "NoSuchDataset"}))


def test_unknown_collate_fn_is_a_registry_key_error():
    # An unregistered type name is the registry's error (the CLI's unknown-type exit code); a
    # missing config key is not.
    from treadle.core.cli.main import EXIT_UNKNOWN_TYPE, exit_code_for
    from treadle.core.registry import RegistryKeyError

    with pytest.raises(RegistryKeyError) as info:
        build_dataloader(_cfg(collate_fn={"type": "pseudo_colate"}))
    assert str(info.value).startswith("collate_fn: type 'pseudo_colate' is not registered")
    assert exit_code_for(info.value) == EXIT_UNKNOWN_TYPE
    cfg = _cfg()
    del cfg["sampler"]
    with pytest.raises(KeyError) as missing:
        build_dataloader(cfg)
    assert not isinstance(missing.value, RegistryKeyError)

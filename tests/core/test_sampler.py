"""DefaultSampler and InfiniteSampler: MMEngine 0.10.7's orders, and skip() for resuming.

The goldens in fixtures/dataset/mmengine_samplers.json come from record_mmengine.py.
"""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import BatchSampler, DataLoader

from treadle.core.dataset import DefaultSampler, InfiniteSampler, skip_batches

GOLDEN = json.loads(
    (Path(__file__).parent / "fixtures" / "dataset" / "mmengine_samplers.json").read_text()
)


def _id(case: dict) -> str:
    keys = ("size", "world_size", "rank", "seed", "shuffle", "round_up")
    return "-".join(f"{k}{case[k]}" for k in keys if k in case)


def _stream(size: int, seed: int, shuffle: bool, count: int) -> list[int]:
    """The all-ranks infinite stream, built independently of the sampler: permutations drawn
    one after another from one generator seeded with ``seed``."""
    generator = torch.Generator()
    generator.manual_seed(seed)
    out: list[int] = []
    while len(out) < count:
        out += torch.randperm(size, generator=generator).tolist() if shuffle else list(range(size))
    return out[:count]


# ---------------------------------------------------------------------------------------------
# DefaultSampler
# ---------------------------------------------------------------------------------------------


def test_golden_file_covers_the_grid():
    assert GOLDEN["mmengine"] == "0.10.7"
    assert len(GOLDEN["DefaultSampler"]) == 5 * 18 * 2 * 2 * 2  # sizes × Σranks × seeds × 2 × 2
    assert len(GOLDEN["InfiniteSampler"]) == 5 * 18 * 2 * 2


def _golden(kind: str, size: int) -> list[dict]:
    cases = [case for case in GOLDEN[kind] if case["size"] == size]
    assert cases
    return cases


@pytest.mark.parametrize("size", [1, 2, 7, 10, 13])
def test_default_sampler_matches_mmengine(size):
    for case in _golden("DefaultSampler", size):
        sampler = DefaultSampler(
            list(range(case["size"])),
            shuffle=case["shuffle"],
            seed=case["seed"],
            round_up=case["round_up"],
            rank=case["rank"],
            world_size=case["world_size"],
        )
        assert len(sampler) == case["len"], _id(case)
        for epoch, expected in case["epochs"].items():
            sampler.set_epoch(int(epoch))
            assert list(sampler) == expected, (_id(case), epoch)


def test_default_sampler_ranks_partition_the_padded_epoch():
    size, world = 10, 4
    per_rank = [
        list(DefaultSampler(range(size), seed=3, rank=r, world_size=world)) for r in range(world)
    ]
    assert [len(p) for p in per_rank] == [3, 3, 3, 3]
    merged = [i for row in zip(*per_rank, strict=True) for i in row]
    generator = torch.Generator()
    generator.manual_seed(3)
    order = torch.randperm(size, generator=generator).tolist()
    assert merged == order + order[:2]  # padded with the head of the same order


def test_default_sampler_round_up_false_keeps_every_sample_once():
    per_rank = [
        list(DefaultSampler(range(10), seed=1, round_up=False, rank=r, world_size=4))
        for r in range(4)
    ]
    assert [len(p) for p in per_rank] == [3, 3, 2, 2]
    assert sorted(itertools.chain(*per_rank)) == list(range(10))


def test_default_sampler_round_up_lengths():
    assert len(DefaultSampler(range(7), seed=0, rank=2, world_size=3)) == 3
    assert len(DefaultSampler(range(7), seed=0, round_up=False, rank=2, world_size=3)) == 2
    assert len(DefaultSampler(range(2), seed=0, round_up=False, rank=3, world_size=4)) == 0
    assert len(DefaultSampler(range(2), seed=0, rank=3, world_size=4)) == 1


def test_default_sampler_epochs_differ_and_repeat():
    sampler = DefaultSampler(range(50), seed=7)
    first = list(sampler)
    assert list(sampler) == first
    sampler.set_epoch(1)
    second = list(sampler)
    assert second != first
    assert sorted(second) == list(range(50))
    sampler.set_epoch(0)
    assert list(sampler) == first


def test_default_sampler_empty_dataset_yields_nothing():
    sampler = DefaultSampler([], seed=0, rank=1, world_size=2)
    assert len(sampler) == 0
    assert list(sampler) == []


@pytest.mark.parametrize(
    ("size", "world", "round_up"), [(10, 1, True), (10, 3, True), (10, 3, False), (3, 4, True)]
)
def test_default_sampler_skip_gives_the_tail_for_every_offset(size, world, round_up):
    for rank in range(world):
        sampler = DefaultSampler(
            range(size), seed=5, round_up=round_up, rank=rank, world_size=world
        )
        sampler.set_epoch(2)
        full = list(sampler)
        for k in range(len(sampler) + 1):
            sampler.skip(k)
            assert list(sampler) == full[k:], (rank, k)
            assert list(sampler) == full  # one-shot: the next iteration is whole again


def test_default_sampler_skip_reads_the_epoch_when_iteration_starts():
    sampler = DefaultSampler(range(20), seed=0)
    sampler.set_epoch(3)
    epoch3 = list(sampler)
    sampler.set_epoch(4)
    epoch4 = list(sampler)
    sampler.set_epoch(3)
    sampler.skip(6)  # skip first, then set the epoch being resumed
    sampler.set_epoch(4)
    assert list(sampler) == epoch4[6:]
    assert epoch3 != epoch4
    assert len(sampler) == 20  # len is the epoch's, skip or not


def test_default_sampler_skip_in_a_dataloader_skips_whole_batches():
    sampler = DefaultSampler(range(10), shuffle=False, seed=0)
    loader = DataLoader(range(10), sampler=sampler, batch_size=3)
    sampler.skip(6)
    assert [b.tolist() for b in loader] == [[6, 7, 8], [9]]
    assert [b.tolist() for b in loader] == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]


def test_default_sampler_skip_rejects_bad_offsets():
    sampler = DefaultSampler(range(10), seed=0, rank=0, world_size=3)
    with pytest.raises(ValueError, match=r"num_samples must be <= the 4 samples"):
        sampler.skip(5)
    with pytest.raises(ValueError, match="num_samples must be >= 0"):
        sampler.skip(-1)
    with pytest.raises(TypeError, match="num_samples must be an int"):
        sampler.skip(1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="num_samples must be an int"):
        sampler.skip(True)
    sampler.skip(np.int64(2))  # numpy integers are integers
    assert len(list(sampler)) == 2


# ---------------------------------------------------------------------------------------------
# InfiniteSampler
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 2, 7, 10, 13])
def test_infinite_sampler_matches_mmengine(size):
    for case in _golden("InfiniteSampler", size):
        sampler = InfiniteSampler(
            list(range(case["size"])),
            shuffle=case["shuffle"],
            seed=case["seed"],
            rank=case["rank"],
            world_size=case["world_size"],
        )
        assert len(sampler) == case["len"], _id(case)
        expected = case["indices"]
        assert list(itertools.islice(iter(sampler), len(expected))) == expected, _id(case)


def test_infinite_sampler_continues_the_stream_across_iter_calls():
    sampler = InfiniteSampler(range(7), seed=2)
    first = list(itertools.islice(iter(sampler), 5))
    second = list(itertools.islice(iter(sampler), 5))
    assert first + second == _stream(7, 2, True, 10)
    sampler.set_epoch(9)  # a no-op
    assert list(itertools.islice(iter(sampler), 3)) == _stream(7, 2, True, 13)[10:]


@pytest.mark.parametrize(("size", "world"), [(1, 1), (3, 1), (7, 2), (5, 3), (3, 8), (10, 4)])
@pytest.mark.parametrize("shuffle", [True, False])
def test_infinite_sampler_skip_gives_the_tail_for_every_offset(size, world, shuffle):
    count = 6 * size + 10
    stream = _stream(size, 11, shuffle, world * (count + 5))
    for rank in range(world):
        reference = stream[rank::world][:count]
        for k in range(count - 5):
            sampler = InfiniteSampler(
                range(size), shuffle=shuffle, seed=11, rank=rank, world_size=world
            )
            sampler.skip(k)
            assert list(itertools.islice(iter(sampler), 5)) == reference[k : k + 5], (rank, k)


def test_infinite_sampler_skip_restarts_from_the_stream_start():
    sampler = InfiniteSampler(range(6), seed=0, rank=1, world_size=2)
    reference = _stream(6, 0, True, 200)[1::2]
    list(itertools.islice(iter(sampler), 40))  # consumed (or prefetched) before the skip
    sampler.skip(13)
    assert list(itertools.islice(iter(sampler), 4)) == reference[13:17]
    assert list(itertools.islice(iter(sampler), 4)) == reference[17:21]  # and continues


def test_infinite_sampler_large_skip_draws_only_whole_permutations(monkeypatch):
    size, world, rank, k = 1000, 3, 2, 100_003
    reference = _stream(size, 4, True, world * (k + 8))[rank::world]
    sampler = InfiniteSampler(range(size), seed=4, rank=rank, world_size=world)
    calls = []
    real_randperm = torch.randperm

    def counting_randperm(*args, **kwargs):
        calls.append(args[0])
        return real_randperm(*args, **kwargs)

    monkeypatch.setattr(torch, "randperm", counting_randperm)
    sampler.skip(k)
    assert list(itertools.islice(iter(sampler), 8)) == reference[k : k + 8]
    # Position rank + k*world = 300_011 lies in pass 300: 300 passes skipped + the current one.
    assert calls == [size] * 301


def test_infinite_sampler_skip_with_a_subclass_stream():
    class Repeating(InfiniteSampler):
        def _infinite_indices(self):
            while True:
                yield from range(self.size)

    sampler = Repeating(range(4), seed=0, rank=1, world_size=3)
    assert list(itertools.islice(iter(sampler), 6)) == [1, 0, 3, 2, 1, 0]
    sampler.skip(4)
    assert list(itertools.islice(iter(sampler), 3)) == [1, 0, 3]


def test_infinite_sampler_skip_in_a_dataloader():
    sampler = InfiniteSampler(range(5), shuffle=False, seed=0)
    loader = DataLoader(range(5), sampler=sampler, batch_size=2)
    sampler.skip(7)
    batches = list(itertools.islice(iter(loader), 3))
    assert [b.tolist() for b in batches] == [[2, 3], [4, 0], [1, 2]]


def test_infinite_sampler_rejects_bad_input():
    with pytest.raises(ValueError, match="non-empty dataset"):
        InfiniteSampler([], seed=0)
    sampler = InfiniteSampler(range(3), seed=0)
    with pytest.raises(ValueError, match="num_samples must be >= 0"):
        sampler.skip(-3)
    with pytest.raises(TypeError, match="num_samples must be an int"):
        sampler.skip("2")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Both
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def _restore_global_rngs():
    np_state = np.random.get_state()
    py_state = random.getstate()
    yield
    np.random.set_state(np_state)
    random.setstate(py_state)


@pytest.mark.usefixtures("_restore_global_rngs")
@pytest.mark.parametrize("cls", [DefaultSampler, InfiniteSampler])
def test_no_seed_draws_one_from_numpy_as_mmengine(cls):
    np.random.seed(123)
    expected = int(np.random.randint(2**31))
    np.random.seed(123)
    sampler = cls(range(4))
    assert sampler.seed == expected


@pytest.mark.parametrize("cls", [DefaultSampler, InfiniteSampler])
def test_placement_defaults_to_a_single_process(cls):
    sampler = cls(range(4), seed=0)
    assert (sampler.rank, sampler.world_size) == (0, 1)
    sampler = cls(range(4), seed=0, world_size=2)
    assert (sampler.rank, sampler.world_size) == (0, 2)


@pytest.mark.parametrize("cls", [DefaultSampler, InfiniteSampler])
def test_bad_arguments_are_named(cls):
    with pytest.raises(ValueError, match=r"rank must be < world_size \(2\), but got 2"):
        cls(range(4), seed=0, rank=2, world_size=2)
    with pytest.raises(ValueError, match="world_size must be >= 1"):
        cls(range(4), seed=0, rank=0, world_size=0)
    with pytest.raises(ValueError, match="rank must be >= 0"):
        cls(range(4), seed=0, rank=-1)
    with pytest.raises(TypeError, match="seed must be an int or None, but got str"):
        cls(range(4), seed="0")
    with pytest.raises(TypeError, match=r"dataset must be Sized \(have __len__\), but got"):
        cls(iter(range(4)), seed=0)
    assert cls(range(4), seed=np.int64(3)).seed == 3


# ---------------------------------------------------------------------------------------------
# skip_batches
# ---------------------------------------------------------------------------------------------


def test_skip_batches_moves_the_sampler_by_whole_batches():
    sampler = DefaultSampler(range(10), seed=0)
    loader = DataLoader(range(10), sampler=sampler, batch_size=3)
    full = [b.tolist() for b in loader]
    assert skip_batches(loader, 2) is True
    assert [b.tolist() for b in loader] == full[2:]
    assert skip_batches(loader, 4) is True  # 12 > 10 samples: capped at the epoch
    assert [b.tolist() for b in loader] == []
    assert [b.tolist() for b in loader] == full


def test_skip_batches_with_an_infinite_sampler():
    sampler = InfiniteSampler(range(5), seed=1, rank=1, world_size=2)
    loader = DataLoader(range(5), sampler=sampler, batch_size=2)
    reference = _stream(5, 1, True, 60)[1::2]
    assert skip_batches(loader, 7) is True
    stream = iter(loader)
    assert [next(stream).tolist() for _ in range(2)] == [reference[14:16], reference[16:18]]


def test_skip_batches_declines_what_it_cannot_skip_exactly():
    class Grouping(BatchSampler):
        pass

    sampler = DefaultSampler(range(6), shuffle=False, seed=0)
    custom = DataLoader(range(6), batch_sampler=Grouping(sampler, 2, drop_last=False))
    assert skip_batches(custom, 1) is False
    plain = DataLoader(range(6), batch_size=2)  # a SequentialSampler has no skip
    assert skip_batches(plain, 1) is False
    assert [b.tolist() for b in custom] == [[0, 1], [2, 3], [4, 5]]  # unchanged
    with pytest.raises(ValueError, match="num_batches must be >= 0"):
        skip_batches(DataLoader(range(6), sampler=sampler, batch_size=2), -1)

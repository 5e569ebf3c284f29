"""pseudo_collate, default_collate (against MMEngine 0.10.7's outputs) and worker_init_fn."""

from __future__ import annotations

import json
import random
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from treadle.core.dataset import default_collate, pseudo_collate, worker_init_fn

FIXTURES = Path(__file__).parent / "fixtures" / "dataset"
sys.path.insert(0, str(FIXTURES))
from collate_cases import cases, describe  # noqa: E402

GOLDEN = json.loads((FIXTURES / "mmengine_collate.json").read_text())


def test_golden_covers_every_case():
    assert GOLDEN["mmengine"] == "0.10.7"
    assert set(GOLDEN["cases"]) == set(cases())


@pytest.mark.parametrize("name", sorted(cases()))
@pytest.mark.parametrize("function", [pseudo_collate, default_collate], ids=lambda f: f.__name__)
def test_collate_matches_mmengine(name, function):
    batch = cases()[name]
    assert describe(function(batch)) == GOLDEN["cases"][name][function.__name__]


def test_pseudo_collate_transposes_without_stacking():
    a, b = torch.ones(2), torch.zeros(3)  # shapes differ: nothing is stacked
    batch = pseudo_collate([{"x": a, "meta": {"id": 1}}, {"x": b, "meta": {"id": 2}}])
    assert batch["meta"] == {"id": [1, 2]}
    assert batch["x"][0] is a
    assert batch["x"][1] is b


def test_default_collate_stacks_nested_tensors():
    batch = default_collate(
        [{"inputs": torch.ones(2, 3), "label": 1}, {"inputs": torch.zeros(2, 3), "label": 0}]
    )
    assert batch["inputs"].shape == (2, 2, 3)
    assert torch.equal(batch["inputs"][0], torch.ones(2, 3))
    assert torch.equal(batch["label"], torch.tensor([1, 0]))


class BaseDataElement:
    """Stands for treadle's/MMEngine's BaseDataElement (recognised by class name)."""

    def __init__(self, value):
        self.value = value


class DetDataSample(BaseDataElement):
    pass


def test_default_collate_keeps_data_elements_as_a_list():
    samples = [DetDataSample(1), DetDataSample(2)]
    batch = default_collate([{"inputs": torch.ones(1), "data_samples": s} for s in samples])
    assert batch["data_samples"] == samples
    assert torch.equal(batch["inputs"], torch.ones(2, 1))
    assert pseudo_collate(samples) is samples


def test_unequal_sequences_are_an_error():
    with pytest.raises(RuntimeError, match=r"sample 0 has 2 items, sample 2 has 3"):
        pseudo_collate([[1, 2], [3, 4], [5, 6, 7]])
    with pytest.raises(RuntimeError, match="should be of equal size"):
        default_collate([{"a": [1]}, {"a": [1, 2]}])


def test_unstackable_tensors_are_an_error():
    with pytest.raises(RuntimeError):
        default_collate([torch.ones(2), torch.ones(3)])


def test_bad_batches_are_named():
    with pytest.raises(ValueError, match="data_batch must hold at least one sample"):
        pseudo_collate([])
    with pytest.raises(TypeError, match="data_batch must be a sequence of samples, but got dict"):
        default_collate({"a": 1})
    with pytest.raises(TypeError, match="but got str"):
        pseudo_collate("abc")


@pytest.fixture
def _restore_rngs():
    states = (random.getstate(), np.random.get_state(), torch.random.get_rng_state())
    with warnings.catch_warnings():
        yield
    random.setstate(states[0])
    np.random.set_state(states[1])
    torch.random.set_rng_state(states[2])


def _draws():
    return random.random(), float(np.random.random()), float(torch.rand(1))


@pytest.mark.usefixtures("_restore_rngs")
def test_worker_init_fn_seeds_every_generator():
    worker_init_fn(worker_id=1, num_workers=4, rank=2, seed=10)
    got = _draws()
    seed = 4 * 2 + 1 + 10
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    assert got == _draws()
    worker_init_fn(worker_id=2, num_workers=4, rank=2, seed=10)
    assert _draws() != got


@pytest.mark.usefixtures("_restore_rngs")
def test_worker_init_fn_silences_warnings_in_other_workers_only():
    worker_init_fn(0, 2, 0, 0, disable_subprocess_warning=True)
    assert warnings.filters[0][0] != "ignore"
    worker_init_fn(1, 2, 0, 0, disable_subprocess_warning=True)
    assert warnings.filters[0][0] == "ignore"

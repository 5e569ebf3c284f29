"""ConcatDataset, RepeatDataset, ClassBalancedDataset: MMEngine 0.10.7 parity and errors."""

from __future__ import annotations

import json
import math
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import ConcatDataset as TorchConcatDataset
from torch.utils.data import Dataset

from treadle.core import plugins
from treadle.core.dataset import (
    BaseDataset,
    ClassBalancedDataset,
    ConcatDataset,
    RepeatDataset,
    build_dataloader,
)
from treadle.core.dataset.components import COMPONENTS
from treadle.core.registry import DATASETS

FIXTURES = Path(__file__).parent / "fixtures" / "datasets"
sys.path.insert(0, str(FIXTURES))
from dataset_cases import ROOT, run_cases, same, treadle_lib  # noqa: E402

GOLDEN = json.loads((FIXTURES / "mmengine_datasets.json").read_text())
WRAPPER_CASES = ("concat", "repeat", "class_balanced")


class Toy(BaseDataset):
    METAINFO = {"classes": ("cat", "dog", "bird"), "task": "detection"}

    def get_cat_ids(self, idx):
        return [inst["bbox_label"] for inst in self.get_data_info(idx)["instances"]]


def _toy(**kwargs):
    kwargs.setdefault("ann_file", "annotations.json")
    kwargs.setdefault("data_root", ROOT)
    return Toy(**kwargs)


class Plain(Dataset):
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, idx):
        if not 0 <= idx < self.n:
            raise IndexError(idx)
        return idx


@pytest.fixture(scope="module", autouse=True)
def _registered():
    plugins.load_plugins()
    name = f"_WrapperToy_{uuid.uuid4().hex[:8]}"
    DATASETS.register_module(name=name, module=Toy)
    yield name
    DATASETS.unregister(name)


@pytest.fixture(scope="module")
def toy_type(_registered):
    return _registered


@pytest.fixture(scope="module")
def results():
    return run_cases(treadle_lib())


@pytest.mark.parametrize(
    "key", sorted(k for k in GOLDEN["datasets"] if k.startswith(WRAPPER_CASES))
)
def test_matches_mmengine(results, key):
    assert same(GOLDEN["datasets"][key], results["datasets"][key]), (
        GOLDEN["datasets"][key],
        results["datasets"][key],
    )


def test_registered_in_datasets_like_mmengine():
    assert COMPONENTS["DATASETS"] == {
        "ConcatDataset": "treadle.core.dataset.dataset_wrapper:ConcatDataset",
        "RepeatDataset": "treadle.core.dataset.dataset_wrapper:RepeatDataset",
        "ClassBalancedDataset": "treadle.core.dataset.dataset_wrapper:ClassBalancedDataset",
    }
    assert DATASETS.get("ConcatDataset") is ConcatDataset
    assert DATASETS.get("RepeatDataset") is RepeatDataset
    assert DATASETS.get("ClassBalancedDataset") is ClassBalancedDataset
    assert "BaseDataset" not in DATASETS
    assert "TRANSFORMS" not in COMPONENTS  # MMEngine registers no transforms


def test_built_from_nested_configs(toy_type):
    cfg = {
        "type": "ClassBalancedDataset",
        "oversample_thr": 0.5,
        "dataset": {
            "type": "RepeatDataset",
            "times": 2,
            "dataset": {
                "type": "ConcatDataset",
                "datasets": [
                    {
                        "type": toy_type,
                        "ann_file": "annotations.json",
                        "data_root": ROOT,
                        "indices": 4,
                    },
                    {
                        "type": toy_type,
                        "ann_file": "annotations.json",
                        "data_root": ROOT,
                        "indices": -4,
                    },
                ],
            },
        },
    }
    dataset = DATASETS.build(cfg)
    assert isinstance(dataset, ClassBalancedDataset)
    assert isinstance(dataset.dataset.dataset, ConcatDataset)
    # get_cat_ids passes through RepeatDataset and ConcatDataset (not in MMEngine).
    assert dataset.get_cat_ids(0) == [0]
    assert len(dataset) == len(dataset.repeat_indices)
    assert dataset.metainfo["task"] == "detection"


def test_dataloader_from_config_with_a_wrapper(toy_type):
    loader = build_dataloader(
        {
            "dataset": {
                "type": "RepeatDataset",
                "times": 2,
                "dataset": {
                    "type": toy_type,
                    "ann_file": "annotations.json",
                    "data_root": ROOT,
                    "indices": 3,
                    "pipeline": [_index_only],
                },
            },
            "sampler": {"type": "DefaultSampler", "shuffle": False},
            "batch_size": 4,
        }
    )
    assert list(loader) == [[0, 1, 2, 0], [1, 2]]


def _index_only(info):
    return info["sample_idx"]


# ---------------------------------------------------------------------------------- ConcatDataset


def test_concat_is_a_torch_concat_dataset():
    concat = ConcatDataset([_toy(indices=2), _toy(indices=3)])
    assert isinstance(concat, TorchConcatDataset)
    assert concat.cumulative_sizes == [2, 5]
    assert concat[4]["sample_idx"] == 2
    assert concat[-5]["sample_idx"] == 0


def test_concat_lazy_init():
    a, b = _toy(lazy_init=True), _toy(lazy_init=True)
    concat = ConcatDataset([a, b], lazy_init=True)
    assert not a._fully_initialized
    assert concat[9]["sample_idx"] == 1
    assert a._fully_initialized
    assert b._fully_initialized
    assert len(concat) == 16


def test_concat_index_bounds():
    concat = ConcatDataset([_toy(indices=2), _toy(indices=3)])
    with pytest.raises(IndexError, match="index 5 is out of range for a dataset of length 5"):
        concat[5]
    with pytest.raises(IndexError, match="-6"):
        concat.get_data_info(-6)
    assert len(list(concat)) == 5


def test_concat_metainfo_errors_name_the_key():
    class Other(Toy):
        METAINFO = {"classes": ("car",), "task": "detection"}

    with pytest.raises(
        ValueError, match=r"classes=\('car',\) differs from .*ignore_keys=\['classes'\]"
    ):
        ConcatDataset([_toy(), Other(ann_file="annotations.json", data_root=ROOT)])
    no_task = BaseDataset(ann_file="annotations.json", data_root=ROOT)
    with pytest.raises(ValueError, match=r"task is not in the meta information of the 1-th"):
        ConcatDataset([no_task, _toy()], ignore_keys=["classes"])
    with pytest.raises(TypeError, match="ignore_keys should be a list or str"):
        ConcatDataset([_toy()], ignore_keys=("task",))


def test_concat_compares_tensors_and_arrays_by_value():
    class WithTensor(Toy):
        METAINFO = {"palette": torch.tensor([[1, 2, 3]]), "weights": np.array([0.5, 0.5])}

    class OtherTensor(Toy):
        METAINFO = {"palette": torch.tensor([[1, 2, 4]]), "weights": np.array([0.5, 0.5])}

    same_values = ConcatDataset([WithTensor(ann_file="annotations.json", data_root=ROOT)] * 2)
    assert len(same_values) == 16
    with pytest.raises(ValueError, match="palette"):
        ConcatDataset(
            [
                WithTensor(ann_file="annotations.json", data_root=ROOT),
                OtherTensor(ann_file="annotations.json", data_root=ROOT),
            ]
        )


def test_concat_of_plain_datasets_and_wrappers():
    concat = ConcatDataset([Plain(2), RepeatDataset(Plain(1), 3)])
    assert [concat[i] for i in range(len(concat))] == [0, 1, 0, 0, 0]
    assert concat.metainfo == {}


@pytest.mark.parametrize("bad", [[], [3], ["x"]])
def test_concat_bad_datasets(bad):
    with pytest.raises((TypeError, ValueError), match=r"datasets\[0\]|empty"):
        ConcatDataset(bad)


def test_concat_metainfo_is_a_copy():
    concat = ConcatDataset([_toy()])
    concat.metainfo["task"] = "x"
    assert concat.metainfo["task"] == "detection"


# ---------------------------------------------------------------------------------- RepeatDataset


def test_repeat_maps_indices_and_stops_at_the_end():
    repeat = RepeatDataset(_toy(indices=3, pipeline=[_index_only]), times=2)
    assert [repeat[i] for i in range(6)] == [0, 1, 2, 0, 1, 2]
    assert repeat[-1] == 2
    with pytest.raises(IndexError, match="index 6 is out of range"):
        repeat[6]
    assert list(repeat) == [0, 1, 2, 0, 1, 2]  # MMEngine's never ends
    assert repeat.get_cat_ids(4) == [0, 1]


def test_repeat_lazy_init():
    inner = _toy(lazy_init=True)
    repeat = RepeatDataset(inner, 3, lazy_init=True)
    assert not inner._fully_initialized
    assert len(repeat) == 24
    assert inner._fully_initialized


@pytest.mark.parametrize(
    ("times", "error"), [(-1, ValueError), (1.5, TypeError), (True, TypeError)]
)
def test_repeat_bad_times(times, error):
    with pytest.raises(error, match="times"):
        RepeatDataset(_toy(), times)


def test_repeat_zero_times_is_empty():
    assert len(RepeatDataset(_toy(), 0)) == 0


def test_repeat_bad_dataset():
    with pytest.raises(TypeError, match="dataset should be a config dict or a dataset"):
        RepeatDataset(42, 2)


# ---------------------------------------------------------------------------------- ClassBalanced


def _expected_repeat_indices(cat_ids, thr):
    """LVIS repeat factor sampling, written out independently."""
    n = len(cat_ids)
    freq = {c: sum(c in set(ids) for ids in cat_ids) / n for ids in cat_ids for c in ids}
    r_cat = {c: max(1.0, math.sqrt(thr / f)) for c, f in freq.items()}
    out = []
    for i, ids in enumerate(cat_ids):
        r = max((r_cat[c] for c in ids), default=1.0)
        out += [i] * math.ceil(r)
    return out


@pytest.mark.parametrize("thr", [0.0, 0.2, 0.5, 0.9, 2.0])
def test_class_balanced_formula(thr):
    dataset = _toy()
    cat_ids = [dataset.get_cat_ids(i) for i in range(len(dataset))]
    balanced = ClassBalancedDataset(dataset, oversample_thr=thr)
    assert balanced.repeat_indices == _expected_repeat_indices(cat_ids, thr)
    assert [balanced.get_data_info(i)["sample_idx"] for i in range(len(balanced))] == (
        balanced.repeat_indices
    )
    assert balanced[len(balanced) - 1]["sample_idx"] == 7


def test_class_balanced_needs_get_cat_ids():
    with pytest.raises(TypeError, match="needs a dataset with a get_cat_ids"):
        ClassBalancedDataset(Plain(3), 0.5)
    with pytest.raises(NotImplementedError, match="get_cat_ids"):
        ClassBalancedDataset(BaseDataset(ann_file="annotations.json", data_root=ROOT), 0.5)


@pytest.mark.parametrize(("thr", "error"), [(-0.1, ValueError), ("0.5", TypeError)])
def test_class_balanced_bad_threshold(thr, error):
    with pytest.raises(error, match="oversample_thr"):
        ClassBalancedDataset(_toy(), thr)


def test_class_balanced_lazy_init():
    inner = _toy(lazy_init=True)
    balanced = ClassBalancedDataset(inner, 0.5, lazy_init=True)
    assert not inner._fully_initialized
    assert balanced[1]["sample_idx"] == 1
    assert balanced._fully_initialized


@pytest.mark.parametrize(
    "make",
    [
        lambda: ConcatDataset([_toy()]),
        lambda: RepeatDataset(_toy(), 2),
        lambda: ClassBalancedDataset(_toy(), 0.5),
    ],
    ids=["concat", "repeat", "class_balanced"],
)
def test_no_subsets_of_wrappers(make):
    wrapper = make()
    name = type(wrapper).__name__
    with pytest.raises(NotImplementedError, match=f"`{name}` does not support `get_subset`"):
        wrapper.get_subset(1)
    with pytest.raises(NotImplementedError, match="use them in the wrapped dataset first"):
        wrapper.get_subset_([0])

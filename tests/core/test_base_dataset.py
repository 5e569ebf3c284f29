"""BaseDataset: MMEngine 0.10.7 parity on a recorded annotation fixture, and every error path."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from treadle.core import fileio, plugins
from treadle.core.config import Config
from treadle.core.dataset import BaseDataset, Compose, force_full_init
from treadle.core.registry import TRANSFORMS

FIXTURES = Path(__file__).parent / "fixtures" / "datasets"
sys.path.insert(0, str(FIXTURES))
from dataset_cases import DEVIATIONS, ROOT, run_cases, same, treadle_lib  # noqa: E402

GOLDEN = json.loads((FIXTURES / "mmengine_datasets.json").read_text())
WRAPPER_CASES = ("concat", "repeat", "class_balanced")
ANN = FIXTURES / "annotations.json"


@pytest.fixture(scope="module")
def results():
    plugins.load_plugins()
    return run_cases(treadle_lib())


class Toy(BaseDataset):
    METAINFO = {"classes": ("cat", "dog", "bird"), "task": "detection"}


def _toy(**kwargs):
    kwargs.setdefault("ann_file", "annotations.json")
    kwargs.setdefault("data_root", ROOT)
    return Toy(**kwargs)


# ---------------------------------------------------------------------------------- parity


def test_golden_is_mmengine_0_10_7():
    assert GOLDEN["mmengine"] == "0.10.7"


@pytest.mark.parametrize(
    "key", sorted(k for k in GOLDEN["datasets"] if not k.startswith(WRAPPER_CASES))
)
def test_matches_mmengine(results, key):
    expected = DEVIATIONS.get(("datasets", key), GOLDEN["datasets"][key])
    assert same(expected, results["datasets"][key]), (expected, results["datasets"][key])


def test_deviation_is_where_mmengine_fails():
    assert GOLDEN["datasets"]["indices=0,serialize=True"]["error"] == "ValueError"


# ---------------------------------------------------------------------------------- loading


def test_annotations_load_from_any_uri():
    root = f"memory://treadle-{uuid.uuid4().hex}"
    fileio.dump(json.loads(ANN.read_text()), f"{root}/ann/train.json")
    dataset = Toy(ann_file="ann/train.json", data_root=root, data_prefix={"img_path": "images"})
    assert dataset.ann_file == f"{root}/ann/train.json"
    assert len(dataset) == 8
    assert dataset.get_data_info(0)["img_path"] == f"{root}/images/img_0.jpg"
    assert dataset.metainfo["dataset_type"] == "toy"


def test_absolute_ann_file_and_uri_prefix_are_not_joined():
    dataset = Toy(
        ann_file=str(ANN),
        data_root="/elsewhere",
        data_prefix={"img_path": "memory://bucket/imgs", "seg_map": "seg"},
    )
    assert dataset.ann_file == str(ANN)
    assert dataset.data_prefix == {
        "img_path": "memory://bucket/imgs",
        "seg_map": "/elsewhere/seg",
    }
    assert dataset.get_data_info(2)["img_path"] == "memory://bucket/imgs/img_2.jpg"


def test_path_like_arguments():
    dataset = Toy(ann_file=Path("annotations.json"), data_root=FIXTURES)
    assert dataset.ann_file == str(ANN)
    assert len(dataset) == 8


def test_no_ann_file_is_a_clear_error():
    with pytest.raises(ValueError, match=r"Toy has no ann_file.*override load_data_list"):
        Toy()
    Toy(lazy_init=True)  # fine until the annotations are needed


def test_missing_ann_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\.json.*does not exist"):
        Toy(ann_file="missing.json", data_root=str(tmp_path))


def test_ann_file_that_is_not_a_dict():
    with pytest.raises(TypeError, match=r"not_a_dict\.json.*should be a dict"):
        Toy(ann_file=str(FIXTURES / "not_a_dict.json"))


def test_ann_file_without_metainfo_names_the_key():
    with pytest.raises(ValueError, match=r"no_metainfo\.json.* has no 'metainfo'"):
        Toy(ann_file=str(FIXTURES / "no_metainfo.json"))


def test_ann_file_with_bad_types(tmp_path):
    path = tmp_path / "ann.json"
    path.write_text(json.dumps({"metainfo": [], "data_list": []}))
    with pytest.raises(TypeError, match=r"'metainfo' in .* should be a dict"):
        Toy(ann_file=str(path))
    path.write_text(json.dumps({"metainfo": {}, "data_list": {}}))
    with pytest.raises(TypeError, match=r"'data_list' in .* should be a list"):
        Toy(ann_file=str(path))
    path.write_text(json.dumps({"metainfo": {}, "data_list": [3]}))
    with pytest.raises(TypeError, match="each item of data_list should be a dict"):
        Toy(ann_file=str(path))


def test_missing_prefix_key_names_the_key():
    with pytest.raises(KeyError, match=r"does not contain the prefix key 'depth'"):
        _toy(data_prefix={"img_path": "", "depth": "d"})


def test_prefix_must_be_a_string():
    with pytest.raises(TypeError, match=r"data_prefix\['img_path'\]"):
        _toy(data_prefix={"img_path": 3})


def test_parse_data_info_must_return_dicts():
    class Bad(Toy):
        def parse_data_info(self, raw_data_info):
            return "x"

    class BadList(Toy):
        def parse_data_info(self, raw_data_info):
            return ["x"]

    with pytest.raises(TypeError, match="dict or list of dict"):
        Bad(ann_file=str(ANN))
    with pytest.raises(TypeError, match="list of dict"):
        BadList(ann_file=str(ANN))


def test_custom_load_data_list_needs_no_file():
    class InMemory(BaseDataset):
        def load_data_list(self):
            return [{"x": i} for i in range(5)]

    dataset = InMemory(data_prefix={})
    assert [dataset[i]["x"] for i in range(5)] == list(range(5))
    assert dataset[-1]["sample_idx"] == 4


# ---------------------------------------------------------------------------------- metainfo


def test_metainfo_precedence_and_copy():
    dataset = _toy(metainfo={"classes": ("a",)})
    assert dataset.metainfo == {
        "classes": ("a",),  # argument > METAINFO > file
        "task": "detection",  # METAINFO > file
        "dataset_type": "toy",  # file only
        "version": 1,
    }
    dataset.metainfo["classes"] = "changed"
    assert dataset.metainfo["classes"] == ("a",)
    assert Toy.METAINFO == {"classes": ("cat", "dog", "bird"), "task": "detection"}


def test_metainfo_from_a_config_and_a_class_names_file():
    cfg = Config({"classes": str(FIXTURES / "classes.txt"), "palette": [[1, 2, 3]]})
    dataset = _toy(metainfo=cfg, lazy_init=True)
    assert dataset.metainfo["classes"] == ["cat", "dog", "bird"]
    assert dataset.metainfo["palette"] == [[1, 2, 3]]


def test_metainfo_must_be_a_mapping():
    with pytest.raises(TypeError, match="metainfo should be a Mapping or Config"):
        _toy(metainfo=[("classes", "a")])


def test_metainfo_strings_that_are_not_files_stay_strings():
    dataset = _toy(
        metainfo={"task": "segmentation", "root": ".", "uri": "nope://x"}, lazy_init=True
    )
    assert dataset.metainfo["task"] == "segmentation"
    assert dataset.metainfo["root"] == "."  # a directory is not a meta file
    assert dataset.metainfo["uri"] == "nope://x"


# ---------------------------------------------------------------------------------- lazy init


def test_lazy_init_defers_loading_until_needed():
    calls = []

    class Counting(Toy):
        def load_data_list(self):
            calls.append(1)
            return super().load_data_list()

    dataset = Counting(ann_file=str(ANN), lazy_init=True)
    assert calls == []
    assert "dataset_type" not in dataset.metainfo
    assert dataset[3]["sample_idx"] == 3
    assert calls == [1]
    dataset.full_init()
    assert len(dataset) == 8
    assert calls == [1]
    assert dataset.metainfo["dataset_type"] == "toy"


@pytest.mark.parametrize("method", ["len", "get_data_info", "get_subset", "get_subset_"])
def test_methods_that_need_data_call_full_init(method):
    dataset = _toy(lazy_init=True)
    if method == "len":
        assert len(dataset) == 8
    elif method == "get_data_info":
        assert dataset.get_data_info(1)["sample_idx"] == 1
    elif method == "get_subset":
        assert len(dataset.get_subset(2)) == 2
    else:
        dataset.get_subset_(2)
        assert len(dataset) == 2
    assert dataset._fully_initialized


def test_force_full_init_needs_a_full_init_method():
    class NoInit:
        @force_full_init
        def f(self):
            return 1

    with pytest.raises(AttributeError, match="does not have full_init"):
        NoInit().f()


# ---------------------------------------------------------------------------------- serialization


def test_serialized_data_is_one_buffer_and_the_list_is_dropped():
    dataset = _toy()
    assert isinstance(dataset.data_bytes, bytes)
    assert len(dataset.data_address) == 8
    assert dataset.data_address[-1] == len(dataset.data_bytes)
    assert dataset.data_list == []
    unserialized = _toy(serialize_data=False)
    assert not hasattr(unserialized, "data_bytes")
    assert len(unserialized.data_list) == 8
    assert [dataset.get_data_info(i) for i in range(8)] == [
        unserialized.get_data_info(i) for i in range(8)
    ]


@pytest.mark.parametrize("serialize", [True, False])
def test_data_infos_are_fresh_copies(serialize):
    dataset = _toy(serialize_data=serialize)
    info = dataset.get_data_info(1)
    info["instances"].clear()
    assert dataset.get_data_info(1)["instances"]


@pytest.mark.parametrize("serialize", [True, False])
def test_index_bounds(serialize):
    dataset = _toy(serialize_data=serialize)
    assert dataset.get_data_info(-8)["sample_idx"] == 0  # MMEngine fails here when serialized
    with pytest.raises(IndexError, match="index 8 is out of range for a dataset of length 8"):
        dataset.get_data_info(8)
    with pytest.raises(IndexError, match="-9"):
        dataset[-9]
    assert [d["sample_idx"] for d in dataset] == list(range(8))  # iteration stops
    with pytest.raises(TypeError, match="an index must be an int"):
        dataset.get_data_info("1")


def test_empty_serialized_dataset():
    dataset = _toy(indices=[])
    assert len(dataset) == 0
    assert list(dataset) == []


@pytest.mark.parametrize("serialize", [True, False])
def test_subsets(serialize):
    dataset = _toy(serialize_data=serialize)
    sub = dataset.get_subset([7, -8, 3])
    assert type(sub) is Toy
    assert [d["img_path"].rsplit("/", 1)[-1] for d in sub] == [
        "img_7.jpg",
        "img_0.jpg",
        "img_3.jpg",
    ]
    assert len(dataset) == 8
    assert len(dataset.get_subset(-8)) == 8  # MMEngine fails here when serialized
    assert len(dataset.get_subset(8)) == 8
    assert len(dataset.get_subset(20)) == 8  # clipped, as slicing (and MMEngine unserialized)
    with pytest.raises(IndexError, match="index 8 is out of range"):
        dataset.get_subset([8])
    with pytest.raises(TypeError, match="indices should be a int or sequence of int"):
        dataset.get_subset("12")
    with pytest.raises(TypeError, match="indices should be a int or sequence of int"):
        dataset.get_subset_(1.5)
    dataset.get_subset_(np.array([2, 1]).tolist())
    assert [d["sample_idx"] for d in dataset] == [0, 1]
    assert dataset.get_data_info(0)["img_path"].endswith("img_2.jpg")


def test_numpy_integers_are_indices():
    dataset = _toy(indices=np.int64(2))
    assert len(dataset) == 2
    assert len(dataset.get_subset([np.int64(1)])) == 1


def test_subset_copies_everything_but_the_annotations():
    dataset = _toy(pipeline=[lambda d: d])
    first, second = dataset.get_subset(2), dataset.get_subset(3)
    assert first.pipeline is not dataset.pipeline
    assert first.pipeline is not second.pipeline  # MMEngine shares them (a mutable default memo)
    first._metainfo["task"] = "changed"
    assert dataset.metainfo["task"] == "detection"
    assert second.metainfo["task"] == "detection"
    assert first.data_list == []
    assert (len(first), len(second), len(dataset)) == (2, 3, 8)


def test_pickles_and_loads_in_worker_processes():
    dataset = _toy(pipeline=[_just_index])
    clone = pickle.loads(pickle.dumps(dataset))
    assert [clone[i] for i in range(8)] == list(range(8))
    loader = DataLoader(dataset, batch_size=3, num_workers=2)
    assert [b.tolist() for b in loader] == [[0, 1, 2], [3, 4, 5], [6, 7]]


def _just_index(info):
    return info["sample_idx"]


# ---------------------------------------------------------------------------------- pipeline


def test_pipeline_from_transforms_registry():
    class AddOne:
        def __init__(self, key):
            self.key = key

        def __call__(self, data):
            data[self.key] += 1
            return data

    name = f"_AddOne_{uuid.uuid4().hex[:8]}"
    TRANSFORMS.register_module(name=name, module=AddOne)
    try:
        dataset = _toy(pipeline=[{"type": name, "key": "height"}, _pick_height])
        assert isinstance(dataset.pipeline, Compose)
        assert dataset[0] == 11
    finally:
        TRANSFORMS.unregister(name)


def _pick_height(data):
    return data["height"]


def test_none_is_refetched_with_another_index():
    seen = []

    def reject_first(data):
        seen.append(data["sample_idx"])
        return None if len(seen) == 1 else data["sample_idx"]

    dataset = _toy(pipeline=[reject_first])
    np.random.seed(0)
    assert dataset[2] == seen[1]
    assert seen[0] == 2


def test_refetch_gives_up_naming_the_index():
    dataset = _toy(pipeline=[lambda d: None], max_refetch=2)
    with pytest.raises(RuntimeError, match=r"index 5 and for 2 random other indices"):
        dataset[5]


def test_test_mode_never_refetches():
    dataset = _toy(pipeline=[lambda d: None], test_mode=True)
    with pytest.raises(RuntimeError, match="returned None for index 4"):
        dataset[4]


@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_max_refetch_must_be_a_non_negative_int(bad):
    with pytest.raises(ValueError, match="max_refetch"):
        _toy(max_refetch=bad)


def test_get_cat_ids_is_for_subclasses():
    with pytest.raises(NotImplementedError, match="must implement `get_cat_ids`"):
        _toy().get_cat_ids(0)


def test_works_without_numpy(tmp_path):
    """treadle.core.dataset and structures work when numpy cannot be imported."""
    script = textwrap.dedent(
        f"""
        import sys, random, warnings
        sys.modules["numpy"] = None  # importing numpy now fails
        warnings.simplefilter("ignore")  # torch's "numpy is not available" notice
        import torch
        from treadle.core.dataset import BaseDataset, RepeatDataset, default_collate
        from treadle.core.structures import InstanceData, PixelData

        class Toy(BaseDataset):
            pass

        ds = Toy(ann_file={str(ANN)!r}, pipeline=[
            lambda d: None if d["sample_idx"] == 0 else d["sample_idx"]])
        random.seed(0)
        assert ds[0] in range(1, 8), ds[0]
        assert len(ds.get_subset([1, 2])) == 2
        assert len(RepeatDataset(ds, 2)) == 16
        inst = InstanceData(labels=torch.tensor([1, 2, 3]), names=["a", "b", "c"])
        assert inst[[True, False, True]].names == ["a", "c"]
        assert inst[[2, 0]].labels.tolist() == [3, 1]
        assert len(InstanceData.cat([inst, inst])) == 6
        pix = PixelData(x=torch.zeros(1, 2, 3))
        assert pix[0, 1:].shape == (1, 2)
        assert len(default_collate([dict(s=inst), dict(s=inst)])["s"]) == 2
        assert "numpy" not in [m for m in sys.modules if sys.modules[m] is not None]
        print("ok")
        """
    )
    env = {**os.environ, "TREADLE_DISABLE_PLUGIN_AUTOLOAD": "1"}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("ok")


def test_tensors_in_data_infos_survive_serialization():
    class WithTensor(Toy):
        def parse_data_info(self, raw_data_info):
            info = super().parse_data_info(raw_data_info)
            info["t"] = torch.tensor([info["height"]])
            return info

    dataset = WithTensor(ann_file=str(ANN))
    assert dataset.get_data_info(3)["t"].tolist() == [13]

"""BaseDataElement, InstanceData, LabelData, PixelData: MMEngine 0.10.7 parity and errors."""

from __future__ import annotations

import copy
import itertools
import json
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from treadle.core.dataset import default_collate, pseudo_collate
from treadle.core.structures import BaseDataElement, InstanceData, LabelData, PixelData

FIXTURES = Path(__file__).parent / "fixtures" / "datasets"
sys.path.insert(0, str(FIXTURES))
from dataset_cases import run_cases, same, treadle_lib  # noqa: E402

GOLDEN = json.loads((FIXTURES / "mmengine_datasets.json").read_text())


@pytest.fixture(scope="module")
def results():
    return run_cases(treadle_lib())


@pytest.mark.parametrize("key", sorted(GOLDEN["structures"]))
def test_matches_mmengine(results, key):
    expected, actual = GOLDEN["structures"][key], results["structures"][key]
    assert same(expected, actual), (expected, actual)


def test_importing_structures_does_not_import_torch():
    code = (
        "import sys, treadle.core.structures as s; "
        "assert 'torch' not in sys.modules; print(sorted(s.__all__))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "InstanceData" in out.stdout


# ---------------------------------------------------------------------------------- BaseDataElement


class DetDataSample(BaseDataElement):
    """MMDetection's pattern: typed fields as properties stored under ``_name``."""

    @property
    def gt_instances(self):
        return self._gt_instances

    @gt_instances.setter
    def gt_instances(self, value):
        self.set_field(value, "_gt_instances", dtype=InstanceData)

    @gt_instances.deleter
    def gt_instances(self):
        del self._gt_instances


def _element():
    return BaseDataElement(
        metainfo={"img_id": 1, "img_shape": (4, 6)},
        bboxes=torch.ones(2, 4),
        scores=torch.tensor([0.5, 0.75]),
    )


def test_metainfo_and_data_fields():
    element = _element()
    assert sorted(element.metainfo_keys()) == ["img_id", "img_shape"]
    assert sorted(element.keys()) == ["bboxes", "scores"]
    assert sorted(element.all_keys()) == ["bboxes", "img_id", "img_shape", "scores"]
    assert element.metainfo == {"img_id": 1, "img_shape": (4, 6)}
    assert "img_id" in element
    assert "bboxes" in element
    assert "other" not in element
    assert element.get("img_shape") == (4, 6)
    assert element.get("missing", 3) == 3
    assert sorted(k for k, _ in element.all_items()) == sorted(element.all_keys())
    assert len(element.all_values()) == 4
    assert sorted(map(str, element.metainfo_values())) == ["(4, 6)", "1"]


def test_set_metainfo_deep_copies():
    meta = {"shape": [1, 2]}
    element = BaseDataElement(metainfo=meta)
    meta["shape"].append(3)
    assert element.shape == [1, 2]


def test_a_field_is_metainfo_or_data_never_both():
    element = _element()
    with pytest.raises(AttributeError, match="img_id to be a field of data"):
        element.img_id = 3
    with pytest.raises(AttributeError, match="bboxes to be a field of metainfo"):
        element.set_metainfo({"bboxes": 1})
    element.set_metainfo({"img_id": 9})
    assert element.img_id == 9


def test_private_field_sets_are_immutable():
    element = _element()
    with pytest.raises(AttributeError, match="immutable"):
        element._data_fields = set()
    with pytest.raises(AttributeError, match="immutable"):
        del element._metainfo_fields


def test_delete_and_pop():
    element = _element()
    del element.bboxes
    del element["img_id"]
    assert "bboxes" not in element
    assert "img_id" not in element
    assert element.pop("img_shape") == (4, 6)
    assert element.pop("scores").tolist() == [0.5, 0.75]
    assert element.pop("scores", None) is None
    with pytest.raises(KeyError, match="scores is not contained"):
        element.pop("scores")
    with pytest.raises(TypeError, match="pop"):
        element.pop("a", 1, 2)
    assert element.all_keys() == []


def test_set_field_checks_dtype_and_kind():
    element = BaseDataElement()
    element.set_field(torch.ones(1), "x", dtype=torch.Tensor)
    with pytest.raises(TypeError, match="should be a"):
        element.set_field([1], "y", dtype=torch.Tensor)
    with pytest.raises(AssertionError):  # what MMEngine raises, for code written against it
        element.set_field([1], "y", dtype=torch.Tensor)
    with pytest.raises(ValueError, match="field_type"):
        element.set_field(1, "z", field_type="other")
    with pytest.raises(TypeError, match="metainfo should be a"):
        element.set_metainfo([("a", 1)])
    with pytest.raises(TypeError, match="data should be a"):
        element.set_data([("a", 1)])


def test_property_fields_of_subclasses():
    sample = DetDataSample(metainfo={"img_id": 3})
    instances = InstanceData(labels=torch.tensor([1]))
    sample.gt_instances = instances
    assert sample.gt_instances is instances
    assert sample.keys() == ["gt_instances"]  # "_gt_instances" is hidden
    assert "gt_instances" in sample
    with pytest.raises(AssertionError):
        sample.gt_instances = torch.ones(1)
    clone = sample.clone()
    assert clone.gt_instances is instances
    del sample.gt_instances
    assert "gt_instances" not in sample.keys()


def test_new_clone_update():
    element = _element()
    new = element.new(metainfo={"img_id": 2}, labels=torch.tensor([1, 2]))
    assert type(new) is BaseDataElement
    assert new.metainfo == {"img_id": 2}
    assert new.keys() == ["labels"]
    same_fields = element.new()
    assert sorted(same_fields.all_keys()) == sorted(element.all_keys())
    assert same_fields.bboxes is element.bboxes
    clone = element.clone()
    assert clone.bboxes is element.bboxes  # MMEngine's clone shares data values
    other = BaseDataElement(metainfo={"img_id": 5}, extra=torch.zeros(1))
    element.update(other)
    assert element.img_id == 5
    assert "extra" in element
    with pytest.raises(TypeError, match="instance should be a"):
        element.update({"a": 1})


def test_tensor_like_methods():
    nested = BaseDataElement(t=torch.ones(2, requires_grad=True) * 2)
    element = BaseDataElement(
        metainfo={"m": 1},
        t=torch.ones(2, requires_grad=True) * 3,
        n=np.ones(2),
        nested=nested,
        s="x",
    )
    half = element.to(torch.float16)
    assert half.t.dtype == torch.float16
    assert half.nested.t.dtype == torch.float16
    assert half.s == "x"
    assert half.metainfo == {"m": 1}
    assert element.t.dtype == torch.float32  # a new element
    detached = element.detach()
    assert not detached.t.requires_grad
    assert not detached.nested.t.requires_grad
    assert element.cpu().t.device.type == "cpu"
    as_numpy = element.numpy()
    assert isinstance(as_numpy.t, np.ndarray)
    assert isinstance(as_numpy.nested.t, np.ndarray)
    back = as_numpy.to_tensor()
    assert isinstance(back.t, torch.Tensor)
    assert isinstance(back.n, torch.Tensor)
    assert isinstance(back.nested.t, torch.Tensor)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_and_back():
    element = BaseDataElement(t=torch.ones(2), nested=BaseDataElement(u=torch.zeros(1)))
    on_gpu = element.cuda()
    assert on_gpu.t.is_cuda
    assert on_gpu.nested.u.is_cuda
    assert not on_gpu.cpu().t.is_cuda


def test_to_dict_and_repr():
    inner = InstanceData(metainfo={"img_shape": (2, 2)}, labels=torch.tensor([1]))
    sample = BaseDataElement(metainfo={"img_id": 7}, gt=inner)
    as_dict = sample.to_dict()
    assert as_dict["img_id"] == 7
    assert as_dict["gt"]["img_shape"] == (2, 2)
    assert as_dict["gt"]["labels"].tolist() == [1]
    text = re.sub(r"0x[0-9a-f]+", "0x?", repr(sample))
    assert text == (
        "<BaseDataElement(\n\n    META INFORMATION\n    img_id: 7\n\n    DATA FIELDS\n"
        "    gt: <InstanceData(\n        \n            META INFORMATION\n"
        "            img_shape: (2, 2)\n        \n            DATA FIELDS\n"
        "            labels: tensor([1])\n        ) at 0x?>\n) at 0x?>"
    )


def test_deepcopy_and_pickle():
    element = _element()
    for copied in (copy.deepcopy(element), pickle.loads(pickle.dumps(element))):
        assert sorted(copied.all_keys()) == sorted(element.all_keys())
        assert copied.bboxes is not element.bboxes
        assert torch.equal(copied.bboxes, element.bboxes)


@pytest.mark.parametrize("collate", [pseudo_collate, default_collate])
def test_collate_keeps_data_elements(collate):
    samples = [
        {"inputs": torch.full((2,), float(i)), "data_samples": DetDataSample(metainfo={"i": i})}
        for i in range(3)
    ]
    batch = collate(samples)
    assert [s.i for s in batch["data_samples"]] == [0, 1, 2]
    assert all(isinstance(s, DetDataSample) for s in batch["data_samples"])
    if collate is default_collate:
        assert batch["inputs"].shape == (3, 2)
    else:
        assert len(batch["inputs"]) == 3


def test_default_collate_keeps_instance_data_whole():
    # InstanceData has __len__ and __getitem__ but must not be transposed like a sequence.
    batch = default_collate([InstanceData(x=[1, 2]), InstanceData(x=[3, 4])])
    assert [b.x for b in batch] == [[1, 2], [3, 4]]


# ---------------------------------------------------------------------------------- InstanceData


def _instances():
    return InstanceData(
        metainfo={"img_shape": (8, 8)},
        labels=torch.tensor([0, 1, 2]),
        names=["a", "b", "c"],
        text="xyz",
    )


def test_instance_length_rules():
    instances = _instances()
    assert len(instances) == 3
    instances["scores"] = torch.ones(3)  # __setitem__
    with pytest.raises(ValueError, match=r"length of values 2 is not consistent .* 3"):
        instances.boxes = torch.ones(2, 4)
    with pytest.raises(AssertionError):
        instances.boxes = torch.ones(2, 4)
    with pytest.raises(TypeError, match="must contain `__len__`"):
        instances.count = 3
    assert len(InstanceData()) == 0
    instances.set_metainfo({"anything": 5})  # metainfo has no length rule


def test_instance_index_empty_list_and_errors():
    instances = _instances()
    empty = instances[[]]  # MMEngine fails here (a float index)
    assert len(empty) == 0
    assert empty.names == []
    assert empty.text == ""
    assert instances[torch.tensor([2, 0], dtype=torch.int32)].names == ["c", "a"]
    with pytest.raises(TypeError, match=r"bools .* or integers"):
        instances[torch.tensor([0.0, 1.0])]
    with pytest.raises(TypeError, match=r"bools .* or integers"):
        instances[torch.tensor([1, 0, 1], dtype=torch.uint8)]
    with pytest.raises(ValueError, match="must be 1-D"):
        instances[torch.tensor([[0, 1]])]
    with pytest.raises(TypeError, match="can be indexed by"):
        instances[1.5]
    with pytest.raises(TypeError, match="can be indexed by"):
        instances[True]
    with pytest.raises(ValueError, match="does not match the shape"):
        instances[[True, False]]
    with pytest.raises(IndexError, match="-4"):
        instances[-4]
    assert instances["names"] == ["a", "b", "c"]


def test_instance_index_field_without_cat():
    instances = InstanceData(weird=range(3))
    assert list(instances[1:].weird) == [1, 2]
    with pytest.raises(ValueError, match="has no attribute of `cat`"):
        instances[torch.tensor([True, False, True])]


class Polygons:
    """A custom field type: __len__, __getitem__ and cat (MMEngine's docstring example)."""

    def __init__(self, items):
        self.items = list(items)

    def __len__(self):
        return len(self.items)

    def __getitem__(self, item):
        if isinstance(item, int):
            item = slice(item, None, len(self))
        return Polygons(self.items[item])

    @staticmethod
    def cat(objs):
        return Polygons(itertools.chain(*(o.items for o in objs)))


def test_instance_custom_field_type():
    instances = InstanceData(polygons=Polygons([[1], [2], [3]]), labels=torch.arange(3))
    assert instances[torch.tensor([True, False, True])].polygons.items == [[1], [3]]
    assert instances[[2, 2]].polygons.items == [[3], [3]]
    assert instances[torch.tensor([False] * 3)].polygons.items == []
    assert InstanceData.cat([instances, instances[:1]]).polygons.items == [[1], [2], [3], [1]]


def test_instance_bool_mask_on_other_device_tensor():
    instances = _instances()
    mask = instances.labels > 0
    assert instances[mask].names == ["b", "c"]


def test_instance_cat_errors():
    instances = _instances()
    assert InstanceData.cat([instances]) is instances
    with pytest.raises(ValueError, match="at least one"):
        InstanceData.cat([])
    with pytest.raises(TypeError, match="list of InstanceData"):
        InstanceData.cat([instances, BaseDataElement()])
    other = InstanceData(labels=torch.tensor([1]))
    with pytest.raises(ValueError, match="different keys"):
        InstanceData.cat([instances, other])
    with pytest.raises(ValueError, match="has no attribute of `cat`"):
        InstanceData.cat([InstanceData(r=range(2)), InstanceData(r=range(1))])
    joined = InstanceData.cat([instances, instances])
    assert joined.text == "xyzxyz"
    assert joined.names == ["a", "b", "c"] * 2
    assert joined.metainfo == {"img_shape": (8, 8)}
    assert instances.names == ["a", "b", "c"]  # lists are copied, not extended in place


# ---------------------------------------------------------------------------------- LabelData


def test_label_data_conversions():
    onehot = LabelData.label_to_onehot(torch.tensor([0, 2]), num_classes=4)
    assert onehot.tolist() == [1, 0, 1, 0]
    assert LabelData.onehot_to_label(onehot).tolist() == [0, 2]
    assert LabelData.label_to_onehot(torch.tensor(3), 4).tolist() == [0, 0, 0, 1]
    assert LabelData.onehot_to_label(torch.zeros(0)).tolist() == []
    with pytest.raises(ValueError, match="out of range for num_classes=3"):
        LabelData.label_to_onehot(torch.tensor([3]), 3)
    with pytest.raises(ValueError, match="not one-hot"):
        LabelData.onehot_to_label(torch.ones(2, 2))
    with pytest.raises(TypeError, match=r"torch.Tensor"):
        LabelData.onehot_to_label([0, 1])
    with pytest.raises(TypeError, match=r"torch.Tensor"):
        LabelData.label_to_onehot([0, 1], 2)
    label = LabelData(metainfo={"num_classes": 4}, score=torch.rand(4))
    assert label.num_classes == 4


# ---------------------------------------------------------------------------------- PixelData


def test_pixel_data_shapes_and_warning():
    pixel = PixelData(metainfo={"img_id": 1}, featmap=torch.zeros(3, 4, 5))
    assert pixel.shape == (4, 5)
    with pytest.warns(UserWarning, match=r"convert from torch.Size\(\[4, 5\]\)"):
        pixel.mask = torch.ones(4, 5)
    assert pixel.mask.shape == (1, 4, 5)
    pixel.image = np.zeros((2, 4, 5))
    with pytest.raises(ValueError, match=r"\(3, 3\) is not consistent .* \(4, 5\)"):
        pixel.bad = torch.zeros(1, 3, 3)
    with pytest.raises(ValueError, match="dim of value must be 2 or 3"):
        pixel.bad = torch.zeros(1, 1, 4, 5)
    with pytest.raises(TypeError, match="only support"):
        pixel.bad = [[0]]
    assert PixelData().shape is None


def test_pixel_data_indexing():
    pixel = PixelData(featmap=torch.arange(24).reshape(2, 3, 4))
    assert pixel[1, 2].featmap.tolist() == [[[6]], [[18]]]
    assert pixel[:, 1:3].shape == (3, 2)
    assert pixel[-1, :].featmap.shape == (2, 1, 4)
    with pytest.raises(TypeError, match="Unsupported type"):
        pixel[0]
    with pytest.raises(ValueError, match="height and width"):
        pixel[0, 0, 0]
    with pytest.raises(TypeError, match="int or slice"):
        pixel[0, 1.5]


def test_clone_is_new_without_arguments():
    element = InstanceData(metainfo={"img_id": 1, "shape": [4, 4]}, bboxes=torch.zeros(2, 4))
    clone = element.clone()
    assert type(clone) is InstanceData
    assert clone.metainfo == element.metainfo
    assert clone.metainfo["shape"] is not element.metainfo["shape"]  # metainfo deep-copied
    assert clone.bboxes is element.bboxes
    assert sorted(clone.all_keys()) == sorted(element.new().all_keys())

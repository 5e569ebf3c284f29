"""treadle.core.runner.rng: generator states survive a checkpoint and replay exactly."""

from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from treadle.core.runner.checkpoint import load_checkpoint, save_checkpoint
from treadle.core.runner.rng import get_rng_state, set_rng_state


def draw() -> tuple[list[float], float, list[float], float, list[float]]:
    """Numbers from every generator, including the cached-gaussian paths of python and numpy."""
    return (
        [random.random() for _ in range(3)],
        random.gauss(0.0, 1.0),
        np.random.rand(3).tolist(),
        float(np.random.randn()),
        torch.rand(3).tolist() + torch.randn(2).tolist(),
    )


@pytest.fixture(autouse=True)
def _keep_global_rng():
    """Tests here move the global generators; put them back for the rest of the suite."""
    state = get_rng_state()
    yield
    set_rng_state(state)


def test_next_numbers_match_after_restore() -> None:
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    random.gauss(0.0, 1.0)  # leaves python's second gaussian cached (gauss_next)
    np.random.randn()  # numpy caches its second gaussian too
    state = get_rng_state()
    expected = draw()
    draw()  # move on
    set_rng_state(state)
    assert draw() == expected


def test_state_is_plain_data_and_survives_weights_only_load(tmp_path: Path) -> None:
    state = get_rng_state()
    expected = draw()
    assert set(state) >= {"python", "numpy", "torch"}
    # The Mersenne Twister keys travel as int64 tensors (one pickle record, not 625).
    assert state["python"]["state"].dtype == state["numpy"]["state"].dtype == torch.int64
    assert state["python"]["state"].shape == (625,)
    assert state["torch"].dtype == torch.uint8

    path = tmp_path / "rng.pth"
    save_checkpoint({"rng_state": state}, path)
    loaded = torch.load(path, weights_only=True)["rng_state"]  # PyTorch's own safe loader
    draw()
    set_rng_state(loaded)
    assert draw() == expected
    set_rng_state(load_checkpoint(path)["rng_state"])
    assert draw() == expected


def test_restores_the_list_form_of_earlier_checkpoints() -> None:
    state = get_rng_state()
    expected = draw()
    for part in ("python", "numpy"):
        state[part] = {**state[part], "state": state[part]["state"].tolist()}
    set_rng_state(state)
    assert draw() == expected


def test_partial_state_restores_only_what_it_holds() -> None:
    state = get_rng_state()
    expected_torch = torch.rand(4).tolist()
    python_now = random.getstate()
    set_rng_state({"torch": state["torch"]})
    assert torch.rand(4).tolist() == expected_torch
    assert random.getstate() == python_now  # untouched


def test_bad_state_is_named() -> None:
    with pytest.raises(TypeError, match="mapping"):
        set_rng_state([1, 2])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="'torch' must be a Tensor, got list"):
        set_rng_state({"torch": [1, 2, 3]})
    with pytest.raises(TypeError, match="'python' must be a dict"):
        set_rng_state({"python": (3, (), None)})


def test_pickle_round_trip_without_torch_save() -> None:
    state = get_rng_state()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    restored = torch.load(buffer, weights_only=True)
    for part in ("python", "numpy"):
        assert restored[part].keys() == state[part].keys()
        for key, value in state[part].items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(restored[part][key], value)
            else:
                assert restored[part][key] == value
    assert torch.equal(restored["torch"], state["torch"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_generators_round_trip(tmp_path: Path) -> None:
    torch.cuda.init()
    state = get_rng_state()
    assert len(state["cuda"]) == torch.cuda.device_count()
    expected = torch.rand(4, device="cuda").tolist()
    torch.rand(4, device="cuda")
    path = tmp_path / "rng.pth"
    save_checkpoint({"rng_state": state}, path)
    # Loaded onto the GPU (a resume with map_location="cuda"): still restorable.
    set_rng_state(load_checkpoint(path, map_location="cuda")["rng_state"])
    assert torch.rand(4, device="cuda").tolist() == expected

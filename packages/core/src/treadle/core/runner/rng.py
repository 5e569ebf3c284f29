"""Random number generator states as plain values, for checkpoints and exact resumption.

:func:`get_rng_state` captures the generators a training run draws from: Python's ``random``,
numpy's legacy global generator (``np.random.*``, when numpy is installed), torch's CPU generator
and, once CUDA is initialized, every CUDA device's generator. The result holds only ints, floats,
lists and CPU tensors, so a checkpoint carrying it still loads with
``torch.load(weights_only=True)``; long int sequences (Python's and numpy's Mersenne Twister keys)
are int64 tensors, which a checkpoint stores in one piece. :func:`set_rng_state` puts them back:
the next numbers drawn are the ones the saved run would have drawn.

Example:
    >>> state = get_rng_state()
    >>> a = torch.rand(3)
    >>> set_rng_state(state)
    >>> bool((torch.rand(3) == a).all())
    True
"""

from __future__ import annotations

import logging
import random
from typing import TYPE_CHECKING, Any

import torch

from treadle.core.logging import print_log

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["get_rng_state", "set_rng_state"]


def _numpy() -> Any:
    try:
        import numpy
    except ImportError:
        return None
    return numpy


def get_rng_state() -> dict[str, Any]:
    """Capture the global random generators' states.

    Returns:
        ``{"python": {...}, "numpy": {...}, "torch": ByteTensor, "cuda": [ByteTensor, ...]}``;
        ``"numpy"`` only when numpy is installed, ``"cuda"`` only when CUDA is initialized in
        this process (a process that never touched CUDA has no CUDA generator state to keep).
    """
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        # Long int sequences are int64 tensors: a checkpoint pickles a list item by item.
        "python": {
            "version": version,
            "state": torch.tensor(internal, dtype=torch.int64),
            "gauss_next": gauss_next,
        },
        "torch": torch.get_rng_state(),
    }
    np = _numpy()
    if np is not None:
        kind, keys, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
        state["numpy"] = {
            "bit_generator": str(kind),
            "state": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        }
    cuda_initialized: Callable[[], bool] = torch.cuda.is_initialized  # untyped in torch
    if cuda_initialized() and torch.cuda.is_available():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def _ints(values: Any) -> Any:
    """A saved int sequence as a list: a tensor (treadle ≥ this format) or a list (older)."""
    return values.tolist() if isinstance(values, torch.Tensor) else values


def _part(state: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = state[key]
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise TypeError(f"rng state {key!r} must be a {names}, got {type(value).__name__}")
    return value


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore generator states captured by :func:`get_rng_state`.

    Parts that are absent are left alone; a ``"numpy"`` part is skipped (with a warning) when
    numpy is not installed, and ``"cuda"`` when CUDA is not available. With fewer CUDA devices
    than saved states, the first devices get the first states (with a warning). Tensors may be
    on any device (a checkpoint loaded with ``map_location="cuda"``).

    Args:
        state: The mapping :func:`get_rng_state` returned.

    Raises:
        TypeError: ``state`` or one of its parts has the wrong type (the message names it).
        KeyError: A part lacks one of its fields.
    """
    if not hasattr(state, "keys"):
        raise TypeError(f"rng state must be a mapping, got {type(state).__name__}")
    if "python" in state:
        py = _part(state, "python", dict)
        gauss_next = py["gauss_next"]
        random.setstate((int(py["version"]), tuple(map(int, _ints(py["state"]))), gauss_next))
    if "numpy" in state:
        np_state = _part(state, "numpy", dict)
        np = _numpy()
        if np is None:
            print_log(
                "rng state holds numpy's state but numpy is not installed; not restored",
                logger="current",
                level=logging.WARNING,
            )
        else:
            np.random.set_state(
                (
                    np_state["bit_generator"],
                    np.asarray(_ints(np_state["state"]), dtype=np.uint32),
                    int(np_state["pos"]),
                    int(np_state["has_gauss"]),
                    float(np_state["cached_gaussian"]),
                )
            )
    if "torch" in state:
        torch.set_rng_state(_part(state, "torch", torch.Tensor).cpu())
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = _part(state, "cuda", (list, tuple))
        count = torch.cuda.device_count()
        if len(cuda_states) != count:
            print_log(
                f"rng state holds {len(cuda_states)} CUDA generator states, this process sees "
                f"{count} devices; restoring the first {min(count, len(cuda_states))}",
                logger="current",
                level=logging.WARNING,
            )
        for index, device_state in enumerate(cuda_states[:count]):
            torch.cuda.set_rng_state(device_state.cpu(), index)

"""Seeding and environment set-up for the Runner."""

from __future__ import annotations

import importlib
import os
import random
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from treadle.core.strategy import Strategy

__all__ = ["is_remote_path", "set_random_seed", "setup_env"]


def is_remote_path(path: str) -> bool:
    """Whether ``path`` is a URI with a scheme other than ``file`` (``s3://…``, ``memory://…``)."""
    scheme, sep, _ = path.partition("://")
    return bool(sep) and scheme not in ("", "file") and len(scheme) > 1


def set_random_seed(
    seed: int | None,
    strategy: Strategy,
    deterministic: bool = False,
    diff_rank_seed: bool = False,
) -> int:
    """Seed python, numpy and torch (MMEngine's ``set_random_seed``) and return the seed.

    Args:
        seed: The seed; ``None`` draws one on rank 0 and shares it with every rank.
        strategy: Gives the rank and shares the drawn seed.
        deterministic: Also ask torch for deterministic algorithms (and cuDNN without
            benchmarking). It is a process-wide switch.
        diff_rank_seed: Add the rank to the seed, so ranks draw different random numbers.
    """
    import torch

    if seed is None:
        seed = int(strategy.broadcast_object(random.randint(0, 2**31 - 1)))
    if diff_rank_seed:
        seed += strategy.rank
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:
        pass
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True)
    return seed


def setup_env(env_cfg: dict[str, Any]) -> None:
    """Apply ``env_cfg`` (MMEngine's keys): ``cudnn_benchmark`` and ``mp_cfg``.

    ``dist_cfg`` is handed to the distributed strategy, not applied here.
    """
    import torch

    if env_cfg.get("cudnn_benchmark"):
        torch.backends.cudnn.benchmark = True
    mp_cfg = env_cfg.get("mp_cfg") or {}
    method = mp_cfg.get("mp_start_method")
    if method is not None:
        import multiprocessing as mp

        current = mp.get_start_method(allow_none=True)
        if current != method:
            mp.set_start_method(method, force=True)
    threads = mp_cfg.get("opencv_num_threads")
    if threads is not None:
        try:
            cv2 = importlib.import_module("cv2")
        except ImportError:
            pass
        else:
            cv2.setNumThreads(threads)
    if "OMP_NUM_THREADS" not in os.environ and env_cfg.get("omp_num_threads") is not None:
        os.environ["OMP_NUM_THREADS"] = str(env_cfg["omp_num_threads"])

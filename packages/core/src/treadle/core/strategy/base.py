"""``Strategy``: how a model meets the hardware.

A strategy puts the model on its device(s), wraps it when it runs on several processes (DDP,
FSDP), provides the collectives the kernel needs and produces the state dicts that go into
checkpoints. The kernel never touches ``torch.distributed`` itself; it asks the strategy.

Core ships :class:`~treadle.core.strategy.SingleDeviceStrategy`; ``treadle-dist`` ships DDP and
``treadle-strategy-fsdp`` ships FSDP2, both through the STRATEGIES registry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import logging
    from collections.abc import Mapping

    import torch
    from torch import nn


class Strategy:
    """Base class of strategies. Subclasses override what differs from one process on one device.

    The collectives here are the non-distributed fallbacks: with one process they are identities.
    """

    #: The rank of this process among all processes.
    rank: int = 0
    #: The number of processes.
    world_size: int = 1
    #: The rank of this process on its machine.
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        """Whether more than one process takes part."""
        return self.world_size > 1

    @property
    def device(self) -> torch.device:
        """The device the model and the batches go to."""
        raise NotImplementedError

    def setup(self) -> None:
        """Initialise the process group or device. Called once, before anything is built."""

    def prepare_model(self, model: nn.Module) -> nn.Module:
        """Move ``model`` to its device and wrap it if needed; return what the loops call."""
        raise NotImplementedError

    def unwrap_model(self, model: nn.Module) -> nn.Module:
        """Return the user's model inside any wrapper this strategy added.

        Peels every model wrapper (DDP, DataParallel, or a class in ``MODEL_WRAPPERS``; see
        :func:`~treadle.core.model.utils.unwrap_model`).
        """
        from treadle.core.model.utils import unwrap_model

        return unwrap_model(model)

    # -- collectives (identity with one process) ----------------------------------------------

    def barrier(self) -> None:
        """Wait until every process reaches this point."""

    def broadcast_object(self, obj: Any, src: int = 0) -> Any:
        """Return rank ``src``'s ``obj`` on every rank."""
        return obj

    def broadcast(self, tensor: torch.Tensor, src: int = 0) -> torch.Tensor:
        """Overwrite ``tensor`` in place with rank ``src``'s and return it."""
        return tensor

    def all_gather_object(self, obj: Any) -> list[Any]:
        """Return every rank's ``obj``, in rank order."""
        return [obj]

    def all_reduce(self, tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
        """Reduce ``tensor`` across ranks in place (``sum`` or ``mean``) and return it."""
        if op not in ("sum", "mean"):
            raise ValueError(f"all_reduce op must be 'sum' or 'mean', got {op!r}")
        return tensor

    # -- checkpoints --------------------------------------------------------------------------

    def model_state_dict(self, model: nn.Module) -> dict[str, Any]:
        """The model's state dict as it goes into a checkpoint (unwrapped keys)."""
        return self.unwrap_model(model).state_dict()

    def load_model_state_dict(
        self,
        model: nn.Module,
        state_dict: Mapping[str, Any],
        strict: bool = False,
        logger: logging.Logger | str | None = None,
    ) -> None:
        """Load ``state_dict`` (keys as :meth:`model_state_dict` saves them) into the model.

        The Runner's ``load_from`` and ``resume`` load weights through this method, the pair of
        :meth:`model_state_dict`: a strategy that gathers, shards or stores the tensors its own
        way overrides both. The names stay the unwrapped module's own (MMEngine's layout):
        EMAHook, ``revise_keys`` and checkpoints from other runs rely on them.

        Mismatches are reported as MMEngine reports them
        (:func:`~treadle.core.runner.checkpoint.load_state_dict`): without ``strict``, every
        unexpected, missing and wrongly shaped key is named in one warning and the rest loads
        (fine-tuning from a checkpoint with another head); with ``strict`` they raise.

        Args:
            model: The model as the loops call it (wrapped or not).
            state_dict: Names to tensors, after ``revise_keys``.
            strict: Raise :class:`RuntimeError` on any mismatch instead of warning.
            logger: Where the warning goes (rank 0 only).
        """
        from treadle.core.runner.checkpoint import load_state_dict

        load_state_dict(self.unwrap_model(model), state_dict, strict, logger)

    def optim_state_dict(self, optim_wrapper: Any) -> dict[str, Any]:
        """The optimizer wrapper's state dict as it goes into a checkpoint."""
        state: dict[str, Any] = optim_wrapper.state_dict()
        return state

    def load_optim_state_dict(self, optim_wrapper: Any, state_dict: dict[str, Any]) -> None:
        """Load an optimizer wrapper's state dict."""
        optim_wrapper.load_state_dict(state_dict)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rank={self.rank}, world_size={self.world_size})"

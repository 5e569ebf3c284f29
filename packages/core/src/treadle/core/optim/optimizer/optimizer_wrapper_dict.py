"""Several optimizers in one object: :class:`OptimWrapperDict`."""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from treadle.core.optim.optimizer.optimizer_wrapper import OptimWrapper

if TYPE_CHECKING:
    from collections.abc import Iterator

    import torch
    from torch import nn

__all__ = ["OptimWrapperDict"]


class OptimWrapperDict(OptimWrapper):
    """A named collection of :class:`OptimWrapper` objects (e.g. a GAN's generator and
    discriminator), saved and loaded together.

    Which wrapper a loss belongs to is the model's business, so :meth:`update_params`,
    :meth:`backward`, :meth:`step` and :meth:`optim_context` raise ``NotImplementedError``: call
    them on the wrapper you mean (``optim_wrapper["generator"].update_params(loss)``).
    Read-outs (:meth:`get_lr`, :meth:`get_momentum`, :meth:`get_grad_norm`) prefix each key with
    the wrapper's name (``"generator.lr"``); :meth:`state_dict` has one entry per name.

    Args:
        **optim_wrappers: The wrappers, by name.

    Raises:
        TypeError: A value is not an :class:`OptimWrapper`.

    Example:
        >>> import torch
        >>> gen, disc = torch.nn.Linear(1, 1), torch.nn.Linear(1, 1)
        >>> wrappers = OptimWrapperDict(
        ...     generator=OptimWrapper(torch.optim.SGD(gen.parameters(), lr=0.1)),
        ...     discriminator=OptimWrapper(torch.optim.SGD(disc.parameters(), lr=0.2)),
        ... )
        >>> wrappers.get_lr()
        {'generator.lr': [0.1], 'discriminator.lr': [0.2]}
    """

    def __init__(self, **optim_wrappers: OptimWrapper) -> None:
        for key, value in optim_wrappers.items():
            if not isinstance(value, OptimWrapper):
                raise TypeError(
                    "OptimWrapperDict only accepts OptimWrapper instances, but "
                    f"{key!r} is a {type(value).__name__}"
                )
        self.optim_wrappers = optim_wrappers

    def update_params(
        self,
        loss: torch.Tensor,
        step_kwargs: dict[str, Any] | None = None,
        zero_kwargs: dict[str, Any] | None = None,
    ) -> None:
        """Not implemented: call ``update_params`` of the wrapper the loss belongs to."""
        raise NotImplementedError(
            "OptimWrapperDict.update_params is ambiguous: call update_params on the wrapper the "
            f"loss belongs to (one of {list(self.optim_wrappers)})"
        )

    def backward(self, loss: torch.Tensor, **kwargs: Any) -> None:
        """Not implemented: call ``backward`` of the wrapper the loss belongs to."""
        raise NotImplementedError(
            "OptimWrapperDict.backward is ambiguous: call backward on the wrapper the loss "
            f"belongs to (one of {list(self.optim_wrappers)})"
        )

    def step(self, **kwargs: Any) -> None:
        """Not implemented: call ``step`` of each wrapper."""
        raise NotImplementedError(
            "OptimWrapperDict.step is ambiguous: call step on each wrapper (one of "
            f"{list(self.optim_wrappers)})"
        )

    def zero_grad(self, **kwargs: Any) -> None:
        """Reset the gradients of every wrapper.

        Args:
            **kwargs: Passed to each wrapper's ``zero_grad``.
        """
        for optim_wrapper in self.optim_wrappers.values():
            optim_wrapper.zero_grad(**kwargs)

    @contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        """Not implemented: use the ``optim_context`` of each wrapper."""
        raise NotImplementedError(
            "OptimWrapperDict.optim_context is ambiguous: use optim_context of the wrapper "
            f"(one of {list(self.optim_wrappers)})"
        )
        yield  # pragma: no cover

    def initialize_count_status(self, model: nn.Module, init_counts: int, max_counts: int) -> None:
        """Initialise every wrapper (see :meth:`OptimWrapper.initialize_count_status`), each with
        the submodule named like it (``model.generator`` for ``"generator"``, looked up inside
        any model wrapper such as DDP), or with ``model`` when there is none.

        Args:
            model: The model being trained (wrapped or not).
            init_counts: The iteration the run starts (or resumes) at.
            max_counts: The total number of iterations of the run.
        """
        from torch.nn import Module

        from treadle.core.model.utils import unwrap_model

        inner = unwrap_model(model)
        for name, optim_wrapper in self.optim_wrappers.items():
            part = getattr(inner, name, None)
            optim_wrapper.initialize_count_status(
                part if isinstance(part, Module) else model, init_counts, max_counts
            )

    @property
    def param_groups(self) -> dict[str, list[dict[str, Any]]]:  # type: ignore[override]
        """The parameter groups of every wrapper, by name."""
        return {key: value.param_groups for key, value in self.optim_wrappers.items()}

    @property
    def defaults(self) -> dict[str, Any]:
        """The optimizer defaults of every wrapper, by name."""
        return {key: value.defaults for key, value in self.optim_wrappers.items()}

    def get_lr(self) -> dict[str, list[float]]:
        """The learning rates of every wrapper, keys prefixed with its name.

        Returns:
            ``{"<name>.lr": [...]}`` (and ``"<name>.base_lr"`` where the wrapper has one).
        """
        lr_dict: dict[str, list[float]] = {}
        for name, optim_wrapper in self.optim_wrappers.items():
            inner = optim_wrapper.get_lr()
            if "base_lr" in inner:
                lr_dict[f"{name}.base_lr"] = inner["base_lr"]
            lr_dict[f"{name}.lr"] = inner["lr"]
        return lr_dict

    def get_momentum(self) -> dict[str, list[float]]:
        """The momentum of every wrapper, keys prefixed with its name.

        Returns:
            ``{"<name>.momentum": [...]}``.
        """
        return {
            f"{name}.momentum": optim_wrapper.get_momentum()["momentum"]
            for name, optim_wrapper in self.optim_wrappers.items()
        }

    def get_grad_norm(self) -> dict[str, torch.Tensor]:
        """The last gradient norms of every wrapper, keys prefixed with its name.

        Returns:
            ``{"<name>.grad_norm": tensor}`` for the wrappers that measured one.
        """
        return {
            f"{name}.{key}": value
            for name, optim_wrapper in self.optim_wrappers.items()
            for key, value in optim_wrapper.get_grad_norm().items()
        }

    def state_dict(self) -> dict[str, Any]:
        """The state dict of every wrapper, by name.

        Returns:
            ``{name: wrapper.state_dict()}``.
        """
        return {name: wrapper.state_dict() for name, wrapper in self.optim_wrappers.items()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load the state dict of every wrapper named in ``state_dict``.

        Args:
            state_dict: ``{name: wrapper state dict}``.

        Raises:
            KeyError: ``state_dict`` names a wrapper this dict does not have.
        """
        unknown = [name for name in state_dict if name not in self.optim_wrappers]
        if unknown:
            raise KeyError(
                f"state_dict has optimizer wrappers {unknown} that this OptimWrapperDict does "
                f"not have (it has {list(self.optim_wrappers)})"
            )
        for name, wrapper_state in state_dict.items():
            self.optim_wrappers[name].load_state_dict(wrapper_state)

    def items(self) -> Iterator[tuple[str, OptimWrapper]]:
        """Yield ``(name, wrapper)`` pairs."""
        yield from self.optim_wrappers.items()

    def values(self) -> Iterator[OptimWrapper]:
        """Yield the wrappers."""
        yield from self.optim_wrappers.values()

    def keys(self) -> Iterator[str]:
        """Yield the names."""
        yield from self.optim_wrappers.keys()

    def __getitem__(self, key: str) -> OptimWrapper:
        if key not in self.optim_wrappers:
            raise KeyError(
                f"no optimizer wrapper called {key!r} in this OptimWrapperDict (it has "
                f"{list(self.optim_wrappers)}); check the optimizer wrapper constructor"
            )
        return self.optim_wrappers[key]

    def __contains__(self, key: object) -> bool:
        return key in self.optim_wrappers

    def __len__(self) -> int:
        return len(self.optim_wrappers)

    def __repr__(self) -> str:
        return "".join(
            f"name: {name}\n{wrapper!r}" for name, wrapper in self.optim_wrappers.items()
        )

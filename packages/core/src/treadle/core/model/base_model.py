"""``BaseModel``: the model interface the loops drive (MMEngine's ``mmengine.model.BaseModel``).

A subclass implements :meth:`BaseModel.forward` with three modes; the loops call
:meth:`~BaseModel.train_step`, :meth:`~BaseModel.val_step` and :meth:`~BaseModel.test_step`::

    train_step(data, optim_wrapper):
        with optim_wrapper.optim_context(model):      # autocast, no_sync when accumulating
            data = model.data_preprocessor(data, True)
            losses = model(**data, mode="loss")       # or model(*data, ...) for a list/tuple
        loss, log_vars = model.parse_losses(losses)
        optim_wrapper.update_params(loss)             # backward, step, zero_grad
        return log_vars                               # detached tensors, no host sync
"""

from __future__ import annotations

from abc import abstractmethod
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import nn

from treadle.core.model.base_module import BaseModule
from treadle.core.model.data_preprocessor import BaseDataPreprocessor
from treadle.core.model.utils import calls_forward_only

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractContextManager

__all__ = ["BaseModel", "OptimWrapperLike"]


class OptimWrapperLike(Protocol):
    """What :meth:`BaseModel.train_step` needs from an optimizer wrapper."""

    def optim_context(self, model: nn.Module) -> AbstractContextManager[Any]:
        """Context for the forward pass (autocast, gradient-sync control)."""
        ...

    def update_params(self, loss: torch.Tensor) -> None:
        """Backward ``loss`` and step the optimizer."""
        ...


class BaseModel(BaseModule):
    """Base class of the models the Runner trains.

    Implement :meth:`forward`; :meth:`train_step` preprocesses the batch, runs
    ``forward(mode="loss")``, sums the losses with :meth:`parse_losses` and updates the
    parameters through the optimizer wrapper.

    Args:
        data_preprocessor: A module, or a config built through ``MODELS``; default
            :class:`BaseDataPreprocessor` (moves the batch to the model's device).
        init_cfg: Weight initialisation config (see :class:`BaseModule`).

    Raises:
        TypeError: ``data_preprocessor`` is neither a dict nor an ``nn.Module``.

    Example:
        >>> class Net(BaseModel):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.fc = nn.Linear(4, 2)
        ...     def forward(self, inputs, data_samples=None, mode="tensor"):
        ...         out = self.fc(inputs)
        ...         if mode == "loss":
        ...             return {"loss": nn.functional.cross_entropy(out, data_samples)}
        ...         return out.argmax(1) if mode == "predict" else out
    """

    def __init__(
        self,
        data_preprocessor: dict[str, Any] | nn.Module | None = None,
        init_cfg: dict[str, Any] | list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(init_cfg)
        if data_preprocessor is None:
            # What MODELS.build(dict(type="BaseDataPreprocessor")) gives, without a registry trip.
            self.data_preprocessor: nn.Module = BaseDataPreprocessor()
        elif isinstance(data_preprocessor, nn.Module):
            self.data_preprocessor = data_preprocessor
        elif isinstance(data_preprocessor, dict):
            from treadle.core.registry import MODELS

            self.data_preprocessor = MODELS.build(data_preprocessor)
        else:
            raise TypeError(
                "data_preprocessor must be a dict or an nn.Module instance, but got "
                f"{type(data_preprocessor)}"
            )

    # -----------------------------------------------------------------------------------------
    # Steps
    # -----------------------------------------------------------------------------------------

    def train_step(
        self, data: dict[str, Any] | tuple[Any, ...] | list[Any], optim_wrapper: OptimWrapperLike
    ) -> dict[str, torch.Tensor]:
        """One training step: preprocess, ``forward(mode="loss")``, parse losses, update.

        Args:
            data: A batch from the dataloader.
            optim_wrapper: The optimizer wrapper (``optim_context`` and ``update_params``).

        Returns:
            The log variables from :meth:`parse_losses`: detached tensors, ``"loss"`` first.
        """
        # The usual case, an OptimWrapper without accumulation: no context to ask for or enter.
        if getattr(optim_wrapper, "no_forward_context", False):
            context = None
        else:
            context = optim_wrapper.optim_context(self)
            if type(context) is nullcontext:
                context = None
        # The preprocessor lives in _modules: read it there without nn.Module.__getattr__.
        preprocessor = self._modules.get("data_preprocessor")
        if preprocessor is None:
            preprocessor = self.data_preprocessor
        if context is not None:
            with context:
                losses = self._preprocess_and_forward(data, preprocessor)
        elif calls_forward_only(self, preprocessor):
            # Without hooks, forward is what nn.Module.__call__ would call: skip its two frames,
            # for the preprocessor and, through _run_forward unless a subclass has its own, the
            # model.
            data = preprocessor.forward(data, True)
            if type(data) is dict and type(self)._run_forward is _RUN_FORWARD:
                losses = self.forward(**data, mode="loss")
            else:
                losses = self._run_forward(data, mode="loss")
        else:
            losses = self._preprocess_and_forward(data, preprocessor)
        loss, log_vars = self.parse_losses(losses)
        optim_wrapper.update_params(loss)
        return log_vars

    def val_step(self, data: dict[str, Any] | tuple[Any, ...] | list[Any]) -> Any:
        """Preprocess ``data`` and return ``forward(mode="predict")`` (predictions for metrics)."""
        data = self.data_preprocessor(data, False)
        return self._run_forward(data, mode="predict")

    def test_step(self, data: dict[str, Any] | tuple[Any, ...] | list[Any]) -> Any:
        """Same as :meth:`val_step`."""
        data = self.data_preprocessor(data, False)
        return self._run_forward(data, mode="predict")

    def parse_losses(
        self, losses: dict[str, torch.Tensor | list[torch.Tensor]]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Sum the losses and collect what to log.

        Every value is reduced to its mean (a list of tensors to the sum of their means); the
        loss is the sum of the entries whose key contains ``"loss"``.

        Args:
            losses: ``forward(mode="loss")``'s output: names to tensors or lists of tensors.

        Returns:
            ``(loss, log_vars)``: the loss to backpropagate (with its graph), and a dict of
            detached tensors, ``"loss"`` first, then every entry in order. No value is moved to
            the host here, so logging decides when to sync. MMEngine builds an ``OrderedDict``;
            a plain dict keeps the same order and is several times cheaper to build, per
            iteration.

        Raises:
            TypeError: ``losses`` is not a mapping, or a value is neither a tensor nor a
                non-empty list of tensors (the message names the key).
            ValueError: No key contains ``"loss"``.
        """
        if not isinstance(losses, dict):
            raise TypeError(
                f'forward(mode="loss") must return a dict of losses, but got {type(losses)}'
            )
        if len(losses) == 1:  # the usual {"loss": 0-d tensor}, without the general bookkeeping
            loss = losses.get("loss")
            if type(loss) is torch.Tensor and loss.dim() == 0:
                return loss, {"loss": loss.detach()}
        reduced: list[tuple[str, torch.Tensor]] = []
        for name, value in losses.items():
            if isinstance(value, torch.Tensor):
                # The mean of a 0-d tensor is the tensor: skip a kernel and an autograd node.
                reduced.append((name, value if value.dim() == 0 else value.mean()))
            elif (
                isinstance(value, (list, tuple))
                and value
                and all(isinstance(v, torch.Tensor) for v in value)
            ):
                total = value[0].mean()
                for item in value[1:]:
                    total = total + item.mean()
                reduced.append((name, total))
            else:
                raise TypeError(
                    f"losses[{name!r}] must be a tensor or a non-empty list of tensors, but got "
                    f"{type(value).__name__}"
                )
        loss = None
        for name, value in reduced:
            if "loss" in name:
                loss = value if loss is None else loss + value
        if loss is None:
            raise ValueError(
                f"no key of the losses contains 'loss', so there is nothing to optimise; got keys "
                f"{[name for name, _ in reduced]}"
            )
        detached = loss.detach()
        log_vars: dict[str, torch.Tensor] = {"loss": detached}
        for name, value in reduced:
            log_vars[name] = detached if value is loss else value.detach()
        return loss, log_vars

    def _preprocess_and_forward(self, data: Any, preprocessor: nn.Module) -> Any:
        """``self._run_forward(preprocessor(data, True), mode="loss")``, calling the
        preprocessor's ``forward`` directly when ``__call__`` would only do that."""
        preprocess = preprocessor.forward if calls_forward_only(preprocessor) else preprocessor
        return self._run_forward(preprocess(data, True), mode="loss")

    def _run_forward(self, data: dict[str, Any] | tuple[Any, ...] | list[Any], mode: str) -> Any:
        """Call ``self(**data, mode=mode)`` for a dict, ``self(*data, mode=mode)`` for a sequence.

        Raises:
            TypeError: The preprocessed data is neither.
        """
        # What self(...) would do, without nn.Module.__call__'s two frames when it has no hooks.
        call: Callable[..., Any] = self.forward if calls_forward_only(self) else self
        if isinstance(data, dict):
            return call(**data, mode=mode)
        if isinstance(data, (list, tuple)):
            return call(*data, mode=mode)
        raise TypeError(
            f"the output of data_preprocessor must be a dict, list or tuple, but got {type(data)}"
        )

    @abstractmethod
    def forward(
        self, inputs: torch.Tensor, data_samples: list[Any] | None = None, mode: str = "tensor"
    ) -> Any:
        """Compute losses, predictions or raw outputs.

        Args:
            inputs: The batch from :attr:`data_preprocessor`.
            data_samples: Annotations of the batch.
            mode: ``"loss"`` (from :meth:`train_step`: a dict of losses), ``"predict"`` (from
                :meth:`val_step`/:meth:`test_step`: a list of results for the evaluator) or
                ``"tensor"`` (a tensor, tuple or dict of tensors, for custom use).
        """


#: BaseModel's own ``_run_forward``: train_step inlines it unless a subclass overrides it.
_RUN_FORWARD = BaseModel._run_forward

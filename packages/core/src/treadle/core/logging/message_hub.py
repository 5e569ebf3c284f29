"""The message hub: logged scalars and runtime information shared by components (MMEngine API).

Scalars (losses, learning rates, timings, metrics) are kept as :class:`HistoryBuffer` objects;
a tensor goes in as it is and is converted to a number only when a statistic is asked for.
Runtime information (``iter``, ``epoch``, ``eta``, metadata) is a plain dict overwritten on
every update. Both are resumed from checkpoints for the keys marked ``resumed=True``.

:meth:`MessageHub.state_dict` holds only plain containers, numbers, strings and tensors, so a
checkpoint holding it loads with ``torch.load(weights_only=True)``. :meth:`load_state_dict` also
takes MMEngine's format (``log_scalars`` holding ``HistoryBuffer`` objects, as a checkpoint's
MMEngine-compatible unpickler produces them) and a whole pickled ``MessageHub``.
"""

from __future__ import annotations

import copy
import logging
from collections import OrderedDict
from typing import Any

from treadle.core.logging import history_buffer as _history_buffer
from treadle.core.logging.history_buffer import HistoryBuffer, _is_tensor, _plain_number
from treadle.core.logging.logger import print_log
from treadle.core.utils.manager import ManagerMixin

__all__ = ["MessageHub"]

#: The instance ``get_current_instance`` creates when none exists (MMEngine uses "mmengine").
DEFAULT_INSTANCE_NAME = "treadle"


def _check_count(count: Any) -> int:
    if isinstance(count, bool) or not isinstance(count, int):
        raise TypeError(f"count must be an int, got {type(count).__name__}: {count!r}")
    return count


def _scalar_value(key: str, value: Any) -> Any:
    """Numbers and one-element tensors pass through (tensors stay on their device)."""
    kind = type(value)
    if kind is float or kind is int:
        return value
    if _is_tensor(value):
        if value.numel() != 1:
            raise TypeError(
                f"scalar {key!r} must have one element, got a tensor of shape {tuple(value.shape)}"
            )
        return value
    size = getattr(value, "size", None)
    if type(value).__module__.startswith("numpy") and size is not None and size != 1:
        raise TypeError(f"scalar {key!r} must have one element, got an array of size {size}")
    return _plain_number(value, f"scalar {key!r}")


def _weights_only_safe(value: Any) -> tuple[bool, Any]:
    """``(True, converted)`` when ``value`` can be loaded by ``torch.load(weights_only=True)``.

    numpy scalars become Python numbers and numpy arrays become tensors on the way.
    """
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes)):
        return True, value
    if _is_tensor(value):
        return True, value
    module = type(value).__module__
    if module.startswith("numpy"):
        if hasattr(value, "shape") and getattr(value, "ndim", 0) > 0:
            import torch

            try:
                return True, torch.from_numpy(value.copy())
            except TypeError:
                return False, value
        item = getattr(value, "item", None)
        if callable(item):
            return _weights_only_safe(item())
        return False, value
    if isinstance(value, (dict, OrderedDict)):
        converted: dict[Any, Any] = OrderedDict() if isinstance(value, OrderedDict) else {}
        for key, item_value in value.items():
            ok_key, key = _weights_only_safe(key)
            ok, item_value = _weights_only_safe(item_value)
            if not (ok and ok_key):
                return False, value
            converted[key] = item_value
        return True, converted
    if isinstance(value, (list, tuple)):
        items = []
        for element in value:
            ok, element = _weights_only_safe(element)
            if not ok:
                return False, value
            items.append(element)
        return True, type(value)(items) if type(value) in (list, tuple) else items
    return False, value


class MessageHub(ManagerMixin):
    """Logged scalars and runtime information, shared by name (``get_instance``).

    Args:
        name: The instance name.
        log_scalars: Initial scalars, ``{key: HistoryBuffer}``.
        runtime_info: Initial runtime information.
        resumed_keys: ``{key: bool}``: whether each key of ``log_scalars`` / ``runtime_info`` is
            saved by :meth:`state_dict`. Every key must name a scalar or an info entry.

    Raises:
        TypeError: An argument is not a dict, or a scalar is not a :class:`HistoryBuffer`.
        KeyError: A resumed key names neither a scalar nor an info entry.

    Examples:
        >>> hub = MessageHub.get_instance("train")
        >>> hub.update_scalar("train/loss", 0.5)
        >>> hub.update_info("iter", 10)
        >>> hub.get_scalar("train/loss").current(), hub.get_info("iter")
        (0.5, 10)
    """

    #: ``get_current_instance()`` creates a hub of this name when none exists.
    _default_instance_name = DEFAULT_INSTANCE_NAME

    def __init__(
        self,
        name: str,
        log_scalars: dict[str, HistoryBuffer] | None = None,
        runtime_info: dict[str, Any] | None = None,
        resumed_keys: dict[str, bool] | None = None,
    ) -> None:
        super().__init__(name)
        self._log_scalars: OrderedDict[str, HistoryBuffer] = self._parse_input(
            "log_scalars", log_scalars
        )
        self._runtime_info: OrderedDict[str, Any] = self._parse_input("runtime_info", runtime_info)
        self._resumed_keys: OrderedDict[str, bool] = self._parse_input("resumed_keys", resumed_keys)
        for key, buffer in self._log_scalars.items():
            if not isinstance(buffer, HistoryBuffer):
                raise TypeError(
                    f"log_scalars[{key!r}] must be a HistoryBuffer, got {type(buffer).__name__}"
                )
        for key in self._resumed_keys:
            if key not in self._log_scalars and key not in self._runtime_info:
                raise KeyError(
                    f"resumed_keys names {key!r}, which is neither in log_scalars nor in "
                    "runtime_info"
                )

    @staticmethod
    def _parse_input(name: str, value: Any) -> OrderedDict[str, Any]:
        if value is None:
            return OrderedDict()
        if isinstance(value, dict):
            return OrderedDict(value)
        raise TypeError(f"{name} must be a dict or None, got {type(value).__name__}")

    # ------------------------------------------------------------------ updating

    def update_scalar(self, key: str, value: Any, count: int = 1, resumed: bool = True) -> None:
        """Append a value to the scalar ``key`` (created on first use).

        Tensors are not synchronised here: a one-element tensor is stored as it is (detached)
        and converted when a statistic is computed.

        Args:
            key: The scalar's name, e.g. ``"train/loss"``.
            value: An int, a float, a numpy scalar or a one-element tensor.
            count: How many samples ``value`` stands for.
            resumed: Whether :meth:`state_dict` saves this scalar. Must stay the same for a key.

        Raises:
            TypeError: ``value`` or ``count`` has a wrong type.
            ValueError: ``resumed`` differs from an earlier update of ``key``.
        """
        kind = type(value)
        # What the hooks log every iteration (timings and learning rates as floats, detached 0-d
        # losses) to a key they logged before passes HistoryBuffer.update's checks: append it
        # through HistoryBuffer._append, floats (three per iteration) without even its frame.
        buffer = self._log_scalars.get(key)
        if buffer is not None and type(count) is int and self._resumed_keys.get(key) is resumed:
            if kind is float:
                buffer._has_float = True
                values = buffer._values
                values.append(value)
                buffer._counts.append(count)
                if len(values) > buffer._trim_at:
                    buffer._trim()
                return
            if kind is _history_buffer._Tensor and not value.requires_grad and not value.dim():
                buffer._append(value, count, True)
                return
        if self._resumed_keys.get(key) is not resumed:
            self._set_resumed_keys(key, resumed)
        if kind is not float and not (kind is _history_buffer._Tensor and not value.dim()):
            value = _scalar_value(key, value)
        if type(count) is not int:
            _check_count(count)
        if buffer is None:
            buffer = self._log_scalars[key] = HistoryBuffer()
        buffer.update(value, count)

    def update_scalars(self, log_dict: dict[str, Any], resumed: bool = True) -> None:
        """Update several scalars; a value may be ``dict(value=..., count=...)``.

        Args:
            log_dict: ``{key: value}`` or ``{key: {"value": value, "count": count}}``.
            resumed: Whether :meth:`state_dict` saves these scalars.

        Raises:
            TypeError: ``log_dict`` is not a dict, or a value or count has a wrong type.
            KeyError: A dict value lacks ``"value"``.
        """
        if not isinstance(log_dict, dict):
            raise TypeError(f"log_dict must be a dict, got {type(log_dict).__name__}")
        for key, entry in log_dict.items():
            if isinstance(entry, dict):
                if "value" not in entry:
                    raise KeyError(f"log_dict[{key!r}] is a dict without 'value': {entry!r}")
                value = entry["value"]
                raw_count: Any = entry.get("count", 1)
                if _is_tensor(raw_count):  # MMEngine accepts a one-element tensor as a count
                    raw_count = raw_count.item()
                if not isinstance(raw_count, int):
                    raw_count = _plain_number(raw_count, "count")
                count = _check_count(raw_count)
            else:
                value, count = entry, 1
            self.update_scalar(key, value, count, resumed)

    def update_info(self, key: str, value: Any, resumed: bool = True) -> None:
        """Set runtime information ``key`` (overwriting the previous value).

        Raises:
            ValueError: ``resumed`` differs from an earlier update of ``key``.
        """
        if self._resumed_keys.get(key) is not resumed:
            self._set_resumed_keys(key, resumed)
        self._runtime_info[key] = value

    def update_info_dict(self, info_dict: dict[str, Any], resumed: bool = True) -> None:
        """Set several runtime information entries.

        Raises:
            TypeError: ``info_dict`` is not a dict.
        """
        if not isinstance(info_dict, dict):
            raise TypeError(f"info_dict must be a dict, got {type(info_dict).__name__}")
        for key, value in info_dict.items():
            self.update_info(key, value, resumed=resumed)

    def pop_info(self, key: str, default: Any = None) -> Any:
        """Remove runtime information ``key`` and return it (``default`` when absent)."""
        return self._runtime_info.pop(key, default)

    def _set_resumed_keys(self, key: str, resumed: bool) -> None:
        known = self._resumed_keys.get(key)
        if known is None:
            self._resumed_keys[key] = resumed
        elif known != resumed:
            raise ValueError(
                f"{key!r} was updated with resumed={known}, now with resumed={resumed}; a key's "
                "resumed flag cannot change"
            )

    # ------------------------------------------------------------------ reading

    @property
    def log_scalars(self) -> OrderedDict[str, HistoryBuffer]:
        """All scalars, ``{key: HistoryBuffer}`` (the hub's own dict, not a copy)."""
        return self._log_scalars

    @property
    def runtime_info(self) -> OrderedDict[str, Any]:
        """All runtime information (the hub's own dict, not a copy)."""
        return self._runtime_info

    def get_scalar(self, key: str) -> HistoryBuffer:
        """The :class:`HistoryBuffer` of ``key`` (a reference, not a copy).

        Raises:
            KeyError: No scalar ``key``; the message lists the known ones.
        """
        buffer = self._log_scalars.get(key)
        if buffer is None:
            known = ", ".join(self._log_scalars) or "none"
            raise KeyError(
                f"{key!r} is not a scalar of MessageHub {self.instance_name!r} (known: {known})"
            )
        return buffer

    def get_info(self, key: str, default: Any = None) -> Any:
        """Runtime information ``key`` (a reference), or ``default`` when absent."""
        return self._runtime_info.get(key, default)

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        """The resumable scalars and information, as plain data.

        Only keys updated with ``resumed=True`` are saved. Scalars become
        :meth:`HistoryBuffer.state_dict` dicts; numpy values in runtime information become
        Python numbers or tensors. Information that ``torch.load(weights_only=True)`` could
        not read back (arbitrary objects) is left out with a warning.

        Returns:
            ``{"log_scalars": {...}, "runtime_info": {...}, "resumed_keys": {...}}``.
        """
        saved_scalars: OrderedDict[str, Any] = OrderedDict()
        saved_info: OrderedDict[str, Any] = OrderedDict()
        for key, buffer in self._log_scalars.items():
            if self._resumed_keys.get(key, False):
                saved_scalars[key] = buffer.state_dict()
        for key, value in self._runtime_info.items():
            if not self._resumed_keys.get(key, False):
                continue
            ok, converted = _weights_only_safe(value)
            if not ok:
                print_log(
                    f"MessageHub {self.instance_name!r}: runtime info {key!r} "
                    f"({type(value).__name__}) is not saved: a weights_only checkpoint cannot "
                    "hold it",
                    logger="current",
                    level=logging.WARNING,
                )
                continue
            try:
                saved_info[key] = copy.deepcopy(converted)
            except Exception:
                saved_info[key] = converted
        resumed = OrderedDict(
            (key, True) for key in self._resumed_keys if key in saved_scalars or key in saved_info
        )
        return {"log_scalars": saved_scalars, "runtime_info": saved_info, "resumed_keys": resumed}

    def load_state_dict(self, state_dict: dict[str, Any] | MessageHub) -> None:
        """Load :meth:`state_dict` output, MMEngine's state dict or a pickled MessageHub.

        Scalars may be :meth:`HistoryBuffer.state_dict` dicts or :class:`HistoryBuffer` objects
        (MMEngine's format, after a compatible unpickler). Anything else is skipped with a
        warning, as are resumed keys naming nothing loaded.

        Args:
            state_dict: The state to load.

        Raises:
            KeyError: A dict lacks ``log_scalars``, ``runtime_info`` or ``resumed_keys``.
            TypeError: ``state_dict`` is neither a dict nor a MessageHub.
        """
        if isinstance(state_dict, MessageHub) or (
            not isinstance(state_dict, dict) and hasattr(state_dict, "_log_scalars")
        ):
            # Old MMEngine checkpoints pickled the whole hub: copy everything it holds.
            self._log_scalars = copy.deepcopy(OrderedDict(state_dict._log_scalars))
            self._runtime_info = copy.deepcopy(OrderedDict(state_dict._runtime_info))
            self._resumed_keys = copy.deepcopy(OrderedDict(state_dict._resumed_keys))
            return
        if not isinstance(state_dict, dict):
            raise TypeError(
                f"state_dict must be a dict or a MessageHub, got {type(state_dict).__name__}"
            )
        missing = [
            k for k in ("log_scalars", "runtime_info", "resumed_keys") if k not in state_dict
        ]
        if missing:
            raise KeyError(
                f"MessageHub state_dict is missing {missing}; got keys {sorted(state_dict)}"
            )
        for key, value in state_dict["log_scalars"].items():
            if isinstance(value, HistoryBuffer):
                self._log_scalars[key] = value
            elif isinstance(value, dict) and "log_history" in value:
                self._log_scalars[key] = HistoryBuffer.from_state_dict(value)
            else:
                print_log(
                    f"{key} in message_hub is not a HistoryBuffer ({type(value).__name__}); "
                    "not resuming it.",
                    logger="current",
                    level=logging.WARNING,
                )
        for key, value in state_dict["runtime_info"].items():
            try:
                self._runtime_info[key] = copy.deepcopy(value)
            except Exception:
                self._runtime_info[key] = value
        for key, resumed in state_dict["resumed_keys"].items():
            if key not in self._log_scalars and key not in self._runtime_info:
                print_log(
                    f"resumed key {key!r} is not defined in the message hub; skipped.",
                    logger="current",
                    level=logging.WARNING,
                )
                continue
            if not resumed:
                print_log(
                    f"resumed key {key!r} is False but is loaded this time; it will not be saved "
                    "by the next MessageHub.state_dict()",
                    logger="current",
                    level=logging.WARNING,
                )
            self._resumed_keys[key] = bool(resumed)

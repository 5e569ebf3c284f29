"""The history of one logged scalar (MMEngine's ``HistoryBuffer``), without a sync per update.

MMEngine turns every logged tensor into a Python number with ``.item()`` as it arrives: one
host-device synchronisation per scalar per iteration. Here a one-element tensor is kept, detached,
until someone asks for a statistic; then every pending value of the buffer (or of many buffers, see
:func:`flush_history_buffers`) is converted at once, one transfer per device and dtype. With the
usual logging interval, that is one synchronisation per interval instead of one per iteration.

Statistics (``mean``, ``max``, ``min``, ``current`` and any method added with
:meth:`HistoryBuffer.register_statistics`) give the same numbers as MMEngine's numpy arrays,
bit for bit: sums use numpy's pairwise summation order. numpy is not needed, except by the
MMEngine-compatible ``data`` / ``_log_history`` views.
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Callable, Iterable, Sequence
from itertools import chain
from operator import attrgetter
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

if TYPE_CHECKING:
    import numpy as np
    import torch

__all__ = ["MAX_PENDING", "HistoryBuffer", "flush_history_buffers"]

_F = TypeVar("_F", bound=Callable[..., Any])

_DTYPE = attrgetter("dtype")

Number = int | float

#: A buffer holding this many unconverted tensors converts them: with no logging (no LoggerHook),
#: memory stays bounded at the cost of one synchronisation per this many updates.
MAX_PENDING = 1000

#: Blocks of this size are summed with 8 accumulators (numpy's ``PW_BLOCKSIZE``).
_PAIRWISE_BLOCK = 128


def _pairwise_sum(values: Sequence[Number], start: int, n: int) -> Number:
    """Sum ``values[start:start + n]`` in numpy's pairwise order, so results match numpy's bitwise."""
    if n < 8:
        total: Number = -0.0
        for i in range(start, start + n):
            total += values[i]
        return total
    if n <= _PAIRWISE_BLOCK:
        acc = list(values[start : start + 8])
        i = 8
        end = n - n % 8
        while i < end:
            base = start + i
            for j in range(8):
                acc[j] += values[base + j]
            i += 8
        total = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))
        while i < n:
            total += values[start + i]
            i += 1
        return total
    half = n // 2
    half -= half % 8
    return _pairwise_sum(values, start, half) + _pairwise_sum(values, start + half, n - half)


def _sum(values: Sequence[Number], as_float: bool) -> Number:
    """numpy's ``array.sum()``: exact for integers, pairwise for floats."""
    if not as_float:
        return sum(values)
    return _pairwise_sum([float(v) for v in values], 0, len(values))


class _NoTensorSeen:
    """Stands for ``torch.Tensor`` until the first tensor arrives (torch is never imported here)."""


#: ``torch.Tensor`` once :func:`_is_tensor` has seen a tensor: ``type(value) is _Tensor`` is the
#: per-iteration test for a plain tensor, without a function call.
_Tensor: type = _NoTensorSeen


def _is_tensor(value: object) -> bool:
    global _Tensor
    # A tensor can only exist once torch is imported; never import it here.
    torch_module = sys.modules.get("torch")
    if torch_module is not None and isinstance(value, torch_module.Tensor):
        _Tensor = torch_module.Tensor
        return True
    return False


def _plain_number(value: object, what: str) -> Number:
    """A Python int or float from a number, a numpy scalar or a one-element array (no tensors)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    item = getattr(value, "item", None)
    size = getattr(value, "size", None)
    if callable(item) and size == 1 and type(value).__module__.startswith("numpy"):
        result = item()
        if isinstance(result, (int, float)):
            return _plain_number(result, what)
    raise TypeError(
        f"{what} must be an int, a float or a one-element tensor, got {type(value).__name__}: "
        f"{value!r}"
    )


def _check_window(window_size: int | None) -> int | None:
    if window_size is None:
        return None
    if isinstance(window_size, bool) or not isinstance(window_size, int):
        try:
            import operator

            window_size = operator.index(window_size)
        except TypeError:
            raise TypeError(
                f"window_size must be an int or None, got {type(window_size).__name__}"
            ) from None
    if window_size < 0:
        raise ValueError(f"window_size must be >= 0, got {window_size}")
    return window_size


class HistoryBuffer:
    """The logged values of one scalar and how often each was counted.

    Args:
        log_history: Initial values (numbers, numpy scalars or one-element tensors).
        count_history: The count of each value (same length as ``log_history``); ``mean``
            divides the sum of values by the sum of counts.
        max_length: How many values are kept; older ones are dropped.

    Examples:
        >>> buffer = HistoryBuffer()
        >>> buffer.update(1)
        >>> buffer.update(2)
        >>> buffer.min(), buffer.max(), buffer.mean(), buffer.statistics("current")
        (1, 2, 1.5, 2)
    """

    _statistics_methods: ClassVar[dict[str, Callable[..., Any]]] = {}

    def __init__(
        self,
        log_history: Sequence[Any] = (),
        count_history: Sequence[Any] = (),
        max_length: int = 1000000,
    ) -> None:
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
            raise ValueError(f"max_length must be a positive int, got {max_length!r}")
        log_history = _as_list(log_history, "log_history")
        count_history = _as_list(count_history, "count_history")
        if len(log_history) != len(count_history):
            raise ValueError(
                f"log_history and count_history must have the same length, got "
                f"{len(log_history)} and {len(count_history)}"
            )
        self._max_length = self._trim_at = 0
        self.max_length = max_length
        self._values: list[Any] = []
        self._counts: list[Number] = []
        self._pending: list[int] = []  # indices in _values that still hold tensors
        self._has_float = False
        if len(log_history) > max_length:
            warnings.warn(
                f"The length of history buffer ({len(log_history)}) exceeds max_length "
                f"({max_length}); only the last {max_length} values are kept.",
                stacklevel=2,
            )
            log_history = log_history[-max_length:]
            count_history = count_history[-max_length:]
        for value, count in zip(log_history, count_history, strict=True):
            self.update(value, count)

    # ------------------------------------------------------------------ updating

    def update(self, log_val: Any, count: Number = 1) -> None:
        """Append a value.

        A tensor is kept (detached) until a statistic is asked for: no host sync here.

        Args:
            log_val: An int, a float, a numpy scalar or a one-element tensor.
            count: How many samples ``log_val`` stands for (used by :meth:`mean`).

        Raises:
            TypeError: ``log_val`` or ``count`` is of another type, or a tensor has more than
                one element.
        """
        if type(count) is not int and (
            isinstance(count, bool) or not isinstance(count, (int, float))
        ):
            raise TypeError(f"count must be an int or a float, got {type(count).__name__}")
        kind = type(log_val)
        pending = False
        if kind is float:
            self._has_float = True
        elif kind is int:
            pass
        elif kind is _Tensor or _is_tensor(log_val):
            if log_val.dim():
                if log_val.numel() != 1:
                    raise TypeError(
                        f"log_val must be a one-element tensor, got shape {tuple(log_val.shape)}"
                    )
                log_val = log_val.reshape(())  # shape (1,) or (1, 1): stackable as 0-d
            if log_val.requires_grad:
                log_val = log_val.detach()  # do not keep the autograd graph alive
            pending = True  # _has_float is set when it is converted (_stack_into)
        else:
            log_val = _plain_number(log_val, "log_val")
            if isinstance(log_val, float):
                self._has_float = True
        self._append(log_val, count, pending)

    def _append(self, log_val: Any, count: Number, pending: bool) -> None:
        """Append a checked value: a number (the caller sets ``_has_float`` for a float) or,
        with ``pending``, a detached 0-d tensor, converted when a statistic is asked for.

        ``MessageHub.update_scalar`` appends floats itself, as the non-pending branch here does
        (values, counts, trim): change both together."""
        values = self._values
        if pending:
            self._pending.append(len(values))
        values.append(log_val)
        self._counts.append(count)
        if pending and len(self._pending) >= MAX_PENDING:
            self._flush()
        if len(values) > self._trim_at:
            self._trim()

    def _trim(self) -> None:
        excess = len(self._values) - self.max_length
        if excess <= 0:
            return
        del self._values[:excess]
        del self._counts[:excess]
        if self._pending:
            self._pending = [i - excess for i in self._pending if i >= excess]

    def _flush(self) -> None:
        if self._pending:
            flush_history_buffers((self,))

    @property
    def max_length(self) -> int:
        """How many values are kept; older ones are dropped."""
        return self._max_length

    @max_length.setter
    def max_length(self, value: int) -> None:
        self._max_length = value
        # Trim in batches, so an update stays O(1) once the buffer is full.
        self._trim_at = value + max(64, value // 4)

    # ------------------------------------------------------------------ views

    def _window(self, window_size: int | None) -> tuple[list[Number], list[Number]]:
        """The flushed values and counts of the last ``window_size`` updates (all for None/0)."""
        window = _check_window(window_size)
        self._flush()
        self._trim()
        n = len(self._values)
        if not window:  # None, or 0 as numpy's ``array[-0:]``
            window = n
        return self._values[-window:], self._counts[-window:]

    @property
    def log_history(self) -> list[Number]:
        """The kept values, oldest first, as Python numbers (a copy)."""
        return list(self._window(None)[0])

    @property
    def count_history(self) -> list[Number]:
        """The count of each kept value (a copy)."""
        return list(self._window(None)[1])

    @property
    def data(self) -> tuple[np.ndarray, np.ndarray]:
        """``(log_history, count_history)`` as numpy arrays, as MMEngine returns them.

        Needs numpy (treadle-core itself does not).
        """
        return self._log_history, self._count_history

    @property
    def _log_history(self) -> np.ndarray:
        # MMEngine's attribute: custom statistics methods written for MMEngine read it.
        import numpy as np

        values = self._window(None)[0]
        return np.array([float(v) for v in values] if self._has_float else values)

    @property
    def _count_history(self) -> np.ndarray:
        import numpy as np

        return np.array(self._window(None)[1])

    # ------------------------------------------------------------------ statistics

    @classmethod
    def register_statistics(cls, method: _F) -> _F:
        """Add a statistic, callable as ``buffer.statistics(method.__name__, ...)``.

        The method receives the buffer first; it may read ``self.log_history`` (lists) or, as in
        MMEngine, ``self._log_history`` / ``self._count_history`` (numpy arrays).

        Args:
            method: The function to register; its ``__name__`` is the statistic's name.

        Returns:
            ``method`` unchanged, so this works as a decorator.

        Raises:
            ValueError: A statistic of that name exists.
        """
        name = method.__name__
        if name in cls._statistics_methods:
            raise ValueError(f"HistoryBuffer statistic {name!r} is already registered")
        cls._statistics_methods[name] = method
        return method

    def statistics(self, method_name: str, *args: Any, **kwargs: Any) -> Any:
        """Call a registered statistic by name, e.g. ``statistics("mean", 10)``.

        Raises:
            KeyError: No statistic is registered under ``method_name``.
        """
        method = self._statistics_methods.get(method_name)
        if method is None:
            known = ", ".join(sorted(self._statistics_methods))
            raise KeyError(
                f"{method_name!r} is not a registered HistoryBuffer statistic (known: {known})"
            )
        return method(self, *args, **kwargs)

    def mean(self, window_size: int | None = None) -> float:
        """The count-weighted mean of the last ``window_size`` values (all when None).

        Returns ``nan`` for an empty buffer, as numpy does.
        """
        values, counts = self._window(window_size)
        total_count = sum(counts)
        total = _sum(values, self._has_float)
        if total_count == 0:
            return math.nan
        return total / total_count

    def max(self, window_size: int | None = None) -> Number:
        """The largest of the last ``window_size`` values (all when None); nan if any is nan."""
        return self._extreme(window_size, max)

    def min(self, window_size: int | None = None) -> Number:
        """The smallest of the last ``window_size`` values (all when None); nan if any is nan."""
        return self._extreme(window_size, min)

    def _extreme(self, window_size: int | None, pick: Callable[[list[Number]], Number]) -> Number:
        values = self._window(window_size)[0]
        if not values:
            raise ValueError(
                f"HistoryBuffer.{pick.__name__}() of an empty buffer; call update() first"
            )
        if self._has_float:
            floats = [float(v) for v in values]
            if any(v != v for v in floats):
                return math.nan
            return pick(floats)
        return pick(values)

    def current(self) -> Number:
        """The most recent value.

        Raises:
            ValueError: The buffer is empty.
        """
        if not self._values:
            raise ValueError("HistoryBuffer is empty; call update() first")
        self._flush()
        value: Number = self._values[-1]
        return float(value) if self._has_float else value

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        """The buffer as plain Python data (loadable with ``torch.load(weights_only=True)``).

        Returns:
            ``{"log_history": [...], "count_history": [...], "max_length": int}``.
        """
        values, counts = self._window(None)
        return {
            "log_history": _pack(values),
            "count_history": _pack(counts),
            "max_length": self.max_length,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Replace the contents with a :meth:`state_dict` (or MMEngine's pickled state).

        Args:
            state_dict: Ours (``log_history``, ``count_history``, ``max_length``) or MMEngine's
                ``HistoryBuffer.__dict__`` (``_log_history``, ``_count_history`` numpy arrays,
                ``max_length``).

        Raises:
            KeyError: A required key is missing.
        """
        other = HistoryBuffer.from_state_dict(state_dict)
        self.__dict__.update(other.__dict__)

    @classmethod
    def from_state_dict(cls, state_dict: dict[str, Any]) -> HistoryBuffer:
        """Build a buffer from :meth:`state_dict` output or MMEngine's pickled state."""
        if "_log_history" in state_dict:  # MMEngine's __dict__
            log_key, count_key = "_log_history", "_count_history"
        else:
            log_key, count_key = "log_history", "count_history"
        missing = [k for k in (log_key, count_key) if k not in state_dict]
        if missing:
            raise KeyError(
                f"HistoryBuffer state is missing {missing}; got keys {sorted(state_dict)}"
            )
        return cls(
            state_dict[log_key], state_dict[count_key], state_dict.get("max_length", 1000000)
        )

    def __getstate__(self) -> dict[str, Any]:
        self._flush()
        self._trim()
        return {
            "max_length": self.max_length,
            "_values": list(self._values),
            "_counts": list(self._counts),
            "_has_float": self._has_float,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "_values" in state:
            self.max_length = state["max_length"]
            self._values = list(state["_values"])
            self._counts = list(state["_counts"])
            self._pending = []
            self._has_float = bool(state["_has_float"])
            return
        # MMEngine's pickled HistoryBuffer (e.g. through a checkpoint's compat unpickler).
        methods = state.get("statistics_methods") or {}
        for name, method in methods.items():
            if callable(method):
                self._statistics_methods.setdefault(name, method)
        self.__dict__.update(HistoryBuffer.from_state_dict(state).__dict__)

    def __repr__(self) -> str:
        self._flush()
        n = min(len(self._values), self.max_length)
        return f"HistoryBuffer(len={n}, max_length={self.max_length})"


def _pack(values: list[Number]) -> list[Number] | torch.Tensor:
    """``values`` for a state dict: one 1-D tensor when they are all floats or all ints.

    A checkpoint pickles a list element by element (``torch.save`` calls back into Python for
    each), a tensor in one piece: a long run's history saves in milliseconds instead of seconds.
    Mixed ints and floats stay a list, so that each value comes back with its type.
    """
    kinds = set(map(type, values))
    if len(kinds) == 1 and (float in kinds or int in kinds):
        import array

        import torch

        floats = float in kinds
        try:  # through a C array: about 3x faster than torch.tensor(list)
            packed = array.array("d" if floats else "q", values)
        except OverflowError:  # an int beyond int64
            return list(values)
        return torch.frombuffer(packed, dtype=torch.float64 if floats else torch.int64).clone()
    return list(values)


def _as_list(values: Sequence[Any] | Any, what: str) -> list[Any]:
    tolist = getattr(values, "tolist", None)
    if callable(tolist):  # numpy arrays and tensors (a saved history)
        result = tolist()
        return result if isinstance(result, list) else [result]
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise TypeError(f"{what} must be a sequence, got {type(values).__name__}")
    return list(values)


def flush_history_buffers(buffers: Iterable[HistoryBuffer]) -> None:
    """Convert the pending tensors of many buffers to numbers, one transfer per device and dtype.

    The :class:`~treadle.core.logging.LogProcessor` calls this once per logging interval, so all
    scalars logged since the last interval cost one host-device synchronisation together.

    Args:
        buffers: The buffers to flush.
    """
    # One stack per dtype, with no per-tensor Python work for a buffer whose pending tensors
    # share a dtype (the usual case). A stack that finds several devices is redone per device.
    groups: dict[Any, list[_Part]] = {}
    for buffer in buffers:
        pending = buffer._pending
        if not pending:
            continue
        tensors = list(map(buffer._values.__getitem__, pending))
        dtypes = set(map(_DTYPE, tensors))
        if len(dtypes) == 1:
            groups.setdefault(dtypes.pop(), []).append((buffer, pending, tensors))
        else:
            for index, tensor in zip(pending, tensors, strict=True):
                groups.setdefault(tensor.dtype, []).append((buffer, [index], [tensor]))
        buffer._pending = []
    if not groups:
        return
    for parts in groups.values():
        try:
            _stack_into(parts)
        except RuntimeError:  # tensors on several devices
            by_device: dict[Any, list[_Part]] = {}
            for buffer, indices, tensors in parts:
                for index, tensor in zip(indices, tensors, strict=True):
                    by_device.setdefault(tensor.device, []).append((buffer, [index], [tensor]))
            for device_parts in by_device.values():
                _stack_into(device_parts)


#: Pending tensors of one buffer: ``(buffer, their indices in _values, the tensors)``.
_Part = tuple[HistoryBuffer, list[int], list[Any]]


def _stack_into(parts: list[_Part]) -> None:
    """Convert the tensors of ``parts`` with one stack and put the numbers in their buffers."""
    import torch

    numbers = torch.stack(list(chain.from_iterable(part[2] for part in parts))).tolist()
    floats = type(numbers[0]) is float  # one dtype: all floats or none
    start = 0
    for buffer, indices, _ in parts:
        if floats:
            buffer._has_float = True
        stop = start + len(indices)
        first, last = indices[0], indices[-1]
        if last - first == stop - start - 1:  # consecutive indices (the usual case): one slice
            buffer._values[first : last + 1] = numbers[start:stop]
        else:
            values = buffer._values
            for index, number in zip(indices, numbers[start:stop], strict=True):
                values[index] = number
        start = stop


HistoryBuffer._statistics_methods.update(
    min=HistoryBuffer.min,
    max=HistoryBuffer.max,
    current=HistoryBuffer.current,
    mean=HistoryBuffer.mean,
)

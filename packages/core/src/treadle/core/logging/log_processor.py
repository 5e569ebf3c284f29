"""Turn the message hub's scalars into log lines and tag dicts (MMEngine's ``LogProcessor``).

The lines are MMEngine's, character for character (tests compare them with MMEngine 0.10.7)::

    Epoch(train)  [1][ 10/100]  base_lr: 1.0000e-02 lr: 1.0000e-02  eta: 0:00:09  time: 0.0100  data_time: 0.0010  memory: 12  loss: 0.5000
    Iter(train) [  10/1000]  lr: 1.0000e-02  eta: ...
    Epoch(val) [1][50/50]    accuracy: 93.7500  data_time: 0.0370  time: 0.0998

Statistics are computed here, once per logging interval: this is where the tensors that the
training loop logged without synchronising are converted, all of them in one transfer per device
(:func:`~treadle.core.logging.history_buffer.flush_history_buffers`).

The processor reads these runner attributes (MMEngine's names): ``message_hub``, ``iter``,
``epoch``, ``max_epochs``, ``max_iters``, ``model`` (``output_device`` for the memory figure),
``train_loop`` / ``val_loop`` / ``test_loop`` (their ``dataloader`` lengths) and ``_train_loop``
(``None`` or a config dict when the runner does not train, as in ``runner.val()`` alone; a runner
without ``_train_loop`` is taken to train, as the hooks take it).
"""

from __future__ import annotations

import copy
import datetime
import re
import sys
from collections import OrderedDict
from itertools import chain
from typing import Any

from treadle.core.logging.history_buffer import HistoryBuffer, flush_history_buffers
from treadle.core.utils.runner_state import train_loop_built

__all__ = ["LogProcessor"]

_MODES = ("train", "val", "test")
_WINDOW_WORDS = ("epoch", "global")


def _remove_prefix(text: str, prefix: str) -> str:
    return text[len(prefix) :] if text.startswith(prefix) else text


def _is_array(value: object) -> bool:
    """A tensor or a numpy array (printed on lines of their own), without importing either."""
    torch_module = sys.modules.get("torch")
    if torch_module is not None and isinstance(value, torch_module.Tensor):
        return True
    numpy_module = sys.modules.get("numpy")
    return numpy_module is not None and isinstance(value, numpy_module.ndarray)


#: Values shared, not copied, between the line's dict and the returned tag (deepcopy of them
#: returns them anyway).
_ATOMIC = (float, int, str, bool, type(None))


def _shared_copy(value: Any) -> Any:
    """``value`` for another tag: plain numbers as they are, anything else deep-copied."""
    return value if type(value) in _ATOMIC else copy.deepcopy(value)


def _copy_tag(tag: OrderedDict[str, Any]) -> OrderedDict[str, Any]:
    """``copy.deepcopy(tag)`` that copies only the values that are not plain numbers."""
    copied = OrderedDict(tag)
    memo: dict[int, Any] = {}
    for key, value in copied.items():
        if type(value) not in _ATOMIC:
            copied[key] = copy.deepcopy(value, memo)
    return copied


#: ``(torch.cuda.is_available, its answer)``; see ``LogProcessor._cuda_available``.
_cuda_answer: tuple[Any, bool] = (None, False)


def _format_eta(seconds: float) -> str:
    """``str(datetime.timedelta(seconds=int(seconds)))``, e.g. ``0:01:05``, without datetime
    for the usual case (under a day)."""
    whole = int(seconds)
    if 0 <= whole < 86400:
        return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"
    return str(datetime.timedelta(seconds=whole))


class LogProcessor:
    """Format ``runner.message_hub.log_scalars`` into a tag dict and a log line.

    Args:
        window_size: Smoothing window (iterations) for the scalars whose name matches
            ``mean_pattern``; the others show their latest value.
        by_epoch: Epoch-style (``Epoch(train) [e][i/n]``) or iteration-style
            (``Iter(train) [i/max_iters]``) headers.
        custom_cfg: Extra or overriding statistics, each
            ``dict(data_src=..., method_name=..., window_size=..., log_name=...)``:
            ``window_size`` is an int, ``"epoch"`` (the current epoch's iterations) or
            ``"global"`` (every iteration so far); without ``log_name`` the result replaces
            ``data_src``'s value. A name may be produced only once.
        num_digits: Digits after the point for floats (and of the ``lr`` mantissa).
        log_with_hierarchy: Tag keys keep their ``train/`` / ``val/`` / ``test/`` prefix (the
            text line does not).
        mean_pattern: Regular expression of the scalar names smoothed over ``window_size``.

    Raises:
        ValueError: ``custom_cfg`` produces a name twice, lacks ``data_src``, or uses
            ``window_size="epoch"`` with ``by_epoch=False``.
        TypeError: An argument has the wrong type, or a ``window_size`` in ``custom_cfg`` is
            neither an int nor ``"epoch"`` / ``"global"``.
    """

    def __init__(
        self,
        window_size: int = 10,
        by_epoch: bool = True,
        custom_cfg: list[dict[str, Any]] | None = None,
        num_digits: int = 4,
        log_with_hierarchy: bool = False,
        mean_pattern: str = r".*(loss|time|data_time|grad_norm).*",
    ) -> None:
        if isinstance(window_size, bool) or not isinstance(window_size, int):
            raise TypeError(f"window_size must be an int, got {type(window_size).__name__}")
        if isinstance(num_digits, bool) or not isinstance(num_digits, int) or num_digits < 0:
            raise TypeError(f"num_digits must be an int >= 0, got {num_digits!r}")
        if custom_cfg is not None and not isinstance(custom_cfg, (list, tuple)):
            raise TypeError(
                f"custom_cfg must be a list of dicts or None, got {type(custom_cfg).__name__}"
            )
        self.window_size = window_size
        self.by_epoch = by_epoch
        self.custom_cfg: list[dict[str, Any]] = list(custom_cfg) if custom_cfg else []
        self.num_digits = num_digits
        self.log_with_hierarchy = log_with_hierarchy
        self.mean_pattern = re.compile(mean_pattern)
        #: ``(pattern, {key: whether the pattern matches it})``, see :meth:`_is_mean_key`.
        self._mean_keys: tuple[re.Pattern[str] | None, dict[str, bool]] = (None, {})
        self._check_custom_cfg()

    # ------------------------------------------------------------------ public API

    def get_log_after_iter(
        self, runner: Any, batch_idx: int, mode: str
    ) -> tuple[dict[str, Any], str]:
        """The tag dict and the log line after a train, val or test iteration.

        Args:
            runner: The runner (see the module docstring for the attributes read).
            batch_idx: Index of the batch in the current loop's dataloader.
            mode: ``"train"``, ``"val"`` or ``"test"``.

        Returns:
            ``(tag, log_str)``: ``tag`` goes to the visualizer (scalars, plus ``epoch``,
            ``iter`` and ``memory``); ``log_str`` to the logger.
        """
        self._check_mode(mode, _MODES)
        parsed_cfg = self._parse_windows_size(runner, batch_idx, self.custom_cfg)
        if self.log_with_hierarchy:
            if type(self)._collect_scalars is LogProcessor._collect_scalars:
                # One pass (one flush, each statistic computed once) for both key forms.
                log_tag, tag = self._collect_scalar_tags(parsed_cfg, runner, mode, (False, True))
            else:  # a subclass's own collection, asked for each form as MMEngine asks
                log_tag = self._collect_scalars(parsed_cfg, runner, mode)
                tag = self._collect_scalars(parsed_cfg, runner, mode, True)
        else:
            log_tag = self._collect_scalars(parsed_cfg, runner, mode)
            tag = _copy_tag(log_tag)

        # Learning rates (and anything else ending in "lr") go first, in scientific notation.
        lr_parts = []
        prefix = f"{mode}/"
        for key, value in tag.items():
            if key.endswith("lr"):
                short = _remove_prefix(key, prefix)
                log_tag.pop(short, None)
                lr_parts.append(f"{short}: {value:.{self.num_digits}e}")
        lr_str = " ".join(lr_parts)

        train_built = train_loop_built(runner)
        if self.by_epoch:
            dataloader_len = self._get_dataloader_size(runner, mode)
            cur_iter = str(self._get_iter(runner, batch_idx)).rjust(len(str(dataloader_len)))
            if mode in ("train", "val"):
                cur_epoch = self._get_epoch(runner, mode)
                epoch_str = f"[{cur_epoch}]"
                if train_built:
                    # Right-align the epoch under "[max_epochs]" (3 = "[", "]" and a space).
                    epoch_str = epoch_str.rjust(len(str(runner.max_epochs)) + 3)
                tag["epoch"] = cur_epoch
                log_str = f"Epoch({mode}){epoch_str}[{cur_iter}/{dataloader_len}]  "
            else:
                log_str = f"Epoch({mode}) [{cur_iter}/{dataloader_len}]  "
        elif mode == "train":
            max_iters = runner.max_iters
            cur_iter = str(self._get_iter(runner, batch_idx)).rjust(len(str(max_iters)))
            log_str = f"Iter({mode}) [{cur_iter}/{max_iters}]  "
        else:
            dataloader_len = self._get_dataloader_size(runner, mode)
            cur_iter = str(batch_idx + 1).rjust(len(str(dataloader_len)))
            log_str = f"Iter({mode}) [{cur_iter}/{dataloader_len}]  "
        tag["iter"] = runner.iter + 1 if train_built else 0
        log_str += f"{lr_str}  "

        # Timings, when IterTimerHook recorded them.
        message_hub = runner.message_hub
        if "time" in log_tag and "data_time" in log_tag and "eta" in message_hub.runtime_info:
            log_str += f"eta: {_format_eta(message_hub.get_info('eta'))}  "
            log_str += (
                f"time: {log_tag.pop('time'):.{self.num_digits}f}  "
                f"data_time: {log_tag.pop('data_time'):.{self.num_digits}f}  "
            )

        if self._cuda_available():
            max_memory = self._get_max_memory(runner)
            log_str += f"memory: {max_memory}  "
            tag["memory"] = max_memory

        if mode in ("train", "val"):
            items = []
            for name, value in log_tag.items():
                # As in MMEngine: keys here have lost their prefix, so validation iterations
                # show no extra scalars.
                if mode == "val" and not name.startswith("val/loss"):
                    continue
                items.append(f"{name}: {self._format(value)}")
            log_str += "  ".join(items)
        return tag, log_str

    def get_log_after_epoch(
        self, runner: Any, batch_idx: int, mode: str, with_non_scalar: bool = False
    ) -> tuple[dict[str, Any], str]:
        """The tag dict and the log line after a validation or test epoch (metrics).

        Args:
            runner: The runner.
            batch_idx: Index of the last batch of the loop.
            mode: ``"val"`` or ``"test"``.
            with_non_scalar: Also put non-scalar runtime information (``val/...`` entries such as
                arrays) into the returned tag; they are always in the line.

        Returns:
            ``(tag, log_str)``; ``time`` and ``data_time`` (epoch means) come last in both.
        """
        self._check_mode(mode, ("val", "test"))
        dataloader_len = self._get_dataloader_size(runner, mode)
        if not self.by_epoch:
            log_str = f"Iter({mode}) [{dataloader_len}/{dataloader_len}]  "
        elif mode == "val":
            cur_epoch = self._get_epoch(runner, mode)
            log_str = f"Epoch({mode}) [{cur_epoch}][{dataloader_len}/{dataloader_len}]  "
        else:
            log_str = f"Epoch({mode}) [{dataloader_len}/{dataloader_len}]  "

        custom_cfg = list(self.custom_cfg)  # entries are copied by _parse_windows_size
        custom_keys = {_remove_prefix(cfg["data_src"], f"{mode}/") for cfg in custom_cfg}
        # Timings are averaged over the whole epoch unless custom_cfg says otherwise.
        for key in ("time", "data_time"):
            if key not in custom_keys:
                custom_cfg.append({"data_src": key, "window_size": "epoch", "method_name": "mean"})
        parsed_cfg = self._parse_windows_size(runner, batch_idx, custom_cfg)
        all_tags = self._collect_scalars(parsed_cfg, runner, mode, self.log_with_hierarchy)
        non_scalar_tag = self._collect_non_scalars(runner, mode)

        time_keys = {f"{mode}/time", f"{mode}/data_time", "time", "data_time"}
        tag: OrderedDict[str, Any] = OrderedDict()
        time_tag: OrderedDict[str, Any] = OrderedDict()
        for key, value in all_tags.items():
            (time_tag if key in time_keys else tag)[key] = value

        items = []
        for name, value in chain(tag.items(), non_scalar_tag.items(), time_tag.items()):
            items.append(f"{name}: {self._format(value)}")
        log_str += "  " + "  ".join(items)

        if with_non_scalar:
            tag.update(non_scalar_tag)
        tag.update(time_tag)
        return tag, log_str

    # ------------------------------------------------------------------ collecting

    def _collect_scalars(
        self, custom_cfg: list[dict[str, Any]], runner: Any, mode: str, reserve_prefix: bool = False
    ) -> OrderedDict[str, Any]:
        """Statistics of the ``mode`` scalars: smoothed or latest, then ``custom_cfg``'s."""
        return self._collect_scalar_tags(custom_cfg, runner, mode, (reserve_prefix,))[0]

    def _collect_scalar_tags(
        self,
        custom_cfg: list[dict[str, Any]],
        runner: Any,
        mode: str,
        reserve_prefix: tuple[bool, ...],
    ) -> list[OrderedDict[str, Any]]:
        """:meth:`_collect_scalars` for each ``reserve_prefix`` value, from one pass.

        The buffers are flushed once, and a statistic that two tags take from the same buffer
        the same way is computed once (values other than plain numbers are copied, so the tags
        share none). Each tag is what its own ``_collect_scalars`` call returns.
        """
        # As MMEngine: a key belongs to a mode when it starts with the mode's name.
        prefix = f"{mode}/"
        matched = [
            (prefixed, buffer)
            for prefixed, buffer in runner.message_hub.log_scalars.items()
            if prefixed.startswith(mode)
        ]
        # One host-device transfer for every tensor logged since the last interval.
        flush_history_buffers([buffer for _, buffer in matched])

        # Several tags share each statistic (computed once; values other than plain numbers are
        # copied, so the tags share none). One tag needs no bookkeeping.
        shared: dict[tuple[Any, ...], Any] | None = {} if len(reserve_prefix) > 1 else None
        is_mean = self._is_mean_key
        tags = []
        for keep_prefix in reserve_prefix:
            mode_scalars: dict[str, HistoryBuffer] = {}
            for prefixed, buffer in matched:
                key = prefixed if keep_prefix else _remove_prefix(prefixed, prefix)
                mode_scalars[key] = buffer
            tag: OrderedDict[str, Any] = OrderedDict()
            for key, buffer in mode_scalars.items():
                mean = is_mean(key)
                stat: tuple[Any, ...] = (mean, id(buffer))
                if shared is not None and stat in shared:
                    tag[key] = _shared_copy(shared[stat])
                    continue
                value = buffer.mean(self.window_size) if mean else buffer.current()
                if shared is not None:
                    shared[stat] = value
                tag[key] = value
            for index, log_cfg in enumerate(custom_cfg):
                statistic = dict(log_cfg)
                data_src = statistic.pop("data_src")
                log_name = statistic.pop("log_name", data_src)
                if keep_prefix:
                    data_src = f"{mode}/{data_src}"
                    log_name = f"{mode}/{log_name}"
                if data_src in mode_scalars:
                    buffer = mode_scalars[data_src]
                    stat = ("custom", index, id(buffer))
                    if shared is not None and stat in shared:
                        tag[log_name] = _shared_copy(shared[stat])
                        continue
                    value = buffer.statistics(**statistic)
                    if shared is not None:
                        shared[stat] = value
                    tag[log_name] = value
            tags.append(tag)
        return tags

    def _is_mean_key(self, key: str) -> bool:
        """Whether ``key`` matches :attr:`mean_pattern` (remembered per key, per pattern)."""
        # getattr: a subclass may skip LogProcessor's __init__
        cached: tuple[Any, dict[str, bool]] = getattr(self, "_mean_keys", (None, {}))
        pattern, matches = cached
        if pattern is not self.mean_pattern:  # new, or replaced: start over
            pattern, matches = self._mean_keys = (self.mean_pattern, {})
        found = matches.get(key)
        if found is None:
            found = matches[key] = pattern.search(key) is not None
        return found

    def _collect_non_scalars(self, runner: Any, mode: str) -> OrderedDict[str, Any]:
        """Runtime information of ``mode`` (e.g. ``val/confusion`` arrays)."""
        infos: OrderedDict[str, Any] = OrderedDict()
        for prefixed, value in runner.message_hub.runtime_info.items():
            if prefixed.startswith(mode):
                key = prefixed if self.log_with_hierarchy else _remove_prefix(prefixed, f"{mode}/")
                infos[key] = value
        return infos

    def _format(self, value: Any) -> Any:
        if isinstance(value, float):
            return f"{value:.{self.num_digits}f}"
        if _is_array(value):
            return f"\n{value}\n"  # arrays get lines of their own
        return value

    # ------------------------------------------------------------------ configuration

    def _check_custom_cfg(self) -> None:
        """Validate ``custom_cfg`` (MMEngine's checks, plus the window words up front)."""
        seen: set[str] = set()
        for index, log_cfg in enumerate(self.custom_cfg):
            if not isinstance(log_cfg, dict):
                raise TypeError(f"custom_cfg[{index}] must be a dict, got {type(log_cfg).__name__}")
            if "data_src" not in log_cfg:
                raise ValueError(f"custom_cfg[{index}] has no 'data_src': {log_cfg!r}")
            data_src = log_cfg["data_src"]
            log_name = log_cfg.get("log_name", data_src)
            if log_name in seen:
                raise ValueError(
                    f"Found duplicate {log_name} for {data_src}. Please check your `custom_cfg` "
                    f"for `log_processor`. You should neither define duplicate `{log_name}` for "
                    f"{data_src} nor do not define any {log_name} for multiple {data_src}, See "
                    "more information in the docstring of LogProcessor"
                )
            seen.add(log_name)
            window = log_cfg.get("window_size")
            if not self.by_epoch and window == "epoch":
                raise ValueError(
                    f"custom_cfg[{index}]: window_size cannot be epoch if LoggerHook.by_epoch is "
                    "False."
                )
            self._check_window_value(window)

    @staticmethod
    def _check_window_value(window: Any) -> None:
        if window is None or (isinstance(window, int) and not isinstance(window, bool)):
            return
        if window not in _WINDOW_WORDS:
            raise TypeError(f"window_size should be int, epoch or global, but got invalid {window}")

    def _parse_windows_size(
        self, runner: Any, batch_idx: int, custom_cfg: list[dict[str, Any]] | None = None
    ) -> list[dict[str, Any]]:
        """A copy of ``custom_cfg`` with ``"epoch"`` / ``"global"`` windows made numbers.

        The list and its dicts are new; the values in the dicts are the configured ones.
        """
        parsed = []
        for log_cfg in self.custom_cfg if custom_cfg is None else custom_cfg:
            log_cfg = dict(log_cfg)
            window = log_cfg.get("window_size")
            self._check_window_value(window)
            if window == "epoch":
                log_cfg["window_size"] = batch_idx + 1
            elif window == "global":
                log_cfg["window_size"] = runner.iter + 1
            parsed.append(log_cfg)
        return parsed

    @staticmethod
    def _check_mode(mode: str, allowed: tuple[str, ...]) -> None:
        if mode not in allowed:
            raise ValueError(f"mode must be one of {', '.join(allowed)}; got {mode!r}")

    # ------------------------------------------------------------------ runner queries

    @staticmethod
    def _cuda_available() -> bool:
        torch_module = sys.modules.get("torch")
        if torch_module is None:
            return False
        # Asked at every logging event. The answer cannot change within a process (torch caches
        # the device count), but the call is not free: keep it, for this very function (so a
        # patched torch.cuda.is_available is asked anew).
        global _cuda_answer
        is_available = torch_module.cuda.is_available
        if _cuda_answer[0] is not is_available:
            _cuda_answer = (is_available, bool(is_available()))
        return _cuda_answer[1]

    def _get_max_memory(self, runner: Any) -> int:
        """Peak CUDA memory allocated by tensors since the last call, in MiB (then reset).

        Args:
            runner: The runner; ``runner.model.output_device`` picks the device when the model
                has one (DDP), else the current device.
        """
        import torch

        device = getattr(runner.model, "output_device", None)
        peak = int(torch.cuda.max_memory_allocated(device=device)) // (1024 * 1024)
        torch.cuda.reset_peak_memory_stats(device)
        return peak

    def _get_iter(self, runner: Any, batch_idx: int) -> int:
        """The 1-based iteration shown: inside the epoch when ``by_epoch``, else global."""
        return batch_idx + 1 if self.by_epoch else int(runner.iter) + 1

    def _get_epoch(self, runner: Any, mode: str) -> int:
        """The 1-based epoch shown (validation runs after ``runner.epoch`` was incremented)."""
        if mode == "train":
            return int(runner.epoch) + 1
        if mode == "val":
            return int(runner.epoch) if train_loop_built(runner) else 0
        raise ValueError(f"runner mode should be 'train' or 'val', but got {mode}")

    def _get_cur_loop(self, runner: Any, mode: str) -> Any:
        """``runner.train_loop``, ``runner.val_loop`` or ``runner.test_loop``."""
        self._check_mode(mode, _MODES)
        return getattr(runner, f"{mode}_loop")

    def _get_dataloader_size(self, runner: Any, mode: str) -> int:
        """``len`` of the current loop's dataloader."""
        return len(self._get_cur_loop(runner, mode).dataloader)

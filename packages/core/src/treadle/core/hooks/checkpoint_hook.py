"""``CheckpointHook``: periodic, last and best checkpoints (MMEngine's hook)."""

from __future__ import annotations

import hashlib
import os
import posixpath
from collections import deque
from math import inf
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from treadle.core.hooks._utils import (
    DEFAULT_GREATER_KEYS,
    DEFAULT_LESS_KEYS,
    RULE_MAP,
    backend_args_from,
    check_bool,
    check_int,
    infer_rule,
    is_main_process,
    resolve_out_dir,
)
from treadle.core.hooks.hook import DATA_BATCH, Hook

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from treadle.core.fileio import BaseStorageBackend

__all__ = ["CheckpointHook"]


class CheckpointHook(Hook):
    """Saves checkpoints every ``interval`` epochs or iterations, at the end, and the best ones.

    Checkpoints go through ``runner.save_checkpoint`` into ``out_dir`` (``runner.work_dir`` by
    default); after each one, ``<work_dir>/last_checkpoint`` is rewritten (atomically) with its
    path, which ``resume=True`` follows. The bookkeeping lives in ``runner.message_hub``'s runtime
    info, so it is saved in every checkpoint and restored on resume, as in MMEngine:
    ``last_ckpt``, ``keep_ckpt_ids`` (with ``max_keep_ckpts``), ``best_score`` / ``best_ckpt``
    (one ``save_best`` metric) or ``best_score_<metric>`` / ``best_ckpt_<metric>`` (several).

    Args:
        interval: Save every ``interval`` epochs (``by_epoch``) or iterations; ``-1``: never
            (only the last and the best ones, if asked).
        by_epoch: Count ``interval`` and ``save_begin`` in epochs (else iterations).
        save_optimizer: Include the optimizer state.
        save_param_scheduler: Include the parameter schedulers' state.
        out_dir: Root directory (any URI the file I/O API knows). When given, checkpoints go to
            ``out_dir/<last directory of work_dir>``.
        max_keep_ckpts: Keep only the newest ``max_keep_ckpts`` periodic checkpoints (older ones
            are removed); ``-1``: keep all.
        save_last: Also save after the last epoch/iteration, whatever the interval.
        save_best: Metric name(s) whose best value's checkpoint is kept
            (``best_<metric>_<filename>``); ``'auto'``: the first metric of the evaluation.
        rule: ``'greater'`` or ``'less'`` (or a list, one per ``save_best`` metric, or ``None``
            to infer it from ``greater_keys`` / ``less_keys``).
        greater_keys: Metric names (or name parts) where greater is better, for inference.
        less_keys: Metric names (or name parts) where less is better, for inference.
        file_client_args: Deprecated MMEngine spelling of ``backend_args`` (used as such).
        filename_tmpl: Checkpoint file name with one ``{}`` field for the epoch/iteration number
            (``'epoch_{}.pth'`` / ``'iter_{}.pth'`` by default).
        backend_args: Arguments of ``out_dir``'s storage backend.
        published_keys: After training, publish the last and best checkpoints with only these
            top-level keys (e.g. ``['meta', 'state_dict']``) as ``<name>-<sha256[:8]>.pth``.
        save_begin: The epoch/iteration from which periodic saving starts.
        **kwargs: Passed on to ``runner.save_checkpoint``.

    Raises:
        TypeError, ValueError: An argument has the wrong type or value (the message names it).
        KeyError: ``rule`` is not ``'greater'``, ``'less'`` or ``None`` (MMEngine's error type).

    Example:
        >>> CheckpointHook(interval=2, save_best=["FID", "IS"], rule=["less", "greater"])
    """

    priority = "VERY_LOW"

    # Downstream projects may override these to change the rule inference.
    rule_map: ClassVar[dict[str, Callable[[Any, Any], bool]]] = dict(RULE_MAP)
    init_value_map: ClassVar[dict[str, float]] = {"greater": -inf, "less": inf}
    _default_greater_keys: ClassVar[list[str]] = list(DEFAULT_GREATER_KEYS)
    _default_less_keys: ClassVar[list[str]] = list(DEFAULT_LESS_KEYS)

    def __init__(
        self,
        interval: int = -1,
        by_epoch: bool = True,
        save_optimizer: bool = True,
        save_param_scheduler: bool = True,
        out_dir: str | Path | None = None,
        max_keep_ckpts: int = -1,
        save_last: bool = True,
        save_best: str | list[str] | None = None,
        rule: str | list[str | None] | None = None,
        greater_keys: str | Sequence[str] | None = None,
        less_keys: str | Sequence[str] | None = None,
        file_client_args: dict[str, Any] | None = None,
        filename_tmpl: str | None = None,
        backend_args: dict[str, Any] | None = None,
        published_keys: str | Sequence[str] | None = None,
        save_begin: int = 0,
        **kwargs: Any,
    ) -> None:
        check_int(interval, "interval")
        check_bool(by_epoch, "by_epoch")
        check_bool(save_optimizer, "save_optimizer")
        check_bool(save_param_scheduler, "save_param_scheduler")
        if out_dir is not None and not isinstance(out_dir, (str, Path)):
            raise TypeError(f"out_dir must be a str or a Path, but got {type(out_dir).__name__}")
        check_int(max_keep_ckpts, "max_keep_ckpts")
        check_bool(save_last, "save_last")
        check_int(save_begin, "save_begin", minimum=0)

        self.interval = interval
        self.by_epoch = by_epoch
        self.save_optimizer = save_optimizer
        self.save_param_scheduler = save_param_scheduler
        #: ``out_dir`` as given; :attr:`out_dir` is where this run saves (see before_train).
        self._given_out_dir: str | None = None if out_dir is None else os.fspath(out_dir)
        self.out_dir = self._given_out_dir
        self.max_keep_ckpts = max_keep_ckpts
        self.save_last = save_last
        self.args = kwargs

        self.file_client_args = file_client_args
        self.backend_args = backend_args_from(file_client_args, backend_args)

        if filename_tmpl is None:
            filename_tmpl = "epoch_{}.pth" if by_epoch else "iter_{}.pth"
        self.filename_tmpl = _check_filename_tmpl(filename_tmpl)

        # -- save_best / rule ---------------------------------------------------------------
        best: list[str] | None
        if save_best is None:
            best = None
        elif isinstance(save_best, str):
            best = [save_best]
        elif (
            isinstance(save_best, list) and save_best and all(isinstance(k, str) for k in save_best)
        ):
            if "auto" in save_best and len(save_best) != 1:
                raise ValueError(
                    f'save_best may hold "auto" only on its own, but got {save_best!r}'
                )
            if len(save_best) != len(set(save_best)):
                raise ValueError(f"save_best has duplicate metrics: {save_best!r}")
            best = list(save_best)
        else:
            raise TypeError(
                f"save_best must be a str, a non-empty list of str or None, but got {save_best!r}"
            )
        self.save_best = best

        rules: list[str | None]
        if rule is None or isinstance(rule, str):
            rules = [rule]
        elif isinstance(rule, list) and all(r is None or isinstance(r, str) for r in rule):
            if best is not None and len(rule) not in (1, len(best)):
                raise ValueError(
                    f"rule must hold 1 or len(save_best)={len(best)} entries, but got "
                    f"{len(rule)}: {rule!r}"
                )
            rules = list(rule)
        else:
            raise TypeError(f"rule must be a str, a list of str or None, but got {rule!r}")

        self.greater_keys = _key_list(greater_keys, "greater_keys", self._default_greater_keys)
        self.less_keys = _key_list(less_keys, "less_keys", self._default_less_keys)

        self.rules: list[str | None] = []
        self.key_indicators: list[str] = []
        if best is not None:
            self.is_better_than: dict[str, Callable[[Any, Any], bool]] = {}
            self._init_rule(rules, best)
            if len(self.key_indicators) == 1:
                self.best_ckpt_path: str | None = None
            else:
                self.best_ckpt_path_dict: dict[str, str | None] = {}

        # -- published_keys -----------------------------------------------------------------
        published: list[str] | None
        if published_keys is None:
            published = None
        elif isinstance(published_keys, str):
            published = [published_keys]
        elif isinstance(published_keys, (list, tuple)) and all(
            isinstance(k, str) for k in published_keys
        ):
            if len(published_keys) != len(set(published_keys)):
                raise ValueError(f"published_keys has duplicates: {list(published_keys)!r}")
            published = list(published_keys)
        else:
            raise TypeError(
                "published_keys must be a str, a sequence of str or None, but got "
                f"{type(published_keys).__name__} {published_keys!r}"
            )
        self.published_keys = published

        self.last_ckpt: str | None = None
        self.save_begin = save_begin
        self.keep_ckpt_ids: deque[int] = deque()
        self.file_backend: BaseStorageBackend | None = None

    # -- rules ------------------------------------------------------------------------------

    def _init_rule(self, rules: Sequence[str | None], key_indicators: Sequence[str]) -> None:
        """Set ``rules``, ``key_indicators`` and the comparison of each metric.

        A single rule is shared by all metrics. A ``None`` rule is inferred from
        ``greater_keys`` / ``less_keys`` (case-insensitive; exact matches first, then
        substrings), except for ``'auto'``, which is resolved at the first validation.

        Raises:
            KeyError: A rule other than ``'greater'``, ``'less'`` or ``None``.
            ValueError: The rule of a metric cannot be inferred.
        """
        if len(rules) == 1:
            rules = list(rules) * len(key_indicators)
        self.rules = []
        for rule, key in zip(rules, key_indicators, strict=True):
            if rule is not None and rule not in self.rule_map:
                raise KeyError(f"rule must be 'greater', 'less' or None, but got {rule!r}")
            if rule is None and key != "auto":
                rule = infer_rule(key, self.greater_keys, self.less_keys)
                if rule is None:
                    raise ValueError(
                        f"Cannot infer the rule for key {key}, thus a specific rule must be "
                        "specified."
                    )
            if rule is not None:
                self.is_better_than[key] = self.rule_map[rule]
            self.rules.append(rule)
        self.key_indicators = list(key_indicators)

    # -- lifecycle --------------------------------------------------------------------------

    def before_train(self, runner: Any) -> None:
        """Resolve ``out_dir`` and its backend; restore the best/kept checkpoint bookkeeping."""
        from treadle.core.fileio import get_file_backend

        work_dir = os.fspath(runner.work_dir)
        given = self._given_out_dir
        if given is None or given == work_dir:
            self.out_dir = work_dir
        else:
            self.out_dir = resolve_out_dir(runner, given, self.backend_args)
        self.file_backend = get_file_backend(self.out_dir, backend_args=self.backend_args)
        runner.logger.info(f"Checkpoints will be saved to {self.out_dir}.")

        hub = runner.message_hub
        if self.save_best is not None:
            if len(self.key_indicators) == 1:
                self.best_ckpt_path = hub.get_info("best_ckpt")
            else:
                for key in self.key_indicators:
                    self.best_ckpt_path_dict[key] = hub.get_info(f"best_ckpt_{key}")

        if self.max_keep_ckpts > 0:
            keep_ckpt_ids: list[int] = list(hub.get_info("keep_ckpt_ids") or [])
            while len(keep_ckpt_ids) > self.max_keep_ckpts:
                self._remove_ckpt(runner, self.filename_tmpl.format(keep_ckpt_ids.pop(0)))
            self.keep_ckpt_ids = deque(keep_ckpt_ids, self.max_keep_ckpts)

    def after_train_epoch(self, runner: Any) -> None:
        """Save every ``interval`` epochs from ``save_begin``, and after the last epoch."""
        if not self.by_epoch:
            return
        if self.every_n_epochs(runner, self.interval, self.save_begin) or (
            self.save_last and self.is_last_train_epoch(runner)
        ):
            runner.logger.info(f"Saving checkpoint at {runner.epoch + 1} epochs")
            self._save_checkpoint(runner)

    def idle_points(self, runner: Any) -> tuple[str, ...]:
        """``after_train_iter`` when saving by epoch."""
        return ("after_train_iter",) if self.by_epoch else ()

    def after_train_iter(
        self, runner: Any, batch_idx: int, data_batch: DATA_BATCH = None, outputs: Any = None
    ) -> None:
        """Save every ``interval`` iterations from ``save_begin``, and after the last one."""
        if self.by_epoch:
            return
        # every_n_train_iters(runner, interval, save_begin) or is_last_train_iter(runner),
        # written out: this runs every iteration.
        done = runner.iter + 1
        since = done - self.save_begin
        interval = self.interval
        if (interval > 0 and since >= 0 and since % interval == 0) or (
            self.save_last and done == runner.max_iters
        ):
            runner.logger.info(f"Saving checkpoint at {runner.iter + 1} iterations")
            self._save_checkpoint(runner)

    def after_val_epoch(self, runner: Any, metrics: dict[str, Any] | None = None) -> None:
        """Save the best checkpoint(s) when a ``save_best`` metric improved."""
        if not metrics:
            runner.logger.warning(
                "Since `metrics` is an empty dict, the behavior to save the best checkpoint will "
                "be skipped in this evaluation."
            )
            return
        self._save_best_checkpoint(runner, metrics)

    def after_train(self, runner: Any) -> None:
        """Publish the last and best checkpoints when ``published_keys`` is set."""
        if self.published_keys is None:
            return
        if self.save_last and self.last_ckpt is not None:
            self._publish_model(runner, self.last_ckpt)
        if getattr(self, "best_ckpt_path", None) is not None:
            self._publish_model(runner, str(self.best_ckpt_path))
        for best_ckpt in getattr(self, "best_ckpt_path_dict", {}).values():
            if best_ckpt is not None:
                self._publish_model(runner, best_ckpt)

    # -- saving -----------------------------------------------------------------------------

    def _save_checkpoint(self, runner: Any) -> None:
        """Save the periodic/last checkpoint of the epoch or iteration that just ended."""
        if self.by_epoch:
            step = runner.epoch + 1
            meta = {"epoch": step, "iter": runner.iter}
        else:
            step = runner.iter + 1
            meta = {"epoch": runner.epoch, "iter": step}
        self._save_checkpoint_with_step(runner, step, meta)

    def _save_checkpoint_with_step(self, runner: Any, step: int, meta: dict[str, Any]) -> None:
        # Drop the oldest kept checkpoint first, so that keep_ckpt_ids in the message hub (saved
        # in this checkpoint) already describes the files on disk.
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                self._remove_ckpt(runner, self.filename_tmpl.format(self.keep_ckpt_ids.popleft()))
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info("keep_ckpt_ids", list(self.keep_ckpt_ids))

        filename = self.filename_tmpl.format(step)
        self.last_ckpt = self._join(filename)
        runner.message_hub.update_info("last_ckpt", self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir,
            filename,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args,
        )
        if not is_main_process(runner):
            return
        # Written after the checkpoint itself, atomically: a crash in between leaves the previous
        # pointer, which names a complete file.
        from treadle.core.runner.checkpoint import write_last_checkpoint

        write_last_checkpoint(os.fspath(runner.work_dir), self.last_ckpt)

    def _save_best_checkpoint(self, runner: Any, metrics: dict[str, Any]) -> None:
        if not self.save_best:
            return
        if self.by_epoch:
            cur_type, cur_time = "epoch", runner.epoch
        else:
            cur_type, cur_time = "iter", runner.iter
        ckpt_filename = self.filename_tmpl.format(cur_time)
        meta = {"epoch": runner.epoch, "iter": runner.iter}

        if "auto" in self.key_indicators:
            self._init_rule(self.rules, [next(iter(metrics))])

        hub = runner.message_hub
        single = len(self.key_indicators) == 1
        best_ckpt_updated = False
        for key, rule in zip(self.key_indicators, self.rules, strict=True):
            if key not in metrics:
                raise KeyError(
                    f"save_best metric {key!r} is not among the evaluation results "
                    f"{sorted(metrics)}; check save_best of CheckpointHook"
                )
            key_score = metrics[key]
            if single:
                best_score_key, best_ckpt_key = "best_score", "best_ckpt"
                best_ckpt_path = self.best_ckpt_path
            else:
                best_score_key, best_ckpt_key = f"best_score_{key}", f"best_ckpt_{key}"
                best_ckpt_path = self.best_ckpt_path_dict.get(key)

            assert rule is not None  # resolved by _init_rule
            best_score = hub.get_info(best_score_key, self.init_value_map[rule])
            if key_score is None or not self.is_better_than[key](key_score, best_score):
                continue

            best_ckpt_updated = True
            best_score = key_score
            hub.update_info(best_score_key, best_score)

            if best_ckpt_path and self._remove_path(runner, best_ckpt_path):
                runner.logger.info(f"The previous best checkpoint {best_ckpt_path} is removed")

            # "/" in a metric name ("coco/bbox_mAP") must not make a directory.
            best_ckpt_name = f"best_{key}_{ckpt_filename}".replace("/", "_")
            path = self._join(best_ckpt_name)
            if single:
                self.best_ckpt_path = path
            else:
                self.best_ckpt_path_dict[key] = path
            hub.update_info(best_ckpt_key, path)
            runner.save_checkpoint(
                self.out_dir,
                filename=best_ckpt_name,
                save_optimizer=False,
                save_param_scheduler=False,
                meta=meta,
                by_epoch=False,
                backend_args=self.backend_args,
            )
            runner.logger.info(
                f"The best checkpoint with {float(best_score):0.4f} {key} at {cur_time} "
                f"{cur_type} is saved to {best_ckpt_name}."
            )

        # Save the latest checkpoint again, so that the best_score/best_ckpt stored in it name the
        # new best file (a resumed run can then remove it when it is beaten).
        if best_ckpt_updated and self.last_ckpt is not None:
            self._save_checkpoint_with_step(runner, cur_time, meta)

    def _publish_model(self, runner: Any, ckpt_path: str) -> None:
        """Write ``ckpt_path`` reduced to ``published_keys`` as ``<stem>-<sha256[:8]>.pth``.

        The hash is of the published file's bytes, so ``sha256sum`` verifies the name. Rank 0
        only.
        """
        if not is_main_process(runner):
            return
        import io

        import torch

        from treadle.core.fileio import put
        from treadle.core.logging import print_log
        from treadle.core.runner.checkpoint import load_checkpoint_file

        checkpoint = load_checkpoint_file(ckpt_path, "cpu", backend_args=self.backend_args)
        assert self.published_keys is not None
        removed = [key for key in checkpoint if key not in self.published_keys]
        for key in removed:
            checkpoint.pop(key)
        if removed:
            print_log(
                f"Key {removed} will be removed because they are not found in published_keys. "
                f"If you want to keep them, please set `{removed}` in published_keys",
                logger="current",
            )
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        data = buffer.getvalue()
        sha = hashlib.sha256(data).hexdigest()
        final_path = _splitext(ckpt_path) + f"-{sha[:8]}.pth"
        put(data, final_path, backend_args=self.backend_args)
        print_log(f"The checkpoint ({ckpt_path}) is published to {final_path}.", logger="current")

    # -- files ------------------------------------------------------------------------------

    def _backend(self) -> BaseStorageBackend:
        if self.file_backend is None:
            raise RuntimeError("CheckpointHook.before_train must run before a checkpoint is saved")
        return self.file_backend

    def _join(self, filename: str) -> str:
        """``filename`` inside the resolved ``out_dir``."""
        if self.out_dir is None:
            raise RuntimeError("CheckpointHook.before_train must run before a checkpoint is saved")
        return str(self._backend().join_path(self.out_dir, filename))

    def _remove_ckpt(self, runner: Any, filename: str) -> None:
        self._remove_path(runner, self._join(filename))

    def _remove_path(self, runner: Any, path: str) -> bool:
        """Remove a checkpoint file (or directory, for sharded ones) on rank 0; say if removed."""
        if not is_main_process(runner):
            return False
        backend = self._backend()
        if backend.isfile(path):
            backend.remove(path)
            return True
        if backend.isdir(path):
            backend.rmtree(path)
            return True
        return False


def _splitext(path: str) -> str:
    """``path`` without its extension (for URIs only the last component is looked at)."""
    return posixpath.splitext(path)[0] if "://" in path else os.path.splitext(path)[0]


def _key_list(keys: str | Sequence[str] | None, name: str, default: list[str]) -> list[str]:
    if keys is None:
        return list(default)
    if isinstance(keys, str):
        return [keys]
    if isinstance(keys, (list, tuple)) and all(isinstance(k, str) for k in keys):
        return list(keys)
    raise TypeError(f"{name} must be a str, a sequence of str or None, but got {keys!r}")


def _check_filename_tmpl(tmpl: object) -> str:
    if not isinstance(tmpl, str):
        raise TypeError(f"filename_tmpl must be a str, but got {type(tmpl).__name__}")
    try:
        first, second = tmpl.format(1), tmpl.format(2)
    except (IndexError, KeyError, ValueError) as exc:
        raise ValueError(
            f"filename_tmpl must hold one positional field such as '{{}}' for the epoch/iteration "
            f"number, but {tmpl!r}.format(1) fails: {exc}"
        ) from None
    if first == second:
        raise ValueError(
            f"filename_tmpl must hold a field such as '{{}}' for the epoch/iteration number, but "
            f"got {tmpl!r}"
        )
    return tmpl

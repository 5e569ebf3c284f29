"""``EarlyStoppingHook``: stop training when a metric stops improving (MMEngine's hook)."""

from __future__ import annotations

import warnings
from math import inf, isfinite
from typing import Any, ClassVar

from treadle.core.hooks._utils import (
    DEFAULT_GREATER_KEYS,
    DEFAULT_LESS_KEYS,
    RULE_MAP,
    check_bool,
    check_int,
    infer_rule,
)
from treadle.core.hooks.hook import Hook

__all__ = ["EarlyStoppingHook"]


class EarlyStoppingHook(Hook):
    """Sets ``runner.train_loop.stop_training`` when the ``monitor`` metric reaches a plateau.

    After every validation the monitored value is compared with the best one so far: it counts as
    an improvement when it beats ``best ± min_delta`` (or equals it exactly); otherwise a counter
    grows and training stops after ``patience`` validations without improvement. Training also
    stops at once when the value is NaN/infinite (``check_finite``) or beats
    ``stopping_threshold``. The loop finishes the current epoch/iteration and ends.

    Args:
        monitor: The metric to watch (a key of the validation results).
        rule: ``'greater'`` or ``'less'``; inferred from the metric name when ``None``
            (``acc``, ``mAP``, … → greater; ``loss`` → less).
        min_delta: How much the metric must improve to reset the patience counter.
        strict: Raise when ``monitor`` is missing from the results (else warn and skip).
        check_finite: Stop when the metric becomes NaN or infinite.
        patience: Validations without improvement before stopping.
        stopping_threshold: Stop as soon as the metric beats this value.

    Raises:
        ValueError: Unknown ``rule``, a rule that cannot be inferred, ``patience < 1`` or
            ``min_delta < 0``.
    """

    priority = "LOWEST"

    rule_map: ClassVar[dict[str, Any]] = dict(RULE_MAP)
    _default_greater_keys: ClassVar[list[str]] = list(DEFAULT_GREATER_KEYS)
    _default_less_keys: ClassVar[list[str]] = list(DEFAULT_LESS_KEYS)

    def __init__(
        self,
        monitor: str,
        rule: str | None = None,
        min_delta: float = 0.1,
        strict: bool = False,
        check_finite: bool = True,
        patience: int = 5,
        stopping_threshold: float | None = None,
    ) -> None:
        if not isinstance(monitor, str):
            raise TypeError(f"monitor must be a str, but got {type(monitor).__name__}")
        if rule is not None:
            if rule not in ("greater", "less"):
                raise ValueError(f'`rule` should be either "greater" or "less", but got {rule!r}')
        else:
            rule = self._init_rule(monitor)
        if isinstance(min_delta, bool) or not isinstance(min_delta, (int, float)):
            raise TypeError(f"min_delta must be a number, but got {min_delta!r}")
        if min_delta < 0:
            raise ValueError(f"min_delta must be >= 0, but got {min_delta}")
        check_bool(strict, "strict")
        check_bool(check_finite, "check_finite")
        check_int(patience, "patience", minimum=1)
        self.monitor = monitor
        self.rule = rule
        # Signed so that `compare(best + min_delta, score)` means "not improved enough".
        self.min_delta = min_delta if rule == "greater" else -1 * min_delta
        self.strict = strict
        self.check_finite = check_finite
        self.patience = patience
        self.stopping_threshold = stopping_threshold
        self.wait_count = 0
        self.best_score = -inf if rule == "greater" else inf

    def _init_rule(self, monitor: str) -> str:
        rule = infer_rule(monitor, self._default_greater_keys, self._default_less_keys)
        if rule is None:
            raise ValueError(f"Cannot infer the rule for {monitor}, thus rule must be specified.")
        return rule

    def _check_stop_condition(self, current_score: float) -> tuple[bool, str]:
        compare = self.rule_map[self.rule]
        if self.check_finite and not isfinite(current_score):
            return True, (
                f"Monitored metric {self.monitor} = {current_score} is infinite. Previous best "
                f"value was {self.best_score:.3f}."
            )
        if self.stopping_threshold is not None and compare(current_score, self.stopping_threshold):
            self.best_score = current_score
            return True, (
                f"Stopping threshold reached: `{self.monitor}` = {current_score} is {self.rule} "
                f"than {self.stopping_threshold}."
            )
        if compare(self.best_score + self.min_delta, current_score):
            self.wait_count += 1
            if self.wait_count >= self.patience:
                return True, (
                    f"the monitored metric did not improve in the last {self.wait_count} "
                    f"records. best score: {self.best_score:.3f}. "
                )
            return False, ""
        self.best_score = current_score
        self.wait_count = 0
        return False, ""

    def before_train(self, runner: Any) -> None:
        """Check that the train loop can be stopped."""
        if not hasattr(runner.train_loop, "stop_training"):
            raise TypeError(
                f"EarlyStoppingHook needs a train loop with a `stop_training` attribute, but "
                f"{type(runner.train_loop).__name__} has none"
            )

    def after_val_epoch(self, runner: Any, metrics: dict[str, Any] | None = None) -> None:
        """Decide whether to stop training."""
        metrics = metrics or {}
        if self.monitor not in metrics:
            if self.strict:
                raise RuntimeError(
                    f"Early stopping conditioned on metric `{self.monitor}` is not available. "
                    f"Please check available metrics {metrics}, or set `strict=False` in "
                    "`EarlyStoppingHook`."
                )
            warnings.warn(
                f"Skip early stopping process since the evaluation results ({list(metrics)}) do "
                f"not include `monitor` ({self.monitor}).",
                stacklevel=2,
            )
            return
        stop_training, message = self._check_stop_condition(float(metrics[self.monitor]))
        if stop_training:
            runner.train_loop.stop_training = True
            runner.logger.info(message)

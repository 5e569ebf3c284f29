"""Helpers around evaluation results."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping


def get_metric_value(indicator: str, metrics: Mapping[str, Any]) -> Any:
    """Look up a metric by full name (``"accuracy/top1"``) or by bare name (``"top1"``).

    Used by hooks that act on a metric, such as saving the best checkpoint (MMEngine's
    ``get_metric_value``).

    Args:
        indicator: A full name (containing ``/``), matched exactly, or a bare name, matched
            against the last ``/``-separated part of each key.
        metrics: The evaluator's results.

    Returns:
        The value of the one matching metric.

    Raises:
        ValueError: Nothing matches, or a bare name matches several metrics.
    """
    if "/" in indicator:
        if indicator in metrics:
            return metrics[indicator]
        raise ValueError(f'The indicator "{indicator}" can not match any metric in {list(metrics)}')
    matched = [key for key in metrics if key.split("/")[-1] == indicator]
    if not matched:
        raise ValueError(f'The indicator "{indicator}" can not match any metric in {list(metrics)}')
    if len(matched) > 1:
        raise ValueError(f'The indicator "{indicator}" matches multiple metrics {matched}')
    return metrics[matched[0]]

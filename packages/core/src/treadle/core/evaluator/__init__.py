"""Evaluation: metrics, the evaluator that runs them, and result collection across ranks.

Importing this package does not import torch (metrics import it when they compute).

Names are imported on first access, so discovery (which reads ``components.py``) stays cheap.

Distributed runs: metrics gather results through a *collectives* object (the Runner's strategy);
the val/test loops hand it over with ``evaluator.set_collectives(runner.strategy)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from treadle.core.utils.lazy import lazy_exports

if TYPE_CHECKING:
    from treadle.core.evaluator.collectives import LOCAL_COLLECTIVES, Collectives, collect_results
    from treadle.core.evaluator.evaluator import Evaluator
    from treadle.core.evaluator.metric import BaseMetric, DumpResults
    from treadle.core.evaluator.metrics import Accuracy
    from treadle.core.evaluator.utils import get_metric_value

__all__ = [
    "LOCAL_COLLECTIVES",
    "Accuracy",
    "BaseMetric",
    "Collectives",
    "DumpResults",
    "Evaluator",
    "collect_results",
    "get_metric_value",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "LOCAL_COLLECTIVES": "collectives",
        "Collectives": "collectives",
        "collect_results": "collectives",
        "Evaluator": "evaluator",
        "BaseMetric": "metric",
        "DumpResults": "metric",
        "Accuracy": "metrics",
        "get_metric_value": "utils",
    },
)

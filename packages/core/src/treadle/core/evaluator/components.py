"""The evaluation components treadle-core registers, by import path (read by the built-in plugin).

Importing this module imports nothing (no torch): registration stays cheap.
"""

_E = "treadle.core.evaluator"

#: Root-registry attribute name → {registered name: "module:Attr"}.
COMPONENTS: dict[str, dict[str, str]] = {
    "EVALUATOR": {
        "Evaluator": f"{_E}.evaluator:Evaluator",
    },
    "METRICS": {
        "DumpResults": f"{_E}.metric:DumpResults",
        "Accuracy": f"{_E}.metrics:Accuracy",
    },
}

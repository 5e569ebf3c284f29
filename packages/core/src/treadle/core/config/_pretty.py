"""Render a config dict as readable Python source (``Config.pretty_text``), without yapf.

The output follows MMEngine's conventions — one ``name = value`` statement per top-level key,
keys sorted, ``dict(key=value)`` for mappings whose keys are all identifiers and ``{...}``
otherwise — and is laid out like a code formatter would: a value stays on one line when it
fits in :data:`LINE_WIDTH` columns, else its items go one per line with a trailing comma.
Executing the text yields the same values again (for values whose ``repr`` is Python source).
"""

from __future__ import annotations

import keyword
import math
from typing import Any

LINE_WIDTH = 79
_INDENT = "    "


def _sorted_items(mapping: dict[Any, Any]) -> list[tuple[Any, Any]]:
    return sorted(mapping.items(), key=lambda item: str(item[0]))


def _is_kwarg_name(key: Any) -> bool:
    return isinstance(key, str) and key.isidentifier() and not keyword.iskeyword(key)


def _scalar(value: Any) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return f"float('{value}')"
    return repr(value)


def _inline(value: Any, budget: int) -> str | None:
    """One-line rendering of ``value``, or None when it is longer than ``budget``."""
    if isinstance(value, dict):
        items = _sorted_items(value)
        kwargs = all(_is_kwarg_name(key) for key, _ in items)
        open_, close = ("dict(", ")") if kwargs else ("{", "}")
        parts: list[str] = []
        used = len(open_) + len(close)
        for key, item in items:
            head = f"{key}=" if kwargs else f"{_scalar(key)}: "
            rendered = _inline(item, budget - used - len(head))
            if rendered is None:
                return None
            parts.append(head + rendered)
            used += len(parts[-1]) + 2
            if used > budget + 2:
                return None
        text = open_ + ", ".join(parts) + close
    elif isinstance(value, (list, tuple)):
        parts = []
        used = 2
        for item in value:
            rendered = _inline(item, budget - used)
            if rendered is None:
                return None
            parts.append(rendered)
            used += len(rendered) + 2
            if used > budget + 2:
                return None
        if isinstance(value, list):
            text = "[" + ", ".join(parts) + "]"
        elif len(parts) == 1:
            text = "(" + parts[0] + ",)"
        else:
            text = "(" + ", ".join(parts) + ")"
    else:
        text = _scalar(value)
    if len(text) > budget or "\n" in text:
        return None
    return text


def _render(value: Any, prefix_width: int, depth: int) -> str:
    """Render ``value`` whose first line starts after ``prefix_width`` columns at ``depth``."""
    inline = _inline(value, LINE_WIDTH - prefix_width)
    if inline is not None:
        return inline
    inner = _INDENT * (depth + 1)
    lines: list[str] = []
    if isinstance(value, dict):
        items = _sorted_items(value)
        if all(_is_kwarg_name(key) for key, _ in items):
            open_, close = "dict(", ")"
            for key, item in items:
                head = f"{inner}{key}="
                lines.append(head + _render(item, len(head), depth + 1) + ",")
        else:
            open_, close = "{", "}"
            for key, item in items:
                head = f"{inner}{_scalar(key)}: "
                lines.append(head + _render(item, len(head), depth + 1) + ",")
    elif isinstance(value, (list, tuple)):
        open_, close = ("[", "]") if isinstance(value, list) else ("(", ")")
        for item in value:
            lines.append(inner + _render(item, len(inner), depth + 1) + ",")
    else:  # a long scalar: nothing to break
        return _scalar(value)
    return open_ + "\n" + "\n".join(lines) + "\n" + _INDENT * depth + close


def format_config(cfg: dict[Any, Any]) -> str:
    """Return Python source that defines every top-level key of ``cfg``.

    Args:
        cfg: Plain config dict (``ConfigDict.to_dict()`` output).

    Returns:
        Source text ending with a newline; empty for an empty config.
    """
    lines = []
    for key, value in _sorted_items(cfg):
        head = f"{key} = " if _is_kwarg_name(key) else f"globals()[{_scalar(key)}] = "
        lines.append(head + _render(value, len(head), 0))
    return "\n".join(lines) + ("\n" if lines else "")

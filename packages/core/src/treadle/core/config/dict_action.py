"""``DictAction``: argparse action for ``--cfg-options key=value ...`` (MMEngine's syntax)."""

from __future__ import annotations

import copy
from argparse import Action, ArgumentParser, Namespace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence


class DictAction(Action):
    """Collect ``KEY=VALUE`` arguments into a dict, parsing each value like MMEngine.

    A value is split on the first ``=``. Values become ``int``, ``float``, ``bool``
    (``true``/``false`` in any case), ``None`` (``None``) or stay strings; ``a,b,c`` and
    ``[a,b,c]`` become lists, ``(a,b)`` a tuple, and brackets nest (``[(1,2),[a,b]]``).
    Surrounding quotes are stripped and, as in MMEngine, all spaces are removed.

    Examples:
        >>> parser = ArgumentParser()
        >>> _ = parser.add_argument("--cfg-options", nargs="+", action=DictAction)
        >>> parser.parse_args(["--cfg-options", "a=1", "b=[1,2]", "c=(x,y)"]).cfg_options
        {'a': 1, 'b': [1, 2], 'c': ('x', 'y')}
    """

    @staticmethod
    def _parse_int_float_bool(val: str) -> Any:
        """Parse a scalar: int, then float, then bool, then ``None``; else the string."""
        try:
            return int(val)
        except ValueError:
            pass
        try:
            return float(val)
        except ValueError:
            pass
        lowered = val.lower()
        if lowered == "true":
            return True
        if lowered == "false":
            return False
        if val == "None":
            return None
        return val

    @staticmethod
    def _parse_iterable(val: str) -> Any:
        """Parse a value that may be a (nested) list or tuple.

        Args:
            val: The text after ``=``.

        Returns:
            A list, a tuple, or a scalar from :meth:`_parse_int_float_bool`.

        Raises:
            ValueError: The brackets are not balanced.

        Examples:
            >>> DictAction._parse_iterable("1,2,3")
            [1, 2, 3]
            >>> DictAction._parse_iterable("[(1, 2, 3), [a, b], c]")
            [(1, 2, 3), ['a', 'b'], 'c']
        """
        val = val.strip("'\"").replace(" ", "")
        is_tuple = False
        if val.startswith("(") and val.endswith(")"):
            is_tuple = True
            val = val[1:-1]
        elif val.startswith("[") and val.endswith("]"):
            val = val[1:-1]
        elif "," not in val:
            return DictAction._parse_int_float_bool(val)
        parts = _split_top_level(val)
        if parts == [val] and not is_tuple and "," in val:
            # Commas only inside unbalanced brackets such as "a),(b": nothing to split.
            return DictAction._parse_int_float_bool(val)
        values = [DictAction._parse_iterable(part) for part in parts]
        return tuple(values) if is_tuple else values

    def __call__(
        self,
        parser: ArgumentParser,
        namespace: Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        """Parse ``KEY=VALUE`` strings and merge them into the namespace's dict."""
        options = copy.copy(getattr(namespace, self.dest, None) or {})
        if values is not None:
            for kv in [values] if isinstance(values, str) else values:
                key, sep, val = str(kv).partition("=")
                if not sep:
                    parser.error(
                        f"argument {option_string or self.dest}: expected KEY=VALUE, got {kv!r}"
                    )
                try:
                    options[key] = self._parse_iterable(val)
                except ValueError as exc:
                    parser.error(f"argument {option_string or self.dest}: {key}: {exc}")
        setattr(namespace, self.dest, options)


def _split_top_level(text: str) -> list[str]:
    """Split ``text`` on commas that are outside brackets (MMEngine's ``find_next_comma``)."""
    if text.count("(") != text.count(")") or text.count("[") != text.count("]"):
        raise ValueError(f"Imbalanced brackets exist in {text}")
    parts: list[str] = []
    parens = brackets = 0
    start = 0
    for index, char in enumerate(text):
        if char == "(":
            parens += 1
        elif char == ")":
            parens -= 1
        elif char == "[":
            brackets += 1
        elif char == "]":
            brackets -= 1
        elif char == "," and parens == 0 and brackets == 0:
            parts.append(text[start:index])
            start = index + 1
    if start < len(text):
        parts.append(text[start:])
    return parts

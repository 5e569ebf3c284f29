"""Exceptions raised while reading config files."""

from __future__ import annotations


class ConfigParsingError(RuntimeError):
    """A config file cannot be parsed or its inheritance chain is invalid.

    The message names the file (and the line where known). Same name and base class as
    MMEngine's ``ConfigParsingError``, so ``except RuntimeError`` handlers keep working.
    """

"""The ``treadle`` command line (also ``python -m treadle.core``)."""

from treadle.core.cli.main import build_parser, main

__all__ = ["build_parser", "main"]

"""Imported only when ExampleNet is built: proves lazy registration end to end."""

from __future__ import annotations


class ExampleNet:
    def __init__(self, width: int = 4) -> None:
        self.width = width

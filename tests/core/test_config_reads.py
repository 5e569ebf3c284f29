"""How often Config.fromfile reads a file, and the syntax-error message both styles share."""

from __future__ import annotations

import builtins
import os
from pathlib import Path
from typing import Any

import pytest

from treadle.core.config import Config
from treadle.core.config.lazy import parse_lazy_config

LAZY_CFG = """\
from torch.optim import SGD

optimizer = dict(type=SGD, lr=0.1)
"""


def _count_opens(monkeypatch: pytest.MonkeyPatch, path: Path) -> list[str]:
    opened: list[str] = []
    real_open = builtins.open

    def counting_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(file, (str, os.PathLike)) and os.path.abspath(file) == str(path):
            opened.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", counting_open)
    return opened


def test_a_pure_python_config_is_read_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "lazy_cfg.py"
    path.write_text(LAZY_CFG, encoding="utf-8")
    opened = _count_opens(monkeypatch, path)
    cfg = Config.fromfile(path)
    assert len(opened) == 1
    assert cfg.text == LAZY_CFG
    assert cfg.to_dict() == {"optimizer": {"type": "torch.optim.SGD", "lr": 0.1}}


def test_a_text_style_config_is_read_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "text_cfg.py"
    path.write_text("a = 1\nb = dict(c=2)\n", encoding="utf-8")
    opened = _count_opens(monkeypatch, path)
    assert Config.fromfile(path).to_dict() == {"a": 1, "b": {"c": 2}}
    assert len(opened) == 1


def test_syntax_errors_read_the_same_in_both_styles(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from torch.optim import SGD\nx = (\n", encoding="utf-8")
    with pytest.raises(SyntaxError) as text_style:
        Config.fromfile(bad)  # the style check parses it first
    with pytest.raises(SyntaxError) as lazy_style:
        parse_lazy_config(str(bad))
    for info in (text_style, lazy_style):
        assert str(info.value).startswith(f"There are syntax errors in config file {bad}, line ")
        assert info.value.filename == str(bad)
        assert isinstance(info.value.__cause__, SyntaxError)
    assert str(text_style.value) == str(lazy_style.value)

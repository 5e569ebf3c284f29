"""DictAction parses --cfg-options values exactly like MMEngine 0.10.7."""

import argparse
import math

import pytest

from treadle.core.config import Config, DictAction

# (argument value, parsed) — cases checked against MMEngine's DictAction.
TABLE = [
    ("1", 1),
    ("-3", -3),
    ("1.5", 1.5),
    ("1e-3", 0.001),
    ("true", True),
    ("False", False),
    ("TRUE", True),
    ("None", None),
    ("none", "none"),
    ("abc", "abc"),
    ("'quoted'", "quoted"),
    ('"a b"', "ab"),  # MMEngine removes every space
    ("", ""),
    ("1,2,3", [1, 2, 3]),
    ("a,b", ["a", "b"]),
    ("[1,2,3]", [1, 2, 3]),
    ("[a, b, c]", ["a", "b", "c"]),
    ("(1,2)", (1, 2)),
    ("(1,)", (1,)),
    ("[]", []),
    ("()", ()),
    ("[1,]", [1]),
    ("[(1,2),(3,4)]", [(1, 2), (3, 4)]),
    ("[(1, 2, 3), [a, b], c]", [(1, 2, 3), ["a", "b"], "c"]),
    ("[[1,[2,3]],4]", [[1, [2, 3]], 4]),
    ("((a,b),[c,(d,e)])", (("a", "b"), ["c", ("d", "e")])),
    ("[true,None,1.0]", [True, None, 1.0]),
    (",a", ["", "a"]),
]


@pytest.mark.parametrize(("text", "expected"), TABLE)
def test_parse_table(text, expected):
    result = DictAction._parse_iterable(text)
    assert result == expected
    assert type(result) is type(expected)
    if isinstance(expected, (list, tuple)):
        assert [type(x) for x in result] == [type(x) for x in expected]


def test_special_floats():
    assert math.isinf(DictAction._parse_iterable("inf"))
    assert math.isnan(DictAction._parse_iterable("nan"))


def test_imbalanced_brackets():
    with pytest.raises(ValueError, match="Imbalanced brackets"):
        DictAction._parse_iterable("[1,(2,3]")


def _parser():
    parser = argparse.ArgumentParser(prog="train")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction)
    return parser


def test_argparse_integration_and_merge():
    args = _parser().parse_args(
        [
            "--cfg-options",
            "model.backbone.depth=101",
            "pipeline.0.type=X",
            "work_dir=a=b",
            "k=[1,2]",
        ]
    )
    assert args.cfg_options == {
        "model.backbone.depth": 101,
        "pipeline.0.type": "X",
        "work_dir": "a=b",
        "k": [1, 2],
    }
    cfg = Config({"model": {"backbone": {"depth": 50}}, "pipeline": [{"type": "A"}]})
    cfg.merge_from_dict(args.cfg_options)
    assert cfg.model.backbone.depth == 101
    assert cfg.pipeline[0].type == "X"
    assert cfg.k == [1, 2]


def test_repeated_options_accumulate():
    args = _parser().parse_args(["--cfg-options", "a=1", "--cfg-options", "b=2"])
    assert args.cfg_options == {"a": 1, "b": 2}


def test_missing_equals_sign_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit):
        _parser().parse_args(["--cfg-options", "novalue"])
    assert "expected KEY=VALUE, got 'novalue'" in capsys.readouterr().err

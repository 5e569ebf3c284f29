"""The hook specifications are the plugin contract: every spec is documented in one shape."""

from __future__ import annotations

import inspect

import pytest

from treadle.core import hookspecs

SPECS = [
    (name, obj)
    for name, obj in vars(hookspecs).items()
    if inspect.isfunction(obj) and hasattr(obj, "treadle_spec")
]

# MMEngine 0.10.7's Hook methods (mmengine/hooks/hook.py), in its order, with argument names.
MMENGINE_POINTS = {
    "before_run": ["runner"],
    "after_load_checkpoint": ["runner", "checkpoint"],
    "before_train": ["runner"],
    "before_train_epoch": ["runner"],
    "before_train_iter": ["runner", "batch_idx", "data_batch"],
    "after_train_iter": ["runner", "batch_idx", "data_batch", "outputs"],
    "after_train_epoch": ["runner"],
    "before_val": ["runner"],
    "before_val_epoch": ["runner"],
    "before_val_iter": ["runner", "batch_idx", "data_batch"],
    "after_val_iter": ["runner", "batch_idx", "data_batch", "outputs"],
    "after_val_epoch": ["runner", "metrics"],
    "after_val": ["runner"],
    "before_save_checkpoint": ["runner", "checkpoint"],
    "after_train": ["runner"],
    "before_test": ["runner"],
    "before_test_epoch": ["runner"],
    "before_test_iter": ["runner", "batch_idx", "data_batch"],
    "after_test_iter": ["runner", "batch_idx", "data_batch", "outputs"],
    "after_test_epoch": ["runner", "metrics"],
    "after_test": ["runner"],
    "after_run": ["runner"],
}


def test_there_are_specs() -> None:
    names = [name for name, _ in SPECS]
    assert names[:3] == ["register_components", "add_cli_commands", "add_cli_arguments"]
    assert len(names) == 3 + 22 + 1


@pytest.mark.parametrize(("name", "spec"), SPECS, ids=[name for name, _ in SPECS])
def test_spec_is_documented(name: str, spec: object) -> None:
    doc = inspect.getdoc(spec)
    assert doc, f"{name} has no docstring"
    summary, _, body = doc.partition("\n\n")
    assert summary.endswith("."), f"{name}: the summary is one sentence ending with a period"
    assert "\n" not in summary, f"{name}: the summary is one line"
    for section in ("When it fires:", "Args:", "On which ranks:"):
        assert section in body, f"{name}: missing section {section!r}"
    args_text = body.split("Args:")[1].split("On which ranks:")[0]
    for param in inspect.signature(spec).parameters:  # type: ignore[arg-type]
        assert f"\n    {param}: " in "\n" + args_text, f"{name}: argument {param!r} undocumented"


def test_lifecycle_points_are_mmengines() -> None:
    lifecycle = [name for name, _ in SPECS[3:]]
    assert lifecycle == [*MMENGINE_POINTS, "on_exception"]
    assert list(hookspecs.LIFECYCLE_HOOKS) == lifecycle
    for name, args in MMENGINE_POINTS.items():
        assert list(inspect.signature(getattr(hookspecs, name)).parameters) == args


def test_module_docstring_draws_every_point() -> None:
    doc = hookspecs.__doc__ or ""
    for name, _ in SPECS:
        assert f"{name}" in doc, f"the loop drawing does not mark {name}"


def test_historic_only_where_meant() -> None:
    historic = [name for name, spec in SPECS if spec.treadle_spec.get("historic")]  # type: ignore[attr-defined]
    assert historic == ["register_components"]

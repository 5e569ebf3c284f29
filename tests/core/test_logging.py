"""treadle.core.logging: MMEngine's logger format, ranks, instances and print_log."""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
import uuid
from collections import OrderedDict
from pathlib import Path

import pytest

from treadle.core.logging import (
    MMLogger,
    TreadleFormatter,
    TreadleLogger,
    get_logger,
    get_rank,
    get_world_size,
    print_log,
    set_rank,
)

# MMEngine's lines: the terminal omits the year, the file keeps it.
TERMINAL_LINE = r"\d{2}/\d{2} \d{2}:\d{2}:\d{2} - {name} - {level} - {msg}"
FILE_LINE = r"\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2} - {name} - {level} - {msg}"


def line_re(template: str, name: str, level: str, msg: str) -> re.Pattern[str]:
    return re.compile(
        template.replace("{name}", re.escape(name)).replace("{level}", level).replace("{msg}", msg)
    )


@pytest.fixture(autouse=True)
def _clean_rank(monkeypatch: pytest.MonkeyPatch):
    for var in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(var, raising=False)
    set_rank(None)
    yield
    set_rank(None)


@pytest.fixture
def make_logger():
    """Create loggers with fresh names; close their handlers and forget them afterwards."""
    created: list[str] = []

    def make(**kwargs: object) -> TreadleLogger:
        name = f"test-{uuid.uuid4().hex[:10]}"
        created.append(name)
        kwargs.setdefault("logger_name", name)
        return TreadleLogger.get_instance(name, **kwargs)

    yield make
    for name in created:
        logger = TreadleLogger._instance_dict.pop(name, None)
        if logger is not None:
            for handler in logger.handlers:
                handler.close()


def test_terminal_and_file_lines_match_mmengine(
    make_logger, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_file = tmp_path / "logs" / "run.log"
    logger = make_logger(log_file=str(log_file))
    assert logger.log_file == str(log_file)
    logger.info("hello world")
    logger.warning("careful")
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2
    assert line_re(TERMINAL_LINE, logger.name, "INFO", "hello world$").fullmatch(out[0])
    assert line_re(TERMINAL_LINE, logger.name, "WARNING", "careful$").fullmatch(out[1])
    lines = log_file.read_text().splitlines()
    assert line_re(FILE_LINE, logger.name, "INFO", "hello world").fullmatch(lines[0])
    assert line_re(FILE_LINE, logger.name, "WARNING", "careful").fullmatch(lines[1])


def test_error_lines_carry_the_location(make_logger, capsys: pytest.CaptureFixture[str]) -> None:
    logger = make_logger()
    logger.error("broken")
    out = capsys.readouterr().out.strip()
    pattern = line_re(
        TERMINAL_LINE,
        logger.name,
        "ERROR",
        re.escape(__file__) + r" - test_error_lines_carry_the_location - \d+ - broken",
    )
    assert pattern.fullmatch(out), out


def test_default_logger_name_and_levels(make_logger, capsys: pytest.CaptureFixture[str]) -> None:
    name = f"test-{uuid.uuid4().hex[:10]}"
    logger = TreadleLogger.get_instance(name)
    try:
        assert logger.name == "treadle"
        assert logger.instance_name == name
        logger.debug("hidden at INFO")
        logger.info("shown")
        assert "hidden" not in capsys.readouterr().out
    finally:
        TreadleLogger._instance_dict.pop(name)
    debug = make_logger(log_level=logging.DEBUG)
    debug.debug("visible")
    assert "DEBUG - visible" in capsys.readouterr().out
    quiet = make_logger(log_level="warning")
    quiet.info("below the handler level")
    quiet.warning("at the handler level")
    quiet.setLevel("ERROR")
    quiet.warning("filtered by the logger level now")
    quiet.error("above both")
    out = capsys.readouterr().out
    assert "below" not in out
    assert "filtered" not in out
    assert "at the handler level" in out
    assert "above both" in out
    with pytest.raises(ValueError, match="Unknown log level 'LOUD'"):
        make_logger(log_level="LOUD")


def test_colors_only_on_a_tty(monkeypatch: pytest.MonkeyPatch, make_logger) -> None:
    class TTY(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = TTY()
    monkeypatch.setattr(sys, "stdout", stream)
    logger = make_logger()
    logger.warning("w")
    logger.info("i")
    text = stream.getvalue()
    # termcolor's colored(level, color, attrs=[...]) sequences, as MMEngine prints them
    assert "\x1b[5m\x1b[4m\x1b[33mWARNING\x1b[0m - w" in text
    assert "\x1b[4m\x1b[97mINFO\x1b[0m - i" in text

    plain = io.StringIO()
    monkeypatch.setattr(sys, "stdout", plain)
    make_logger().warning("w")
    assert "\x1b[" not in plain.getvalue()
    assert " - WARNING - w" in plain.getvalue()


def test_terminal_output_follows_sys_stdout(monkeypatch: pytest.MonkeyPatch, make_logger) -> None:
    logger = make_logger()
    later = io.StringIO()
    monkeypatch.setattr(sys, "stdout", later)
    logger.info("after redirect")
    assert later.getvalue().endswith(" - INFO - after redirect\n")


def test_formatter_other_levels() -> None:
    record = logging.LogRecord("n", logging.CRITICAL, __file__, 1, "msg %s", ("x",), None)
    assert TreadleFormatter().format(record).endswith(" - n - CRITICAL - msg x")
    colored = TreadleFormatter(color=True)
    record = logging.LogRecord("n", logging.ERROR, __file__, 7, "bad", (), None, func="f")
    assert "\x1b[5m\x1b[4m\x1b[31mERROR\x1b[0m - " + __file__ + " - f - 7 - bad" in colored.format(
        record
    )


def test_repeated_warnings_are_printed_once(
    make_logger, capsys: pytest.CaptureFixture[str]
) -> None:
    logger = make_logger()
    for _ in range(3):
        logger.warning("same thing")
        logger.info("info repeats")
    out = capsys.readouterr().out
    assert out.count("same thing") == 1
    assert out.count("info repeats") == 3


def test_get_instance_twice_reuses_handlers(
    make_logger, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logger = make_logger(log_file=str(tmp_path / "a.log"))
    handlers = list(logger.handlers)
    assert len(handlers) == 2
    again = TreadleLogger.get_instance(logger.instance_name)
    assert again is logger
    assert again.handlers == handlers
    with pytest.warns(UserWarning, match="already exists"):
        assert TreadleLogger.get_instance(logger.instance_name, log_file="other.log") is logger
    assert len(logger.handlers) == 2
    logger.info("once")
    assert capsys.readouterr().out.count("once") == 1


def test_records_do_not_propagate(
    make_logger, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    logger = make_logger()
    with caplog.at_level(logging.DEBUG):
        logger.warning("mine only")
    assert caplog.records == []
    assert logging.getLogger(logger.name) is not logger
    assert "mine only" in capsys.readouterr().out
    silent = make_logger()
    silent.handlers.clear()
    silent.error("nowhere")  # no handler: no "last resort" output
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == ""


def test_rank_from_environment_and_setter(monkeypatch: pytest.MonkeyPatch) -> None:
    assert get_rank() == 0
    assert get_world_size() == 1
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert get_rank() == 3
    monkeypatch.setenv("RANK", "5")
    monkeypatch.setenv("WORLD_SIZE", "8")
    assert get_rank() == 5
    assert get_world_size() == 8
    set_rank(1, world_size=2)
    assert get_rank() == 1
    assert get_world_size() == 2
    set_rank(None)
    assert get_rank() == 5
    with pytest.raises(ValueError, match="rank must be >= 0"):
        set_rank(-1)


def test_nonzero_rank_prints_only_errors_and_writes_no_file(
    monkeypatch: pytest.MonkeyPatch, make_logger, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    log_file = tmp_path / "run.log"
    logger = make_logger(log_file=str(log_file))
    logger.info("rank1 info")
    logger.warning("rank1 warning")
    logger.error("rank1 error")
    out = capsys.readouterr().out
    assert "rank1 info" not in out
    assert "rank1 warning" not in out
    assert "rank1 error" in out
    assert logger.log_file is None
    assert list(tmp_path.iterdir()) == []


def test_set_rank_after_creation_applies_to_the_terminal(
    make_logger, capsys: pytest.CaptureFixture[str]
) -> None:
    logger = make_logger()
    logger.info("before")
    set_rank(2, world_size=4)
    logger.info("after")
    logger.error("after error")
    out = capsys.readouterr().out
    assert "before" in out
    assert " - after\n" not in out
    assert "after error" in out


def test_distributed_log_files_per_rank(
    monkeypatch: pytest.MonkeyPatch, make_logger, tmp_path: Path
) -> None:
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")
    logger = make_logger(log_file=str(tmp_path / "run.log"), distributed=True)
    assert logger.log_file is not None
    name = os.path.basename(logger.log_file)
    assert re.fullmatch(r"run_.+@.+_device6_rank1\.log", name), name
    logger.error("from rank 1")
    assert "from rank 1" in Path(logger.log_file).read_text()


def test_single_process_distributed_flag_keeps_the_plain_name(make_logger, tmp_path: Path) -> None:
    logger = make_logger(log_file=str(tmp_path / "run.log"), distributed=True)
    assert logger.log_file == str(tmp_path / "run.log")


def test_file_mode_and_file_handler_cfg(make_logger, tmp_path: Path) -> None:
    log_file = tmp_path / "a.log"
    log_file.write_text("previous\n")
    make_logger(log_file=str(log_file), file_mode="a").info("appended")
    assert log_file.read_text().startswith("previous\n")
    make_logger(log_file=str(log_file)).info("fresh")
    assert "previous" not in log_file.read_text()

    rotating = make_logger(
        log_file=str(tmp_path / "r.log"),
        file_handler_cfg={"type": "RotatingFileHandler", "maxBytes": 1000, "backupCount": 1},
    )
    assert type(rotating.handlers[1]).__name__ == "RotatingFileHandler"
    with pytest.raises(ValueError, match="Unknown file handler type 'Nope'"):
        make_logger(log_file=str(tmp_path / "n.log"), file_handler_cfg={"type": "Nope"})
    with pytest.raises(ValueError, match="needs a 'type' key"):
        make_logger(log_file=str(tmp_path / "n.log"), file_handler_cfg={})


def test_print_log_variants(
    make_logger, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    print_log("plain print")
    assert capsys.readouterr().out == "plain print\n"

    print_log("hush", logger="silent")
    assert capsys.readouterr().out == ""

    first = make_logger()
    second = make_logger()
    print_log("to current", logger="current")
    out = capsys.readouterr().out
    assert f" - {second.name} - INFO - to current" in out
    assert first.name not in out

    print_log("by name", logger=first.instance_name, level=logging.WARNING)
    assert f" - {first.name} - WARNING - by name" in capsys.readouterr().out

    print_log("debug dropped", logger=first.instance_name, level=logging.DEBUG)
    assert capsys.readouterr().out == ""

    std = logging.getLogger(f"std-{uuid.uuid4().hex}")
    with caplog.at_level(logging.INFO, logger=std.name):
        print_log("to std", logger=std)
    assert [r.getMessage() for r in caplog.records] == ["to std"]

    with pytest.raises(ValueError, match="'never-made' has not been created"):
        print_log("x", logger="never-made")
    with pytest.raises(TypeError, match="got int"):
        print_log("x", logger=3)  # type: ignore[arg-type]


def test_current_instance_created_on_demand(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(TreadleLogger, "_instance_dict", OrderedDict())
    current = TreadleLogger.get_current_instance()
    assert current.instance_name == "treadle"
    assert current.name == "treadle"
    print_log("default", logger="current")
    assert " - treadle - INFO - default" in capsys.readouterr().out
    for handler in current.handlers:
        handler.close()


def test_get_logger_and_alias(make_logger) -> None:
    assert MMLogger is TreadleLogger
    name = f"test-{uuid.uuid4().hex[:10]}"
    try:
        logger = get_logger(name)
        assert logger.name == name
        assert get_logger(name) is logger
        assert get_logger() is logger  # the most recently created
    finally:
        TreadleLogger._instance_dict.pop(name)
    other = make_logger()
    assert get_logger() is other


def test_logging_never_imports_torch() -> None:
    code = (
        "import sys\n"
        "from treadle.core.logging import TreadleLogger, print_log\n"
        "TreadleLogger.get_instance('x').info('hi')\n"
        "print_log('done', logger='current')\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    env = {**os.environ, "RANK": "0"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert " - treadle - INFO - hi" in result.stdout
    assert "done" in result.stdout


# ---------------------------------------------------------------------- cost of records


def test_records_no_handler_takes_are_not_made(
    make_logger, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    made: list[str] = []
    factory = logging.getLogRecordFactory()

    def counting_factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        made.append(record.getMessage())
        return record

    logging.setLogRecordFactory(counting_factory)
    request.addfinalizer(lambda: logging.setLogRecordFactory(factory))
    quiet = make_logger(log_level="WARNING")
    assert not quiet.isEnabledFor(logging.INFO)
    quiet.info("nobody takes this")
    print_log("nor this", logger=quiet)
    assert made == []
    quiet.warning("taken")
    assert made == ["taken"]

    # a handler added later (or its level lowered) is asked
    extra = logging.StreamHandler(io.StringIO())
    extra.setLevel(logging.INFO)
    quiet.addHandler(extra)
    try:
        assert quiet.isEnabledFor(logging.INFO)
        quiet.info("for the extra handler")
        assert extra.stream.getvalue() == "for the extra handler\n"  # type: ignore[attr-defined]
    finally:
        quiet.removeHandler(extra)
    assert not quiet.isEnabledFor(logging.INFO)

    # filters of the logger itself see every record, as before
    seen: list[str] = []
    quiet.addFilter(lambda record: seen.append(record.getMessage()) or True)
    quiet.info("seen by the filter")
    assert seen == ["seen by the filter"]
    assert "seen by the filter" not in capsys.readouterr().out

    # the logger's own level and logging.disable still apply first
    loud = make_logger(log_level="DEBUG")
    assert loud.isEnabledFor(logging.DEBUG)
    loud.setLevel("ERROR")
    assert not loud.isEnabledFor(logging.WARNING)
    loud.setLevel(logging.NOTSET)
    logging.disable(logging.INFO)
    try:
        assert not loud.isEnabledFor(logging.INFO)
    finally:
        logging.disable(logging.NOTSET)
    assert loud.isEnabledFor(logging.INFO)


def test_time_text_is_reused_within_a_second_only() -> None:
    import time

    formatter = TreadleFormatter()
    plain = logging.Formatter(datefmt=formatter.datefmt)
    base = 1_700_000_000.0
    for created in (base, base + 0.25, base + 0.999, base + 1.0, base + 61.5, base + 1.5):
        record = logging.LogRecord("n", logging.INFO, __file__, 1, "m", (), None)
        record.created = created
        assert formatter.formatTime(record, formatter.datefmt) == plain.formatTime(
            record, plain.datefmt
        )
        assert formatter.formatTime(record, "%H:%M:%S") == plain.formatTime(record, "%H:%M:%S")
        assert formatter.formatTime(record) == plain.formatTime(record)  # with milliseconds
    # a converter set on the formatter (UTC) is followed
    formatter.converter = time.gmtime
    plain.converter = time.gmtime
    record = logging.LogRecord("n", logging.INFO, __file__, 1, "m", (), None)
    record.created = base + 1.5
    assert formatter.formatTime(record, "%Y %H %Z") == plain.formatTime(record, "%Y %H %Z")


def test_default_instance_name_is_one_mechanism(monkeypatch: pytest.MonkeyPatch) -> None:
    # TreadleLogger and MessageHub both use ManagerMixin's _default_instance_name; a class
    # without one still raises.
    from treadle.core.logging import MessageHub
    from treadle.core.utils.manager import ManagerMixin

    assert "get_current_instance" not in vars(TreadleLogger)
    assert "get_current_instance" not in vars(MessageHub)
    monkeypatch.setattr(MessageHub, "_instance_dict", OrderedDict())
    assert MessageHub.get_current_instance().instance_name == "treadle"

    class Plain(ManagerMixin):
        def __init__(self, name: str = "") -> None:
            super().__init__(name)

    with pytest.raises(RuntimeError, match="No instance of Plain exists yet"):
        Plain.get_current_instance()

    class WithDefault(Plain):
        _default_instance_name = "fallback"

    assert WithDefault.get_current_instance().instance_name == "fallback"
    assert WithDefault.get_current_instance() is WithDefault.get_instance("fallback")

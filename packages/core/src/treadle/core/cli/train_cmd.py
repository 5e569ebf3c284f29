"""``treadle train``: MMEngine's ``tools/train.py`` as a command.

The config is read the way ``tools/train.py`` reads it, with one addition: before its
``custom_imports`` are imported, the directory of the config file (then the current directory)
is appended to ``sys.path``. A config and the module that defines its custom classes can
therefore sit side by side and be run from anywhere (``custom_imports = dict(imports=['my_module'])``
next to ``my_module.py``); MMEngine's tools get the same effect by running from the project root.

Then, in ``tools/train.py``'s order:

- ``--cfg-options`` are merged;
- ``work_dir`` is ``--work-dir``, else the config's ``work_dir``, else
  ``./work_dirs/<config name>`` (any path or URI the file I/O layer understands);
- ``--amp`` turns an ``OptimWrapper`` into an ``AmpOptimWrapper`` (float16 on CUDA, bfloat16 on
  CPU, the wrapper's defaults);
- ``--auto-scale-lr`` enables ``auto_scale_lr``;
- ``--resume`` resumes from ``work_dir/last_checkpoint``, ``--resume CKPT`` from ``CKPT``;
- ``--launcher`` sets ``launcher``; anything but ``none`` needs treadle-dist;
- the Runner is built (``Runner.from_cfg``, or ``RUNNERS`` when the config has ``runner_type``)
  and trains.

Ctrl-C stops training: the checkpoints already written stay intact (checkpoint files and
``last_checkpoint`` are replaced atomically), the command says how to resume, and exits with 130.
"""

from __future__ import annotations

import argparse
import os
import os.path as osp
import shlex
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from treadle.core.config import Config

LAUNCHERS = ("none", "pytorch", "slurm", "mpi")
DIST_INSTALL_HINT = "pip install treadle-dist  (or: uv add treadle-dist)"


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments ``train`` and ``test`` share: ``--work-dir``, ``--cfg-options``, …"""
    from treadle.core.config import DictAction

    parser.add_argument(
        "--work-dir",
        metavar="DIR",
        help="where checkpoints and logs go (default: the config's work_dir, else "
        "./work_dirs/<config name>); any path or URI treadle's file I/O knows",
    )
    parser.add_argument(
        "--cfg-options",
        nargs="+",
        action=DictAction,
        metavar="KEY=VALUE",
        help="override settings, e.g. train_cfg.max_epochs=3 optim_wrapper.optimizer.lr=0.01 "
        "(list items by index: a.0.b=1)",
    )
    parser.add_argument(
        "--launcher",
        choices=LAUNCHERS,
        default="none",
        help="job launcher; anything but 'none' needs treadle-dist (default: none)",
    )
    # torch.distributed.launch passes --local_rank (older) or --local-rank; tools/train.py
    # exports it as LOCAL_RANK.
    parser.add_argument("--local_rank", "--local-rank", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument(
        "--debug",
        action="store_true",
        # SUPPRESS: `treadle --debug train …` must not be reset by this option's default.
        default=argparse.SUPPRESS,
        help="print the full traceback when the command fails",
    )


def add_parsers(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> dict[str, argparse.ArgumentParser]:
    """Add the ``train`` command; return its parser by command name."""
    parser = subparsers.add_parser(
        "train",
        help="train a model from a config (MMEngine's tools/train.py)",
        description="Train a model from a config file, as MMEngine's tools/train.py does. The "
        "config's directory is put on sys.path so that its custom_imports are found.",
    )
    parser.add_argument("config", metavar="CFG", help="config file (.py, .yaml, .yml or .json)")
    parser.add_argument(
        "--resume",
        nargs="?",
        const="auto",
        metavar="CKPT",
        help="resume training: from CKPT when given, else from the work dir's last_checkpoint",
    )
    parser.add_argument(
        "--amp",
        action="store_true",
        help="automatic mixed precision (AmpOptimWrapper: float16 on CUDA, bfloat16 on CPU)",
    )
    parser.add_argument(
        "--auto-scale-lr",
        action="store_true",
        help="scale the learning rate by the real batch size (the config's auto_scale_lr)",
    )
    add_common_arguments(parser)
    parser.set_defaults(func=_run)
    return {"train": parser}


def mark_config_error(exc: BaseException) -> None:
    """Mark ``exc`` as "the config cannot be read or applied" for the exit code."""
    from treadle.core.cli.main import EXIT_CONFIG

    exc.treadle_exit_code = EXIT_CONFIG  # type: ignore[attr-defined]


def add_config_dir_to_sys_path(config: str) -> None:
    """Append the config file's directory, then the current directory, to ``sys.path``.

    Call it before ``Config.fromfile`` so that the config's ``custom_imports`` find the modules
    next to it (the current directory: as ``python -m`` has it, for ``projects.x.y`` imports run
    from a project root). Appended, not prepended: an installed package wins over a local file
    of the same name.

    Args:
        config: Path of the config file.
    """
    for entry in (osp.dirname(osp.abspath(osp.expanduser(config))), os.getcwd()):
        if entry not in sys.path:
            sys.path.append(entry)


def read_config(config: str, cfg_options: dict[str, Any] | None = None) -> Config:
    """Read a config file as every command does: its directory on ``sys.path``, options merged.

    Args:
        config: Path of the config file.
        cfg_options: The ``--cfg-options`` to merge, if any.

    Returns:
        The config.

    Raises:
        FileNotFoundError: The config (or a base) does not exist.
        Exception: Whatever reading the config or applying the options raised; marked as a
            config error for the exit code.
    """
    from treadle.core.config import Config

    path = osp.abspath(osp.expanduser(config))
    if not osp.isfile(path):
        raise FileNotFoundError(f"config file {config} does not exist")
    add_config_dir_to_sys_path(path)
    try:
        cfg = Config.fromfile(config)
        if cfg_options:
            cfg.merge_from_dict(cfg_options)
    except FileNotFoundError:
        raise
    except Exception as exc:
        mark_config_error(exc)
        raise
    return cfg


def load_config(args: argparse.Namespace) -> Config:
    """Read ``args.config`` (see :func:`read_config`), then set ``work_dir`` and ``launcher``.

    Args:
        args: Parsed arguments with ``config``, ``cfg_options``, ``work_dir``, ``launcher``
            and ``local_rank``.

    Returns:
        The config, ``work_dir`` and ``launcher`` set.

    Raises:
        FileNotFoundError: The config (or a base) does not exist.
        Exception: Whatever reading the config or applying the options raised; marked as a
            config error for the exit code.
    """
    if "LOCAL_RANK" not in os.environ:
        os.environ["LOCAL_RANK"] = str(args.local_rank)
    cfg = read_config(args.config, args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get("work_dir", None) is None:
        cfg.work_dir = osp.join("./work_dirs", osp.splitext(osp.basename(args.config))[0])
    cfg.work_dir = _local_if_file_uri(str(cfg.work_dir))
    cfg.launcher = args.launcher
    return cfg


def _local_if_file_uri(path: str) -> str:
    """``file:///x/y`` → ``/x/y``: a local directory, whatever the Runner makes of URIs."""
    if not path.startswith("file://"):
        return path
    from urllib.parse import unquote, urlparse
    from urllib.request import url2pathname

    parsed = urlparse(path)
    return url2pathname(unquote(parsed.path))


def check_launcher(cfg: Config) -> None:
    """Fail early, with the install command, when the launcher needs treadle-dist.

    Raises:
        CommandError: ``launcher`` is not ``none``, the config names no ``strategy`` and no
            installed plugin provides ``DDPStrategy``.
    """
    from treadle.core.cli.main import EXIT_MISSING_PLUGIN, CommandError
    from treadle.core.registry import STRATEGIES  # its first lookup loads the plugins

    launcher = cfg.get("launcher", "none")
    if launcher == "none" or cfg.get("strategy", None) is not None:
        return
    if STRATEGIES.get("DDPStrategy") is None:
        raise CommandError(
            f"--launcher {launcher} needs treadle-dist (distributed training), which is not "
            f"installed; install it with: {DIST_INSTALL_HINT}",
            EXIT_MISSING_PLUGIN,
        )


def build_runner(cfg: Config) -> Any:
    """``Runner.from_cfg(cfg)``, or the ``RUNNERS`` entry named by ``runner_type``."""
    if "runner_type" in cfg:
        from treadle.core.registry import RUNNERS

        return RUNNERS.build(cfg)
    from treadle.core.runner import Runner

    return Runner.from_cfg(cfg)


def _apply_amp(cfg: Config) -> None:
    from treadle.core.cli.main import EXIT_CONFIG, CommandError
    from treadle.core.logging import print_log

    optim_wrapper = cfg.get("optim_wrapper", None)
    if optim_wrapper is None:
        raise CommandError("--amp needs an optim_wrapper in the config", EXIT_CONFIG)
    wrapper_type = optim_wrapper.get("type", "OptimWrapper")
    if wrapper_type == "AmpOptimWrapper":
        print_log("AMP training is already enabled in your config.", logger="current")
        return
    if wrapper_type != "OptimWrapper":
        raise CommandError(
            "--amp works when the optimizer wrapper type is `OptimWrapper`, but the config has "
            f"{wrapper_type!r}",
            EXIT_CONFIG,
        )
    optim_wrapper.type = "AmpOptimWrapper"
    optim_wrapper.loss_scale = "dynamic"


def _apply_auto_scale_lr(cfg: Config) -> None:
    from treadle.core.cli.main import EXIT_CONFIG, CommandError

    auto_scale_lr = cfg.get("auto_scale_lr", None)
    if not auto_scale_lr or "base_batch_size" not in auto_scale_lr:
        raise CommandError(
            "--auto-scale-lr needs `auto_scale_lr = dict(base_batch_size=N)` in the config",
            EXIT_CONFIG,
        )
    auto_scale_lr.enable = True


def _resume_command(args: argparse.Namespace) -> str:
    words = ["treadle", "train", args.config]
    if args.work_dir is not None:
        words += ["--work-dir", args.work_dir]
    command = shlex.join([*words, "--resume"])
    if args.cfg_options:
        command += " (with the same --cfg-options)"
    return command


def _run(args: argparse.Namespace) -> int:
    from treadle.core.cli.main import EXIT_INTERRUPTED

    cfg = load_config(args)
    if args.amp:
        _apply_amp(cfg)
    if args.auto_scale_lr:
        _apply_auto_scale_lr(cfg)
    if args.resume == "auto":
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    check_launcher(cfg)
    try:
        runner = build_runner(cfg)
        runner.train()
    except KeyboardInterrupt:
        _report_interrupt(args, str(cfg.work_dir))
        return EXIT_INTERRUPTED
    return 0


def _report_interrupt(args: argparse.Namespace, work_dir: str) -> None:
    from treadle.core.runner.checkpoint import find_latest_checkpoint

    try:
        last = find_latest_checkpoint(work_dir, logger="silent")
    except Exception:  # never let the report hide the interruption
        last = None
    if last is None:
        print(
            "treadle: interrupted before the first checkpoint was saved; run the same command "
            "to start again",
            file=sys.stderr,
        )
        return
    print(
        f"treadle: interrupted; the last checkpoint is {last}\n"
        f"  resume with: {_resume_command(args)}",
        file=sys.stderr,
    )

"""The Runner: builds everything from a config and drives the loops (MMEngine's Runner API).

``Runner(...)`` takes MMEngine's arguments (plus ``strategy``); each component may be given
built or as a config, built through the registries. ``train()``, ``val()`` and ``test()`` run the
loops; hooks (MMEngine-style ``Hook`` subclasses or pluggy plugins) are called through one
plugin manager per Runner, in priority order.
"""

from __future__ import annotations

import copy
import operator
import os
import os.path as osp
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from treadle.core.config import Config
from treadle.core.fileio import join_path
from treadle.core.logging import MessageHub, TreadleLogger, set_rank
from treadle.core.registry import (
    EVALUATOR,
    HOOKS,
    LOG_PROCESSORS,
    LOOPS,
    MODELS,
    PARAM_SCHEDULERS,
    STRATEGIES,
    VISUALIZERS,
    DefaultScope,
)
from treadle.core.runner.checkpoint import DEFAULT_REVISE_KEYS
from treadle.core.runner.hook_manager import RunnerHookManager, has_lifecycle_hookimpls
from treadle.core.runner.utils import is_remote_path, set_random_seed, setup_env
from treadle.core.version import __version__

if TYPE_CHECKING:
    from torch import nn
    from torch.utils.data import DataLoader

    from treadle.core.runner.loops import BaseLoop
    from treadle.core.strategy import Strategy

__all__ = ["Runner"]

ConfigType = Mapping[str, Any]

_DEFAULT_HOOKS: dict[str, dict[str, Any]] = {
    "runtime_info": {"type": "RuntimeInfoHook"},
    "timer": {"type": "IterTimerHook"},
    "sampler_seed": {"type": "DistSamplerSeedHook"},
    "logger": {"type": "LoggerHook"},
    "param_scheduler": {"type": "ParamSchedulerHook"},
    "checkpoint": {"type": "CheckpointHook", "interval": 1},
    # New in treadle: a progress line on a terminal (nothing otherwise; `progress=None` removes it).
    "progress": {"type": "ProgressHook"},
}


def _missing_eval_parts(stage: str) -> RuntimeError:
    return RuntimeError(
        f"{stage}() needs {stage}_dataloader, {stage}_cfg and {stage}_evaluator; the Runner was "
        "built without them"
    )


def _all_or_none(stage: str, **values: Any) -> None:
    given = [name for name, value in values.items() if value is not None]
    if given and len(given) != len(values):
        missing = [name for name in values if name not in given]
        raise ValueError(
            f"{', '.join(values)} must be given all together or not at all: got "
            f"{', '.join(given)} without {', '.join(missing)} (needed to {stage})"
        )


class Runner:
    """Builds the model, data, optimization, hooks and loops, and runs them.

    Arguments are MMEngine's (see ``mmengine.runner.Runner``); components may be objects or
    configs. New: ``strategy``, a :class:`~treadle.core.strategy.Strategy` or its config; by
    default the single-device strategy (``launcher='none'``) or treadle-dist's DDP strategy.
    ``resume`` may also be a checkpoint path.
    """

    cfg: Config

    def __init__(
        self,
        model: nn.Module | ConfigType,
        work_dir: str,
        train_dataloader: DataLoader[Any] | ConfigType | None = None,
        val_dataloader: DataLoader[Any] | ConfigType | None = None,
        test_dataloader: DataLoader[Any] | ConfigType | None = None,
        train_cfg: ConfigType | None = None,
        val_cfg: ConfigType | None = None,
        test_cfg: ConfigType | None = None,
        auto_scale_lr: ConfigType | None = None,
        optim_wrapper: Any = None,
        param_scheduler: Any = None,
        val_evaluator: Any = None,
        test_evaluator: Any = None,
        default_hooks: Mapping[str, Any] | None = None,
        custom_hooks: Sequence[Any] | None = None,
        data_preprocessor: ConfigType | None = None,
        load_from: str | None = None,
        resume: bool | str = False,
        launcher: str = "none",
        env_cfg: ConfigType | None = None,
        log_processor: ConfigType | None = None,
        log_level: str | int = "INFO",
        visualizer: Any = None,
        default_scope: str = "treadle",
        randomness: ConfigType | None = None,
        experiment_name: str | None = None,
        cfg: ConfigType | Config | None = None,
        strategy: Strategy | ConfigType | None = None,
    ) -> None:
        from treadle.core.plugins import load_plugins

        load_plugins()
        self.cfg = copy.deepcopy(cfg) if isinstance(cfg, Config) else Config(dict(cfg or {}))
        if work_dir.startswith("file://"):
            work_dir = work_dir[len("file://") :]
        self._work_dir = work_dir if is_remote_path(work_dir) else osp.abspath(work_dir)
        if not is_remote_path(self._work_dir):
            os.makedirs(self._work_dir, exist_ok=True)

        _all_or_none(
            "train",
            train_dataloader=train_dataloader,
            train_cfg=train_cfg,
            optim_wrapper=optim_wrapper,
        )
        _all_or_none(
            "validate", val_dataloader=val_dataloader, val_cfg=val_cfg, val_evaluator=val_evaluator
        )
        _all_or_none(
            "test",
            test_dataloader=test_dataloader,
            test_cfg=test_cfg,
            test_evaluator=test_evaluator,
        )
        self._train_dataloader = train_dataloader
        self._val_dataloader = val_dataloader
        self._test_dataloader = test_dataloader
        self._train_loop = train_cfg
        self._val_loop: BaseLoop | ConfigType | None = val_cfg
        self._test_loop: BaseLoop | ConfigType | None = test_cfg
        self._val_evaluator = val_evaluator
        self._test_evaluator = test_evaluator
        self.optim_wrapper: Any = optim_wrapper
        self.auto_scale_lr = auto_scale_lr
        self.param_schedulers: Any = param_scheduler
        self._load_from = load_from
        self._resume = resume
        self._has_loaded = False
        self._launcher = launcher

        # Process group, seed and time first: everything after may depend on them.
        env = dict(env_cfg or {})
        setup_env(env)
        self.strategy = self.build_strategy(strategy, launcher, env)
        self.strategy.setup()
        set_rank(self.strategy.rank, self.strategy.world_size)
        self._randomness_cfg = dict(randomness or {})
        self._seed = set_random_seed(
            self._randomness_cfg.get("seed"),
            self.strategy,
            deterministic=bool(self._randomness_cfg.get("deterministic", False)),
            diff_rank_seed=bool(self._randomness_cfg.get("diff_rank_seed", False)),
        )
        self._timestamp: str = self.strategy.broadcast_object(
            time.strftime("%Y%m%d_%H%M%S", time.localtime())
        )
        if experiment_name is None:
            stem = osp.splitext(osp.basename(self.cfg.filename))[0] if self.cfg.filename else None
            experiment_name = f"{stem}_{self._timestamp}" if stem else self._timestamp
            # Runs built in the same second in one process (sweeps, tests) must not share a
            # MessageHub, logger or scope: those are named after the experiment.
            base, n = experiment_name, 0
            while MessageHub.check_instance_created(experiment_name):
                n += 1
                experiment_name = f"{base}_{n}"
        self._experiment_name = experiment_name
        self._log_dir = join_path(self._work_dir, self._timestamp)

        self.default_scope = DefaultScope.get_instance(
            self._experiment_name, scope_name=default_scope
        )
        self.logger = self.build_logger(log_level=log_level)
        self.message_hub: MessageHub = MessageHub.get_instance(self._experiment_name)
        self.visualizer = self.build_visualizer(visualizer)
        if self.cfg:
            self.visualizer.add_config(self.cfg)
        self.log_processor = self.build_log_processor(log_processor)

        # Any: loops call model-specific methods (train_step, …) on it.
        self.model: Any = self.strategy.prepare_model(self.build_model(model, data_preprocessor))

        self._hooks = RunnerHookManager()
        #: Whether the train loops may call the iteration points' implementations directly:
        #: not when a subclass overrides :meth:`call_hook`.
        self._direct_hooks = type(self).call_hook is Runner.call_hook
        self.register_hooks(default_hooks, custom_hooks)
        self._register_plugin_hooks()
        self._hooks.sync()  # into pluggy once, all together: a hook it rejects fails here
        self.dump_config()

    # -- construction ----------------------------------------------------------------------

    @classmethod
    def from_cfg(cls, cfg: ConfigType | Config) -> Runner:
        """Build a Runner from a whole config (MMEngine's ``Runner.from_cfg``)."""
        cfg = copy.deepcopy(cfg)
        if "work_dir" not in cfg:
            raise KeyError("the config has no `work_dir`: say where checkpoints and logs go")
        if "model" not in cfg:
            raise KeyError("the config has no `model`")
        return cls(
            model=cfg["model"],
            work_dir=cfg["work_dir"],
            train_dataloader=cfg.get("train_dataloader"),
            val_dataloader=cfg.get("val_dataloader"),
            test_dataloader=cfg.get("test_dataloader"),
            train_cfg=cfg.get("train_cfg"),
            val_cfg=cfg.get("val_cfg"),
            test_cfg=cfg.get("test_cfg"),
            auto_scale_lr=cfg.get("auto_scale_lr"),
            optim_wrapper=cfg.get("optim_wrapper"),
            param_scheduler=cfg.get("param_scheduler"),
            val_evaluator=cfg.get("val_evaluator"),
            test_evaluator=cfg.get("test_evaluator"),
            default_hooks=cfg.get("default_hooks"),
            custom_hooks=cfg.get("custom_hooks"),
            data_preprocessor=cfg.get("data_preprocessor"),
            load_from=cfg.get("load_from"),
            resume=cfg.get("resume", False),
            launcher=cfg.get("launcher", "none"),
            env_cfg=cfg.get("env_cfg"),
            log_processor=cfg.get("log_processor"),
            log_level=cfg.get("log_level", "INFO"),
            visualizer=cfg.get("visualizer"),
            default_scope=cfg.get("default_scope", "treadle"),
            randomness=cfg.get("randomness"),
            experiment_name=cfg.get("experiment_name"),
            cfg=cfg,
            strategy=cfg.get("strategy"),
        )

    def build_strategy(
        self, strategy: Strategy | ConfigType | None, launcher: str, env_cfg: Mapping[str, Any]
    ) -> Strategy:
        """Build the strategy: given, from config, or chosen by ``launcher``."""
        from treadle.core.strategy import SingleDeviceStrategy, Strategy

        if isinstance(strategy, Strategy):
            return strategy
        if strategy is None:
            if launcher == "none":
                return SingleDeviceStrategy(device=env_cfg.get("device"))
            if launcher not in ("pytorch", "slurm", "mpi"):
                raise ValueError(
                    f"launcher must be 'none', 'pytorch', 'slurm' or 'mpi', got {launcher!r}"
                )
            if STRATEGIES.get("DDPStrategy") is None:
                raise RuntimeError(
                    f"launcher={launcher!r} needs the DDP strategy from treadle-dist, which is not "
                    "installed: pip install treadle-dist"
                )
            strategy = {"type": "DDPStrategy", "launcher": launcher, **env_cfg.get("dist_cfg", {})}
        built: Strategy = STRATEGIES.build(dict(strategy))
        return built

    def build_logger(
        self, log_level: int | str = "INFO", log_file: str | None = None
    ) -> TreadleLogger:
        """Build the run's logger, writing ``<log_dir>/<timestamp>.log``.

        For a remote work dir (``s3://…``) the log is written to a local staging file and
        uploaded through the file I/O API at every checkpoint save and when the run ends, on
        success or failure (see :meth:`sync_log`).
        """
        self._remote_log: tuple[str, str] | None = None
        if log_file is None:
            name = f"{self._timestamp}.log"
            if is_remote_path(self._log_dir):
                import tempfile

                log_file = osp.join(tempfile.mkdtemp(prefix="treadle-log-"), name)
                self._remote_log = (log_file, join_path(self._log_dir, name))
            else:
                log_file = osp.join(self._log_dir, name)
        return TreadleLogger.get_instance(
            self._experiment_name, logger_name="treadle", log_file=log_file, log_level=log_level
        )

    def build_visualizer(self, visualizer: Any = None) -> Any:
        """Build the Visualizer (default: one LocalVisBackend writing under ``log_dir``)."""
        from treadle.core.visualization import Visualizer

        if isinstance(visualizer, Visualizer):
            return visualizer
        if visualizer is None:
            visualizer = {"type": "Visualizer", "vis_backends": [{"type": "LocalVisBackend"}]}
        cfg = dict(visualizer)
        cfg.setdefault("type", "Visualizer")
        cfg.setdefault("name", self._experiment_name)
        cfg.setdefault("save_dir", self._log_dir)
        return VISUALIZERS.build(cfg)

    def build_log_processor(self, log_processor: Any = None) -> Any:
        """Build the LogProcessor (MMEngine's defaults when ``None``)."""
        if log_processor is not None and not isinstance(log_processor, Mapping):
            return log_processor
        cfg = dict(log_processor or {})
        cfg.setdefault("type", "LogProcessor")
        return LOG_PROCESSORS.build(cfg)

    def build_model(
        self, model: nn.Module | ConfigType, data_preprocessor: Any = None
    ) -> nn.Module:
        """Build the model from MODELS when given as a config."""
        from torch import nn

        if isinstance(model, nn.Module):
            return model
        if not isinstance(model, Mapping):
            raise TypeError(
                f"model must be an nn.Module or a config dict, got {type(model).__name__}"
            )
        cfg = dict(model)
        if data_preprocessor is not None:
            cfg.setdefault("data_preprocessor", data_preprocessor)
        built: nn.Module = MODELS.build(cfg)
        return built

    def build_dataloader(self, dataloader: Any) -> DataLoader[Any]:
        """Build a DataLoader from its config, seeded with the run's seed.

        The loader gets a ``torch.Generator`` of its own, reseeded per epoch by the loops, so
        that iterating it never draws from the global RNG (see :mod:`treadle.core.runner.loops`).
        """
        import torch

        from treadle.core.dataset import build_dataloader

        loader = build_dataloader(
            dataloader,
            seed=self._seed,
            diff_rank_seed=bool(self._randomness_cfg.get("diff_rank_seed", False)),
        )
        if loader.generator is None:
            loader.generator = torch.Generator()
            loader._treadle_seed = self._seed
        return loader

    def build_evaluator(self, evaluator: Any) -> Any:
        """Build an Evaluator from an Evaluator, its config, or metric configs."""
        from treadle.core.evaluator import Evaluator

        if isinstance(evaluator, Evaluator):
            built = evaluator
        elif isinstance(evaluator, Mapping) and "metrics" in evaluator:
            # MMEngine's rule: an evaluator config has `metrics`; any other dict is one metric.
            cfg = dict(evaluator)
            cfg.setdefault("type", "Evaluator")
            built = EVALUATOR.build(cfg)
        else:
            built = Evaluator(evaluator)
        built.set_collectives(self.strategy)
        return built

    def build_train_loop(self, loop: Any) -> BaseLoop:
        """Build the train loop from ``train_cfg`` (``type`` or MMEngine's ``by_epoch``)."""
        from treadle.core.runner.loops import BaseLoop, EpochBasedTrainLoop, IterBasedTrainLoop

        if isinstance(loop, BaseLoop):
            return loop
        cfg = dict(loop)
        if "type" in cfg and "by_epoch" in cfg:
            raise ValueError("train_cfg takes `type` or `by_epoch`, not both")
        if "type" in cfg:
            built: BaseLoop = LOOPS.build(
                cfg, default_args={"runner": self, "dataloader": self._train_dataloader}
            )
            return built
        by_epoch = cfg.pop("by_epoch", True)
        loop_cls = EpochBasedTrainLoop if by_epoch else IterBasedTrainLoop
        return loop_cls(runner=self, dataloader=self._train_dataloader, **cfg)  # type: ignore[arg-type]

    def _build_eval_loop(self, loop: Any, stage: str) -> BaseLoop:
        from treadle.core.runner.loops import BaseLoop, TestLoop, ValLoop

        if isinstance(loop, BaseLoop):
            return loop
        dataloader = self._val_dataloader if stage == "val" else self._test_dataloader
        evaluator = self._val_evaluator if stage == "val" else self._test_evaluator
        cfg = dict(loop)
        defaults = {"runner": self, "dataloader": dataloader, "evaluator": evaluator}
        if "type" in cfg:
            built: BaseLoop = LOOPS.build(cfg, default_args=defaults)
            return built
        loop_cls = ValLoop if stage == "val" else TestLoop
        return loop_cls(**defaults, **cfg)

    def build_val_loop(self, loop: Any) -> BaseLoop:
        """Build the validation loop from ``val_cfg``."""
        return self._build_eval_loop(loop, "val")

    def build_test_loop(self, loop: Any) -> BaseLoop:
        """Build the test loop from ``test_cfg``."""
        return self._build_eval_loop(loop, "test")

    def build_optim_wrapper(self, optim_wrapper: Any) -> Any:
        """Build the optimizer wrapper(s) (MMEngine's rules, incl. a dict of wrappers)."""
        from torch import nn
        from torch.optim import Optimizer

        from treadle.core.optim import OptimWrapper, OptimWrapperDict, build_optim_wrapper

        if isinstance(optim_wrapper, OptimWrapper):
            return optim_wrapper
        if not isinstance(optim_wrapper, Mapping):
            raise TypeError(
                f"optim_wrapper must be an OptimWrapper or a config dict, got "
                f"{type(optim_wrapper).__name__}"
            )
        model = self.strategy.unwrap_model(self.model)
        optimizer = optim_wrapper.get("optimizer")
        if isinstance(optimizer, Optimizer):
            cfg = dict(optim_wrapper)
            cfg.setdefault("type", "OptimWrapper")
            from treadle.core.registry import OPTIM_WRAPPERS

            return OPTIM_WRAPPERS.build(cfg)
        if (
            "constructor" not in optim_wrapper
            and optimizer is None
            and optim_wrapper
            and all(isinstance(v, (Mapping, OptimWrapper)) for v in optim_wrapper.values())
        ):
            # one wrapper per submodule named like the key (model.generator, …); built wrappers
            # as they are (MMEngine: a dict of built wrappers, one per optimizer)
            missing = [
                name
                for name, sub in optim_wrapper.items()
                if isinstance(sub, Mapping)
                and not isinstance(getattr(model, name, None), nn.Module)
            ]
            if missing:
                raise ValueError(
                    f"optim_wrapper has one wrapper config per name {list(optim_wrapper)}, built "
                    f"for the submodule of that name, but {type(model).__name__} has no "
                    f"submodule {', '.join(map(repr, missing))}; name the keys after the model's "
                    "submodules or give a `constructor`"
                )
            wrappers = {
                name: sub
                if isinstance(sub, OptimWrapper)
                else build_optim_wrapper(getattr(model, name), dict(sub))
                for name, sub in optim_wrapper.items()
            }
            return OptimWrapperDict(**wrappers)
        return build_optim_wrapper(model, dict(optim_wrapper))

    def _build_schedulers(self, schedulers: Any, optim_wrapper: Any) -> list[Any]:
        from treadle.core.optim.scheduler import _ParamScheduler

        items = (
            schedulers
            if isinstance(schedulers, Sequence) and not isinstance(schedulers, str)
            else [schedulers]
        )
        built = []
        epoch_length = len(self.train_dataloader) if self._train_dataloader is not None else None
        for item in items:
            if isinstance(item, _ParamScheduler):
                built.append(item)
                continue
            cfg = dict(item)
            # A train dataloader means a train loop, which reading its length above has built.
            if self._train_loop is not None:
                default_end = self.max_epochs if cfg.get("by_epoch", True) else self.max_iters
                cfg.setdefault("end", default_end)
            built.append(
                PARAM_SCHEDULERS.build(
                    cfg, default_args={"optimizer": optim_wrapper, "epoch_length": epoch_length}
                )
            )
        return built

    def build_param_scheduler(self, scheduler: Any) -> Any:
        """Build parameter schedulers: a list, or a dict of lists for several optimizers."""
        from treadle.core.optim import OptimWrapperDict

        if isinstance(self.optim_wrapper, OptimWrapperDict):
            if not isinstance(scheduler, Mapping) or "type" in scheduler:
                # one schedule for every optimizer (MMEngine's behaviour)
                return {
                    name: self._build_schedulers(copy.deepcopy(scheduler), wrapper)
                    for name, wrapper in self.optim_wrapper.items()
                }
            return {
                name: self._build_schedulers(sub, self.optim_wrapper[name])
                for name, sub in scheduler.items()
            }
        return self._build_schedulers(scheduler, self.optim_wrapper)

    # -- hooks -------------------------------------------------------------------------------

    def register_hook(self, hook: Any, priority: int | str | None = None) -> None:
        """Register a hook: a Hook, a plugin object with ``@hookimpl`` methods, or a config."""
        if isinstance(hook, Mapping):
            cfg = dict(hook)
            cfg_priority = cfg.pop("priority", None)
            priority = priority if priority is not None else cfg_priority
            hook = HOOKS.build(cfg)
        self._hooks.register(hook, priority)

    def register_default_hooks(self, hooks: Mapping[str, Any] | None = None) -> None:
        """Register MMEngine's default hooks, with ``hooks`` overriding (``None`` removes one)."""
        merged: dict[str, Any] = copy.deepcopy(_DEFAULT_HOOKS)
        for name, hook in (hooks or {}).items():
            merged[name] = hook
        for hook in merged.values():
            if hook is not None:
                self.register_hook(hook)

    def register_custom_hooks(self, hooks: Sequence[Any]) -> None:
        """Register the custom hooks."""
        for hook in hooks:
            self.register_hook(hook)

    def register_hooks(
        self,
        default_hooks: Mapping[str, Any] | None = None,
        custom_hooks: Sequence[Any] | None = None,
    ) -> None:
        """Register default and custom hooks."""
        self.register_default_hooks(default_hooks)
        if custom_hooks:
            self.register_custom_hooks(custom_hooks)

    def _register_plugin_hooks(self) -> None:
        """Discovered plugins that implement lifecycle points take part in every run."""
        from treadle.core.plugins import loaded_plugins

        for _, plugin in loaded_plugins():
            if has_lifecycle_hookimpls(plugin):
                self._hooks.register(plugin)

    @property
    def hooks(self) -> list[Any]:
        """The registered hooks, in call order."""
        return self._hooks.hooks

    def call_hook(self, fn_name: str, **kwargs: Any) -> None:
        """Call every hook that implements ``fn_name``, in priority order."""
        kwargs["runner"] = self
        self._hooks.call(fn_name, kwargs)

    def get_hooks_info(self) -> str:
        """A table of which hooks run at each point, in order (MMEngine's format)."""
        from treadle.core.hooks.hook import POINTS, implemented_points

        lines = []
        for point in POINTS:
            names = [
                f"({number:<12}) {type(hook).__name__}"
                for number, hook in self._hooks.priorities()
                if point in implemented_points(hook)
            ]
            if names:
                lines.append(f"{point}:\n" + "\n".join(names))
        return "\n--------------------\n".join(lines)

    # -- running -----------------------------------------------------------------------------

    def _guard(self, stage: str, body: Any) -> Any:
        try:
            return body()
        except BaseException as exc:
            try:
                self.call_hook("on_exception", exception=exc)
            except Exception as hook_exc:  # never hide the original error
                self.logger.error(f"on_exception hook failed during {stage}: {hook_exc!r}")
            # The run ends without after_run (where LoggerHook closes the visualizer): release
            # what the backends hold open. A backend written to again reopens its files.
            try:
                self.visualizer.close()
            except Exception as close_exc:
                self.logger.error(f"closing the visualizer failed during {stage}: {close_exc!r}")
            raise
        finally:
            self.sync_log()

    def sync_log(self) -> None:
        """Upload the text log to a remote work dir (no-op for local ones). Rank 0 only.

        A failing upload is logged, never raised: it must not hide the run's own outcome.
        """
        if self._remote_log is None or self.strategy.rank != 0:
            return
        from treadle.core.fileio import copyfile_from_local

        local, remote = self._remote_log
        for handler in self.logger.handlers:
            handler.flush()
        try:
            copyfile_from_local(local, remote)
        except Exception as exc:
            self.logger.warning(f"could not upload the log to {remote}: {exc!r}")

    def train(self) -> nn.Module:
        """Train; validate as ``val_cfg`` says; return the model."""
        return self._guard("train", self._train)  # type: ignore[no-any-return]

    def _train(self) -> nn.Module:
        if self._train_loop is None:
            raise RuntimeError(
                "train() needs train_dataloader, train_cfg and optim_wrapper; the Runner was "
                "built without them"
            )
        self._train_loop = self.build_train_loop(self._train_loop)
        self.optim_wrapper = self.build_optim_wrapper(self.optim_wrapper)
        self.scale_lr(self.optim_wrapper, self.auto_scale_lr)
        if self.param_schedulers is not None:
            self.param_schedulers = self.build_param_scheduler(self.param_schedulers)
        if self._val_loop is not None:
            self._val_loop = self.build_val_loop(self._val_loop)
        self.call_hook("before_run")
        self._init_model_weights()
        self.load_or_resume()
        loop: Any = self.train_loop
        # (An OptimWrapperDict initialises each of its wrappers with its own submodule.)
        self.optim_wrapper.initialize_count_status(self.model, loop.iter, loop.max_iters)
        model = self.train_loop.run()
        self.call_hook("after_run")
        return model  # type: ignore[no-any-return]

    def val(self) -> dict[str, Any]:
        """Validate once and return the metrics."""
        return self._guard("val", self._val)  # type: ignore[no-any-return]

    def _val(self) -> dict[str, Any]:
        if self._val_loop is None:
            raise _missing_eval_parts("val")
        self._val_loop = self.build_val_loop(self._val_loop)
        return self._run_eval_loop(self._val_loop)

    def test(self) -> dict[str, Any]:
        """Test once and return the metrics."""
        return self._guard("test", self._test)  # type: ignore[no-any-return]

    def _test(self) -> dict[str, Any]:
        if self._test_loop is None:
            raise _missing_eval_parts("test")
        self._test_loop = self.build_test_loop(self._test_loop)
        return self._run_eval_loop(self._test_loop)

    def _run_eval_loop(self, loop: BaseLoop) -> dict[str, Any]:
        """Run a validation or test loop on its own, as a whole run."""
        self.call_hook("before_run")
        self.load_or_resume()
        metrics = loop.run()
        self.call_hook("after_run")
        return metrics  # type: ignore[no-any-return]

    def _init_model_weights(self) -> None:
        model = self.strategy.unwrap_model(self.model)
        init_weights = getattr(model, "init_weights", None)
        if callable(init_weights):
            init_weights()
            if self.strategy.distributed:
                for tensor in model.state_dict().values():
                    self.strategy.broadcast(tensor, src=0)

    def scale_lr(self, optim_wrapper: Any, auto_scale_lr: Mapping[str, Any] | None = None) -> None:
        """MMEngine's linear scaling rule: lr × real batch size / ``base_batch_size``."""
        if not auto_scale_lr or not auto_scale_lr.get("enable", False):
            return
        if "base_batch_size" not in auto_scale_lr:
            raise KeyError("auto_scale_lr needs `base_batch_size` when enabled")
        batch_size = self.train_dataloader.batch_size
        if batch_size is None:
            raise ValueError("auto_scale_lr needs the train dataloader's batch_size")
        ratio = self.strategy.world_size * batch_size / auto_scale_lr["base_batch_size"]
        wrappers = optim_wrapper.values() if hasattr(optim_wrapper, "values") else [optim_wrapper]
        for wrapper in wrappers:
            for group in wrapper.optimizer.param_groups:
                group["lr"] = group["lr"] * ratio

    # -- checkpoints -------------------------------------------------------------------------

    def load_or_resume(self) -> None:
        """Resume (``resume=True`` finds ``last_checkpoint``; a path resumes from it) or load."""
        from treadle.core.runner.checkpoint import find_latest_checkpoint

        if self._has_loaded:
            return
        resume_from: str | None = None
        if isinstance(self._resume, str):
            resume_from = self._resume
        elif self._resume:
            resume_from = self._load_from or find_latest_checkpoint(self._work_dir)
            if resume_from is None:
                self.logger.warning(
                    f"resume=True but {self._work_dir} has no last_checkpoint; starting afresh"
                )
        if resume_from is not None and self._train_loop is None:
            # val()/test() on a Runner without train parts: the weights are all there is to resume
            self.load_checkpoint(resume_from)
        elif resume_from is not None:
            self.resume(resume_from)
        elif self._load_from is not None:
            self.load_checkpoint(self._load_from)
        self._has_loaded = True

    def load_checkpoint(
        self,
        filename: str,
        map_location: Any = "cpu",
        strict: bool = False,
        revise_keys: Sequence[tuple[str, str]] = DEFAULT_REVISE_KEYS,
    ) -> dict[str, Any]:
        """Load model weights from ``filename`` (``load_from``)."""
        from treadle.core.runner.checkpoint import load_checkpoint

        checkpoint: dict[str, Any] = load_checkpoint(filename, map_location=map_location)
        self.call_hook("after_load_checkpoint", checkpoint=checkpoint)
        self._load_model_weights(checkpoint, filename, strict, revise_keys)
        self._has_loaded = True
        self.logger.info(f"Load checkpoint from {filename}")
        return checkpoint

    def _load_model_weights(
        self,
        checkpoint: Any,
        filename: str,
        strict: bool = False,
        revise_keys: Sequence[tuple[str, str]] = DEFAULT_REVISE_KEYS,
    ) -> None:
        """Load a checkpoint's weights (``state_dict``, or the whole dict) into the model through
        ``strategy.load_model_state_dict``, the pair of the ``strategy.model_state_dict`` that
        saved them, after ``revise_keys``.

        Raises:
            RuntimeError: ``filename`` holds no state dict, or (``strict``) its weights do not
                match the model; the message names the file.
        """
        from treadle.core.runner.checkpoint import _revise, _state_dict_of

        state_dict = _revise(_state_dict_of(checkpoint, filename), revise_keys)
        try:
            self.strategy.load_model_state_dict(
                self.model, state_dict, strict=strict, logger=self.logger
            )
        except RuntimeError as error:
            raise RuntimeError(f"loading the weights of {filename}: {error}") from error

    def resume(
        self,
        filename: str,
        resume_optimizer: bool = True,
        resume_param_scheduler: bool = True,
        map_location: Any = "default",
    ) -> None:
        """Restore model, optimizer, schedulers, message hub, counters and RNG states."""
        from treadle.core.runner.checkpoint import load_checkpoint

        if map_location == "default":
            map_location = "cpu"
        checkpoint = load_checkpoint(filename, map_location=map_location)
        if not isinstance(checkpoint, dict):
            raise TypeError(
                f"cannot resume from {filename}: it holds a {type(checkpoint).__name__}, not a "
                "checkpoint dict (meta, state_dict, optimizer, ...)"
            )
        self.call_hook("after_load_checkpoint", checkpoint=checkpoint)
        meta = checkpoint.get("meta", {})
        loop = self.train_loop
        loop._epoch = int(meta.get("epoch", 0))  # type: ignore[attr-defined]
        loop._iter = int(meta.get("iter", 0))  # type: ignore[attr-defined]
        self._resume_seed(meta.get("seed"))
        if "message_hub" in checkpoint:
            self.message_hub.load_state_dict(checkpoint["message_hub"])
        if self.optim_wrapper is not None:  # built already by train(); not when called before
            self.optim_wrapper = self.build_optim_wrapper(self.optim_wrapper)
        if resume_optimizer and self.optim_wrapper is not None:
            if "optimizer" in checkpoint:
                self.strategy.load_optim_state_dict(self.optim_wrapper, checkpoint["optimizer"])
            else:
                self.logger.warning(
                    f"{filename} has no optimizer state (saved with save_optimizer=False); the "
                    "optimizer starts afresh"
                )
        if resume_param_scheduler and self.param_schedulers is not None:
            saved = checkpoint.get("param_schedulers")
            if saved is None:
                self.logger.warning(
                    f"{filename} has no param_schedulers state (saved with "
                    "save_param_scheduler=False); schedules restart"
                )
            else:
                self._load_param_schedulers(saved, filename)
        self._load_model_weights(checkpoint, filename)
        rng_state = self._rng_state_to_resume(checkpoint, filename)
        if rng_state is not None and hasattr(loop, "restore_rng_after_iterator"):
            loop.restore_rng_after_iterator(rng_state)
        self._has_loaded = True
        self.logger.info(f"resumed epoch: {self.epoch}, iter: {self.iter} from {filename}")

    def _rng_state_to_resume(self, checkpoint: dict[str, Any], filename: str) -> Any:
        """This rank's generator states from ``checkpoint``, or None to keep the current ones.

        A checkpoint saved on as many ranks holds every rank's states (``rng_states``): each
        rank takes its own, so the resumed run draws what the uninterrupted one would have.
        Otherwise only rank 0's states are there (``rng_state``): every rank takes them (exact
        when the ranks share their seed), unless ``diff_rank_seed`` gives the ranks different
        generators, when ranks other than 0 keep their own, reseeded ones. Those two cases, and a
        checkpoint from another number of ranks, are not exact, and the log says so.
        """
        rank, world_size = self.strategy.rank, self.strategy.world_size
        states = checkpoint.get("rng_states")
        if isinstance(states, (list, tuple)) and len(states) == world_size:
            return states[rank]
        state = checkpoint.get("rng_state")
        diff_rank_seed = bool(self._randomness_cfg.get("diff_rank_seed", False))
        if state is not None and (states is not None or (world_size > 1 and diff_rank_seed)):
            saved_on = len(states) if isinstance(states, (list, tuple)) else 1
            self.logger.warning(
                f"{filename} holds the random generator states of {saved_on} rank(s), this run "
                f"has {world_size}: the resumed run will not draw exactly the random numbers an "
                "uninterrupted one would have"
            )
        if rank != 0 and diff_rank_seed:
            return None
        return state

    def _resume_seed(self, resumed_seed: Any) -> None:
        """Take the checkpoint's seed (MMEngine's rule: warn only when the config set another)."""
        configured = self._randomness_cfg.get("seed")
        if resumed_seed is None or resumed_seed == configured:
            return
        base = self._seed - (
            self.strategy.rank if self._randomness_cfg.get("diff_rank_seed", False) else 0
        )
        if resumed_seed == base:
            return
        if configured is not None:
            self.logger.warning(
                f"the checkpoint was trained with seed {resumed_seed}, the config says "
                f"{configured}; using the checkpoint's"
            )
        self._randomness_cfg["seed"] = resumed_seed
        self._seed = set_random_seed(
            resumed_seed,
            self.strategy,
            deterministic=bool(self._randomness_cfg.get("deterministic", False)),
            diff_rank_seed=bool(self._randomness_cfg.get("diff_rank_seed", False)),
        )
        # The train dataloader was built (sampler and generator seeded) with the old seed.
        loop = self._train_loop
        if isinstance(self._train_dataloader, Mapping) and loop is not None:
            loop.dataloader = self.build_dataloader(self._train_dataloader)  # type: ignore[union-attr]

    def _load_param_schedulers(self, saved: Any, filename: str) -> None:
        # idempotent: built schedulers pass through (resume() may be called before train())
        self.param_schedulers = self.build_param_scheduler(self.param_schedulers)
        pairs: list[tuple[str, list[Any], Any]] = []
        if isinstance(self.param_schedulers, dict):
            if not isinstance(saved, Mapping) or set(saved) != set(self.param_schedulers):
                raise ValueError(
                    f"{filename} holds parameter schedulers "
                    f"{sorted(saved) if isinstance(saved, Mapping) else 'for one optimizer'}, "
                    f"this run has them for {sorted(self.param_schedulers)}"
                )
            pairs = [(f"{name!r} ", s, saved[name]) for name, s in self.param_schedulers.items()]
        else:
            if isinstance(saved, Mapping):
                raise ValueError(
                    f"{filename} holds parameter schedulers for optimizers {sorted(saved)}, this "
                    "run has one optimizer"
                )
            pairs = [("", self.param_schedulers, saved)]
        for what, schedulers, states in pairs:
            if len(schedulers) != len(states):
                raise ValueError(
                    f"{filename} holds {len(states)} {what}parameter scheduler states, this run "
                    f"has {len(schedulers)} {what}parameter schedulers"
                )
            for scheduler, state in zip(schedulers, states, strict=True):
                scheduler.load_state_dict(state)

    def save_checkpoint(
        self,
        out_dir: str,
        filename: str,
        file_client_args: Any = None,
        save_optimizer: bool = True,
        save_param_scheduler: bool = True,
        meta: dict[str, Any] | None = None,
        by_epoch: bool = True,
        backend_args: dict[str, Any] | None = None,
    ) -> None:
        """Write a checkpoint in MMEngine's layout to ``out_dir/filename``, plus the random
        generator states: ``rng_state`` (this process's; rank 0's when distributed) and, with
        several ranks, ``rng_states`` (every rank's, gathered through the strategy).

        With several ranks, call it on every rank (CheckpointHook does): the states are gathered
        with a collective, and rank 0 writes the file. Calling it on rank 0 alone, as in
        MMEngine's ``if is_main_process(): runner.save_checkpoint(...)``, waits forever.
        """
        from treadle.core.runner.checkpoint import save_checkpoint, weights_to_cpu
        from treadle.core.runner.rng import get_rng_state

        if file_client_args is not None:
            raise ValueError("file_client_args is not supported; use backend_args")
        meta = dict(meta or {})
        if by_epoch:
            # CheckpointHook saves in after_train_epoch, before the loop counts the epoch done.
            meta.setdefault("epoch", self.epoch + 1)
            meta.setdefault("iter", self.iter)
        else:
            meta.setdefault("epoch", self.epoch)
            meta.setdefault("iter", self.iter + 1)
        meta.update(
            cfg=self.cfg.pretty_text,
            seed=self._seed,
            experiment_name=self._experiment_name,
            time=time.strftime("%Y%m%d_%H%M%S", time.localtime()),
            treadle_version=__version__,
        )
        dataset = getattr(self._train_dataloader_or_none(), "dataset", None)
        if hasattr(dataset, "metainfo"):
            meta["dataset_meta"] = dataset.metainfo  # type: ignore[union-attr]
        checkpoint: dict[str, Any] = {
            "meta": meta,
            "state_dict": weights_to_cpu(self.strategy.model_state_dict(self.model)),
            "message_hub": self.message_hub.state_dict(),
        }
        if save_optimizer and self.optim_wrapper is not None:
            checkpoint["optimizer"] = self.strategy.optim_state_dict(self.optim_wrapper)
        if save_param_scheduler and self.param_schedulers is not None:
            if isinstance(self.param_schedulers, dict):
                checkpoint["param_schedulers"] = {
                    name: [s.state_dict() for s in schedulers]
                    for name, schedulers in self.param_schedulers.items()
                }
            else:
                checkpoint["param_schedulers"] = [s.state_dict() for s in self.param_schedulers]
        rng_state = get_rng_state()
        checkpoint["rng_state"] = rng_state  # rank 0's when distributed (MMEngine-era readers)
        if self.strategy.world_size > 1:  # every rank's, for an exact resume on as many ranks
            # (A list of another length, from a strategy without real collectives, is told
            # apart on resume: see _rng_state_to_resume.)
            checkpoint["rng_states"] = self.strategy.all_gather_object(rng_state)
        self.call_hook("before_save_checkpoint", checkpoint=checkpoint)
        if self.strategy.rank == 0:
            save_checkpoint(checkpoint, join_path(out_dir, filename), backend_args=backend_args)
        self.sync_log()  # a remote work dir gets the log up to this checkpoint

    def dump_config(self) -> None:
        """Write the config to the work dir (rank 0), as MMEngine does."""
        if not self.cfg or self.strategy.rank != 0:
            return
        name = osp.basename(self.cfg.filename) if self.cfg.filename else f"{self._timestamp}.py"
        self.cfg.dump(join_path(self._work_dir, name))

    # -- properties --------------------------------------------------------------------------

    def _train_dataloader_or_none(self) -> Any:
        loop = self._train_loop
        return getattr(loop, "dataloader", None) if loop is not None else None

    @property
    def train_loop(self) -> BaseLoop:
        """The train loop (built on first access)."""
        if self._train_loop is None:
            raise RuntimeError("this Runner has no train loop (no train_cfg given)")
        if isinstance(self._train_loop, Mapping):
            self._train_loop = self.build_train_loop(self._train_loop)
        return self._train_loop

    @property
    def val_loop(self) -> BaseLoop | None:
        """The validation loop, or None."""
        if isinstance(self._val_loop, Mapping):
            self._val_loop = self.build_val_loop(self._val_loop)
        return self._val_loop

    @property
    def test_loop(self) -> BaseLoop | None:
        """The test loop, or None."""
        if isinstance(self._test_loop, Mapping):
            self._test_loop = self.build_test_loop(self._test_loop)
        return self._test_loop

    @property
    def train_dataloader(self) -> DataLoader[Any]:
        """The train loop's dataloader."""
        return self.train_loop.dataloader

    @property
    def val_dataloader(self) -> DataLoader[Any]:
        """The validation loop's (first) dataloader."""
        loop = self.val_loop
        if loop is None:
            raise RuntimeError("this Runner has no validation loop")
        return loop.dataloader

    @property
    def test_dataloader(self) -> DataLoader[Any]:
        """The test loop's (first) dataloader."""
        loop = self.test_loop
        if loop is None:
            raise RuntimeError("this Runner has no test loop")
        return loop.dataloader

    # Hooks read these counters several times per iteration. Each is a C getter (no Python
    # frame) of ``_counters``: the train loop itself when its counter properties are
    # _TrainLoopMixin's (``_plain_counters``), else a _LoopCounters that asks the loop (or
    # answers for a loop not built yet).

    @property
    def _train_loop(self) -> BaseLoop | ConfigType | None:
        return self._train_loop_or_cfg

    @_train_loop.setter
    def _train_loop(self, loop: BaseLoop | ConfigType | None) -> None:
        self._train_loop_or_cfg = loop
        self._counters = loop if getattr(loop, "_plain_counters", False) else _LoopCounters(self)

    epoch: int = property(  # type: ignore[assignment]
        operator.attrgetter("_counters._epoch"), doc="Current epoch (0 before training)."
    )
    iter: int = property(  # type: ignore[assignment]
        operator.attrgetter("_counters._iter"), doc="Current iteration (0 before training)."
    )
    max_epochs: int = property(  # type: ignore[assignment]
        operator.attrgetter("_counters._max_epochs"), doc="Total training epochs."
    )
    max_iters: int = property(  # type: ignore[assignment]
        operator.attrgetter("_counters._max_iters"), doc="Total training iterations."
    )

    @property
    def seed(self) -> int:
        """The seed the run uses."""
        return self._seed

    @property
    def work_dir(self) -> str:
        """Where checkpoints and logs go."""
        return self._work_dir

    @property
    def log_dir(self) -> str:
        """``work_dir/<timestamp>``: this run's logs."""
        return self._log_dir

    @property
    def timestamp(self) -> str:
        """When the run started (``%Y%m%d_%H%M%S``), the same on every rank."""
        return self._timestamp

    @property
    def experiment_name(self) -> str:
        """The run's name."""
        return self._experiment_name

    @property
    def launcher(self) -> str:
        """``none``, ``pytorch``, ``slurm`` or ``mpi``."""
        return self._launcher

    @property
    def rank(self) -> int:
        """This process's rank."""
        return self.strategy.rank

    @property
    def world_size(self) -> int:
        """The number of processes."""
        return self.strategy.world_size

    @property
    def distributed(self) -> bool:
        """Whether more than one process takes part."""
        return self.strategy.distributed

    @property
    def randomness_cfg(self) -> dict[str, Any]:
        """The ``randomness`` settings."""
        return self._randomness_cfg


class _LoopCounters:
    """The Runner's counters of a train loop that is not built yet, absent, or computes its
    counters itself: under the field names that _TrainLoopMixin keeps."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner

    @property
    def _epoch(self) -> int:
        loop = self._runner._train_loop
        return int(getattr(loop, "epoch", 0)) if loop is not None else 0

    @property
    def _iter(self) -> int:
        loop = self._runner._train_loop
        return int(getattr(loop, "iter", 0)) if loop is not None else 0

    @property
    def _max_epochs(self) -> int:
        return int(self._runner.train_loop.max_epochs)  # type: ignore[attr-defined]

    @property
    def _max_iters(self) -> int:
        return int(self._runner.train_loop.max_iters)  # type: ignore[attr-defined]

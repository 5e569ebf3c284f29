"""Runner and loop paths the main Runner tests do not walk: several optimizers, eval-only runs,
named validation sets, seeds, partial checkpoints, resume variants, remote work dirs, hook
registration errors and the two hook-calling paths."""

from __future__ import annotations

import functools
import inspect
import logging
import os
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from treadle.core.hooks import Hook
from treadle.core.hookspecs import hookimpl
from treadle.core.model import BaseModel
from treadle.core.optim import OptimWrapper, OptimWrapperDict
from treadle.core.registry import MODELS
from treadle.core.runner import Runner
from treadle.core.strategy import Strategy


def _weights(runner: Runner) -> dict[str, torch.Tensor]:
    model = runner.strategy.unwrap_model(runner.model)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.fixture
def restore_determinism() -> Any:
    before = torch.are_deterministic_algorithms_enabled()
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    yield
    torch.use_deterministic_algorithms(before)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn


class _Stop(Exception):
    pass


class StopAt(Hook):
    priority = "LOWEST"  # after CheckpointHook wrote the checkpoint of this iteration

    def __init__(self, k: int) -> None:
        self.k = k

    def after_train_iter(
        self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        if runner.iter + 1 == self.k:
            raise _Stop


# -- several optimizers --------------------------------------------------------------------------


class TwoPartNet(BaseModel):
    """A GAN-shaped toy: two submodules, each with its own optimizer, updated in turn."""

    def __init__(self, data_preprocessor: Any = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor)
        self.generator = nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.2), nn.Linear(8, 8))
        self.discriminator = nn.Linear(8, 2)

    def forward(  # type: ignore[override]
        self, inputs: torch.Tensor, labels: torch.Tensor, mode: str = "tensor"
    ) -> Any:
        logits = self.discriminator(self.generator(inputs))
        if mode == "predict":
            return [
                {"pred_score": s, "gt_label": int(y)}
                for s, y in zip(logits.softmax(-1), labels, strict=True)
            ]
        return logits

    def train_step(self, data: Any, optim_wrapper: Any) -> dict[str, torch.Tensor]:
        assert isinstance(optim_wrapper, OptimWrapperDict)
        data = self.data_preprocessor(data, True)
        inputs, labels = data["inputs"], data["labels"]
        with optim_wrapper["discriminator"].optim_context(self.discriminator):
            d_loss = nn.functional.cross_entropy(
                self.discriminator(self.generator(inputs).detach()), labels
            )
        optim_wrapper["discriminator"].update_params(d_loss)
        with optim_wrapper["generator"].optim_context(self.generator):
            g_loss = -nn.functional.cross_entropy(self(inputs, labels), labels)
        optim_wrapper["generator"].update_params(g_loss)
        self.discriminator.zero_grad(set_to_none=True)  # g_loss's gradients are not its own
        return {"loss_d": d_loss.detach(), "loss_g": g_loss.detach()}


def _gan_cfg(toy_cfg: Any, **overrides: Any) -> dict[str, Any]:
    if "TwoPartNet" not in MODELS:
        MODELS.register_module(module=TwoPartNet)
    cfg: dict[str, Any] = toy_cfg(
        model={"type": "TwoPartNet"},
        optim_wrapper={
            "generator": {"optimizer": {"type": "Adam", "lr": 1e-2}},
            "discriminator": {"optimizer": {"type": "SGD", "lr": 0.1, "momentum": 0.9}},
        },
        param_scheduler={
            "generator": [{"type": "MultiStepLR", "milestones": [1], "gamma": 0.5}],
            "discriminator": [{"type": "ExponentialLR", "gamma": 0.9}],
        },
        train_cfg={"by_epoch": True, "max_epochs": 2, "val_interval": 1},
        default_hooks={
            "logger": {"type": "LoggerHook", "interval": 1},
            "checkpoint": {"type": "CheckpointHook", "interval": 1, "by_epoch": False},
        },
        randomness={"seed": 3},
        **overrides,
    )
    return cfg


def test_several_optimizers_build_one_wrapper_per_submodule_and_resume_exactly(
    toy_cfg: Any, tmp_path: Path
) -> None:
    cfg = _gan_cfg(toy_cfg)
    reference = Runner.from_cfg({**cfg, "work_dir": str(tmp_path / "ref")})
    reference.train()
    wrappers = reference.optim_wrapper
    assert isinstance(wrappers, OptimWrapperDict)
    model = reference.model
    gen_params = {id(p) for g in wrappers["generator"].param_groups for p in g["params"]}
    disc_params = {id(p) for g in wrappers["discriminator"].param_groups for p in g["params"]}
    assert gen_params == {id(p) for p in model.generator.parameters()}
    assert disc_params == {id(p) for p in model.discriminator.parameters()}
    assert set(reference.param_schedulers) == {"generator", "discriminator"}

    work = tmp_path / "stopped"
    with pytest.raises(_Stop):
        Runner.from_cfg({**cfg, "work_dir": str(work), "custom_hooks": [StopAt(4)]}).train()
    ckpt = torch.load(work / "iter_4.pth", weights_only=True)
    assert set(ckpt["optimizer"]) == {"generator", "discriminator"}
    assert set(ckpt["param_schedulers"]) == {"generator", "discriminator"}
    resumed = Runner.from_cfg({**cfg, "work_dir": str(work), "resume": True})
    resumed.train()
    assert resumed.optim_wrapper.get_lr() == reference.optim_wrapper.get_lr()
    for name, value in _weights(reference).items():
        assert torch.equal(value, _weights(resumed)[name]), name


def test_several_optimizers_each_wrapper_knows_the_run_length(toy_cfg: Any) -> None:
    """MMEngine's OptimWrapperDict.initialize_count_status initialises every wrapper, so gradient
    accumulation keeps its window and its tail after a resume."""
    cfg = _gan_cfg(toy_cfg)
    for sub in cfg["optim_wrapper"].values():
        sub["accumulative_counts"] = 4  # 6 iterations: one window of 4, a tail of 2
    runner = Runner.from_cfg(cfg)
    runner.train()
    for name in ("generator", "discriminator"):
        wrapper = runner.optim_wrapper[name]
        assert wrapper._max_counts == 6, name
        assert wrapper.inner_count == 6, name


def test_dict_of_built_optim_wrappers(toy_cfg: Any) -> None:
    """MMEngine accepts ``optim_wrapper={name: OptimWrapper}`` (built wrappers)."""
    register = _gan_cfg(toy_cfg)  # registers TwoPartNet
    model = TwoPartNet()
    optim_wrapper = {
        "generator": OptimWrapper(torch.optim.SGD(model.generator.parameters(), lr=0.1)),
        "discriminator": OptimWrapper(torch.optim.SGD(model.discriminator.parameters(), lr=0.1)),
    }
    cfg = {**register, "model": model, "optim_wrapper": optim_wrapper, "param_scheduler": None}
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert isinstance(runner.optim_wrapper, OptimWrapperDict)


def test_dict_of_optim_wrapper_configs_names_a_missing_submodule(toy_cfg: Any) -> None:
    """A key that names no submodule must not silently optimise the whole model."""
    runner = Runner.from_cfg(_gan_cfg(toy_cfg))
    with pytest.raises(ValueError, match="no submodule 'genrator'"):
        runner.build_optim_wrapper(
            {
                "genrator": {"optimizer": {"type": "SGD", "lr": 0.1}},
                "discriminator": {"optimizer": {"type": "SGD", "lr": 0.1}},
            }
        )


def _log_text(runner: Runner) -> str:
    for handler in runner.logger.handlers:
        handler.flush()
    return (Path(runner.log_dir) / f"{runner.timestamp}.log").read_text()


_NO_TRAIN = {"train_dataloader": None, "train_cfg": None, "optim_wrapper": None}


# -- val / test alone ----------------------------------------------------------------------------


def test_val_and_test_alone_with_load_from(toy_cfg: Any, tmp_path: Path) -> None:
    trained = Runner.from_cfg({**toy_cfg(), "work_dir": str(tmp_path / "trained")})
    trained.train()
    ckpt = os.path.join(trained.work_dir, "epoch_2.pth")
    val_cfg = toy_cfg()
    cfg = toy_cfg(
        **_NO_TRAIN,
        param_scheduler=None,
        test_dataloader=val_cfg["val_dataloader"],
        test_cfg={},
        test_evaluator={"type": "Accuracy"},
    )
    cfg["load_from"] = ckpt
    runner = Runner.from_cfg(cfg)
    val_metrics = runner.val()
    test_metrics = runner.test()  # a second run on the same Runner: loads once, no error
    assert val_metrics["accuracy/top1"] == test_metrics["accuracy/top1"]
    assert "test_loss" in test_metrics
    for name, value in _weights(runner).items():
        assert torch.equal(value, _weights(trained)[name]), name
    assert runner.epoch == 0
    assert runner.iter == 0


def test_val_alone_with_resume_true_and_no_train_loop(toy_cfg: Any, tmp_path: Path) -> None:
    """``treadle test`` style: resume=True on a Runner without train parts loads the weights."""
    trained = Runner.from_cfg(toy_cfg())
    trained.train()
    runner = Runner.from_cfg(toy_cfg(**_NO_TRAIN, param_scheduler=None, resume=True))
    runner.val()
    for name, value in _weights(runner).items():
        assert torch.equal(value, _weights(trained)[name]), name


def test_several_named_validation_sets(toy_cfg: Any) -> None:
    base = toy_cfg()
    other = {**base["val_dataloader"], "dataset": {"type": "ToyDataset", "n": 6, "seed": 5}}
    cfg = toy_cfg(
        val_dataloader={"a": base["val_dataloader"], "b": other},
        val_evaluator={"a": {"type": "Accuracy"}, "b": [{"type": "Accuracy"}]},
        train_cfg={"by_epoch": True, "max_epochs": 1},
    )
    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = runner.val()
    assert set(metrics) == {
        "a/accuracy/top1",
        "a/loss",
        "a/val_loss",
        "b/accuracy/top1",
        "b/loss",
        "b/val_loss",
    }
    scalars = (Path(runner.log_dir) / "vis_data" / "scalars.json").read_text()
    assert "a/accuracy/top1" in scalars
    assert "b/accuracy/top1" in scalars
    assert runner.val_dataloader is runner.val_loop.evaluations[0].dataloader  # type: ignore[union-attr]


def test_named_validation_sets_need_matching_evaluators(toy_cfg: Any) -> None:
    base = toy_cfg()
    cfg = toy_cfg(
        val_dataloader={"a": base["val_dataloader"], "b": base["val_dataloader"]},
        val_evaluator={"a": {"type": "Accuracy"}},
    )
    with pytest.raises(ValueError, match="same names"):
        Runner.from_cfg(cfg).val()


# -- learning rate scaling and randomness --------------------------------------------------------


def test_auto_scale_lr(toy_cfg: Any) -> None:
    runner = Runner.from_cfg(
        toy_cfg(
            auto_scale_lr={"enable": True, "base_batch_size": 16},
            param_scheduler=None,
            train_cfg={"by_epoch": True, "max_epochs": 1},
        )
    )
    runner.train()
    assert runner.optim_wrapper.get_lr()["lr"] == [pytest.approx(0.05)]  # 0.1 × 8 / 16
    disabled = Runner.from_cfg(
        toy_cfg(auto_scale_lr={"enable": False, "base_batch_size": 16}, param_scheduler=None)
    )
    disabled.train()
    assert disabled.optim_wrapper.get_lr()["lr"] == [pytest.approx(0.1)]


def test_auto_scale_lr_is_applied_once_per_run_and_not_again_on_resume(
    toy_cfg: Any, tmp_path: Path
) -> None:
    cfg = toy_cfg(
        auto_scale_lr={"enable": True, "base_batch_size": 16},
        param_scheduler=[{"type": "ConstantLR", "factor": 1.0}],
    )
    reference = Runner.from_cfg({**cfg, "work_dir": str(tmp_path / "ref")})
    reference.train()
    work = str(tmp_path / "stopped")
    with pytest.raises(_Stop):
        Runner.from_cfg({**cfg, "work_dir": work, "custom_hooks": [StopAt(2)]}).train()
    resumed = Runner.from_cfg({**cfg, "work_dir": work, "resume": True})
    resumed.train()
    assert resumed.optim_wrapper.get_lr() == reference.optim_wrapper.get_lr()
    assert resumed.optim_wrapper.get_lr()["lr"] == [pytest.approx(0.05)]


def test_seed_none_is_drawn_and_recorded(toy_cfg: Any) -> None:
    runner = Runner.from_cfg(toy_cfg(randomness={"seed": None}))
    assert isinstance(runner.seed, int)
    runner.train()
    ckpt = torch.load(Path(runner.work_dir) / "epoch_2.pth", weights_only=True)
    assert ckpt["meta"]["seed"] == runner.seed


def test_resume_takes_the_checkpoint_seed_without_a_warning_when_none_was_set(
    toy_cfg: Any,
) -> None:
    first = Runner.from_cfg(toy_cfg(randomness={"seed": 11}))
    first.train()
    resumed = Runner.from_cfg(toy_cfg(randomness={"seed": None}, resume=True))
    resumed.train()
    assert resumed.seed == 11
    assert "was trained with seed" not in _log_text(resumed)


def test_deterministic_switch_is_applied(toy_cfg: Any, restore_determinism: Any) -> None:
    torch.use_deterministic_algorithms(False)
    Runner.from_cfg(toy_cfg(randomness={"seed": 1, "deterministic": True}))
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.backends.cudnn.deterministic
    assert not torch.backends.cudnn.benchmark


class _Rank1(Strategy):
    """Rank 1 of 2, on the CPU, with single-process collectives: enough to see per-rank seeds."""

    rank = 1
    world_size = 2

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def prepare_model(self, model: nn.Module) -> nn.Module:
        return model


def test_diff_rank_seed_survives_resume(toy_cfg: Any) -> None:
    randomness = {"seed": 5, "diff_rank_seed": True}
    Runner.from_cfg(toy_cfg(randomness=randomness)).train()  # rank 0 writes the checkpoint
    rank1 = Runner.from_cfg(toy_cfg(randomness=randomness, strategy=_Rank1()))
    assert rank1.seed == 6
    rank1 = Runner.from_cfg(toy_cfg(randomness=randomness, strategy=_Rank1(), resume=True))
    rank1.load_or_resume()
    assert rank1.seed == 6  # base seed 5 + rank 1, not the checkpoint's 5 on every rank
    assert rank1.train_loop._pending_rng_state is None  # type: ignore[attr-defined]


def test_resume_of_a_drawn_seed_run_is_exact(
    toy_cfg: Any, tmp_path: Path, restore_determinism: Any
) -> None:
    """The train data order of a resumed run follows the checkpoint's seed, not a new draw."""
    cfg = toy_cfg(
        randomness={"seed": None, "deterministic": True},
        default_hooks={"checkpoint": {"type": "CheckpointHook", "interval": 1, "by_epoch": False}},
    )
    work = str(tmp_path / "stopped")
    with pytest.raises(_Stop):
        Runner.from_cfg({**cfg, "work_dir": work, "custom_hooks": [StopAt(4)]}).train()
    seed = torch.load(Path(work) / "iter_4.pth", weights_only=True)["meta"]["seed"]
    resumed = Runner.from_cfg({**cfg, "work_dir": work, "resume": True})
    resumed.train()
    reference = Runner.from_cfg(
        {**cfg, "work_dir": str(tmp_path / "ref"), "randomness": {"seed": seed}}
    )
    reference.train()
    assert resumed.seed == seed
    for name, value in _weights(reference).items():
        assert torch.equal(value, _weights(resumed)[name]), name


# -- partial checkpoints and the ways to resume --------------------------------------------------


def test_resume_from_a_checkpoint_without_optimizer_or_schedulers(toy_cfg: Any) -> None:
    cfg = toy_cfg(
        default_hooks={
            "checkpoint": {
                "type": "CheckpointHook",
                "interval": 1,
                "save_optimizer": False,
                "save_param_scheduler": False,
            }
        },
        train_cfg={"by_epoch": True, "max_epochs": 1},
    )
    Runner.from_cfg(cfg).train()
    ckpt = torch.load(Path(cfg["work_dir"]) / "epoch_1.pth", weights_only=True)
    assert "optimizer" not in ckpt
    assert "param_schedulers" not in ckpt
    resumed = Runner.from_cfg({**cfg, "train_cfg": {"by_epoch": True, "max_epochs": 2}})
    resumed._resume = True
    resumed.train()
    assert resumed.epoch == 2
    text = _log_text(resumed)
    assert "has no optimizer state" in text
    assert "has no param_schedulers state" in text


def test_resume_true_without_last_checkpoint_starts_afresh(toy_cfg: Any) -> None:
    runner = Runner.from_cfg(toy_cfg(resume=True, train_cfg={"by_epoch": True, "max_epochs": 1}))
    runner.train()
    assert runner.iter == 3
    assert "has no last_checkpoint; starting afresh" in _log_text(runner)


def test_resume_from_an_explicit_path_and_load_from_with_resume(
    toy_cfg: Any, tmp_path: Path
) -> None:
    cfg = toy_cfg(
        default_hooks={"checkpoint": {"type": "CheckpointHook", "interval": 1, "by_epoch": False}}
    )
    first = {**cfg, "work_dir": str(tmp_path / "first")}
    with pytest.raises(_Stop):
        Runner.from_cfg({**first, "custom_hooks": [StopAt(5)]}).train()
    ckpt = str(tmp_path / "first" / "iter_2.pth")
    explicit = Runner.from_cfg({**cfg, "work_dir": str(tmp_path / "a"), "resume": ckpt})
    explicit.load_or_resume()
    assert explicit.iter == 2
    # MMEngine: load_from + resume=True resumes from load_from, not from the work dir's last one
    both = Runner.from_cfg({**first, "load_from": ckpt, "resume": True})
    both.load_or_resume()
    assert both.iter == 2


def test_resume_rejects_schedulers_of_another_shape(toy_cfg: Any) -> None:
    Runner.from_cfg(toy_cfg(train_cfg={"by_epoch": True, "max_epochs": 1})).train()
    cfg = toy_cfg(
        resume=True,
        param_scheduler=[
            {"type": "MultiStepLR", "milestones": [1], "gamma": 0.5},
            {"type": "ConstantLR", "factor": 0.5},
        ],
    )
    with pytest.raises(ValueError, match="holds 1 parameter scheduler states, this run has 2"):
        Runner.from_cfg(cfg).train()


class _RecordingStrategy(Strategy):
    def __init__(self) -> None:
        self.loaded: list[Any] = []

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def prepare_model(self, model: nn.Module) -> nn.Module:
        return model

    def load_optim_state_dict(self, optim_wrapper: Any, state_dict: dict[str, Any]) -> None:
        self.loaded.append(state_dict)
        super().load_optim_state_dict(optim_wrapper, state_dict)


def test_resume_loads_the_optimizer_through_the_strategy(toy_cfg: Any) -> None:
    """Saving goes through ``strategy.optim_state_dict``; loading must go through its pair."""
    Runner.from_cfg(toy_cfg(train_cfg={"by_epoch": True, "max_epochs": 1})).train()
    runner = Runner.from_cfg(toy_cfg(resume=True, strategy=_RecordingStrategy()))
    runner.train()
    assert len(runner.strategy.loaded) == 1  # type: ignore[attr-defined]


class _HalvingStrategy(_RecordingStrategy):
    """Stores the model's weights halved and doubles them back on load: a stand-in for a
    strategy whose checkpoint tensors are not the module's own (gathered shards, another
    dtype). Only its own load_model_state_dict gives the trained weights back."""

    def __init__(self) -> None:
        super().__init__()
        self.model_loads = 0

    def model_state_dict(self, model: nn.Module) -> dict[str, Any]:
        return {k: v / 2 for k, v in super().model_state_dict(model).items()}

    def load_model_state_dict(
        self, model: nn.Module, state_dict: Any, strict: bool = False, logger: Any = None
    ) -> None:
        self.model_loads += 1
        doubled = {k: v * 2 for k, v in state_dict.items()}
        super().load_model_state_dict(model, doubled, strict=True, logger=logger)


def test_resume_and_load_from_load_the_weights_through_the_strategy(toy_cfg: Any) -> None:
    """The weights saved by ``strategy.model_state_dict`` come back through its pair,
    ``strategy.load_model_state_dict``: the resumed and the loaded model equal the trained one."""
    trained = Runner.from_cfg(
        toy_cfg(train_cfg={"by_epoch": True, "max_epochs": 1}, strategy=_HalvingStrategy())
    )
    trained.train()
    path = os.path.join(trained.work_dir, "epoch_1.pth")
    saved = torch.load(path, weights_only=True)["state_dict"]
    assert torch.equal(saved["net.0.weight"] * 2, _weights(trained)["net.0.weight"])

    resumed = Runner.from_cfg(toy_cfg(resume=True, strategy=_HalvingStrategy()))
    resumed.load_or_resume()
    loaded = Runner.from_cfg(toy_cfg(load_from=path, strategy=_HalvingStrategy()))
    loaded.load_or_resume()
    for runner in (resumed, loaded):
        assert runner.strategy.model_loads == 1  # type: ignore[attr-defined]
        after = _weights(runner)
        for name, value in _weights(trained).items():
            assert torch.equal(after[name], value), name


@pytest.mark.parametrize(
    ("world", "diff_rank_seed", "saved", "takes", "warns"),
    [
        # every rank's states, saved on as many ranks: each rank takes its own
        (2, True, {"rng_state": "r0", "rng_states": ["r0", "r1"]}, "r1", False),
        # rank 0's only, ranks share their seed: rank 0's are every rank's (exact)
        (2, False, {"rng_state": "r0"}, "r0", False),
        # rank 0's only, ranks seeded apart: rank 1 keeps its own generators (not exact)
        (2, True, {"rng_state": "r0"}, None, True),
        # no generator states at all (an MMEngine checkpoint): nothing to restore or say
        (2, True, {}, None, False),
        # saved on two ranks, resumed on one: rank 0's, and not exact
        (1, False, {"rng_state": "r0", "rng_states": ["r0", "r1"]}, "r0", True),
    ],
)
def test_which_rng_states_a_rank_resumes_with(
    toy_cfg: Any,
    monkeypatch: pytest.MonkeyPatch,
    world: int,
    diff_rank_seed: bool,
    saved: dict[str, Any],
    takes: Any,
    warns: bool,
) -> None:
    strategy = _Rank1() if world == 2 else None
    randomness = {"seed": 5, "diff_rank_seed": diff_rank_seed}
    runner = Runner.from_cfg(toy_cfg(randomness=randomness, strategy=strategy))
    warnings: list[str] = []
    monkeypatch.setattr(runner.logger, "warning", warnings.append)
    assert runner._rng_state_to_resume(saved, "x.pth") == takes
    if warns:
        assert len(warnings) == 1
        n = len(saved.get("rng_states", [0]))
        assert (
            f"x.pth holds the random generator states of {n} rank(s), this run has {world}"
            in (warnings[0])
        )
    else:
        assert warnings == []


def test_load_and_resume_errors_name_the_file(toy_cfg: Any, tmp_path: Path) -> None:
    other = tmp_path / "width8.pth"
    narrow = Runner.from_cfg(toy_cfg(model={"type": "ToyNet", "width": 8}))
    torch.save({"state_dict": _weights(narrow)}, other)
    runner = Runner.from_cfg(toy_cfg())
    with pytest.raises(
        RuntimeError,
        match=r"(?s)loading the weights of .*width8\.pth: .*size mismatch for net\.0\.weight",
    ):
        runner.load_checkpoint(str(other), strict=True)
    listed = tmp_path / "list.pth"
    torch.save([1, 2], listed)
    with pytest.raises(RuntimeError, match=r"No state_dict found in checkpoint file .*list\.pth"):
        runner.load_checkpoint(str(listed))
    with pytest.raises(TypeError, match=r"cannot resume from .*list\.pth: it holds a list"):
        runner.resume(str(listed))


def test_load_from_revises_keys_before_the_strategy_sees_them(toy_cfg: Any, tmp_path: Path) -> None:
    """A checkpoint saved from a DDP-wrapped model (``module.`` keys, as MMEngine's are) reaches
    the strategy with the wrapper's prefix stripped (the default ``revise_keys``)."""
    trained = Runner.from_cfg(toy_cfg(train_cfg={"by_epoch": True, "max_epochs": 1}))
    trained.train()
    path = tmp_path / "ddp.pth"
    weights = {f"module.{k}": v for k, v in _weights(trained).items()}
    torch.save({"meta": {}, "state_dict": weights}, path)

    class _Recording(_RecordingStrategy):
        def load_model_state_dict(
            self, model: nn.Module, state_dict: Any, strict: bool = False, logger: Any = None
        ) -> None:
            self.loaded.append(sorted(state_dict))
            super().load_model_state_dict(model, state_dict, strict, logger)

    runner = Runner.from_cfg(toy_cfg(load_from=str(path), strategy=_Recording()))
    runner.load_or_resume()
    assert runner.strategy.loaded == [sorted(_weights(trained))]  # type: ignore[attr-defined]
    for name, value in _weights(trained).items():
        assert torch.equal(_weights(runner)[name], value), name


@pytest.mark.parametrize("layout", ["module. prefixes", "bare weights"])
def test_ema_hook_with_load_from_evaluates_the_loaded_weights(
    toy_cfg: Any, tmp_path: Path, layout: str
) -> None:
    """With EMAHook, ``load_from`` then ``val()`` evaluates the average, which must start as the
    weights the model loaded: also from a DDP-style file (``module.`` keys, renamed by
    ``revise_keys``) and from a file of bare weights (no ``state_dict`` key). MMEngine's hook
    copies ``checkpoint["state_dict"]`` itself: the average kept its random start for the first
    and raised a KeyError for the second."""
    trained = Runner.from_cfg(toy_cfg(train_cfg={"by_epoch": True, "max_epochs": 1}))
    trained.train()
    path = tmp_path / "weights.pth"
    if layout == "bare weights":
        torch.save(_weights(trained), path)
    else:
        weights = {f"module.{k}": v for k, v in _weights(trained).items()}
        torch.save({"meta": {}, "state_dict": weights}, path)
    eval_only = {"train_dataloader": None, "train_cfg": None, "optim_wrapper": None}
    eval_only["param_scheduler"] = None
    plain = Runner.from_cfg(toy_cfg(load_from=str(path), **eval_only))
    expected = plain.val()
    runner = Runner.from_cfg(
        toy_cfg(load_from=str(path), custom_hooks=[{"type": "EMAHook"}], **eval_only)
    )
    assert runner.val() == expected
    ema = next(h for h in runner.hooks if type(h).__name__ == "EMAHook")
    for name, value in _weights(trained).items():
        assert torch.equal(_weights(runner)[name], value), name  # swapped back after val
        assert torch.equal(ema.ema_model.module.state_dict()[name], value), name


def test_strategy_load_model_state_dict_reports_mismatches_as_mmengine(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Without ``strict`` a wrongly shaped, an unexpected and a missing key are named in one
    warning and everything else loads (fine-tuning with another head); with ``strict`` the same
    state dict raises and names them."""
    strategy = _RecordingStrategy()
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    source = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 5))
    state = dict(source.state_dict())
    state["extra.weight"] = torch.zeros(1)
    del state["1.bias"]
    head_before = model[1].weight.detach().clone()
    with caplog.at_level("WARNING", logger="test.strategy"):
        strategy.load_model_state_dict(model, state, logger=logging.getLogger("test.strategy"))
    text = caplog.text
    assert "size mismatch for 1.weight" in text
    assert "unexpected key in source state_dict: extra.weight" in text
    assert "missing keys in source state_dict: 1.bias" in text
    assert torch.equal(model[0].weight, source[0].weight)  # the matching layer loaded
    assert torch.equal(model[1].weight, head_before)  # the mismatched one kept its weights
    with pytest.raises(RuntimeError, match=r"size mismatch for 1\.weight"):
        strategy.load_model_state_dict(nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2)), state, True)


# -- a remote work dir ---------------------------------------------------------------------------


def test_memory_work_dir_gets_checkpoints_last_checkpoint_config_and_scalars(
    toy_cfg: Any, tmp_path: Path
) -> None:
    fsspec = pytest.importorskip("fsspec")
    from treadle.core import fileio

    work = f"memory://treadle-edge-{os.getpid()}-{tmp_path.name}/work"
    cfg = toy_cfg(
        train_cfg={"by_epoch": True, "max_epochs": 1},
        default_hooks={"checkpoint": {"type": "CheckpointHook", "interval": 1}},
    )
    cfg["work_dir"] = work
    from treadle.core.config import Config

    runner = Runner.from_cfg(Config(cfg))
    runner.train()
    assert runner.work_dir == work
    assert fileio.exists(f"{work}/epoch_1.pth")
    assert fileio.get_text(f"{work}/last_checkpoint").strip() == f"{work}/epoch_1.pth"
    assert fileio.exists(f"{work}/{runner.timestamp}.py")  # the dumped config
    scalars = fileio.get_text(f"{runner.log_dir}/vis_data/scalars.json")
    assert '"lr"' in scalars
    assert not (Path.cwd() / "memory:").exists()
    resumed = Runner.from_cfg(
        Config({**cfg, "resume": True, "train_cfg": {"by_epoch": True, "max_epochs": 2}})
    )
    resumed.train()
    assert resumed.epoch == 2
    fsspec.filesystem("memory").rm(work.split("://", 1)[1], recursive=True)


# -- hooks: exceptions, registration, the two calling paths --------------------------------------


def _find(runner: Runner, cls: type) -> Any:
    return next(hook for hook in runner.hooks if isinstance(hook, cls))


class _Seen(Hook):
    def __init__(self) -> None:
        self.exceptions: list[BaseException] = []

    def on_exception(self, runner: Any, exception: BaseException) -> None:
        self.exceptions.append(exception)


def test_on_exception_fires_for_keyboard_interrupt(toy_cfg: Any) -> None:
    seen = _Seen()

    class Interrupt(Hook):
        def after_train_iter(
            self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None
        ) -> None:
            raise KeyboardInterrupt

    runner = Runner.from_cfg(toy_cfg(custom_hooks=[Interrupt(), seen]))
    seen = _find(runner, _Seen)  # from_cfg deep-copies the config, hooks included (MMEngine too)
    with pytest.raises(KeyboardInterrupt):
        runner.train()
    assert len(seen.exceptions) == 1
    assert isinstance(seen.exceptions[0], KeyboardInterrupt)


def test_on_exception_fires_when_building_the_loops_fails(toy_cfg: Any) -> None:
    seen = _Seen()
    runner = Runner.from_cfg(
        toy_cfg(custom_hooks=[seen], train_cfg={"by_epoch": True, "max_epochs": -1})
    )
    seen = _find(runner, _Seen)
    with pytest.raises(ValueError, match="max_epochs"):
        runner.train()
    assert len(seen.exceptions) == 1
    assert "max_epochs" in str(seen.exceptions[0])


def test_a_failing_on_exception_hook_does_not_hide_the_error(toy_cfg: Any) -> None:
    class Bad(Hook):
        def before_train(self, runner: Any) -> None:
            raise RuntimeError("the real error")

        def on_exception(self, runner: Any, exception: BaseException) -> None:
            raise ValueError("hook bug")

    runner = Runner.from_cfg(toy_cfg(custom_hooks=[Bad()]))
    with pytest.raises(RuntimeError, match="the real error"):
        runner.train()
    assert "on_exception hook failed during train" in _log_text(runner)


def test_hook_registration_errors_are_clear(toy_cfg: Any) -> None:
    seen = _Seen()
    runner = Runner.from_cfg(toy_cfg(custom_hooks=[seen]))
    seen = _find(runner, _Seen)
    with pytest.raises(ValueError, match="registered twice"):
        runner.register_hook(seen)
    with pytest.raises(ValueError, match="between 0 and 100"):
        runner.register_hook(_Seen(), priority=101)
    with pytest.raises(ValueError, match="unknown priority 'URGENT'"):
        runner.register_hook(_Seen(), priority="URGENT")
    with pytest.raises(ValueError, match="unknown priority"):
        Runner.from_cfg(toy_cfg(custom_hooks=[{"type": "EmptyCacheHook", "priority": "SOON"}]))
    with pytest.raises(TypeError, match="implements no lifecycle point"):
        runner.register_hook(Hook())
    # a failed registration leaves the hooks as they were
    assert runner.hooks.count(seen) == 1


def test_custom_hook_config_with_priority(toy_cfg: Any) -> None:
    runner = Runner.from_cfg(
        toy_cfg(
            custom_hooks=[
                {"type": "EmptyCacheHook", "priority": "VERY_HIGH"},
                {"type": "EMAHook", "priority": 49},
            ]
        )
    )
    names = [type(h).__name__ for h in runner.hooks]
    assert names.index("EmptyCacheHook") < names.index("IterTimerHook")  # VERY_HIGH (10) < 60
    priorities = {type(h).__name__: h.priority for h in runner.hooks}
    assert priorities["EMAHook"] == 49
    ema_index = names.index("EMAHook")
    assert names.index("RuntimeInfoHook") < ema_index < names.index("ParamSchedulerHook")


def _record_points(runner: Runner, calls: list[tuple[str, str, tuple[str, ...]]]) -> None:
    """Wrap every hook implementation so that each call is recorded (point, hook, arguments)."""
    from treadle.core.hooks.hook import POINTS, implemented_points

    for hook in runner.hooks:
        if not isinstance(hook, Hook):
            continue
        for point in implemented_points(hook, POINTS):
            original = getattr(hook, point)

            def record(
                *args: Any, __p: str = point, __o: Any = original, __h: Any = hook, **kw: Any
            ) -> Any:
                bound = inspect.signature(__o).bind(*args, **kw).arguments
                given = tuple(
                    f"{k}={v if k == 'batch_idx' else type(v).__name__}" for k, v in bound.items()
                )
                calls.append((__p, type(__h).__name__, given))
                return __o(*args, **kw)

            # keep the signature pluggy and the fast path read the arguments from
            setattr(hook, point, functools.wraps(original)(record))


class _Wrapper:
    """A new-style pluggy wrapper around after_train_iter: forces pluggy's path for that point."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    @hookimpl(wrapper=True)
    def after_train_iter(self, runner: Any, batch_idx: int) -> Any:
        self.log.append(f"enter {batch_idx}")
        result = yield
        self.log.append(f"exit {batch_idx}")
        return result


def _calls_of_a_run(toy_cfg: Any, mode: str) -> tuple[list[Any], list[str]]:
    calls: list[tuple[str, str, tuple[str, ...]]] = []
    wrapped: list[str] = []
    runner = Runner.from_cfg(
        toy_cfg(
            train_cfg={"by_epoch": True, "max_epochs": 1},
            custom_hooks=[{"type": "EMAHook"}, {"type": "EmptyCacheHook"}],
            default_hooks={"progress": None},
        )
    )
    if mode == "monitored":
        runner._hooks._pm.add_hookcall_monitoring(lambda *a: None, lambda *a: None)
    elif mode == "wrapper":
        runner.register_hook(_Wrapper(wrapped))
    _record_points(runner, calls)
    runner._hooks._reregister()  # the recorders replace the methods pluggy had registered
    runner.train()
    return calls, wrapped


def test_fast_and_pluggy_call_paths_call_the_same_hooks_the_same_way(toy_cfg: Any) -> None:
    fast, _ = _calls_of_a_run(toy_cfg, "fast")
    monitored, _ = _calls_of_a_run(toy_cfg, "monitored")
    wrapped, log = _calls_of_a_run(toy_cfg, "wrapper")
    assert len(fast) > 50
    assert fast == monitored
    assert fast == wrapped
    assert log == ["enter 0", "exit 0", "enter 1", "exit 1", "enter 2", "exit 2"]


# -- loops ---------------------------------------------------------------------------------------


class _CountVal(Hook):
    def __init__(self) -> None:
        self.at: list[int] = []

    def before_val(self, runner: Any) -> None:
        self.at.append(runner.epoch if runner.train_loop.max_epochs > 1 else runner.iter)


def test_epoch_loop_dynamic_intervals_and_val_begin(toy_cfg: Any) -> None:
    runner = Runner.from_cfg(
        toy_cfg(
            train_cfg={
                "by_epoch": True,
                "max_epochs": 6,
                "val_begin": 2,
                "val_interval": 1,
                "dynamic_intervals": [(3, 2)],
            },
            custom_hooks=[_CountVal()],
            default_hooks={"checkpoint": None, "logger": {"type": "LoggerHook", "interval": 50}},
            param_scheduler=None,
        )
    )
    runner.train()
    assert _find(runner, _CountVal).at == [2, 4, 6]  # MMEngine's schedule for these settings


def test_iter_loop_dynamic_intervals_and_val_begin(toy_cfg: Any) -> None:
    runner = Runner.from_cfg(
        toy_cfg(
            train_cfg={
                "type": "IterBasedTrainLoop",
                "max_iters": 10,
                "val_begin": 3,
                "val_interval": 2,
                "dynamic_intervals": [(6, 3)],
            },
            custom_hooks=[_CountVal()],
            default_hooks={"checkpoint": None, "logger": {"type": "LoggerHook", "interval": 50}},
            param_scheduler=None,
            log_processor={"by_epoch": False},
        )
    )
    runner.train()
    # iterations 1-5: every 2 from 3 on → 4; from 6: every 3 → 6, 9; and the last one, 10
    assert _find(runner, _CountVal).at == [4, 6, 9, 10]


class _PairBatches:
    """A custom batch sampler (no ``skip``): fixed pairs of indices, in reverse order."""

    def __init__(self, n: int) -> None:
        self.batches = [[i, i + 1] for i in range(0, n, 2)][::-1]

    def __iter__(self) -> Any:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def test_iter_loop_with_a_custom_batch_sampler_replays_to_resume(
    toy_cfg: Any, toy_dataset_cls: Any, tmp_path: Path, restore_determinism: Any
) -> None:
    def cfg(work: str) -> dict[str, Any]:
        dataset = toy_dataset_cls(n=10)
        loader = torch.utils.data.DataLoader(dataset, batch_sampler=_PairBatches(10))
        built = toy_cfg(
            train_dataloader=loader,
            train_cfg={"type": "IterBasedTrainLoop", "max_iters": 8, "val_interval": 100},
            val_dataloader=None,
            val_cfg=None,
            val_evaluator=None,
            param_scheduler=None,
            randomness={"seed": 2, "deterministic": True},
            default_hooks={
                "checkpoint": {"type": "CheckpointHook", "interval": 1, "by_epoch": False}
            },
            log_processor={"by_epoch": False},
        )
        return {**built, "work_dir": work}

    reference = Runner.from_cfg(cfg(str(tmp_path / "ref")))
    reference.train()
    work = str(tmp_path / "stopped")
    with pytest.raises(_Stop):
        Runner.from_cfg({**cfg(work), "custom_hooks": [StopAt(7)]}).train()
    resumed = Runner.from_cfg({**cfg(work), "resume": True})
    resumed.train()
    assert "cannot skip ahead; replaying 2 batches" in _log_text(resumed)
    for name, value in _weights(reference).items():
        assert torch.equal(value, _weights(resumed)[name]), name


def test_memory_work_dir_gets_the_text_log(toy_cfg: Any, tmp_path: Path) -> None:
    pytest.importorskip("fsspec")
    from treadle.core import fileio

    cfg = toy_cfg(train_cfg={"by_epoch": True, "max_epochs": 1})
    cfg["work_dir"] = f"memory://treadle-edge-log-{os.getpid()}-{tmp_path.name}/work"
    runner = Runner.from_cfg(cfg)
    runner.train()
    text = fileio.get_text(f"{runner.log_dir}/{runner.timestamp}.log")
    assert "Epoch(train) [1][3/3]" in text
    assert "Saving checkpoint at 1 epochs" in text


def test_memory_work_dir_gets_the_log_of_a_failed_run(toy_cfg: Any, tmp_path: Path) -> None:
    """The staged log is uploaded when the run fails too, with what happened before the error."""
    from treadle.core import fileio

    class FailAtTwo(Hook):
        def after_train_iter(
            self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None
        ) -> None:
            if runner.iter == 1:
                raise RuntimeError("stop here")

    cfg = toy_cfg(custom_hooks=[FailAtTwo()])
    cfg["work_dir"] = f"memory://treadle-edge-faillog-{os.getpid()}-{tmp_path.name}/work"
    runner = Runner.from_cfg(cfg)
    with pytest.raises(RuntimeError, match="stop here"):
        runner.train()
    text = fileio.get_text(f"{runner.log_dir}/{runner.timestamp}.log")
    assert "Epoch(train) [1][1/3]" in text

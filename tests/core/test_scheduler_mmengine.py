"""treadle's schedulers against sequences recorded from MMEngine 0.10.7 (the schedulers without
a PyTorch equivalent: CosineRestart, Poly with a power and eta_min, three-phase OneCycle, chains,
windows, Adam betas, ReduceOnPlateau with per-group bounds, convert_to_iter_based), and
MMEngine's own state dicts loaded mid-way.

Our values equal MMEngine's bit for bit. The fixtures were recorded by running :func:`run_case` below, unchanged, in a throwaway venv
holding mmengine==0.10.7 and torch 2.15, with mmengine's ``PARAM_SCHEDULERS`` (after
``import mmengine.optim``) as ``registry``; the two ``STATES`` are ``scheduler.state_dict()`` of
the last scheduler of a case after 4 steps, with the ``Counter`` written as a dict and the
pickled annealing function written as its name.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import torch

from treadle.core.optim.scheduler.components import COMPONENTS
from treadle.core.registry import Registry, build_scheduler_from_cfg

# Recorded from MMEngine 0.10.7 (see the module docstring).
# fmt: off
CASES = {'cosine_restart_weights': {'groups': [0.1],
                            'steps': 20,
                            'schedulers': [('CosineRestartLR',
                                            {'periods': [5, 7, 4],
                                             'restart_weights': [1, 0.7, 0.4],
                                             'eta_min': 0.01,
                                             'by_epoch': False})],
                            'values': [[0.1],
                                       [0.09140576474687263],
                                       [0.06890576474687263],
                                       [0.04109423525312736],
                                       [0.018594235253127367],
                                       [0.06999999999999999],
                                       [0.06702906603707257],
                                       [0.058704694055762],
                                       [0.04667562801868943],
                                       [0.033324371981310566],
                                       [0.021295305944237994],
                                       [0.01297093396292743],
                                       [0.04000000000000001],
                                       [0.03560660171779822],
                                       [0.025],
                                       [0.014393398282201788],
                                       [0.014393398282201788],
                                       [0.014393398282201788],
                                       [0.014393398282201788],
                                       [0.014393398282201788],
                                       [0.014393398282201788]]},
 'cosine_restart_ratio_window_two_groups': {'groups': [0.1, 0.02],
                                            'steps': 16,
                                            'schedulers': [('CosineRestartLR',
                                                            {'periods': [4, 6],
                                                             'restart_weights': [1, 0.5],
                                                             'eta_min_ratio': 0.1,
                                                             'begin': 2,
                                                             'end': 14})],
                                            'values': [[0.1, 0.02],
                                                       [0.1, 0.02],
                                                       [0.1, 0.02],
                                                       [0.08681980515339463, 0.01736396103067893],
                                                       [0.05499999999999999, 0.011000000000000001],
                                                       [0.023180194846605363,
                                                        0.004636038969321073],
                                                       [0.05, 0.01],
                                                       [0.04732050807568878, 0.009464101615137756],
                                                       [0.04000000000000001, 0.008],
                                                       [0.030000000000000006, 0.006],
                                                       [0.02000000000000001, 0.004000000000000001],
                                                       [0.01267949192431123,
                                                        0.0025358983848622453],
                                                       [0.01267949192431123,
                                                        0.0025358983848622453],
                                                       [0.01267949192431123,
                                                        0.0025358983848622453],
                                                       [0.01267949192431123,
                                                        0.0025358983848622453],
                                                       [0.01267949192431123,
                                                        0.0025358983848622453],
                                                       [0.01267949192431123,
                                                        0.0025358983848622453]]},
 'poly_power': {'groups': [0.1, 0.05],
                'steps': 15,
                'schedulers': [('PolyLR',
                                {'power': 0.9, 'eta_min': 0.0001, 'end': 12, 'by_epoch': False})],
                'values': [[0.1, 0.05],
                           [0.09178790965401001, 0.045898064982333335],
                           [0.08349314066327362, 0.04175483202299654],
                           [0.0751054912593801, 0.03756520534377445],
                           [0.06661204601138628, 0.033322733693375135],
                           [0.05799595164976198, 0.029018998872103335],
                           [0.04923433420129656, 0.024642575341788778],
                           [0.04029444753815074, 0.020177106427965188],
                           [0.031125672283249608, 0.015597307777118674],
                           [0.021639671106348603, 0.01085905493700496],
                           [0.011642823941772094, 0.005865634781726003],
                           [0.0001, 0.0001],
                           [0.0001, 0.0001],
                           [0.0001, 0.0001],
                           [0.0001, 0.0001],
                           [0.0001, 0.0001]]},
 'poly_momentum_power2': {'groups': [0.1],
                          'steps': 10,
                          'param': 'momentum',
                          'schedulers': [('PolyMomentum',
                                          {'power': 2.0, 'eta_min': 0.5, 'begin': 1, 'end': 8})],
                          'values': [[0.9],
                                     [0.9],
                                     [0.7777777777777779],
                                     [0.6777777777777779],
                                     [0.6000000000000001],
                                     [0.5444444444444445],
                                     [0.5111111111111111],
                                     [0.5],
                                     [0.5],
                                     [0.5],
                                     [0.5]]},
 'onecycle_three_phase_linear': {'groups': [0.1, 0.1],
                                 'steps': 20,
                                 'schedulers': [('OneCycleLR',
                                                 {'eta_max': [0.5, 0.25],
                                                  'total_steps': 20,
                                                  'pct_start': 0.25,
                                                  'anneal_strategy': 'linear',
                                                  'three_phase': True,
                                                  'by_epoch': False})],
                                 'values': [[0.02, 0.01],
                                            [0.13999999999999999, 0.06999999999999999],
                                            [0.26, 0.13],
                                            [0.38, 0.19],
                                            [0.5, 0.25],
                                            [0.38, 0.19],
                                            [0.26, 0.13],
                                            [0.14, 0.07],
                                            [0.020000000000000018, 0.010000000000000009],
                                            [0.018182, 0.009091],
                                            [0.016364, 0.008182],
                                            [0.014546, 0.007273],
                                            [0.012728, 0.006364],
                                            [0.01091, 0.005455],
                                            [0.009092, 0.004546],
                                            [0.007273999999999999, 0.0036369999999999996],
                                            [0.005455999999999999, 0.0027279999999999995],
                                            [0.003637999999999999, 0.0018189999999999994],
                                            [0.0018199999999999987, 0.0009099999999999994],
                                            [1.9999999999985307e-06, 9.999999999992654e-07],
                                            [-0.0018160000000000016, -0.0009080000000000008]]},
 'onecycle_three_phase_cos': {'groups': [0.1],
                              'steps': 20,
                              'schedulers': [('OneCycleLR',
                                              {'eta_max': 0.5,
                                               'total_steps': 20,
                                               'pct_start': 0.3,
                                               'three_phase': True,
                                               'by_epoch': False})],
                              'values': [[0.020000000000000018],
                                         [0.06583592135001265],
                                         [0.18583592135001265],
                                         [0.3341640786499874],
                                         [0.45416407864998737],
                                         [0.5],
                                         [0.45416407864998737],
                                         [0.3341640786499874],
                                         [0.18583592135001262],
                                         [0.06583592135001264],
                                         [0.02],
                                         [0.019396986515238298],
                                         [0.01766067838674666],
                                         [0.015000500000000002],
                                         [0.01173730812849164],
                                         [0.008264691871508365],
                                         [0.005001500000000003],
                                         [0.00234132161325334],
                                         [0.0006050134847617028],
                                         [2e-06],
                                         [0.0006050134847617018]]},
 'onecycle_window': {'groups': [0.1],
                     'steps': 18,
                     'schedulers': [('OneCycleLR',
                                     {'eta_max': 0.4,
                                      'begin': 3,
                                      'end': 15,
                                      'pct_start': 0.4,
                                      'div_factor': 10.0,
                                      'final_div_factor': 100.0,
                                      'by_epoch': False})],
                     'values': [[0.1],
                                [0.1],
                                [0.1],
                                [0.03999999999999998],
                                [0.09808931710736657],
                                [0.23486428218501973],
                                [0.36204529169135086],
                                [0.39923970067873077],
                                [0.3732318756761309],
                                [0.3148005719829391],
                                [0.23489490589785272],
                                [0.14848795478851645],
                                [0.07177103558462944],
                                [0.01911970415007739],
                                [0.0004],
                                [0.0004],
                                [0.0004],
                                [0.0004],
                                [0.0004]]},
 'warmup_then_cosine': {'groups': [0.1, 0.01],
                        'steps': 25,
                        'schedulers': [('LinearLR',
                                        {'start_factor': 0.1, 'end': 5, 'by_epoch': False}),
                                       ('CosineAnnealingLR',
                                        {'begin': 5,
                                         'end': 20,
                                         'eta_min_ratio': 0.01,
                                         'by_epoch': False})],
                        'values': [[0.010000000000000002, 0.001],
                                   [0.03250000000000001, 0.0032500000000000003],
                                   [0.055000000000000014, 0.0055000000000000005],
                                   [0.07750000000000003, 0.007750000000000001],
                                   [0.10000000000000003, 0.01],
                                   [0.10000000000000003, 0.01],
                                   [0.09891830623632342, 0.009891830623632338],
                                   [0.09572050015330877, 0.009572050015330872],
                                   [0.09054634122155993, 0.009054634122155989],
                                   [0.0836219650147635, 0.008362196501476347],
                                   [0.07525000000000003, 0.007525],
                                   [0.06579634122155992, 0.00657963412215599],
                                   [0.05567415893174887, 0.005567415893174886],
                                   [0.04532584106825118, 0.0045325841068251166],
                                   [0.035203658778440124, 0.0035203658778440107],
                                   [0.025750000000000023, 0.002575000000000001],
                                   [0.017378034985236542, 0.0017378034985236534],
                                   [0.010453658778440109, 0.0010453658778440105],
                                   [0.005279499846691253, 0.0005279499846691251],
                                   [0.002081693763676619, 0.00020816937636766183],
                                   [0.002081693763676619, 0.00020816937636766183],
                                   [0.002081693763676619, 0.00020816937636766183],
                                   [0.002081693763676619, 0.00020816937636766183],
                                   [0.002081693763676619, 0.00020816937636766183],
                                   [0.002081693763676619, 0.00020816937636766183],
                                   [0.002081693763676619, 0.00020816937636766183]]},
 'overlap_linear_multistep': {'groups': [0.1],
                              'steps': 10,
                              'schedulers': [('LinearLR', {'start_factor': 0.25, 'end': 4}),
                                             ('MultiStepLR',
                                              {'milestones': [2, 5, 5], 'gamma': 0.5})],
                              'values': [[0.025],
                                         [0.05],
                                         [0.037500000000000006],
                                         [0.05],
                                         [0.05],
                                         [0.0125],
                                         [0.0125],
                                         [0.0125],
                                         [0.0125],
                                         [0.0125],
                                         [0.0125]]},
 'constant_window': {'groups': [0.1],
                     'steps': 9,
                     'schedulers': [('ConstantLR', {'factor': 0.5, 'begin': 2, 'end': 6})],
                     'values': [[0.1],
                                [0.1],
                                [0.05],
                                [0.05],
                                [0.05],
                                [0.1],
                                [0.1],
                                [0.1],
                                [0.1],
                                [0.1]]},
 'adam_cosine_momentum': {'optimizer': 'adam',
                          'groups': [0.01],
                          'steps': 12,
                          'param': 'betas0',
                          'schedulers': [('CosineAnnealingMomentum',
                                          {'T_max': 10, 'eta_min': 0.85})],
                          'values': [[0.95],
                                     [0.9475528258147576],
                                     [0.9404508497187474],
                                     [0.9293892626146236],
                                     [0.9154508497187474],
                                     [0.9],
                                     [0.8845491502812526],
                                     [0.8706107373853763],
                                     [0.8595491502812526],
                                     [0.8524471741852423],
                                     [0.85],
                                     [0.8524471741852423],
                                     [0.8595491502812527]]},
 'sgd_step_momentum': {'groups': [0.01, 0.02],
                       'steps': 8,
                       'param': 'momentum',
                       'schedulers': [('StepMomentum', {'step_size': 3, 'gamma': 0.5})],
                       'values': [[0.9, 0.9],
                                  [0.9, 0.9],
                                  [0.9, 0.9],
                                  [0.45, 0.45],
                                  [0.45, 0.45],
                                  [0.45, 0.45],
                                  [0.225, 0.225],
                                  [0.225, 0.225],
                                  [0.225, 0.225]]},
 'plateau_min_values': {'groups': [0.1, 0.01],
                        'steps': 12,
                        'metrics': [1.0,
                                    0.9,
                                    0.95,
                                    0.96,
                                    0.97,
                                    0.97,
                                    0.8,
                                    0.81,
                                    0.82,
                                    0.83,
                                    0.84,
                                    0.85],
                        'schedulers': [('ReduceOnPlateauLR',
                                        {'monitor': 'loss',
                                         'patience': 1,
                                         'cooldown': 1,
                                         'factor': 0.5,
                                         'min_value': [0.02, 0.004]})],
                        'values': [[0.1, 0.01],
                                   [0.1, 0.01],
                                   [0.1, 0.01],
                                   [0.1, 0.01],
                                   [0.05, 0.005],
                                   [0.05, 0.005],
                                   [0.05, 0.005],
                                   [0.05, 0.005],
                                   [0.05, 0.005],
                                   [0.025, 0.004],
                                   [0.025, 0.004],
                                   [0.025, 0.004],
                                   [0.02, 0.004]]},
 'convert_multistep': {'groups': [0.1],
                       'steps': 14,
                       'epoch_length': 3,
                       'schedulers': [('MultiStepLR',
                                       {'milestones': [1, 3],
                                        'begin': 0,
                                        'end': 4,
                                        'convert_to_iter_based': True})],
                       'values': [[0.1],
                                  [0.1],
                                  [0.1],
                                  [0.010000000000000002],
                                  [0.010000000000000002],
                                  [0.010000000000000002],
                                  [0.010000000000000002],
                                  [0.010000000000000002],
                                  [0.010000000000000002],
                                  [0.0010000000000000002],
                                  [0.0010000000000000002],
                                  [0.0010000000000000002],
                                  [0.0010000000000000002],
                                  [0.0010000000000000002],
                                  [0.0010000000000000002]]},
 'convert_cosine_tmax': {'groups': [0.1],
                         'steps': 14,
                         'epoch_length': 3,
                         'schedulers': [('LinearLR',
                                         {'start_factor': 0.5,
                                          'begin': 0,
                                          'end': 1,
                                          'convert_to_iter_based': True}),
                                        ('CosineAnnealingLR',
                                         {'T_max': 3,
                                          'begin': 1,
                                          'end': 4,
                                          'eta_min': 0.001,
                                          'convert_to_iter_based': True})],
                         'values': [[0.05],
                                    [0.07500000000000001],
                                    [0.1],
                                    [0.1],
                                    [0.09701478472890247],
                                    [0.0884191999343894],
                                    [0.07525],
                                    [0.05909558479451306],
                                    [0.04190441520548695],
                                    [0.02575000000000001],
                                    [0.012580800065610593],
                                    [0.003985215271097539],
                                    [0.003985215271097539],
                                    [0.003985215271097539],
                                    [0.003985215271097539]]}}
STATES = {'overlap_linear_multistep': {'milestones': {2: 1, 5: 2},
                              'gamma': 0.5,
                              'param_name': 'lr',
                              'begin': 0,
                              'end': 1000000000,
                              'by_epoch': True,
                              'base_values': [0.1],
                              'last_step': 4,
                              '_global_step': 4,
                              'verbose': False,
                              '_last_value': [0.05]},
 'onecycle_three_phase_linear': {'eta_max': [0.5, 0.25],
                                 'div_factor': 25.0,
                                 'final_div_factor': 10000.0,
                                 'total_steps': 20,
                                 'anneal_func': '<function _annealing_linear>',
                                 '_schedule_phases': [{'end_step': 4.0,
                                                       'start_lr': 'initial_lr',
                                                       'end_lr': 'max_lr'},
                                                      {'end_step': 8.0,
                                                       'start_lr': 'max_lr',
                                                       'end_lr': 'initial_lr'},
                                                      {'end_step': 19,
                                                       'start_lr': 'initial_lr',
                                                       'end_lr': 'min_lr'}],
                                 'param_name': 'lr',
                                 'begin': 0,
                                 'end': 1000000000,
                                 'by_epoch': False,
                                 'base_values': [0.02, 0.01],
                                 'last_step': 4,
                                 '_global_step': 4,
                                 'verbose': False,
                                 '_last_value': [0.5, 0.25]}}
# fmt: on


def read(optimizer: Any, param: str) -> list[float]:
    if param == "betas0":
        return [g["betas"][0] for g in optimizer.param_groups]
    return [g[param] for g in optimizer.param_groups]


def make_optimizer(case: dict[str, Any]) -> torch.optim.Optimizer:
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in case["groups"]]
    groups = [{"params": [p], "lr": lr} for p, lr in zip(params, case["groups"])]
    if case.get("optimizer") == "adam":
        return torch.optim.Adam(groups, betas=(0.95, 0.999))
    return torch.optim.SGD(groups, momentum=0.9)


def build_schedulers(case: dict[str, Any], optimizer: Any, registry: Any) -> list[Any]:
    default_args: dict[str, Any] = {"optimizer": optimizer}
    if "epoch_length" in case:
        default_args["epoch_length"] = case["epoch_length"]
    return [
        registry.build(dict(type=name, **kwargs), default_args=default_args)
        for name, kwargs in case["schedulers"]
    ]


def play(case: dict[str, Any], optimizer: Any, schedulers: list[Any], steps: range) -> list[Any]:
    values = []
    for i in steps:
        optimizer.step()
        for scheduler in schedulers:
            if "metrics" in case:
                scheduler.step()
                scheduler.step({"loss": case["metrics"][i]})
            else:
                scheduler.step()
        values.append(read(optimizer, case.get("param", "lr")))
    return values


def run_case(case: dict[str, Any], registry: Any) -> tuple[list[Any], list[Any]]:
    optimizer = make_optimizer(case)
    schedulers = build_schedulers(case, optimizer, registry)
    values = [read(optimizer, case.get("param", "lr"))]
    values += play(case, optimizer, schedulers, range(case["steps"]))
    return values, schedulers


@pytest.fixture
def registry() -> Registry:
    reg = Registry("parameter scheduler", build_func=build_scheduler_from_cfg)
    for name, target in COMPONENTS["PARAM_SCHEDULERS"].items():
        reg.register_lazy(name, target)
    return reg


@pytest.mark.parametrize("name", sorted(CASES))
def test_sequences_equal_mmengine(name, registry):
    case = CASES[name]
    values, _ = run_case(case, registry)
    assert len(values) == len(case["values"]) == case["steps"] + 1
    assert values == case["values"]


def _mmengine_state(name: str) -> dict[str, Any]:
    """The recorded state dict, as MMEngine pickles it (a Counter, a function)."""
    state = dict(STATES[name])
    if "milestones" in state:
        state["milestones"] = Counter(state["milestones"])
    if "anneal_func" in state:

        def _annealing_linear(start: float, end: float, pct: float) -> float:
            raise AssertionError("MMEngine's pickled function must not be used")

        state["anneal_func"] = _annealing_linear
    return state


@pytest.mark.parametrize("name", sorted(STATES))
def test_load_mmengine_state_dict_mid_way(name, registry):
    case = CASES[name]
    stop = 4
    # Our own run to step 4 gives the optimizer state (MMEngine saves it separately).
    optimizer = make_optimizer(case)
    schedulers = build_schedulers(case, optimizer, registry)
    play(case, optimizer, schedulers, range(stop))
    ours = schedulers[-1].state_dict()
    mmengine_state = _mmengine_state(name)
    assert set(ours) == set(mmengine_state) - {"anneal_func"}
    assert {k: v for k, v in ours.items() if k != "milestones"} == {
        k: v for k, v in mmengine_state.items() if k not in ("milestones", "anneal_func")
    }

    resumed_opt = make_optimizer(case)
    resumed = build_schedulers(case, resumed_opt, registry)
    resumed_opt.load_state_dict(optimizer.state_dict())
    for scheduler, previous in zip(resumed[:-1], schedulers[:-1]):
        scheduler.load_state_dict(previous.state_dict())
    resumed[-1].load_state_dict(mmengine_state)
    assert resumed[-1].get_last_value() == case["values"][stop]
    after = play(case, resumed_opt, resumed, range(stop, case["steps"]))
    assert after == case["values"][stop + 1 :]

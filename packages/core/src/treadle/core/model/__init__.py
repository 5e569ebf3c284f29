"""Models: ``BaseModel``, data preprocessors, ``BaseModule`` with ``init_cfg`` weight
initialisation, and the EMA/SWA averaged models (MMEngine's ``mmengine.model``).

Names are imported on first access, so ``import treadle.core.model`` (and the light
:mod:`treadle.core.model.components` that registration reads) does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from treadle.core.utils.lazy import lazy_exports

if TYPE_CHECKING:
    from treadle.core.model.averaged_model import (
        BaseAveragedModel,
        ExponentialMovingAverage,
        MomentumAnnealingEMA,
        StochasticWeightAverage,
    )
    from treadle.core.model.base_model import BaseModel, OptimWrapperLike
    from treadle.core.model.base_module import BaseModule, ModuleDict, ModuleList, Sequential
    from treadle.core.model.data_preprocessor import BaseDataPreprocessor, ImgDataPreprocessor
    from treadle.core.model.utils import (
        convert_sync_batchnorm,
        detect_anomalous_params,
        is_model_wrapper,
        merge_dict,
        revert_sync_batchnorm,
        stack_batch,
        unwrap_model,
    )
    from treadle.core.model.weight_init import (
        BaseInit,
        Caffe2XavierInit,
        ConstantInit,
        KaimingInit,
        NormalInit,
        PretrainedInit,
        TruncNormalInit,
        UniformInit,
        XavierInit,
        bias_init_with_prob,
        caffe2_xavier_init,
        constant_init,
        initialize,
        kaiming_init,
        normal_init,
        trunc_normal_,
        trunc_normal_init,
        uniform_init,
        update_init_info,
        xavier_init,
    )

_WHERE: dict[str, str] = {
    **dict.fromkeys(
        [
            "BaseAveragedModel",
            "ExponentialMovingAverage",
            "MomentumAnnealingEMA",
            "StochasticWeightAverage",
        ],
        "averaged_model",
    ),
    **dict.fromkeys(["BaseModel", "OptimWrapperLike"], "base_model"),
    **dict.fromkeys(["BaseModule", "ModuleDict", "ModuleList", "Sequential"], "base_module"),
    **dict.fromkeys(["BaseDataPreprocessor", "ImgDataPreprocessor"], "data_preprocessor"),
    **dict.fromkeys(
        [
            "convert_sync_batchnorm",
            "detect_anomalous_params",
            "is_model_wrapper",
            "merge_dict",
            "revert_sync_batchnorm",
            "stack_batch",
            "unwrap_model",
        ],
        "utils",
    ),
    **dict.fromkeys(
        [
            "BaseInit",
            "Caffe2XavierInit",
            "ConstantInit",
            "KaimingInit",
            "NormalInit",
            "PretrainedInit",
            "TruncNormalInit",
            "UniformInit",
            "XavierInit",
            "bias_init_with_prob",
            "caffe2_xavier_init",
            "constant_init",
            "initialize",
            "kaiming_init",
            "normal_init",
            "trunc_normal_",
            "trunc_normal_init",
            "uniform_init",
            "update_init_info",
            "xavier_init",
        ],
        "weight_init",
    ),
}

__all__ = [
    "BaseAveragedModel",
    "BaseDataPreprocessor",
    "BaseInit",
    "BaseModel",
    "BaseModule",
    "Caffe2XavierInit",
    "ConstantInit",
    "ExponentialMovingAverage",
    "ImgDataPreprocessor",
    "KaimingInit",
    "ModuleDict",
    "ModuleList",
    "MomentumAnnealingEMA",
    "NormalInit",
    "OptimWrapperLike",
    "PretrainedInit",
    "Sequential",
    "StochasticWeightAverage",
    "TruncNormalInit",
    "UniformInit",
    "XavierInit",
    "bias_init_with_prob",
    "caffe2_xavier_init",
    "constant_init",
    "convert_sync_batchnorm",
    "detect_anomalous_params",
    "initialize",
    "is_model_wrapper",
    "kaiming_init",
    "merge_dict",
    "normal_init",
    "revert_sync_batchnorm",
    "stack_batch",
    "trunc_normal_",
    "trunc_normal_init",
    "uniform_init",
    "unwrap_model",
    "update_init_info",
    "xavier_init",
]


__getattr__, __dir__ = lazy_exports(__name__, _WHERE)

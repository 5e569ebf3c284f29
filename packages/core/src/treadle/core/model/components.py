"""The model components treadle-core registers, by import path (read by the built-in plugin).

Importing this module imports nothing (no torch): registration stays cheap.
"""

_M = "treadle.core.model"

#: Root-registry attribute name → {registered name: "module:Attr"}.
COMPONENTS: dict[str, dict[str, str]] = {
    "MODELS": {
        "BaseDataPreprocessor": f"{_M}.data_preprocessor:BaseDataPreprocessor",
        "ImgDataPreprocessor": f"{_M}.data_preprocessor:ImgDataPreprocessor",
        "ExponentialMovingAverage": f"{_M}.averaged_model:ExponentialMovingAverage",
        "MomentumAnnealingEMA": f"{_M}.averaged_model:MomentumAnnealingEMA",
        "StochasticWeightAverage": f"{_M}.averaged_model:StochasticWeightAverage",
    },
    "WEIGHT_INITIALIZERS": {
        "Constant": f"{_M}.weight_init:ConstantInit",
        "Xavier": f"{_M}.weight_init:XavierInit",
        "Normal": f"{_M}.weight_init:NormalInit",
        "TruncNormal": f"{_M}.weight_init:TruncNormalInit",
        "Uniform": f"{_M}.weight_init:UniformInit",
        "Kaiming": f"{_M}.weight_init:KaimingInit",
        "Caffe2Xavier": f"{_M}.weight_init:Caffe2XavierInit",
        "Pretrained": f"{_M}.weight_init:PretrainedInit",
    },
}

"""The optimizer components core registers, by import path (nothing is imported here).

The built-in plugin (:mod:`treadle.core._builtin`) registers every entry lazily, so discovery
never imports torch. ``OPTIMIZERS`` lists every optimizer class in ``torch.optim`` (a test
checks the list against the installed torch); as in MMEngine, ``torch.optim.Adafactor`` is
registered as ``TorchAdafactor`` (``Adafactor`` is the name of transformers' optimizer).
"""

from __future__ import annotations

_OPTIMIZER = "treadle.core.optim.optimizer"

#: ``{root registry attribute: {name: "module:attribute"}}``.
COMPONENTS: dict[str, dict[str, str]] = {
    "OPTIMIZERS": {
        name: f"torch.optim:{attr}"
        for name, attr in (
            ("ASGD", "ASGD"),
            ("Adadelta", "Adadelta"),
            ("Adagrad", "Adagrad"),
            ("Adam", "Adam"),
            ("AdamW", "AdamW"),
            ("Adamax", "Adamax"),
            ("LBFGS", "LBFGS"),
            ("Muon", "Muon"),  # torch >= 2.9
            ("NAdam", "NAdam"),
            ("Optimizer", "Optimizer"),  # MMEngine registers the base class too
            ("RAdam", "RAdam"),
            ("RMSprop", "RMSprop"),
            ("Rprop", "Rprop"),
            ("SGD", "SGD"),
            ("SparseAdam", "SparseAdam"),
            ("TorchAdafactor", "Adafactor"),  # torch >= 2.5
        )
    },
    "OPTIM_WRAPPERS": {
        "OptimWrapper": f"{_OPTIMIZER}.optimizer_wrapper:OptimWrapper",
        "AmpOptimWrapper": f"{_OPTIMIZER}.amp_optimizer_wrapper:AmpOptimWrapper",
    },
    "OPTIM_WRAPPER_CONSTRUCTORS": {
        "DefaultOptimWrapperConstructor": (
            f"{_OPTIMIZER}.default_constructor:DefaultOptimWrapperConstructor"
        ),
    },
}

# An MMEngine-style experiment config: the pieces come from _base_ files and this file only says
# what differs. Run it from anywhere:
#
#   treadle train examples/mmengine_style/digits_mlp_param_norm.py
#   treadle config show examples/mmengine_style/digits_mlp_param_norm.py   # the merged result
#
# Bases are merged in order, then the values below are merged into the result: dicts merge key by
# key (`optim_wrapper` below only changes the learning rate), other values replace.
_base_ = [
    "./_base_/default_runtime.py",
    "./_base_/digits_data.py",
    "./_base_/schedule_8e.py",
]

# The user module next to this file registers FlatDigits, DigitsMLP and ParamNormHook.
custom_imports = dict(imports=["digits_project"], allow_failed_imports=False)

model = dict(type="DigitsMLP", hidden=128, dropout=0.1)

optim_wrapper = dict(optimizer=dict(lr=0.05))  # merged: still SGD with momentum 0.9

default_hooks = dict(checkpoint=dict(save_best="accuracy/top1", rule="greater"))  # merged too

# Hooks that are not among the default ones: built from HOOKS like any other component.
custom_hooks = [dict(type="ParamNormHook", interval=10)]

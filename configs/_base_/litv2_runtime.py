# What every config of the project runs with. LITv2Runner carries every
# guarantee (strict loading, reliability hooks, device adaptation, data sets
# named), also under mmdet's and mmseg's own tools/train.py and tools/test.py
# (litv2_openmmlab/engine/runner/litv2_runner.py); the hooks are listed for
# the tools that build mmengine's own Runner (mmseg's tools/test.py,
# Runner.from_cfg).
runner_type = 'LITv2Runner'
custom_hooks = [dict(type='StrictLoadHook'), dict(type='FiniteWeightsHook')]

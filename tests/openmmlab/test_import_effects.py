"""What importing each package does, in a fresh interpreter: the plain
PyTorch core imports nothing of OpenMMLab; the adapter ``litv2_openmmlab``
registers nothing; each plugin registers ``LITv2`` in its task's registry,
the hooks, the ``atomic_local`` file backend, ``CPUAutocastOptimWrapper``
and ``LITv2Runner``, and installs the safe checkpoint loader."""
import subprocess
import sys
import textwrap

import pytest

OPENMMLAB = ('mmcv', 'mmengine', 'mmdet', 'mmseg', 'litv2_openmmlab')

# Prints what is registered in mmengine (and the task's MODELS) and which
# function reads local checkpoint files.
REPORT = textwrap.dedent('''
    def report(models=None):
        from mmengine.fileio.backends import backends
        from mmengine.registry import HOOKS, OPTIM_WRAPPERS, RUNNERS
        from mmengine.runner.checkpoint import CheckpointLoader
        hooks = [h for h in ('AtomicCheckpointHook', 'RandomStateHook',
                             'FiniteLossHook', 'FiniteWeightsHook',
                             'ResumeCheckHook', 'StrictLoadHook')
                 if h in HOOKS.module_dict]
        print(hooks, 'atomic_local' in backends,
              'CPUAutocastOptimWrapper' in OPTIM_WRAPPERS.module_dict,
              'LITv2Runner' in RUNNERS.module_dict,
              CheckpointLoader._schemes[''].__module__,
              models is not None and 'LITv2' in models.module_dict)
''')


def run(code: str) -> list:
    return subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, check=True).stdout.splitlines()


def test_no_module_of_litv2_imports_openmmlab():
    """Every module of the plain-PyTorch package (``litv2.testing`` and its
    reference and AMP helpers too), imported in one fresh interpreter: none
    of them, nor anything they import, loads OpenMMLab (``litv2.flops``
    included: its mmengine counter lives in ``litv2_openmmlab.flops``)."""
    out = run('import pkgutil, importlib, sys\n'
              'import litv2\n'
              'names = [m.name for m in pkgutil.walk_packages('
              'litv2.__path__, "litv2.")]\n'
              'for name in names:\n'
              '    importlib.import_module(name)\n'
              'print(len(names), "litv2.flops" in names, sorted('
              f'm for m in {OPENMMLAB!r} if m in sys.modules))')
    count, has_flops, loaded = out[0].split(' ', 2)
    assert int(count) > 10 and has_flops == 'True'
    assert loaded == '[]'


def test_adapter_registers_nothing():
    out = run(REPORT + 'import litv2_openmmlab\nreport()')
    assert out == ['[] False False False mmengine.runner.checkpoint False']


@pytest.mark.parametrize('task', ['mmdet', 'mmseg'])
def test_plugin_registers_everything(task):
    out = run(REPORT + f'import {task}_litv2\n'
              f'from {task}.registry import MODELS\nreport(MODELS)')
    assert out == [
        "['AtomicCheckpointHook', 'RandomStateHook', 'FiniteLossHook', "
        "'FiniteWeightsHook', 'ResumeCheckHook', 'StrictLoadHook'] True "
        'True True litv2_openmmlab.checkpoint.weights_only True']

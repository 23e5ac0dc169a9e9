#!/usr/bin/env python
"""Run one of timm's own scripts (``train.py``, ``validate.py``,
``benchmark.py`` from timm's repository) with the LITv2 classifiers in
timm's registry.

    python tools/timm_run.py path/to/timm/train.py --model litv2_s ...

timm's scripts build models by name from its registry; this registers
``litv2_s``, ``litv2_m``, ``litv2_b`` and ``litv2_b_384``
(``litv2.timm_models``) and then runs the script as ``__main__`` with the
remaining arguments.
"""
import os.path as osp
import runpy
import sys

import litv2.timm_models  # noqa: F401  (registers the models)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or not argv[0].endswith('.py'):
        raise SystemExit('usage: tools/timm_run.py SCRIPT.py [ARGS...] '
                         '(a script of timm\'s repository)')
    script = argv[0]
    if not osp.isfile(script):
        raise SystemExit(f'tools/timm_run.py: no script {script!r}')
    sys.argv = argv
    runpy.run_path(script, run_name='__main__')


if __name__ == '__main__':
    main()

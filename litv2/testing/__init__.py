"""What the tests and the benchmarks share, in plain PyTorch (not imported by
``import litv2``; importing it imports nothing of OpenMMLab):

* ``reference.py`` - an independent, straightforward re-implementation of the
  reference LITv2 backbone: the tests' oracle, the benchmarks' baseline;
* ``amp_accuracy.py`` - how far a backbone under autocast is from fp32 (the
  mixed-precision tests' bound and benchmark's figure are one quantity).
"""

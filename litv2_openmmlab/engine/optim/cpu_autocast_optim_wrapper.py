"""Mixed-precision training without a GPU: bf16 autocast on CPUs that
compute bf16 natively (:mod:`.amp_support`).

mmengine's ``AmpOptimWrapper`` refuses to start without a GPU, NPU or MLU;
``CPUAutocastOptimWrapper`` (registered in mmengine's ``OPTIM_WRAPPERS`` on
import of this module) is the same training step under
``torch.autocast('cpu', dtype=torch.bfloat16)``, post-processing in fp32
(``autocast_parts.py``). bf16 has fp32's exponent range, so no loss scaling
is needed. ``tools/train.py --amp`` and configs with ``AmpOptimWrapper`` use
it on machines without CUDA
(``litv2_openmmlab.engine.runner.adapt_to_device``).
"""
from contextlib import contextmanager

import torch
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS

from .amp_support import require_cpu_bf16
from .autocast_parts import autocast_model


@OPTIM_WRAPPERS.register_module()
class CPUAutocastOptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose forward and loss run under bf16 autocast on
    the CPU (no loss scaler: bf16 cannot overflow where fp32 does not).

    Args:
        dtype: only ``'bfloat16'`` (or ``torch.bfloat16``).
        **kwargs: those of ``OptimWrapper``.
    """

    def __init__(self, *args, dtype='bfloat16', **kwargs):
        if dtype not in ('bfloat16', torch.bfloat16):
            raise ValueError(
                f"CPUAutocastOptimWrapper: dtype must be 'bfloat16', got "
                f'{dtype!r} (fp16 on a CPU needs loss scaling and is slower '
                'than fp32)')
        require_cpu_bf16('CPUAutocastOptimWrapper')
        super().__init__(*args, **kwargs)
        self.cast_dtype = torch.bfloat16

    @contextmanager
    def optim_context(self, model: torch.nn.Module):
        # the step under autocast, post-processing (the proposals' NMS,
        # RoIAlign) in fp32
        network = model.module if hasattr(model, 'module') else model
        with super().optim_context(model), \
                autocast_model(network, 'cpu', self.cast_dtype):
            yield

"""Mixed precision without a GPU: ``CPUAutocastOptimWrapper`` (registered in
mmengine's ``OPTIM_WRAPPERS`` on import), the check of this machine's bf16
support, and autocast of a whole mmdet / mmseg model with its
post-processing in fp32."""
from .amp_support import (
    CPUBF16Error,
    amp_option_error,
    cpu_bf16_support,
    require_cpu_bf16,
)
from .autocast_parts import FP32_METHODS, autocast_model
from .cpu_autocast_optim_wrapper import CPUAutocastOptimWrapper

__all__ = [
    'CPUBF16Error', 'amp_option_error', 'cpu_bf16_support',
    'require_cpu_bf16', 'FP32_METHODS', 'autocast_model',
    'CPUAutocastOptimWrapper'
]

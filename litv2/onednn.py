"""Float32 CPU inference of LITv2's linear layers on oneDNN.

PyTorch computes a float32 ``nn.Linear`` on CPU as ``addmm``: the bias is
first copied into every row of the output, then the BLAS library (MKL in
the PyPI wheels) adds the product to it. oneDNN, which PyTorch ships for its
CPU convolutions, has a matmul that adds the bias as it writes the output.
On a 2-core AMD EPYC it ran LITv2's projections 1.2x-1.8x faster (e.g.
4000x384 -> 1536: 33.7 -> 26.2 ms; 64000x384 -> 96: 45.0 -> 25.5 ms).

It is the same computation, a float32 matrix product plus bias; only the
order of the float32 additions differs, as between any two BLAS libraries.
Everywhere else (GPU, other dtypes, autograd, autocast, tracing, compiling,
scripting, ``torch.fx``) the layer is ``F.linear``. ``Linear``'s
parameters, their names and its repr are those of ``nn.Linear``, so
checkpoints and ``isinstance(m, nn.Linear)`` initialisers see no
difference.
"""
import functools
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .layers import graph_being_recorded

# Whether CPU autocast is on, asked the way this PyTorch understands (once).
try:
    torch.is_autocast_enabled('cpu')
    cpu_autocast_enabled = functools.partial(torch.is_autocast_enabled, 'cpu')
except TypeError:  # PyTorch before 2.4 has no device argument
    cpu_autocast_enabled = torch.is_autocast_cpu_enabled


ONEDNN_AVAILABLE = (torch.backends.mkldnn.is_available()
                    and hasattr(torch.ops.mkldnn, '_linear_pointwise'))


def onednn_applies(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether ``linear`` takes oneDNN's matmul for this call: float32 CPU
    tensors, nothing recorded by autograd, no autocast (which would have
    the layer run in its lower precision), and no tracer or compiler that
    expects ``aten::linear``."""
    # Grad mode first (training stops there); the tracer test before any
    # look at ``x``, which under torch.fx is a Proxy.
    return (ONEDNN_AVAILABLE and not torch.is_grad_enabled()
            and not graph_being_recorded()
            and x.device.type == 'cpu' and x.dtype == torch.float32
            and weight.dtype == torch.float32
            and not cpu_autocast_enabled())


def linear(x: torch.Tensor, weight: torch.Tensor,
           bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``F.linear(x, weight, bias)``, on oneDNN where ``onednn_applies``."""
    if not torch.jit.is_scripting():
        if onednn_applies(x, weight):
            return torch.ops.mkldnn._linear_pointwise(x, weight, bias,
                                                      'none', [], '')
    return F.linear(x, weight, bias)


class Linear(nn.Linear):
    """``nn.Linear`` with a oneDNN path for float32 CPU inference (see the
    module docstring); same parameters and values."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)

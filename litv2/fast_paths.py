"""The inference fast paths of the LITv2 model, and the one switch for them.

The model (``hilo.py``, ``blocks.py``, ``trunk.py``) is written in plain
PyTorch ops. The paths below compute the same values in less time or
memory in inference; each module hands over to one of them in one place:

=====================  ==========================  ==========================
fast path              where                       when (besides the switch)
=====================  ==========================  ==========================
oneDNN linear          ``Linear``: HiLo's and      float32 CPU tensors, no
                       ConvFFN's projections       grad, no autocast
FFN half in pieces     ``LITv2Block``: norm2,      CPU, no grad, eval mode,
                       ConvFFN, residual add       a large map
in-place GELU          ``GELU``: ConvFFN's         an input that autograd
                       activation                  does not record
channels-last image    ``PatchEmbed`` (the stem)   no grad
=====================  ==========================  ==========================

* **oneDNN linear.** PyTorch computes a float32 ``nn.Linear`` on CPU as
  ``addmm``: the bias is copied into every row of the output, then the BLAS
  library (MKL in the PyPI wheels) adds the product to it. oneDNN, which
  PyTorch ships for its CPU convolutions, has a matmul that adds the bias
  as it writes the output. The same float32 product plus bias; only the
  order of the additions differs, as between any two BLAS libraries.
* **FFN half in pieces** (:func:`in_pieces`). The FFN half of a block
  (``x + ConvFFN(LN(x))``) acts on each token and its 3x3 neighbourhood, so
  it is computed on pieces of the map (whole images, or strips of rows with
  the row above and below) whose hidden activation (4x the channels) stays
  in the CPU's caches. Every token sees the same neighbours as in the
  whole map: the same values.
* **In-place GELU.** ConvFFN's GELU overwrites its input (the depthwise
  conv's fresh output), sparing a buffer the size of the block's widest
  tensor. The same values as ``F.gelu``.
* **Channels-last image.** Given the image channels-last, the patch
  embedding's conv writes ``(B, H, W, C)``, which the following permute and
  norm read without a copy. Only without grad: in training on CUDA the
  conv's weight gradient would come back channels-last too, unlike DDP's
  bucket view of it. (Any device, as the rest of the model.)

None of the first three applies while a graph is recorded (``torch.fx``,
``torch.jit.trace``, ONNX export, ``torch.compile``), and none of the four
under TorchScript: they get the plain ops, as does everything when the
switch is off. For timm's FX tracer, ``Linear`` and ``GELU`` are leaf
modules and :func:`channels_last_image` a function kept as a call
(``litv2.timm_models``): an FX graph then computes what eager does. The
measured gains are in ``docs/measuring.md``.

The switch: :func:`set_fast_paths` (process-wide), :func:`using_fast_paths`
(a ``with`` block), :func:`use_fast_paths` (its state). It starts on, or as
the environment variable ``LITV2_FAST_PATHS`` (``0`` or ``1``) says when
``litv2`` is first imported. It is read at every call, so it applies to
models already built; the timm models, the OpenMMLab backbone and
``tools/fps.py`` follow it.
"""
import contextlib
import functools
import os
from typing import Callable, Iterator, Optional

import torch
import torch.nn.functional as F
from torch import nn

try:
    from torch.fx._symbolic_trace import is_fx_symbolic_tracing
except ImportError:  # PyTorch before 2.5 has only the older name
    from torch.fx._symbolic_trace import (
        is_fx_tracing as is_fx_symbolic_tracing,
    )

# Whether CPU autocast is on, asked the way this PyTorch understands (once).
try:
    torch.is_autocast_enabled('cpu')
    cpu_autocast_enabled = functools.partial(torch.is_autocast_enabled, 'cpu')
except TypeError:  # PyTorch before 2.4 has no device argument
    cpu_autocast_enabled = torch.is_autocast_cpu_enabled

ONEDNN_AVAILABLE = (torch.backends.mkldnn.is_available()
                    and hasattr(torch.ops.mkldnn, '_linear_pointwise'))

# The FFN half of a block is computed in pieces whose hidden activation
# (ConvFFN's widest tensor) takes about this many bytes.
PIECE_BYTES = 8 * 2**20


# The switch ----------------------------------------------------------------
def _from_environment(name: str = 'LITV2_FAST_PATHS') -> bool:
    value = os.environ.get(name, '1').strip()
    if value not in ('0', '1'):
        raise ValueError(f'{name} must be 0 (fast paths off) or 1 (on), '
                         f'got {value!r}')
    return value == '1'


_enabled = _from_environment()


def use_fast_paths() -> bool:
    """Whether the fast paths are on (see the module docstring)."""
    return _enabled


def set_fast_paths(enable: bool) -> None:
    """Turn the fast paths on or off for the whole process, including
    models already built; off, the model computes with the plain ops
    only."""
    global _enabled
    if not isinstance(enable, bool):
        raise ValueError(f'enable must be True or False, got {enable!r}')
    _enabled = enable


@contextlib.contextmanager
def using_fast_paths(enable: bool) -> Iterator[None]:
    """``with using_fast_paths(False): model(x)``: the fast paths on or off
    inside the block, as before it afterwards."""
    before = use_fast_paths()
    set_fast_paths(enable)
    try:
        yield
    finally:
        set_fast_paths(before)


def graph_being_recorded() -> bool:
    """Whether torch.fx, ``torch.jit.trace`` (hence ONNX export) or
    ``torch.compile`` is recording the model. Safe to call first where the
    input may be an FX Proxy."""
    return (is_fx_symbolic_tracing() or torch.jit.is_tracing()
            or torch.compiler.is_compiling())


# oneDNN linear -------------------------------------------------------------
def onednn_applies(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether :func:`linear` takes oneDNN's matmul for this call: the
    switch on, float32 CPU tensors, nothing recorded by autograd, no
    autocast (which would have the layer run in its lower precision), and
    no tracer or compiler that expects ``aten::linear``."""
    # Grad mode first (training stops there); the tracer test before any
    # look at ``x``, which under torch.fx is a Proxy.
    return (_enabled and ONEDNN_AVAILABLE and not torch.is_grad_enabled()
            and not graph_being_recorded()
            and x.device.type == 'cpu' and x.dtype == torch.float32
            and weight.dtype == torch.float32
            and not cpu_autocast_enabled())


def linear(x: torch.Tensor, weight: torch.Tensor,
           bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``F.linear(x, weight, bias)``, on oneDNN where
    :func:`onednn_applies`."""
    if not torch.jit.is_scripting():
        if onednn_applies(x, weight):
            return torch.ops.mkldnn._linear_pointwise(x, weight, bias,
                                                      'none', [], '')
    return F.linear(x, weight, bias)


class Linear(nn.Linear):
    """``nn.Linear`` with the oneDNN path; its parameters, their names and
    its repr are those of ``nn.Linear``, so checkpoints and
    ``isinstance(m, nn.Linear)`` initialisers see no difference."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)


# In-place GELU -------------------------------------------------------------
def gelu_in_place_applies(x: torch.Tensor) -> bool:
    """Whether :class:`GELU` overwrites ``x``: the switch on, no graph
    being recorded, and ``x`` not recorded by autograd."""
    return _enabled and not graph_being_recorded() and not x.requires_grad


class GELU(nn.GELU):
    """``nn.GELU`` that overwrites its input where
    :func:`gelu_in_place_applies`: for an input that nothing else reads
    (ConvFFN's, the depthwise conv's fresh output)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():
            if gelu_in_place_applies(x):
                return torch.ops.aten.gelu_(x, approximate=self.approximate)
        return F.gelu(x, approximate=self.approximate)


# The FFN half in pieces ----------------------------------------------------
def pieces_apply(x: torch.Tensor, training: bool) -> bool:
    """Whether a block's FFN half runs piecewise: the switch on, CPU
    inference (no grad, eval mode: stochastic depth draws per image), and
    no tracer or compiler that records the whole-map graph. (The tracer
    test comes first: under torch.fx ``x`` is a Proxy.)"""
    return (_enabled and not training and not torch.is_grad_enabled()
            and not graph_being_recorded() and x.device.type == 'cpu')


def in_pieces(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
              hidden: int, piece_bytes: int) -> torch.Tensor:
    """``fn(x)`` for a ``fn`` that acts on each token of a ``(B, H, W, C)``
    map and its 3x3 neighbourhood (a block's FFN half: norm, ConvFFN with
    ``hidden`` channels, residual add), computed on pieces of ``x`` whose
    hidden activation takes about ``piece_bytes`` (``PIECE_BYTES`` in the
    model): whole images when one
    fits, otherwise strips of rows of one image, each with the row above
    and below (the depthwise conv's reach), cropped off again. Every token
    is computed as in the whole map: the conv sees the same neighbours
    (zeros only at the map's own border). The pieces write into one
    output, so the widest tensors stay in the CPU's caches.

    Maps whose hidden activation is under two and a half pieces are done
    whole: near that size the strips' extra rows and the smaller matmuls
    cost about what they save (``docs/measuring.md``).
    """
    b, h, w, _ = x.shape
    row_bytes = w * hidden * x.element_size()
    if 2 * b * h * row_bytes < 5 * piece_bytes:
        return fn(x)
    out = torch.empty_like(x)
    if h * row_bytes <= piece_bytes:
        images = piece_bytes // (h * row_bytes)
        for first in range(0, b, images):
            out[first:first + images] = fn(x[first:first + images])
        return out
    rows = max(1, piece_bytes // row_bytes)
    for i in range(b):
        for top in range(0, h, rows):
            bottom = min(top + rows, h)
            lo, hi = max(top - 1, 0), min(bottom + 1, h)
            piece = fn(x[i:i + 1, lo:hi])
            out[i:i + 1, top:bottom] = piece[:, top - lo:bottom - lo]
    return out


# Channels-last image -------------------------------------------------------
def channels_last_image(x: torch.Tensor) -> torch.Tensor:
    """``x`` (an NCHW image batch) in channels-last memory when the switch
    is on and grad mode is off; ``x`` itself otherwise (and under
    TorchScript). ``litv2.timm_models`` registers it with timm's
    ``register_notrace_function``: an FX graph calls it, and so decides
    when it runs, as eager does."""
    if not torch.jit.is_scripting():
        if _enabled and not torch.is_grad_enabled():
            return x.contiguous(memory_format=torch.channels_last)
    return x

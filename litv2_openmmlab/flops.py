"""FLOPs of LITv2 models with mmengine's counter, as the paper counted them.

The paper's figures come from OpenMMLab's FLOP counter (fvcore's rules, which
``mmengine.analysis.FlopAnalyzer`` implements); :func:`count_flops` counts
with it and with the two corrections that ``litv2.flops`` describes (HiLo's
``F.scaled_dot_product_attention``, :func:`sdpa_flop_jit`; DTM's deformable
product). What needs no OpenMMLab (the analytic deformable product, the
result type ``FlopCount``, the per-stage rows) is in ``litv2.flops``.

Usage::

    count = count_flops(model, (inputs,))
    count.paper, count.complete, count.params, count.by_module['backbone']
"""
from typing import List, Tuple

from mmengine.analysis import FlopAnalyzer
from mmengine.analysis.jit_handles import get_shape
from torch import nn

from litv2.dtm import DeformableTokenMerging
from litv2.flops import FlopCount, deform_conv_flops, is_within

__all__ = ['LITV2_FLOP_HANDLES', 'count_flops', 'flop_analyzer',
           'sdpa_flop_jit']


def sdpa_flop_jit(inputs: List, outputs: List) -> int:
    """Multiply-adds of ``aten::scaled_dot_product_attention``:
    ``q @ k^T`` (L * S * E per head) plus ``attn @ v`` (L * S * Ev)."""
    q_shape, k_shape, v_shape = (get_shape(v) for v in inputs[:3])
    *batch, length, embed = q_shape
    source = k_shape[-2]
    value_embed = v_shape[-1]
    n = 1
    for b in batch:
        n *= b
    return n * length * source * (embed + value_embed)


# Rules added to mmengine's defaults (op name -> handle).
LITV2_FLOP_HANDLES = {
    'aten::scaled_dot_product_attention': sdpa_flop_jit,
}


def flop_analyzer(model: nn.Module, inputs: Tuple) -> FlopAnalyzer:
    """mmengine's analyzer with :data:`LITV2_FLOP_HANDLES`, quiet about the
    ops and modules it does not count (RoI ops, NMS, unused heads)."""
    analyzer = FlopAnalyzer(model, inputs)
    analyzer.set_op_handle(**LITV2_FLOP_HANDLES)
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    return analyzer


def count_flops(model: nn.Module, inputs: Tuple) -> FlopCount:
    """Count ``model(*inputs)`` (traced once, in the model's current mode)."""
    dtms = {name: m.dconv for name, m in model.named_modules()
            if isinstance(m, DeformableTokenMerging)}
    in_shapes = {}  # dconv name -> shape of its input, seen while tracing

    def recorder(name):
        def hook(module, args):
            # int(): while tracing, sizes are 0-dim tensors
            in_shapes.setdefault(name, tuple(int(s) for s in args[0].shape))
        return hook

    hooks = [
        dconv.register_forward_pre_hook(
            recorder(f'{name}.dconv' if name else 'dconv'))
        for name, dconv in dtms.items()
    ]
    try:
        analyzer = flop_analyzer(model, inputs)
        by_module = dict(analyzer.by_module())
    finally:
        for hook in hooks:
            hook.remove()

    # Remove what the analyzer attributed to the deformable product (keep
    # conv_offset) from the dconv and every module that contains it.
    excluded = {
        name: by_module.get(name, 0) - by_module.get(f'{name}.conv_offset', 0)
        for name in in_shapes
    }
    corrected = {
        module: flops - sum(v for k, v in excluded.items()
                            if is_within(k, module))
        for module, flops in by_module.items()
    }
    dtm = {}
    for name, shape in in_shapes.items():
        dconv = model.get_submodule(name)
        dtm[name] = deform_conv_flops(
            dconv.in_channels, dconv.out_channels, dconv.kernel_size,
            dconv.stride, shape[2], shape[3], batch=shape[0])
    paper = corrected.get('', 0)
    return FlopCount(
        paper=paper,
        complete=paper + sum(dtm.values()),
        params=sum(p.numel() for p in model.parameters()),
        by_module=corrected,
        dtm=dtm,
        unsupported=dict(analyzer.unsupported_ops()))

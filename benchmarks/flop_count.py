"""Multiply-adds as every benchmark table counts them: PyTorch's
``FlopCounterMode``, with PyTorch's fused CPU attention counted too.

``FlopCounterMode`` knows the CUDA kernels of
``F.scaled_dot_product_attention`` (flash, memory-efficient, cuDNN) but not
the CPU one (``_scaled_dot_product_flash_attention_for_cpu``), which it
counts as 0: a 1x4x256x32 query against 64 keys gave 0 instead of 8.4 M
multiply-adds, and every model whose attention is fused lost it from the
tables (LITv2-S's backbone at 800x1280 about 18 G of 93 G). The CPU kernel
computes the same two products, so it gets the same formulas.
"""
from typing import Callable

import torch
from torch.utils import flop_counter


def _attention(query_shape, key_shape, value_shape, *args, out_shape=None,
               **kwargs) -> int:
    return flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)


def _attention_backward(grad_out_shape, query_shape, key_shape,
                        value_shape, *args, out_shape=None, **kwargs) -> int:
    return flop_counter.sdpa_backward_flop_count(
        grad_out_shape, query_shape, key_shape, value_shape)


def _cpu_attention_formulas() -> dict:
    aten = torch.ops.aten
    formulas = {}
    for name, formula in (
            ('_scaled_dot_product_flash_attention_for_cpu', _attention),
            ('_scaled_dot_product_flash_attention_for_cpu_backward',
             _attention_backward)):
        op = getattr(aten, name, None)
        if op is not None and op not in flop_counter.flop_registry:
            formulas[op] = formula
    return formulas


def flop_counter_mode() -> flop_counter.FlopCounterMode:
    """A ``FlopCounterMode`` (no display) that counts fused attention on
    every device."""
    return flop_counter.FlopCounterMode(
        display=False, custom_mapping=_cpu_attention_formulas())


def count_macs(fn: Callable[[], object]) -> int:
    """Multiply-adds of one call of ``fn`` (``FlopCounterMode`` counts a
    multiply-add as 2 FLOPs). With autograd on: the counter's module
    tracker fails under no_grad on some models (timm's CaiT)."""
    with torch.enable_grad(), flop_counter_mode() as counter:
        fn()
    return counter.get_total_flops() // 2

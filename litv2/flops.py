"""FLOPs of LITv2 models, counted the way the paper's tables were: the
parts that need no OpenMMLab.

The paper's figures come from OpenMMLab's FLOP counter (fvcore's rules, which
``mmengine.analysis.FlopAnalyzer`` implements): one multiply-add is one FLOP,
convolutions / linear layers / matrix products / norms are counted, and an
op the counter has no rule for is left out. Two parts of LITv2 need help:

* HiLo computes both attention products with
  ``F.scaled_dot_product_attention``, which the analyzer has no rule for;
  ``litv2_openmmlab.flops.sdpa_flop_jit`` counts ``q @ k^T`` and
  ``attn @ v`` as the reference's explicit matmuls were counted (softmax
  and scaling are not), so a HiLo layer counts what
  :func:`litv2.hilo.hilo_flops` says.
* DTM's deformable convolution: the paper's counter did not see it (about
  3.5 G for RetinaNet LITv2-S at 1280x800), while its offset convolution
  (``conv_offset``, a plain conv) was counted. Whatever the analyzer
  attributes to a DTM's ``dconv`` other than ``conv_offset`` (nothing for a
  custom op; sampling and matmuls if the op is written with standard ops) is
  removed, which gives the paper-comparable figure; the complete figure adds
  the deformable product analytically (:func:`deform_conv_flops`), ``C_out
  * C_in * k * k * H_out * W_out`` multiply-adds per image, as for an
  ordinary convolution.

The counting itself runs mmengine's analyzer, so it lives in the OpenMMLab
adapter, :mod:`litv2_openmmlab.flops` (``count_flops``, ``flop_analyzer``,
``sdpa_flop_jit``, ``LITV2_FLOP_HANDLES``)::

    count = count_flops(model, (inputs,))
    count.paper, count.complete, count.params, count.by_module['backbone']
"""
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Tuple


def deform_conv_flops(in_channels: int, out_channels: int, kernel_size: int,
                      stride: int, height: int, width: int,
                      batch: int = 1) -> int:
    """Multiply-adds of a deformable conv (no padding) on a ``height x width``
    map: those of an ordinary convolution of the same shape (the bilinear
    sampling is not counted, as for the counter's other ops)."""
    out_h = (height - kernel_size) // stride + 1
    out_w = (width - kernel_size) // stride + 1
    return (batch * out_channels * in_channels * kernel_size * kernel_size *
            out_h * out_w)


@dataclass
class FlopCount:
    """FLOPs (multiply-adds) of one forward pass.

    ``paper``: comparable to the paper's tables (DTM's deformable product
    left out, its offset conv counted); ``complete``: ``paper`` plus the
    deformable products of the DTMs; ``by_module``: paper-comparable FLOPs of
    every module (mmengine's names, '' is the whole model, each module
    includes its children); ``dtm``: the deformable product of each DTM
    (keyed by its ``dconv``'s name); ``unsupported``: ops not counted.
    """
    paper: int
    complete: int
    params: int
    by_module: Dict[str, int] = field(default_factory=dict)
    dtm: Dict[str, int] = field(default_factory=dict)
    unsupported: Dict[str, int] = field(default_factory=dict)

    def complete_of(self, module_name: str) -> int:
        """FLOPs of a module including the deformable products inside it."""
        return self.by_module.get(module_name, 0) + sum(
            v for k, v in self.dtm.items() if is_within(k, module_name))


def is_within(name: str, scope: str) -> bool:
    return scope == '' or name == scope or name.startswith(scope + '.')


def backbone_stages(backbone_prefix: str, num_stages: int) -> List[str]:
    """Module names of a LITv2 backbone's parts, in forward order: the patch
    embedding, then each stage (blocks and the DTM that follows it) and the
    output norms."""
    p = f'{backbone_prefix}.' if backbone_prefix else ''
    names = [f'{p}patch_embed']
    names += [f'{p}layers.{i}' for i in range(num_stages)]
    names += [f'{p}norm{i}' for i in range(1, num_stages)]
    return names


def per_stage(count: FlopCount, names: Iterable[str],
              total_name: str = '') -> List[Tuple[str, int, int]]:
    """``(name, paper, complete)`` for each module name present in the count
    and a last row ``other`` for what they do not cover (within
    ``total_name``)."""
    rows = [(n, count.by_module[n], count.complete_of(n)) for n in names
            if n in count.by_module]
    paper_rest = count.by_module.get(total_name, 0) - sum(r[1] for r in rows)
    complete_rest = count.complete_of(total_name) - sum(r[2] for r in rows)
    if paper_rest or complete_rest:
        rows.append(('other', paper_rest, complete_rest))
    return rows

"""The four-stage LITv2 network shared by the multi-scale backbone
(``litv2.backbone``) and the ImageNet classifier (``litv2.classifier``):
patch embedding, then per stage a stack of blocks followed (except in the
last stage) by deformable token merging. Plain PyTorch."""
import math
import numbers
from typing import Callable, List, Optional, Sequence, Tuple

import torch
import torch.utils.checkpoint as cp
from torch import nn

from .blocks import LITv2Block
from .dtm import DeformableTokenMerging
from .fast_paths import channels_last_image
from .hilo import check_alpha, check_num_heads
from .layers import contiguous_grad, pad_to_multiple


class PatchEmbed(nn.Module):
    """Non-overlapping ``patch_size`` convolution + norm; returns
    ``(B, H, W, C)``.

    The image is zero-padded right/bottom to a multiple of the patch size.
    """

    def __init__(self, in_channels: int, embed_dim: int, patch_size: int,
                 norm_layer: Optional[Callable[[int], nn.Module]]):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_channels, embed_dim, patch_size,
                              stride=patch_size)
        self.norm = norm_layer(embed_dim) if norm_layer is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = pad_to_multiple(x, self.patch_size)
        # In inference, a channels-last image: the conv then writes the
        # (B, H, W, C) tokens directly (litv2.fast_paths).
        x = channels_last_image(x)
        x = self.proj(x).permute(0, 2, 3, 1)
        if self.norm is not None:
            return self.norm(x)
        return x.contiguous()


class LITv2Stage(nn.Module):
    """The blocks of one stage, then (except in the last stage) a DTM
    (``downsample``, None in the last stage)."""

    def __init__(self, blocks: Sequence[nn.Module],
                 downsample: Optional[nn.Module], use_checkpoint: bool):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.downsample = downsample
        self.use_checkpoint = use_checkpoint

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the blocks; the DTM is applied by the caller after the output
        of this stage has been taken."""
        for block in self.blocks:
            if (self.use_checkpoint and not torch.jit.is_scripting()
                    and x.requires_grad):
                x = cp.checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return contiguous_grad(x)


def init_litv2_weights(module: nn.Module) -> None:
    """The reference's initialisation for one module (use with ``apply``)."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Conv2d) and module.groups > 1:
        fan_out = (module.kernel_size[0] * module.kernel_size[1] *
                   module.out_channels // module.groups)
        nn.init.normal_(module.weight, 0, math.sqrt(2.0 / fan_out))
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def as_stage_list(name: str, value) -> list:
    """A per-stage argument as a list; a bare number is refused, naming
    ``name``."""
    if isinstance(value, (int, float)):
        raise ValueError(f'{name} must be a sequence with one entry per '
                         f'stage, got {value!r}')
    return list(value)


def check_trunk_args(embed_dim, depths, num_heads, local_ws, has_msa, alpha,
                     mlp_ratio, drop_rate, attn_drop_rate, drop_path_rate,
                     patch_size, in_channels) -> None:
    """Raise ``ValueError`` naming the first invalid architecture argument."""
    num_stages = len(depths)
    if num_stages == 0:
        raise ValueError('depths must name at least one stage')
    lengths = dict(depths=len(depths), num_heads=len(num_heads),
                   local_ws=len(local_ws))
    if has_msa is not None:
        lengths['has_msa'] = len(has_msa)
    if len(set(lengths.values())) > 1:
        raise ValueError('depths, num_heads, local_ws (and has_msa) need '
                         f'one entry per stage; got lengths {lengths}')
    if not isinstance(embed_dim, int) or embed_dim <= 0:
        raise ValueError(f'embed_dim must be a positive int, got '
                         f'{embed_dim!r}')
    for name, value in (('patch_size', patch_size),
                        ('in_channels', in_channels)):
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f'{name} must be a positive int, got '
                             f'{value!r}')
    check_alpha(alpha)
    for name, value in (('mlp_ratio', mlp_ratio), ('drop_rate', drop_rate),
                        ('attn_drop_rate', attn_drop_rate),
                        ('drop_path_rate', drop_path_rate)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValueError(f'{name} must be a number, got {value!r} '
                             f'({type(value).__name__})')
    if mlp_ratio <= 0:
        raise ValueError(f'mlp_ratio must be > 0, got {mlp_ratio}')
    for name, rate in (('drop_rate', drop_rate),
                       ('attn_drop_rate', attn_drop_rate),
                       ('drop_path_rate', drop_path_rate)):
        if not 0.0 <= rate < 1.0:
            raise ValueError(f'{name} must be in [0, 1), got {rate}')
    for i in range(num_stages):
        if not isinstance(depths[i], int) or depths[i] < 1:
            raise ValueError(f'depths[{i}] must be a positive int, got '
                             f'{depths[i]!r}')
        if not isinstance(local_ws[i], int) or local_ws[i] < 0:
            raise ValueError(f'local_ws[{i}] must be an int >= 0 (0 = no '
                             f'attention), got {local_ws[i]!r}')
        if has_msa is not None and bool(has_msa[i]) != (local_ws[i] > 0):
            raise ValueError(
                f'has_msa[{i}]={has_msa[i]} disagrees with local_ws[{i}]='
                f'{local_ws[i]}: a stage has attention exactly when its '
                'window is >= 1')
        if local_ws[i] > 0:
            dim = embed_dim * 2**i
            check_num_heads(num_heads[i], dim, f'num_heads[{i}]',
                            f'the stage width {dim} (embed_dim * 2**{i})')


class LITv2Trunk(nn.Module):
    """Patch embedding (``patch_embed``) and the stages (``layers``) of LITv2.

    Subclasses add their outputs: the multi-scale backbone its per-stage
    output norms, the classifier its final norm and head. Module names follow
    the reference implementation, so its checkpoints load unchanged.

    Args:
        embed_dim: channels of stage 1; stage ``i`` has ``embed_dim * 2**i``.
        depths: blocks per stage.
        num_heads: attention heads per stage.
        mlp_ratio: hidden width of ConvFFN relative to its input.
        qkv_bias: bias in HiLo's q/k/v projections.
        qk_scale: override of the attention scale ``head_dim ** -0.5``.
        drop_rate: dropout after HiLo's and ConvFFN's projections.
        attn_drop_rate: dropout on attention probabilities (the reference
            accepted it without using it; its configs all set 0).
        drop_path_rate: stochastic depth, growing linearly from 0 over all
            blocks.
        alpha: share of each HiLo layer's heads given to Lo-Fi, in [0, 1].
        local_ws: HiLo window size ``s`` per stage; 0 = no attention in that
            stage, 1 = plain global multi-head self-attention.
        has_msa: optional per-stage attention flags, as the reference configs
            give them; must agree with ``local_ws`` (derived from it if
            None).
        use_checkpoint: gradient checkpointing of every block (saves
            memory).
        patch_norm: norm after the patch embedding.
        in_channels: image channels.
        patch_size: side of the patch embedding's patches.
        norm_layer: ``norm_layer(channels)`` builds the token norms
            (LayerNorm).
        dtm_norm_layer: ``dtm_norm_layer(channels)`` builds the norm after
            each DTM (BatchNorm2d).
    """

    def __init__(self,
                 embed_dim: int = 96,
                 depths: Sequence[int] = (2, 2, 6, 2),
                 num_heads: Sequence[int] = (3, 6, 12, 24),
                 mlp_ratio: float = 4.0,
                 qkv_bias: bool = True,
                 qk_scale: Optional[float] = None,
                 drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0,
                 drop_path_rate: float = 0.2,
                 alpha: float = 0.9,
                 local_ws: Sequence[int] = (0, 0, 2, 1),
                 has_msa: Optional[Sequence[int]] = None,
                 use_checkpoint: bool = False,
                 patch_norm: bool = True,
                 in_channels: int = 3,
                 patch_size: int = 4,
                 norm_layer: Callable[[int], nn.Module] = nn.LayerNorm,
                 dtm_norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d):
        super().__init__()
        depths = as_stage_list('depths', depths)
        num_heads = as_stage_list('num_heads', num_heads)
        local_ws = as_stage_list('local_ws', local_ws)
        check_trunk_args(embed_dim, depths, num_heads, local_ws, has_msa,
                         alpha, mlp_ratio, drop_rate, attn_drop_rate,
                         drop_path_rate, patch_size, in_channels)
        self.embed_dim = embed_dim
        self.depths = depths
        self.num_heads = num_heads
        self.alpha = alpha
        self.local_ws = local_ws
        self.num_layers = len(depths)
        self.stage_channels: List[int] = [
            embed_dim * 2**i for i in range(self.num_layers)]

        self.patch_embed = PatchEmbed(in_channels, embed_dim, patch_size,
                                      norm_layer if patch_norm else None)
        block_drop_path = torch.linspace(0, drop_path_rate,
                                         sum(depths)).tolist()
        self.layers = nn.ModuleList()
        for i, (depth, heads, window) in enumerate(
                zip(depths, num_heads, local_ws)):
            dim = self.stage_channels[i]
            first = sum(depths[:i])
            blocks = [
                LITv2Block(dim, heads, window, alpha, mlp_ratio=mlp_ratio,
                           qkv_bias=qkv_bias, qk_scale=qk_scale,
                           drop=drop_rate, attn_drop=attn_drop_rate,
                           drop_path=block_drop_path[first + j],
                           norm_layer=norm_layer) for j in range(depth)
            ]
            downsample = (DeformableTokenMerging(dim, 2 * dim, dtm_norm_layer)
                          if i < self.num_layers - 1 else None)
            self.layers.append(LITv2Stage(blocks, downsample, use_checkpoint))

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Gradient checkpointing of every block (in grad mode)."""
        for stage in self.layers:
            stage.use_checkpoint = enable

    def forward_stages(self, x: torch.Tensor, take: List[int],
                       stop: int) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """The stage loop of every model on the trunk.

        Patch embedding, then stages ``0 .. stop``, each followed by its DTM
        except the last one run. Returns the output of stage ``stop``
        (``(B, H, W, C)``, before any DTM) and, in stage order,
        :meth:`stage_output` of each stage in ``take``.
        """
        x = self.patch_embed(x)
        outs: List[torch.Tensor] = []
        for i, stage in enumerate(self.layers):
            if i <= stop:
                x = stage(x)
                if i in take:
                    outs.append(self.stage_output(i, x))
                if i < stop:
                    # (nested: TorchScript compiles the last stage's body
                    # only if its missing DTM is tested on its own)
                    if stage.downsample is not None:
                        x = stage.downsample(x)
        return x, outs

    def stage_output(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """What :meth:`forward_stages` keeps of stage ``i``'s output ``x``:
        ``x`` itself here; the backbone overrides it."""
        return x

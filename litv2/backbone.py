"""The LITv2 backbone, shared by the mmdet, mmseg and timm integrations."""
import math
import warnings
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmcv.cnn import build_norm_layer
from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_
from torch import nn

from .blocks import LITv2Block
from .checkpoint import extract_backbone_state_dict, read_checkpoint
from .dtm import DeformableTokenMerging


class PatchEmbed(nn.Module):
    """Non-overlapping ``patch_size`` convolution + norm; returns ``(B, H, W, C)``.

    The image is zero-padded right/bottom to a multiple of the patch size.
    """

    def __init__(self, in_channels: int, embed_dim: int, patch_size: int,
                 norm_cfg: Optional[dict]):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_channels, embed_dim, patch_size,
                              stride=patch_size)
        self.norm = (build_norm_layer(norm_cfg, embed_dim)[1]
                     if norm_cfg is not None else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.patch_size
        pad_b, pad_r = (-x.shape[2]) % p, (-x.shape[3]) % p
        if pad_b or pad_r:
            x = F.pad(x, (0, pad_r, 0, pad_b))
        x = self.proj(x).permute(0, 2, 3, 1)
        return self.norm(x) if self.norm is not None else x.contiguous()


class _ContiguousGrad(torch.autograd.Function):
    """Identity whose backward makes the incoming gradient contiguous.

    The stage output feeds layout-changing ops (the NCHW output copy, DTM's
    grid_sample), whose backward hands back NCHW-strided gradients. Without
    this, that layout would run back through the whole residual stream and
    every linear layer's backward would copy it first.
    """

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad.contiguous()


class LITv2Stage(nn.Module):
    """The blocks of one stage, then (except in the last stage) a DTM."""

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
            if self.use_checkpoint and x.requires_grad:
                x = cp.checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return _ContiguousGrad.apply(x) if x.requires_grad else x


def _as_list(name: str, value) -> list:
    if isinstance(value, (int, float)):
        raise ValueError(f'{name} must be a sequence with one entry per '
                         f'stage, got {value!r}')
    return list(value)


def init_litv2_weights(module: nn.Module) -> None:
    """The reference's initialisation for one module (use with ``apply``)."""
    if isinstance(module, nn.Linear):
        trunc_normal_(module.weight, std=0.02)
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


class LITv2(BaseModule):
    """LITv2 backbone (Pan et al., "Fast Vision Transformers with HiLo
    Attention", NeurIPS 2022).

    Four stages: a 4x4 patch embedding, then per stage a stack of blocks
    (ConvFFN only where ``local_ws`` is 0, HiLo + ConvFFN otherwise) followed by
    deformable token merging (DTM) into the next stage. Returns the selected
    stages' features as NCHW maps with strides 4, 8, 16, 32; stages other than
    the first pass through a LayerNorm (``norm{i}``) first.

    Parameter names follow the reference implementation, so its released
    ImageNet, detection and segmentation checkpoints load unchanged.

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
            give them; must agree with ``local_ws`` (derived from it if None).
        out_indices: stages whose features are returned.
        frozen_stages: freeze the patch embedding (0) and stages
            ``0 .. frozen_stages - 1`` with their DTM and output norm; -1
            freezes nothing.
        use_checkpoint: gradient checkpointing of every block (saves memory).
        patch_norm: LayerNorm after the patch embedding.
        in_channels: image channels.
        patch_size: side of the patch embedding's patches.
        norm_cfg: the token norm layers (LayerNorm by default).
        dtm_norm_cfg: the norm after each DTM (BatchNorm by default).
        window_size: accepted because the reference configs pass
            ``window_size=7`` (left over from Swin); it has no meaning in LITv2
            (HiLo's window is ``local_ws``), so any value other than None
            warns that it is ignored.
        ape: absolute position embedding; LITv2 has none, so only False is
            accepted (the reference configs pass ``ape=False``).
        init_cfg: mmengine initialisation config; ``dict(type='Pretrained',
            checkpoint=...)`` loads an ImageNet, detection or segmentation
            checkpoint of the reference (``prefix`` optional).
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
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 use_checkpoint: bool = False,
                 patch_norm: bool = True,
                 in_channels: int = 3,
                 patch_size: int = 4,
                 norm_cfg: dict = dict(type='LN'),
                 dtm_norm_cfg: dict = dict(type='BN'),
                 window_size: Optional[int] = None,
                 ape: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        depths = _as_list('depths', depths)
        num_heads = _as_list('num_heads', num_heads)
        local_ws = _as_list('local_ws', local_ws)
        if isinstance(out_indices, int):
            out_indices = (out_indices, )
        out_indices = tuple(out_indices)
        self._check_args(embed_dim, depths, num_heads, local_ws, has_msa,
                         alpha, mlp_ratio, out_indices, frozen_stages,
                         drop_rate, attn_drop_rate, drop_path_rate, ape,
                         patch_size, in_channels)
        if window_size is not None:
            warnings.warn(
                f'LITv2: window_size={window_size} is ignored; it is a Swin '
                'leftover in the reference configs. HiLo\'s window is set '
                'per stage by local_ws.', stacklevel=2)

        self.embed_dim = embed_dim
        self.depths = depths
        self.num_heads = num_heads
        self.alpha = alpha
        self.local_ws = local_ws
        self.out_indices = out_indices
        self.frozen_stages = frozen_stages
        self.num_layers = len(depths)
        self.num_features = [embed_dim * 2**i for i in range(self.num_layers)]

        self.patch_embed = PatchEmbed(in_channels, embed_dim, patch_size,
                                      norm_cfg if patch_norm else None)
        block_drop_path = torch.linspace(0, drop_path_rate,
                                         sum(depths)).tolist()
        self.layers = nn.ModuleList()
        for i, (depth, heads, window) in enumerate(
                zip(depths, num_heads, local_ws)):
            dim = self.num_features[i]
            first = sum(depths[:i])
            blocks = [
                LITv2Block(dim, heads, window, alpha, mlp_ratio=mlp_ratio,
                           qkv_bias=qkv_bias, qk_scale=qk_scale,
                           drop=drop_rate, attn_drop=attn_drop_rate,
                           drop_path=block_drop_path[first + j],
                           norm_cfg=norm_cfg) for j in range(depth)
            ]
            downsample = (DeformableTokenMerging(dim, 2 * dim, dtm_norm_cfg)
                          if i < self.num_layers - 1 else None)
            self.layers.append(LITv2Stage(blocks, downsample, use_checkpoint))
        # Output norms of every returned stage but the first, as in the
        # reference (and with its names: norm1, norm2, norm3).
        for i in out_indices:
            if i > 0:
                self.add_module(f'norm{i}',
                                build_norm_layer(norm_cfg,
                                                 self.num_features[i])[1])
        self.apply(init_litv2_weights)
        self._freeze_stages()

    @staticmethod
    def _check_args(embed_dim, depths, num_heads, local_ws, has_msa, alpha,
                    mlp_ratio, out_indices, frozen_stages, drop_rate,
                    attn_drop_rate, drop_path_rate, ape, patch_size,
                    in_channels):
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
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f'alpha must be in [0, 1], got {alpha}')
        if mlp_ratio <= 0:
            raise ValueError(f'mlp_ratio must be > 0, got {mlp_ratio}')
        for name, rate in (('drop_rate', drop_rate),
                           ('attn_drop_rate', attn_drop_rate),
                           ('drop_path_rate', drop_path_rate)):
            if not 0.0 <= rate < 1.0:
                raise ValueError(f'{name} must be in [0, 1), got {rate}')
        if ape:
            raise ValueError('ape=True: LITv2 has no absolute position '
                             'embedding')
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
            dim = embed_dim * 2**i
            if local_ws[i] > 0 and (not isinstance(num_heads[i], int)
                                    or num_heads[i] < 1
                                    or dim % num_heads[i]):
                raise ValueError(f'num_heads[{i}]={num_heads[i]!r} must be a '
                                 f'positive divisor of the stage width '
                                 f'{dim} (embed_dim * 2**{i})')
        for i in out_indices:
            if not isinstance(i, int) or not 0 <= i < num_stages:
                raise ValueError(f'out_indices entries must be in [0, '
                                 f'{num_stages}), got {out_indices}')
        if len(set(out_indices)) != len(out_indices) or not out_indices:
            raise ValueError(f'out_indices must be distinct and non-empty, '
                             f'got {out_indices}')
        if not isinstance(frozen_stages, int) or not (
                -1 <= frozen_stages <= num_stages):
            raise ValueError(f'frozen_stages must be in [-1, {num_stages}], '
                             f'got {frozen_stages!r}')

    def _frozen_modules(self):
        if self.frozen_stages >= 0:
            yield self.patch_embed
        for i in range(self.frozen_stages):
            yield self.layers[i]
            if i in self.out_indices and i > 0:
                yield getattr(self, f'norm{i}')

    def _freeze_stages(self):
        for module in self._frozen_modules():
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True):
        """Set the mode; frozen stages stay in eval mode (their BN too)."""
        super().train(mode)
        self._freeze_stages()
        return self

    def init_weights(self):
        """Apply ``init_cfg``; without one, the reference's initialisation
        done at construction stands."""
        cfg = self.init_cfg
        if isinstance(cfg, dict) and cfg.get('type') == 'Pretrained':
            if 'checkpoint' not in cfg:
                raise KeyError("init_cfg of type 'Pretrained' needs a "
                               "'checkpoint' key")
            self.load_pretrained(cfg['checkpoint'], prefix=cfg.get('prefix'))
            self._is_init = True
        elif cfg is not None:  # other mmengine initialisers on top
            super().init_weights()

    def load_pretrained(self, filename: str, prefix: Optional[str] = None):
        """Load an ImageNet, detection or segmentation checkpoint.

        Raises if a backbone key is missing from the file or a key of the file
        has no place in the backbone; the only exceptions, logged, are the
        classifier's head/final norm, and the output norms ``norm{i}``, which
        ImageNet checkpoints do not have and which exist only for the stages
        in ``out_indices``.
        """
        state, dropped = extract_backbone_state_dict(
            read_checkpoint(filename), prefix)
        own = self.state_dict()
        output_norm = [f'norm{i}.' for i in range(1, self.num_layers)]
        unused = sorted(k for k in state if k not in own and any(
            k.startswith(p) for p in output_norm))
        missing = sorted(k for k in own if k not in state)
        fresh = [k for k in missing if any(k.startswith(p)
                                           for p in output_norm)]
        if fresh and any(k.startswith(tuple(output_norm)) for k in state):
            fresh = []  # the file has output norms: all of ours must be there
        missing = [k for k in missing if k not in fresh]
        unexpected = sorted(k for k in state if k not in own
                            and k not in unused)
        mismatched = sorted(f'{k}: file {tuple(state[k].shape)} vs model '
                            f'{tuple(own[k].shape)}' for k in state
                            if k in own and state[k].shape != own[k].shape)
        if missing or unexpected or mismatched:
            raise KeyError(
                f'checkpoint {filename!r} does not fit this LITv2 '
                f'(embed_dim={self.embed_dim}, depths={self.depths}, '
                f'local_ws={self.local_ws}, alpha={self.alpha}): '
                f'missing keys {missing}, unexpected keys {unexpected}, '
                f'shape mismatches {mismatched}')
        self.load_state_dict({k: v for k, v in state.items() if k in own},
                             strict=False)
        notes = []
        if dropped:
            notes.append(f'classifier keys not used: {_summary(dropped)}')
        if unused:
            notes.append('output norms of stages not in out_indices: '
                         f'{_summary(unused)}')
        if fresh:
            notes.append('output norms not in the file, initialised fresh: '
                         f'{_summary(fresh)}')
        print_log(f'LITv2: loaded {filename}' +
                  ('; ' + '; '.join(notes) if notes else ''),
                  logger='current')

    def forward(self, x: torch.Tensor):
        """``x``: ``(B, C, H, W)`` images; returns a tuple of NCHW maps."""
        x = self.patch_embed(x)
        outs = []
        for i, stage in enumerate(self.layers):
            x = stage(x)
            if i in self.out_indices:
                out = getattr(self, f'norm{i}')(x) if i > 0 else x
                outs.append(out.permute(0, 3, 1, 2).contiguous())
            if stage.downsample is not None and i < max(self.out_indices):
                x = stage.downsample(x)
        return tuple(outs)


def _summary(keys: list) -> str:
    roots = sorted({k.split('.')[0] for k in keys})
    return f'{len(keys)} keys under {roots}'

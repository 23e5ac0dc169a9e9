"""The LITv2 backbone for mmdet / mmseg configs: the plain-PyTorch
``litv2.LITv2Backbone`` as an mmengine ``BaseModule``, with the config-facing
arguments (``norm_cfg``, ``dtm_norm_cfg``, ``init_cfg``, the reference
configs' ``window_size`` / ``ape``)."""
import copy
import functools
import warnings
from typing import Optional, Sequence

from mmcv.cnn import build_norm_layer
from mmengine.logging import print_log
from mmengine.model import BaseModule
from torch import nn

from litv2.backbone import LITv2Backbone, key_summary
from litv2.checkpoint import extract_backbone_state_dict

from .checkpoint import read_checkpoint


def _norm_from_cfg(cfg: dict, channels: int) -> nn.Module:
    return build_norm_layer(cfg, channels)[1]


def norm_layer_from_cfg(cfg: dict):
    """``cfg`` (mmcv's norm config: ``dict(type='LN')``, ``'BN'``,
    ``'SyncBN'``, ``'GN'`` ...) as the ``norm_layer(channels)`` callable of
    the plain-PyTorch model, built by mmcv's ``build_norm_layer``."""
    return functools.partial(_norm_from_cfg, cfg)


class LITv2(LITv2Backbone, BaseModule):
    """LITv2 backbone (Pan et al., "Fast Vision Transformers with HiLo
    Attention", NeurIPS 2022), registered as ``LITv2`` by ``mmdet_litv2`` and
    ``mmseg_litv2``.

    Four stages: a 4x4 patch embedding, then per stage a stack of blocks
    (ConvFFN only where ``local_ws`` is 0, HiLo + ConvFFN otherwise)
    followed by deformable token merging (DTM) into the next stage. Returns
    the selected stages' features as NCHW maps with strides 4, 8, 16, 32;
    stages other than the first pass through a LayerNorm (``norm{i}``)
    first. The network is ``litv2.LITv2Backbone``; this class adds
    mmengine's initialisation.

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
        if ape:
            raise ValueError('ape=True: LITv2 has no absolute position '
                             'embedding')
        # LITv2Trunk.__init__ runs BaseModule.__init__ (init_cfg None) next
        # in the MRO; init_cfg is set below.
        super().__init__(
            embed_dim=embed_dim, depths=depths, num_heads=num_heads,
            mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, qk_scale=qk_scale,
            drop_rate=drop_rate, attn_drop_rate=attn_drop_rate,
            drop_path_rate=drop_path_rate, alpha=alpha, local_ws=local_ws,
            has_msa=has_msa, out_indices=out_indices,
            frozen_stages=frozen_stages, use_checkpoint=use_checkpoint,
            patch_norm=patch_norm, in_channels=in_channels,
            patch_size=patch_size, norm_layer=norm_layer_from_cfg(norm_cfg),
            dtm_norm_layer=norm_layer_from_cfg(dtm_norm_cfg))
        self.init_cfg = copy.deepcopy(init_cfg)
        if window_size is not None:
            warnings.warn(
                f'LITv2: window_size={window_size} is ignored; it is a Swin '
                'leftover in the reference configs. HiLo\'s window is set '
                'per stage by local_ws.', stacklevel=2)

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
            read_checkpoint(filename), prefix, f'checkpoint {filename!r}')
        notes = self.load_backbone_state_dict(state, filename)
        if dropped:
            notes.insert(0, 'classifier keys not used: '
                         f'{key_summary(dropped)}')
        print_log(f'LITv2: loaded {filename}' +
                  ('; ' + '; '.join(notes) if notes else ''),
                  logger='current')

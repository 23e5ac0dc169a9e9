"""The LITv2 backbone for mmdet / mmseg configs: the plain-PyTorch
``litv2.LITv2Backbone`` as an mmengine ``BaseModule``, with the config-facing
arguments (``norm_cfg``, ``dtm_norm_cfg``, ``init_cfg``, the reference
configs' ``window_size`` / ``ape``)."""
import copy
import functools
import warnings
from typing import Optional

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
        **backbone_kwargs: the architecture and the outputs, as
            :class:`litv2.LITv2Backbone` takes them and
            :class:`litv2.trunk.LITv2Trunk` documents them (``embed_dim``,
            ``depths``, ``num_heads``, ``alpha``, ``local_ws``,
            ``out_indices``, ``frozen_stages``, ``drop_path_rate``, ...),
            with the same defaults.
        norm_cfg: the token norm layers (LayerNorm by default), built by
            mmcv's ``build_norm_layer``.
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
                 *,
                 norm_cfg: dict = dict(type='LN'),
                 dtm_norm_cfg: dict = dict(type='BN'),
                 window_size: Optional[int] = None,
                 ape: bool = False,
                 init_cfg: Optional[dict] = None,
                 **backbone_kwargs):
        if ape:
            raise ValueError('ape=True: LITv2 has no absolute position '
                             'embedding')
        for name in ('norm_layer', 'dtm_norm_layer'):
            if name in backbone_kwargs:
                raise ValueError(f'{name}: the config gives it as '
                                 f'{name[:-6]}_cfg')
        # LITv2Trunk.__init__ runs BaseModule.__init__ (init_cfg None) next
        # in the MRO; init_cfg is set below.
        super().__init__(norm_layer=norm_layer_from_cfg(norm_cfg),
                         dtm_norm_layer=norm_layer_from_cfg(dtm_norm_cfg),
                         **backbone_kwargs)
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

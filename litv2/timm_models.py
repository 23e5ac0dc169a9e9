"""The paper's ImageNet classifiers in timm's model registry.

``import litv2`` (when timm is installed) registers ``litv2_s``, ``litv2_m``,
``litv2_b`` (224 x 224) and ``litv2_b_384``; they need only torch and timm::

    timm.create_model('litv2_s', pretrained=True)  # released weights
    timm.create_model('litv2_s', pretrained=True, num_classes=10,
                      pretrained_cfg_overlay=dict(file='litv2_s.pth'))
    timm.create_model('litv2_s', features_only=True, out_indices=(1, 2, 3))

and timm's ``train.py`` / ``validate.py`` (``--model litv2_s``) work once the
package is imported. ``pretrained=True`` downloads the reference's release
(github.com/ziplab/LITv2, releases v1.0); ``pretrained_cfg_overlay=dict(file=
...)`` reads a local copy instead. ``features_only=True`` gives the four stage
outputs as NCHW maps (strides 4, 8, 16, 32) through ``forward_intermediates``.
"""
import functools

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import (
    build_model_with_cfg,
    generate_default_cfgs,
    register_model,
    register_notrace_function,
    register_notrace_module,
    resolve_pretrained_cfg,
)
from timm.models._hub import download_cached_file

from .archs import LITV2_ARCHS, local_windows
from .checkpoint import (
    check_state_dict_fits,
    read_checkpoint_file,
    unwrap_state_dict,
)
from .classifier import LITv2Classifier
from .dtm import DeformConv2dWithBias
from .fast_paths import GELU, Linear, channels_last_image
from .hilo import window_attention
from .layers import (
    contiguous_grad,
    crop_tokens,
    pad_to_min_size,
    pad_to_multiple,
)
from .paper_figures import CLASSIFIERS, weights_url

# torch.fx (timm's features_only='fx', FX feature extraction): the padding
# helpers decide on the input size, contiguous_grad on requires_grad,
# window_attention on the dtype, channels_last_image on grad mode; each is
# kept as one call in the graph.
# The deformable conv is one leaf module (it checks its input size and
# builds its sampling grid from it), and so are the two modules of the
# inference fast paths (litv2.fast_paths): traced through, they would
# record the plain ops, and a graph run in inference would round
# differently from eager (timm's FX test asks for equal outputs).
for _fn in (pad_to_multiple, crop_tokens, pad_to_min_size, contiguous_grad,
            window_attention, channels_last_image):
    register_notrace_function(_fn)
del _fn
register_notrace_module(DeformConv2dWithBias)
register_notrace_module(GELU)
register_notrace_module(Linear)

# Per model: architecture and stochastic depth of the reference's ImageNet
# configs (resolution and released weights: litv2.paper_figures). The
# paper's classifiers use HiLo with window 2 and alpha 0.9.
_MODELS = {
    'litv2_s': dict(arch='s', drop_path_rate=0.2),
    'litv2_m': dict(arch='m', drop_path_rate=0.3),
    'litv2_b': dict(arch='b', drop_path_rate=0.5),
    'litv2_b_384': dict(arch='b', drop_path_rate=0.5),
}


def _cfg(variant: str, **overrides) -> dict:
    # Evaluation transform of the reference: bicubic resize of the short side
    # to 256/224 of the crop, centre crop (224); B-384 squashes the whole
    # image to 384 x 384 without cropping.
    paper = CLASSIFIERS[variant]
    input_size = paper.resolution
    cfg = dict(url=weights_url(paper.weights),
               num_classes=1000,
               input_size=(3, input_size, input_size),
               pool_size=(input_size // 32, input_size // 32),
               crop_pct=0.875,
               interpolation='bicubic',
               mean=IMAGENET_DEFAULT_MEAN,
               std=IMAGENET_DEFAULT_STD,
               first_conv='patch_embed.proj',
               classifier='head',
               license='apache-2.0',
               paper_ids='arXiv:2205.13213',
               paper_name='Fast Vision Transformers with HiLo Attention',
               origin_url='https://github.com/ziplab/LITv2')
    cfg.update(overrides)
    return cfg


default_cfgs = generate_default_cfgs({
    'litv2_s.in1k': _cfg('litv2_s'),
    'litv2_m.in1k': _cfg('litv2_m'),
    'litv2_b.in1k': _cfg('litv2_b'),
    'litv2_b_384.in1k': _cfg('litv2_b_384', crop_pct=1.0,
                             crop_mode='squash'),
})


def checkpoint_filter_fn(state_dict: dict, model=None,
                         source: str = 'the checkpoint') -> dict:
    """The state dict inside a checkpoint, checked against ``model``.

    The released files are ``{'model': {...}}`` (with other training state
    beside it); timm's file loader unwraps ``'model'`` itself, the URL loader
    does not. Every layout of :func:`litv2.checkpoint.unwrap_state_dict` is
    accepted (``module.`` prefixes removed), the same unwrapping as the
    detection backbone's loader. Keys are the classifier's own, so nothing
    is renamed. timm loads non-strictly when it replaces the head (another
    ``num_classes``), so every key other than the head's is checked here,
    by the check every loader of the project uses
    (:func:`litv2.checkpoint.check_state_dict_fits`): a file that does not
    fit raises ``CheckpointMismatchError`` in one line saying what it is.
    """
    state_dict = unwrap_state_dict(state_dict, source)
    if model is not None:
        check_state_dict_fits(
            state_dict, model.state_dict(), source,
            f'an ImageNet classifier {type(model).__name__} (embed_dim='
            f'{model.embed_dim}, depths={model.depths})',
            'Give the ImageNet checkpoint of this LITv2 variant (a detection '
            "or segmentation file initialises the mmdet/mmseg 'LITv2' "
            "backbone through init_cfg, not timm's classifier)",
            exempt=lambda key: key.startswith('head.'))
    return state_dict


def _read_pretrained_as_data(variant: str, pretrained: bool,
                             model_args: dict) -> str:
    """Read the pretrained file (``pretrained_cfg_overlay=dict(file=...)``
    or the release's URL, cached by timm) with this project's reader
    (:func:`litv2.checkpoint.read_checkpoint_file`: data only, the
    reference's training files with their yacs config included) and hand
    timm the result as ``pretrained_cfg_overlay['state_dict']``; timm then
    filters and adapts it as usual. timm's own reader would refuse the
    reference's config object. Returns the source, in words."""
    if not pretrained:
        return 'the checkpoint'
    overlay = dict(model_args.get('pretrained_cfg_overlay') or {})
    if overlay.get('state_dict') is not None:
        return 'the state dict of pretrained_cfg_overlay'
    source = overlay.get('file')
    if not source:
        cfg = resolve_pretrained_cfg(
            variant, pretrained_cfg=model_args.get('pretrained_cfg'),
            pretrained_cfg_overlay=overlay)
        if cfg.file:
            source = cfg.file
        elif cfg.url and not cfg.hf_hub_id:
            source = download_cached_file(cfg.url)
        else:  # another source (HF hub ...): timm reads it
            return 'the checkpoint'
    overlay['state_dict'] = read_checkpoint_file(source, 'cpu')
    model_args['pretrained_cfg_overlay'] = overlay
    return f'checkpoint {str(source)!r}'


def _create(variant: str, pretrained: bool = False, **kwargs):
    spec = _MODELS[variant]
    model_args = dict(LITV2_ARCHS[spec['arch']], alpha=0.9,
                      local_ws=local_windows(2),
                      drop_path_rate=spec['drop_path_rate'])
    model_args.update(kwargs)
    source = _read_pretrained_as_data(variant, pretrained, model_args)
    num_stages = len(model_args['depths'])
    out_indices = model_args.pop('out_indices', tuple(range(num_stages)))
    # features_only: the stage outputs come from forward_intermediates
    # (FeatureGetterNet); a stage's output is taken before its DTM, which
    # hooks on whole modules could not do.
    return build_model_with_cfg(
        LITv2Classifier, variant, pretrained,
        pretrained_filter_fn=functools.partial(checkpoint_filter_fn,
                                               source=source),
        feature_cfg=dict(feature_cls='getter', out_indices=out_indices),
        **model_args)


@register_model
def litv2_s(pretrained: bool = False, **kwargs) -> LITv2Classifier:
    """LITv2-S, 224 x 224 (28 M parameters)."""
    return _create('litv2_s', pretrained, **kwargs)


@register_model
def litv2_m(pretrained: bool = False, **kwargs) -> LITv2Classifier:
    """LITv2-M, 224 x 224 (49 M parameters)."""
    return _create('litv2_m', pretrained, **kwargs)


@register_model
def litv2_b(pretrained: bool = False, **kwargs) -> LITv2Classifier:
    """LITv2-B, 224 x 224 (87 M parameters)."""
    return _create('litv2_b', pretrained, **kwargs)


@register_model
def litv2_b_384(pretrained: bool = False, **kwargs) -> LITv2Classifier:
    """LITv2-B fine-tuned at 384 x 384 (87 M parameters)."""
    return _create('litv2_b_384', pretrained, **kwargs)

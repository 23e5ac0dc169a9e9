"""Checking a model config before anything is built or read: the channels
that the neck (or a head reading the backbone directly) expects must be the
widths of the LITv2 backbone's outputs.

Without the check, a wrong ``neck.in_channels`` builds a model that fails
only inside its first forward pass, with a convolution's shape error that
names neither list. :func:`check_backbone_widths` raises
:class:`ModelConfigError` naming both lists and the config keys to change;
the tools call it right after ``--cfg-options`` are merged.
"""
import ast
import inspect
from typing import List, Optional

from litv2.backbone import check_out_indices

from .backbone import LITv2


class ModelConfigError(ValueError):
    """The model config cannot give a working model; the message names the
    keys to change."""


class ConfigFileError(ModelConfigError):
    """The config file cannot be read (a syntax error ...); the message
    names the file and the line."""


def read_config(path: str):
    """``mmengine.Config.fromfile(path)``, with a syntax error reported as
    :class:`ConfigFileError` naming the file and line (mmengine names the
    file ``<unknown>``)."""
    from mmengine.config import Config
    try:
        return Config.fromfile(path)
    except SyntaxError as err:
        where, detail = path, err
        try:  # the config itself, or one of its _base_ files?
            with open(path, encoding='utf-8') as f:
                ast.parse(f.read(), filename=path)
            where = f'{path} (or one of its _base_ files)'
        except SyntaxError as own:
            detail = own
        except OSError:
            pass
        text = (detail.text or '').strip()
        raise ConfigFileError(
            f'config {where!r}: syntax error'
            + (f' at line {detail.lineno}' if detail.lineno else '')
            + f': {detail.msg}' + (f': {text}' if text else '')) from None


def _default(name):
    """The default of LITv2's argument ``name``, from the first class of its
    MRO whose ``__init__`` names it (the architecture's are the trunk's)."""
    for cls in LITv2.__mro__:
        param = inspect.signature(cls.__init__).parameters.get(name)
        if param is not None and param.default is not inspect.Parameter.empty:
            return param.default
    raise KeyError(f'LITv2 has no argument {name!r} with a default')


def litv2_output_widths(backbone: dict) -> Optional[List[int]]:
    """The channels of the feature maps that a ``type='LITv2'`` backbone
    config returns (``embed_dim * 2**i`` for ``i`` in ``out_indices``, in
    stage order); None for another backbone type."""
    if not isinstance(backbone, dict) or backbone.get('type') not in (
            'LITv2', LITv2, 'mmdet.LITv2', 'mmseg.LITv2'):
        return None
    embed_dim = backbone.get('embed_dim', _default('embed_dim'))
    out_indices = _checked_out_indices(backbone)
    return [embed_dim * 2**i for i in sorted(out_indices)]


def _checked_out_indices(backbone: dict) -> tuple:
    """The backbone's ``out_indices``, checked by the backbone's own check
    (a stage that does not exist is the backbone's error, reported before
    any neck is compared with it)."""
    depths = backbone.get('depths', _default('depths'))
    try:
        num_stages = len(depths)
    except TypeError:
        num_stages = 4  # the backbone reports a bad depths itself
    try:
        return check_out_indices(
            backbone.get('out_indices', _default('out_indices')), num_stages)
    except ValueError as err:
        raise ModelConfigError(f'model.backbone: {err}') from None


def _heads_reading_the_backbone(model: dict):
    """``(key, head config)`` of the segmentation heads fed by the backbone
    itself (a model without a neck)."""
    for key in ('decode_head', 'auxiliary_head'):
        heads = model.get(key)
        if isinstance(heads, dict):
            yield f'model.{key}', heads
        elif isinstance(heads, (list, tuple)):
            for i, head in enumerate(heads):
                if isinstance(head, dict):
                    yield f'model.{key}[{i}]', head


def check_backbone_widths(model: dict) -> None:
    """Raise :class:`ModelConfigError` if the neck's ``in_channels`` (the
    first neck of a list), or without a neck the ``in_channels`` of
    ``decode_head`` / ``auxiliary_head`` at their ``in_index``, differ from
    the LITv2 backbone's output widths. Configs with another backbone, or
    whose consumers have no ``in_channels``, pass unchecked."""
    if not isinstance(model, dict):
        return
    backbone = model.get('backbone')
    widths = litv2_output_widths(backbone)
    if widths is None:
        return
    embed_dim = backbone.get('embed_dim', _default('embed_dim'))
    out_indices = _checked_out_indices(backbone)
    source = (f'the LITv2 backbone gives {widths} (model.backbone.embed_dim='
              f'{embed_dim} x 2**i for i in model.backbone.out_indices='
              f'{out_indices})')

    neck = model.get('neck')
    neck_key = 'model.neck'
    if isinstance(neck, (list, tuple)) and neck:
        neck, neck_key = neck[0], 'model.neck[0]'
    if isinstance(neck, dict):
        expected = neck.get('in_channels')
        if expected is None:
            return
        given = list(expected) if isinstance(expected, (list, tuple)) \
            else expected
        if given != widths:
            raise ModelConfigError(
                f'{neck_key}.in_channels={given} does not match the widths '
                f'of the backbone\'s outputs: {source}. Set '
                f'{neck_key}.in_channels={widths}, or change '
                'model.backbone.embed_dim / out_indices')
        return

    for key, head in _heads_reading_the_backbone(model):
        channels, index = head.get('in_channels'), head.get('in_index', -1)
        if channels is None:
            continue
        if isinstance(index, (list, tuple)):
            try:
                wanted = [widths[i] for i in index]
            except IndexError:
                raise ModelConfigError(
                    f'{key}.in_index={list(index)} points past the '
                    f'{len(widths)} outputs of the backbone: {source}'
                ) from None
            given = list(channels) if isinstance(channels, (list, tuple)) \
                else channels
        else:
            try:
                wanted = widths[index]
            except (IndexError, TypeError):
                raise ModelConfigError(
                    f'{key}.in_index={index} points past the {len(widths)} '
                    f'outputs of the backbone: {source}') from None
            given = channels
        if given != wanted:
            raise ModelConfigError(
                f'{key}.in_channels={given} does not match the backbone\'s '
                f'outputs at {key}.in_index={index}: {wanted}; {source}. Set '
                f'{key}.in_channels={wanted}, or change {key}.in_index / '
                'model.backbone.embed_dim / out_indices')

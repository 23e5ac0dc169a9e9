"""Dataset faults named by their file and config key.

mmdet 3.3 / mmseg 1.2 already name the file for a missing or corrupt image,
a missing segmentation map and a wrong ``data_root`` (their loaders raise
``FileNotFoundError`` / ``failed to load image: PATH``). Two faults surface
without any name: a data set with no samples (an empty annotation list, no
``images``, every image filtered out by ``filter_cfg``, a wrong image suffix)
ends in mmengine's ``ValueError: need at least one array to concatenate``,
and an unreadable annotation file in a bare ``JSONDecodeError``.

:func:`build_named_dataloader` (``LITv2Runner.build_dataloader``, used by
the train, val and test loops) is mmengine's ``Runner.build_dataloader``
that re-raises any failure to build a data set as :class:`DatasetError`,
naming the data set's type, ``data_root``, ``ann_file`` and
``data_prefix``, and refuses a data set with no samples. The original
exception stays chained.
"""
import copy

from mmengine.registry import DATASETS
from mmengine.runner import Runner

# the keys of a dataset config that say where its data comes from
_ORIGIN_KEYS = ('data_root', 'ann_file', 'data_prefix', 'img_suffix',
                'seg_map_suffix', 'filter_cfg')


class DatasetError(ValueError):
    """A data set could not be built or holds no samples."""


def describe_dataset(cfg) -> str:
    """``CocoDataset(data_root=..., ann_file=..., ...)`` for a dataset config;
    wrappers (``dataset=`` / ``datasets=``) are described with what they
    wrap."""
    if not isinstance(cfg, dict):
        return repr(cfg)
    fields = [f'{k}={cfg[k]!r}' for k in _ORIGIN_KEYS if cfg.get(k)]
    if isinstance(cfg.get('dataset'), dict):
        fields.append('dataset=' + describe_dataset(cfg['dataset']))
    if isinstance(cfg.get('datasets'), (list, tuple)):
        fields.append('datasets=[' + ', '.join(
            describe_dataset(c) for c in cfg['datasets']) + ']')
    return f"{cfg.get('type', 'dataset')}({', '.join(fields)})"


def _no_samples(cfg) -> str:
    hint = ('; every image was dropped by filter_cfg='
            f"{cfg['filter_cfg']!r} (e.g. no image has an annotation)"
            if cfg.get('filter_cfg') else '')
    return (f'{describe_dataset(cfg)} has no samples: check ann_file, '
            f'data_root and data_prefix{hint}')


def _count_without_serializing(cfg):
    """The number of samples of a dataset config, built with
    ``serialize_data=False`` (mmengine cannot serialise an empty list); None
    if it cannot be built that way either."""
    cfg = copy.deepcopy(cfg)
    cfg['serialize_data'] = False
    try:
        return len(DATASETS.build(cfg))
    except Exception:
        return None


def build_named_dataloader(dataloader, seed=None, diff_rank_seed=False):
    """``Runner.build_dataloader(dataloader, seed, diff_rank_seed)`` whose
    failures name the data set (:class:`DatasetError`)."""
    dataset_cfg = (dataloader.get('dataset')
                   if isinstance(dataloader, dict) else None)
    if not isinstance(dataset_cfg, dict):  # a built loader or data set
        return Runner.build_dataloader(dataloader, seed, diff_rank_seed)
    try:
        loader = Runner.build_dataloader(dataloader, seed, diff_rank_seed)
    except Exception as err:
        if _count_without_serializing(dataset_cfg) == 0:
            raise DatasetError(_no_samples(dataset_cfg)) from err
        raise DatasetError(
            f'cannot build {describe_dataset(dataset_cfg)}: '
            f'{type(err).__name__}: {err}') from err
    if len(loader.dataset) == 0:
        raise DatasetError(_no_samples(dataset_cfg))
    return loader

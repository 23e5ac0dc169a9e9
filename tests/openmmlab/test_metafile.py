"""The model index (``model-index.yml`` -> ``configs/metafile.yml``, the format
of OpenMMLab's model zoos that ``mim search`` reads): every paper config and
ImageNet classifier listed, with the figures of ``litv2.paper_figures`` (the
one place that holds the paper's figures) and the parameter counts of the
models built here.

Parameter counts are taken from models whose parameters are made on PyTorch's
``meta`` device (shapes only: no memory, no initialisation), so all 19 take
seconds.
"""
import functools
import re
from pathlib import Path

import pytest
import torch
import yaml
from mmengine.config import Config
from torch.overrides import TorchFunctionMode

from litv2.paper_figures import (
    CLASSIFIERS,
    CODE_URL,
    DENSE_MODELS,
    PAPER_TABLES,
    PAPER_TITLE,
    PAPER_URL,
    weights_url,
)

REPO = Path(__file__).resolve().parents[2]
REQUIRED = ('Name', 'In Collection', 'Config', 'Metadata', 'Results',
            'Weights')
METADATA = ('Parameters', 'FLOPs', 'Training Data', 'Training Techniques',
            'Training Resources')


@functools.lru_cache(maxsize=None)
def metafile() -> dict:
    index = yaml.safe_load((REPO / 'model-index.yml').read_text())
    assert index == {'Import': ['configs/metafile.yml']}
    return yaml.safe_load((REPO / 'configs' / 'metafile.yml').read_text())


def models() -> dict:
    return {m['Name']: m for m in metafile()['Models']}


def _results(model) -> dict:
    """``{(task, dataset, metric): value}``"""
    return {(r['Task'], r['Dataset'], metric): value
            for r in model['Results']
            for metric, value in r['Metrics'].items()}


class _EmptyOnMeta(TorchFunctionMode):
    """``torch.empty`` (how layers allocate their weights) on the meta device;
    other tensors (the few a constructor computes with) stay where they
    are."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.empty and kwargs.get('device') is None:
            kwargs['device'] = 'meta'
        return func(*args, **kwargs)


@functools.lru_cache(maxsize=None)
def built_parameters(name: str) -> int:
    """Parameters of the config's model (or timm classifier) as built here."""
    with _EmptyOnMeta():
        if name in CLASSIFIERS:
            import timm

            import litv2
            litv2.register_timm_models()
            model = timm.create_model(name, pretrained=False)
        else:
            cfg = Config.fromfile(str(REPO / 'configs' / f'{name}.py'))
            cfg.model.backbone.init_cfg = None
            scope = cfg.default_scope
            if scope == 'mmdet':
                from mmdet.registry import MODELS
                from mmdet.utils import register_all_modules

                import mmdet_litv2  # noqa: F401
            else:
                from mmseg.registry import MODELS
                from mmseg.utils import register_all_modules

                import mmseg_litv2  # noqa: F401
            register_all_modules(init_default_scope=False)
            model = MODELS.build(cfg.model)
    assert any(p.is_meta for p in model.parameters())
    return sum(p.numel() for p in model.parameters())


def test_collection():
    (collection, ) = metafile()['Collections']
    assert collection['Name'] == 'LITv2'
    assert collection['Paper'] == {'URL': PAPER_URL, 'Title': PAPER_TITLE}
    assert collection['Code']['URL'] == CODE_URL
    assert {'HiLo Attention', 'Deformable Token Merging'} <= set(
        collection['Metadata']['Architecture'])
    assert (REPO / collection['README']).is_file()


def test_every_paper_config_and_classifier_is_listed():
    paper_configs = {p.stem for p in (REPO / 'configs').glob('*.py')}
    assert paper_configs == set(DENSE_MODELS) and len(paper_configs) == 15
    assert set(models()) == set(DENSE_MODELS) | set(CLASSIFIERS)
    assert len(models()) == 19
    for name, model in models().items():
        assert not set(REQUIRED) - set(model), name
        assert not set(METADATA) - set(model['Metadata']), name
        assert ('Epochs' in model['Metadata']) != (
            'Iterations' in model['Metadata']), name
        assert model['In Collection'] == 'LITv2'
        assert (REPO / model['Config']).is_file(), model['Config']
        if name in DENSE_MODELS:
            assert model['Config'] == f'configs/{name}.py'


@pytest.mark.parametrize('name', sorted(DENSE_MODELS))
def test_detection_and_segmentation_figures(name):
    model, paper = models()[name], DENSE_MODELS[name]
    assert model['Weights'] == weights_url(paper.weights)
    assert model['Metadata']['FLOPs'] == round(paper.flops_g * 1e9)
    if paper.miou is not None:
        expected = {('Semantic Segmentation', 'ADE20K', 'mIoU'): paper.miou}
        assert model['Metadata']['Iterations'] == 80000
    else:
        expected = {('Object Detection', 'COCO', 'box AP'): paper.box_ap}
        if paper.mask_ap is not None:
            expected[('Instance Segmentation', 'COCO',
                      'mask AP')] = paper.mask_ap
        assert model['Metadata']['Epochs'] == 12
    assert _results(model) == expected
    # the file names of the release follow the paper's models
    assert paper.variant.lower() in paper.weights
    assert ('ws_4' in paper.weights) == (paper.window == 4)


@pytest.mark.parametrize('name', sorted(CLASSIFIERS))
def test_classifier_figures(name):
    model, paper = models()[name], CLASSIFIERS[name]
    assert model['Weights'] == weights_url(paper.weights)
    assert model['Metadata']['FLOPs'] == round(paper.flops_g * 1e9)
    assert _results(model) == {
        ('Image Classification', 'ImageNet-1k', 'Top 1 Accuracy'): paper.top1
    }
    # the timm models download the same files
    import timm

    import litv2
    litv2.register_timm_models()
    assert timm.models.get_pretrained_cfg(name).url == model['Weights']


@pytest.mark.parametrize('name', sorted(DENSE_MODELS) + sorted(CLASSIFIERS))
def test_parameter_counts_are_the_built_models(name):
    listed = models()[name]['Metadata']['Parameters']
    assert listed == built_parameters(name)
    paper = (DENSE_MODELS.get(name) or CLASSIFIERS[name]).params_m
    assert round(listed / 1e6) == paper


def test_readme_table_quotes_the_same_figures():
    """The README's table of the 15 configs shows the module's figures."""
    readme = (REPO / 'README.md').read_text()
    for name, paper in DENSE_MODELS.items():
        row = re.search(rf'^\| `configs/{name}\.py` \|.*$', readme, re.M)
        assert row, name
        params, flops, fps = PAPER_TABLES[name]
        figures = f'{params} M / {flops} G / {fps} / '
        assert figures in row.group(0), (name, figures)
        quoted = [paper.box_ap, paper.mask_ap, paper.miou]
        for value in filter(None, quoted):
            assert f'{value}' in row.group(0).split(figures)[1], name

"""What ``tools/get_flops.py`` and ``tools/fps.py`` share: the model of a
config built for inference, and synthetic images of a given size packed as
the test pipeline packs them, so that they go through the model's own data
preprocessor (normalisation, padding) like real ones."""
import logging
from importlib import import_module
from typing import Iterable, Optional

import torch
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import DefaultScope

from ..checkpoint.strict_load import load_checkpoint_strictly
from ..engine.runner.task import detect_task, setup_task
from ..model_config_check import check_backbone_widths, read_config

# Network input of the paper's tables: detection 1280x800 (W x H) after the
# resize, ADE20K 512x512.
PAPER_SHAPES = {'mmdet': (800, 1280), 'mmseg': (512, 512)}


def load_config(path: str, cfg_options: Optional[dict] = None):
    """``(cfg, task)``: the parsed config and ``'mmdet'`` / ``'mmseg'``,
    with the task's plugin imported; the backbone's output widths checked
    against the neck
    (:func:`~litv2_openmmlab.model_config_check.check_backbone_widths`)."""
    cfg = read_config(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    task = detect_task(cfg, path)
    setup_task(task)
    check_backbone_widths(cfg.get('model'))
    return cfg, task


def build_inference_model(cfg: Config, task: str,
                          checkpoint: Optional[str] = None,
                          device: str = 'cpu',
                          allow_missing: Iterable[str] = ()
                          ) -> torch.nn.Module:
    """The config's model in eval mode on ``device``, SyncBN reverted to BN
    (torch runs SyncBN on GPUs only, and not in a single process). The
    checkpoint is loaded strictly
    (:func:`~litv2_openmmlab.checkpoint.load_checkpoint_strictly`: a
    missing, unexpected or differently shaped key raises
    ``CheckpointMismatchError`` unless ``allow_missing`` matches it).
    Without a checkpoint the weights are random: nothing is downloaded."""
    registry = import_module(f'{task}.registry').MODELS
    import_module(f'{task}.utils').register_all_modules(
        init_default_scope=False)
    # In the task's scope: the nested builds (data preprocessor, heads) of a
    # stock mmdet/mmseg config look their types up there.
    with DefaultScope.overwrite_default_scope(task):
        model = revert_sync_batchnorm(registry.build(cfg.model))
    if checkpoint is not None:
        load_checkpoint_strictly(model, checkpoint, allow_missing)
    else:
        print_log('no checkpoint: the model has random weights',
                  logger='current', level=logging.INFO)
    return model.to(device).eval()


def synthetic_batch(task: str, height: int, width: int, seed: int = 0,
                    index: int = 0) -> dict:
    """One random uint8 image of ``height x width``, packed as the test
    pipeline's ``PackDetInputs`` / ``PackSegInputs`` would pack an image
    that the pipeline has already resized to that size (batch of 1)."""
    if height < 1 or width < 1:
        raise ValueError(f'image shape must be positive, got {height}x{width}')
    generator = torch.Generator().manual_seed(seed + index)
    image = torch.randint(0, 256, (3, height, width), dtype=torch.uint8,
                          generator=generator)
    meta = dict(img_id=index, img_path=f'synthetic_{index}.png',
                ori_shape=(height, width), img_shape=(height, width),
                scale_factor=(1.0, 1.0), flip=False, flip_direction=None)
    if task == 'mmdet':
        from mmdet.structures import DetDataSample
        sample = DetDataSample(metainfo=meta)
    else:
        from mmseg.structures import SegDataSample
        sample = SegDataSample(metainfo=meta)
    return dict(inputs=[image], data_samples=[sample])

"""Checkpoints written by mmengine's Runner load with torch's
``weights_only=True`` once ``allow_mmengine_checkpoint_types()`` ran, through
mmengine's own loading path (as in ``--resume`` and ``tools/test.py``)."""
import pickle

import pytest
import torch
from mmengine.model import BaseModel
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint
from torch import nn
from torch.utils.data import Dataset

import litv2_openmmlab.checkpoint.allowed_types as allowed_types
from litv2_openmmlab.checkpoint import allow_mmengine_checkpoint_types

pytestmark = pytest.mark.skipif(
    not hasattr(torch.serialization, 'add_safe_globals'),
    reason='torch < 2.4 has no weights_only allow-list')


class ToyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)
        self.norm = nn.BatchNorm1d(1)

    def forward(self, inputs, labels, mode='tensor'):
        out = self.norm(self.linear(torch.stack(inputs)))
        if mode == 'loss':
            return dict(loss=(out.squeeze(1) - torch.stack(labels)).abs()
                        .mean())
        return out


class ToyData(Dataset):

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return dict(inputs=torch.full((2, ), float(i)),
                    labels=torch.tensor(float(i % 2)))


def make_runner(work_dir, iters, **kwargs):
    return Runner(
        model=ToyModel(),
        work_dir=str(work_dir),
        experiment_name=f'toy_{work_dir.name}_{iters}',
        train_dataloader=dict(dataset=ToyData(), batch_size=4,
                              sampler=dict(type='DefaultSampler',
                                           shuffle=True)),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.01)),
        # the scheduler kinds of the project's configs
        param_scheduler=[
            dict(type='LinearLR', start_factor=0.1, by_epoch=False, end=2),
            dict(type='MultiStepLR', milestones=[3], by_epoch=False),
            dict(type='PolyLR', eta_min=1e-6, power=0.9, by_epoch=False),
        ],
        train_cfg=dict(by_epoch=False, max_iters=iters),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook',
                                           by_epoch=False, interval=iters),
                           logger=dict(type='LoggerHook', interval=1)),
        default_scope='mmengine', **kwargs)


@pytest.fixture
def without_allow_list():
    """Start with torch's own allow-list; restore the previous one after."""
    saved = torch.serialization.get_safe_globals()
    done = allowed_types._done
    torch.serialization.clear_safe_globals()
    allowed_types._done = False
    yield
    torch.serialization.clear_safe_globals()
    torch.serialization.add_safe_globals(saved)
    allowed_types._done = done


def test_runner_checkpoint_loads_with_weights_only(tmp_path,
                                                   without_allow_list):
    make_runner(tmp_path, iters=3).train()
    path = tmp_path / 'iter_3.pth'
    # What mmengine writes is not loadable with torch's defaults ...
    assert torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)

    allow_mmengine_checkpoint_types()
    assert torch.load(path, weights_only=True)['meta']['iter'] == 3
    checkpoint = _load_checkpoint(str(path), map_location='cpu')
    loss = checkpoint['message_hub']['log_scalars']['train/loss']
    assert len(loss.data[0]) == 3 and loss.mean() > 0
    assert loss.statistics('current') == loss.current()

    # ... and resuming through the Runner restores the training state.
    runner = make_runner(tmp_path, iters=5, resume=True, load_from=str(path))
    runner.train()
    assert runner.iter == 5
    assert (tmp_path / 'iter_5.pth').is_file()


class _Getattr:
    """Pickles as ``getattr(owner, name)``, the way protocol 2 writes
    ``HistoryBuffer.min``."""

    def __init__(self, owner, name):
        self.owner, self.name = owner, name

    def __reduce__(self):
        return getattr, (self.owner, self.name)


def test_only_history_buffer_statistics_are_resolved(tmp_path):
    from mmengine.logging import HistoryBuffer
    allow_mmengine_checkpoint_types()
    good, bad = tmp_path / 'good.pth', tmp_path / 'bad.pth'
    torch.save({'f': _Getattr(HistoryBuffer, 'mean')}, good)
    assert torch.load(good, weights_only=True)['f'] is HistoryBuffer.mean
    torch.save({'f': _Getattr(HistoryBuffer, '__init__')}, bad)
    with pytest.raises(pickle.UnpicklingError, match='statistics methods'):
        torch.load(bad, weights_only=True)
    torch.save({'f': _Getattr(torch.Tensor, 'add_')}, bad)
    with pytest.raises(pickle.UnpicklingError, match='statistics methods'):
        torch.load(bad, weights_only=True)

"""Faults injected into test trainings (configs list this module in
``custom_imports`` and the hooks in ``custom_hooks``)."""
import os
import signal
import time

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


def _die():
    os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module()
class KillDuringSaveHook(Hook):
    """SIGKILL this process while the checkpoint of iteration ``at`` is
    saved: its bytes are in the temporary file, the rename is not done."""

    def __init__(self, at: int):
        self.at = at

    def before_save_checkpoint(self, runner, checkpoint):
        if checkpoint['meta']['iter'] != self.at:
            return
        name = f'iter_{self.at}.pth'
        replace = os.replace

        def dying_replace(src, dst):
            if str(dst).endswith(name):
                _die()
            replace(src, dst)
        os.replace = dying_replace


@HOOKS.register_module()
class NanWeightsAtIterHook(Hook):
    """Before iteration ``at`` (1-based), set the model's last parameter (in
    the head) to NaN: that iteration's loss is NaN. (A NaN in the backbone
    would reach DTM's offsets, where torchvision's deform_conv2d crashes.)"""

    def __init__(self, at: int):
        self.at = at

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter + 1 == self.at:
            with torch.no_grad():
                list(runner.model.parameters())[-1].fill_(float('nan'))


@HOOKS.register_module()
class PauseAtIterHook(Hook):
    """Before iteration ``at`` (1-based), the process of global rank ``rank``
    writes ``marker`` and sleeps ``seconds``: a node that stops answering,
    for a test to kill (or freeze) while the others wait for it."""

    def __init__(self, at: int, rank: int, marker: str,
                 seconds: float = 600):
        self.at, self.rank = at, rank
        self.marker, self.seconds = marker, seconds

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        from mmengine.dist import get_rank
        if runner.iter + 1 == self.at and get_rank() == self.rank:
            with open(self.marker, 'w') as f:
                f.write(str(os.getpid()))
            time.sleep(self.seconds)

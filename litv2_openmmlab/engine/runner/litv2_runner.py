"""``LITv2Runner``: mmengine's ``Runner`` with every guarantee of this
project, registered in mmengine's ``RUNNERS`` and chosen by the configs'
``runner_type = 'LITv2Runner'``.

mmdet's and mmseg's own ``tools/train.py`` / ``tools/test.py`` (and ``mim
train``) build a config with ``runner_type`` through ``RUNNERS.build(cfg)``,
which calls :meth:`LITv2Runner.from_cfg`; so they, ``RUNNERS.build(cfg)``,
``LITv2Runner.from_cfg(cfg)`` and this project's tools all get:

* the config checked (the neck's ``in_channels`` against the backbone's
  widths) and adapted to a machine without a GPU (``adapt_to_device``), the
  gloo process group of a multi-process run without one;
* the reliability hooks (atomic checkpoints, exact resume, a non-finite
  loss or non-finite weights stop the run, an inexact resume said);
* strict loading of ``load_from`` and ``resume`` (``StrictLoadHook``;
  ``load_from_allow_missing`` in the config makes a partial ``load_from``
  deliberate);
* data sets that cannot be built, or hold no samples, named;
* training: one run per work directory (a lock), ``--resume`` with nothing
  to resume said, SIGTERM / SIGINT ending the run with one line naming the
  last checkpoint, a dead peer of a multi-process run named in one line;
* the process group of a run without a GPU shut down cleanly at the end.

Checkpoints are read as data by every scheme: the plugins install that on
import (:func:`litv2_openmmlab.plugin.install_plugin`), and the configs
import a plugin (``custom_imports``).

``mmengine.runner.Runner.from_cfg(cfg)`` builds mmengine's own class,
whatever ``runner_type`` says (so does mmseg 1.2's ``tools/test.py``): it
gets what the configs list in ``custom_hooks`` (``StrictLoadHook``,
``FiniteWeightsHook``) and the plugin's checkpoint loaders, not the rest;
use ``RUNNERS.build(cfg)`` (what mmdet's tools and mmseg's
``tools/train.py`` do) or ``LITv2Runner.from_cfg(cfg)``.
"""
import copy
import glob
import os.path as osp
import signal
import threading

from mmengine.config import Config
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from ...model_config_check import check_backbone_widths
from ..hooks.work_dir_lock import lock_work_dir, unlock_work_dir
from .dataset_naming import build_named_dataloader
from .device_adaptation import adapt_to_device
from .dist_failure import (
    DistributedError,
    dist_timeout_s,
    distributed_failure,
    last_checkpoint_of,
)
from .distributed import close_distributed, init_distributed_without_gpu
from .rank0_log import info_rank0, warn_rank0
from .reliability_hooks import add_reliability_hooks
from .task import detect_task, setup_task


class TrainingInterrupted(BaseException):
    """SIGTERM / SIGINT during training (a BaseException, as
    KeyboardInterrupt: no ``except Exception`` swallows it). ``signum`` is
    the signal; the message names the last checkpoint."""

    def __init__(self, signum: int, message: str = ''):
        super().__init__(message or signal.Signals(signum).name)
        self.signum = signum


def _raise_interrupted(signum, frame):
    raise TrainingInterrupted(signum)


def _stop_on_signals() -> dict:
    """SIGTERM / SIGINT raise :class:`TrainingInterrupted`; returns the
    previous handlers (none outside the main thread, where Python allows
    no handler)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.signal(sig, _raise_interrupted)
            for sig in (signal.SIGTERM, signal.SIGINT)}


def use_litv2_runner(cfg) -> None:
    """Set ``cfg.runner_type = 'LITv2Runner'`` where the config names no
    runner; a config naming another one is kept, with a warning that the
    guarantees of this project come with ``LITv2Runner``."""
    runner_type = cfg.get('runner_type')
    if runner_type is None:
        cfg.runner_type = 'LITv2Runner'
    elif runner_type != 'LITv2Runner':
        warn_rank0(f'runner_type={runner_type!r}: strict loading, the '
                   'reliability hooks and the device adaptation come with '
                   "runner_type='LITv2Runner' (a subclass of it keeps them)")


@RUNNERS.register_module()
class LITv2Runner(Runner):
    """mmengine's ``Runner`` with this project's guarantees (see the
    module's docstring); same arguments. The config's own keys it reads:
    ``load_from_allow_missing`` (fnmatch patterns of keys a ``load_from``
    may leave out) and ``finite_loss_check`` (default True)."""

    @classmethod
    def from_cfg(cls, cfg) -> 'LITv2Runner':
        cfg = copy.deepcopy(cfg)
        if not isinstance(cfg, Config):
            cfg = Config(dict(cfg))
        launcher = cfg.get('launcher', 'none')
        setup_task(detect_task(cfg, cfg.filename or 'the config'))
        check_backbone_widths(cfg.get('model'))
        add_reliability_hooks(cfg, cfg.get('finite_loss_check', True))
        adapt_to_device(cfg, launcher)
        init_distributed_without_gpu(cfg, launcher)
        return super().from_cfg(cfg)

    # ------------------------------------------------------ data sets ----
    @staticmethod
    def build_dataloader(dataloader, seed=None, diff_rank_seed=False):
        """As ``Runner.build_dataloader``; a data set that cannot be built,
        or holds no samples, raises ``DatasetError`` naming it."""
        return build_named_dataloader(dataloader, seed, diff_rank_seed)

    # ---------------------------------------------------- checkpoints ----
    def load_or_resume(self) -> None:
        """``Runner.load_or_resume``; resuming from the latest checkpoint
        of the work directory says so when there is none, and takes the
        newest checkpoint file when the ``last_checkpoint`` pointer is
        empty (a kill while it was written)."""
        if self._resume and self._load_from is None and not self._has_loaded:
            pointer = osp.join(self.work_dir, 'last_checkpoint')
            if not osp.isfile(pointer):
                warn_rank0(f'resume: no checkpoint to resume from in '
                           f'{osp.abspath(self.work_dir)} (no '
                           'last_checkpoint file): training starts at '
                           'iteration 0')
            elif last_checkpoint_of(self.work_dir) is None:
                newest = max(glob.glob(osp.join(self.work_dir, '*.pth')),
                             key=osp.getmtime, default=None)
                if newest is None:
                    warn_rank0(f'resume: {pointer} is empty and there is no '
                               'checkpoint file: training starts at '
                               'iteration 0')
                    self._resume = False
                else:
                    warn_rank0(f'resume: {pointer} is empty; resuming from '
                               f'the newest checkpoint file, {newest}')
                    self._load_from = newest
        super().load_or_resume()

    # ------------------------------------------------------ the loops ----
    def train(self):
        """``Runner.train`` owning the work directory (another live run
        there stops this one with ``WorkDirBusyError``), ended by SIGTERM /
        SIGINT with :class:`TrainingInterrupted` naming the last
        checkpoint, and a dead peer reported as ``DistributedError``."""
        locked = lock_work_dir(self.work_dir)
        if self.launcher != 'none':
            info_rank0('distributed run: a process that dies or stops '
                       'answering stops the others after '
                       'env_cfg.dist_cfg.timeout = '
                       f'{dist_timeout_s(self.cfg):g} s')
        handlers = _stop_on_signals()
        try:
            model = self._run(super().train)
        except TrainingInterrupted as err:
            last = last_checkpoint_of(self.work_dir)
            raise TrainingInterrupted(err.signum, (
                f'{signal.Signals(err.signum).name}: training stopped at '
                f'iteration {self.iter + 1}; '
                + (f'last checkpoint: {last}; continue with --resume'
                   if last else 'no checkpoint was saved'))) from None
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
            if locked:
                unlock_work_dir(self.work_dir)
        close_distributed()
        return model

    def test(self):
        metrics = self._run(super().test)
        close_distributed()
        return metrics

    def _run(self, loop):
        try:
            return loop()
        except RuntimeError as err:
            message = distributed_failure(err, self.cfg)
            if message is None:
                raise
            raise DistributedError(message) from err

"""What ``tools/train.py`` and ``tools/test.py`` need around mmengine's
``Runner``: telling the task of a config and importing its plugin, the
reliability hooks added to a training config, adapting a GPU config to a
machine without one, the process group of a multi-process run without a
GPU and what a process says when another one is gone, and the ``Runner``
that names a data set it cannot build. Registers nothing beyond what
importing :mod:`litv2_openmmlab.engine` registers."""
from .dataset_naming_runner import (
    DatasetError,
    DatasetNamingRunner,
    describe_dataset,
)
from .device_adaptation import adapt_to_device
from .dist_failure import (
    DistributedError,
    dist_timeout_s,
    distributed_failure,
    last_checkpoint_of,
)
from .distributed import (
    close_distributed,
    free_finished_run,
    init_distributed_without_gpu,
)
from .reliability_hooks import add_reliability_hooks
from .task import PLUGINS, detect_task, setup_task, task_runners

__all__ = [
    'DatasetError', 'DatasetNamingRunner', 'describe_dataset',
    'adapt_to_device', 'DistributedError', 'dist_timeout_s',
    'distributed_failure', 'last_checkpoint_of', 'close_distributed',
    'free_finished_run',
    'init_distributed_without_gpu', 'add_reliability_hooks', 'PLUGINS',
    'detect_task', 'setup_task', 'task_runners'
]

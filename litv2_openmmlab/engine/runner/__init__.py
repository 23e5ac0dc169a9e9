"""``LITv2Runner`` (registered in mmengine's ``RUNNERS``; the configs'
``runner_type``) and what it is made of: telling the task of a config and
importing its plugin, the reliability hooks added to a config, adapting a
GPU config to a machine without one, the process group of a multi-process
run without a GPU and what a process says when another one is gone, and
data sets named when they cannot be built."""
from .dataset_naming import (
    DatasetError,
    build_named_dataloader,
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
from .litv2_runner import (
    LITv2Runner,
    TrainingInterrupted,
    use_litv2_runner,
)
from .reliability_hooks import add_reliability_hooks
from .task import PLUGINS, detect_task, setup_task

__all__ = [
    'DatasetError', 'build_named_dataloader', 'describe_dataset',
    'adapt_to_device', 'DistributedError', 'dist_timeout_s',
    'distributed_failure', 'last_checkpoint_of', 'close_distributed',
    'free_finished_run', 'init_distributed_without_gpu', 'LITv2Runner',
    'TrainingInterrupted', 'use_litv2_runner', 'add_reliability_hooks',
    'PLUGINS', 'detect_task', 'setup_task'
]

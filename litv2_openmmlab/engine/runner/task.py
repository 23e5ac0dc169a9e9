"""Telling an mmdet config from an mmseg one and importing that task's
plugin, for ``tools/train.py``, ``tools/test.py`` and the tools that build a
model from a config."""
from importlib import import_module

from mmengine.config import Config

# task (the config's default_scope) -> the plugin that registers LITv2 there
PLUGINS = {'mmdet': 'mmdet_litv2', 'mmseg': 'mmseg_litv2'}


def detect_task(cfg: Config, filename: str = 'the config') -> str:
    """``'mmdet'`` or ``'mmseg'``: the config's ``default_scope`` (set by both
    frameworks' ``default_runtime`` bases), else the plugin that its
    ``custom_imports`` names."""
    scope = cfg.get('default_scope')
    if scope in PLUGINS:
        return scope
    imports = (cfg.get('custom_imports') or {}).get('imports', [])
    if isinstance(imports, str):
        imports = [imports]
    found = [task for task, plugin in PLUGINS.items() if plugin in imports]
    if len(found) == 1:
        return found[0]
    raise ValueError(
        f'cannot tell whether {filename} is an mmdet or an mmseg config: its '
        f"default_scope is {scope!r} (expected 'mmdet' or 'mmseg') and its "
        f'custom_imports {list(imports)} name '
        + ('both' if found else 'neither') + ' of mmdet_litv2 / mmseg_litv2')


def setup_task(task: str) -> None:
    """Import the task's plugin (registers LITv2 in its ``MODELS``,
    ``LITv2Runner``, the hooks, and reads every checkpoint as data:
    :func:`litv2_openmmlab.plugin.install_plugin`)."""
    import_module(PLUGINS[task])
    if task == 'mmdet':
        from mmdet.utils import setup_cache_size_limit_of_dynamo
        setup_cache_size_limit_of_dynamo()

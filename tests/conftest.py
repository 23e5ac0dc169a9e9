"""Fixtures shared by the test modules, and the ``cuda`` marker: tests that
need a CUDA GPU are skipped, with the reason, where torch sees none
(``make test`` on a CPU machine); ``tools/gpu_check.py`` runs them on one."""
import pytest
import torch


def pytest_configure(config):
    config.addinivalue_line(
        'markers', 'cuda: needs a CUDA GPU (skipped where torch sees none)')
    config.addinivalue_line(
        'markers', 'slow: an end-to-end run (training, several processes, '
        'whole tools) of more than ~10 s on 2 cores; `make test-fast` '
        'leaves these out')
    config.addinivalue_line(
        'markers', 'heavy: a run of several training processes or many '
        'iterations (8 tests, 246 s in all on 2 cores); `make test` and '
        '`make test-fast` '
        'leave these out, `make test-heavy` runs them (CI runs both)')


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(
        reason='needs a CUDA GPU (torch sees none); tools/gpu_check.py runs '
        'these on a GPU machine')
    for item in items:
        if item.get_closest_marker('cuda') is not None:
            item.add_marker(skip)


@pytest.fixture
def one_thread():
    """Small tensors: one intra-op thread avoids paying for thread
    synchronisation on every op (costly on a shared 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='session')
def toy_cwd(tmp_path_factory):
    """A working directory holding a small ``data/toy`` (the quickstart
    configs' relative data path), for tools run as subprocesses: a fresh
    clone has no ``data/`` in the repository."""
    from litv2_openmmlab.datasets import toy_shapes as toy
    root = tmp_path_factory.mktemp('toy_cwd')
    toy.generate(str(root / 'data' / 'toy'), seed=0,
                 det_splits=(('train', 3), ('val', 2)),
                 seg_splits=(('training', 2), ('validation', 2)))
    return root


@pytest.fixture(autouse=True, scope='session')
def cached_package_metafiles():
    """mmengine resolves each ``mmdet::`` / ``mmseg::`` base of a config by
    first reading every metafile of the package (~100 YAML files, 0.3 s),
    for every base of every ``Config.fromfile``. The files do not change
    during a test run: read each once (only in this process, and only for
    the config resolver: the configs resolve to the same dicts)."""
    import functools

    from mmengine.config import utils
    original = utils.load
    cached = functools.lru_cache(None)(original)

    def load(path, *args, **kwargs):
        if not args and not kwargs and str(path).endswith('.yml'):
            return cached(path)
        return original(path, *args, **kwargs)

    utils.load = load
    yield
    utils.load = original

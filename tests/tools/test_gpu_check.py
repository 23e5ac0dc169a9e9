"""tools/gpu_check.py in its CPU smoke mode: every part runs its code path
with tiny sizes and writes its section (so the GPU check cannot rot between
the sessions that have a GPU); the CUDA tests are collected and skipped with
their reason. Figures are not checked beyond being measured."""
import json

import pytest
import torch

from tools import gpu_check

# every test reads one --smoke run of the whole check (~1-3 min)
pytestmark = pytest.mark.slow


@pytest.fixture(scope='module')
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp('gpu_check')
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        gpu_check.main(['--smoke', '--out', str(out), '--deadline', '600'])
    finally:
        torch.set_num_threads(threads)
    return out


def section(data, start):
    found = [s for s in data['sections'] if s['title'].startswith(start)]
    assert found, [s['title'] for s in data['sections']]
    return found[0]


def test_every_part_reports(smoke):
    data = json.loads((smoke / 'gpu_check.json').read_text())
    titles = [s['title'] for s in data['sections']]
    assert not [t for t in titles if 'failed' in t or 'left out' in t], \
        titles
    assert len(titles) == len(gpu_check.PARTS) + 1  # compile: 2 sections
    text = (smoke / 'gpu_check.md').read_text()
    assert text.startswith('# LITv2 GPU check')
    assert 'CPU (smoke mode)' in text


def test_cuda_tests_are_collected_and_skipped_with_the_reason(smoke):
    data = json.loads((smoke / 'gpu_check.json').read_text())
    tests = section(data, 'CUDA tests')['data']
    assert len(tests) >= 10
    if not torch.cuda.is_available():
        assert {t['outcome'] for t in tests} == {'skipped'}
        assert all('needs a CUDA GPU' in t['message'] for t in tests)


def test_measured_parts_hold_figures(smoke):
    data = json.loads((smoke / 'gpu_check.json').read_text())
    cls = section(data, 'Classifiers')['data']
    assert [r['model'] for r in cls] == ['litv2_s', 'resnet50']
    assert all(r['fp32_img_s'] > 0 for r in cls)
    compiled = section(data, 'Compiled classifiers')['data']
    assert compiled[0]['model'] == 'litv2_s' and compiled[0]['compiled'] > 0
    detectors = section(data, 'Detectors')['data']
    assert len(detectors) == 2 and all(r['fp32'] > 0 for r in detectors)
    attention = section(data, 'One attention layer')['data']
    assert {r['model'] for r in attention} >= {'HiLo', 'MSA (ViT)'}
    profile = section(data, 'Precision per stage')['data']
    stages = profile['precision']['bfloat16']
    assert len(stages) == 7  # 4 stages' blocks, 3 DTMs
    assert set(stages.values()) <= {'float32', 'bfloat16'}
    assert 'aten::' in profile['training step']['table']

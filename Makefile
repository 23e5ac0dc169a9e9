# `make demo` and `make test` build/refresh the environment in .venv first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.env-stamp
ENV_INPUTS := tools/setup_env.sh pyproject.toml $(wildcard requirements/*.txt)

.PHONY: env lint demo demo-backbone test test-heavy test-fast bench-hilo bench-detector bench bench-cls \
	bench-amp bench-peers clean-env gpu-kit slurm-check

env: $(STAMP)

$(STAMP): $(ENV_INPUTS)
	VENV=$(VENV) bash tools/setup_env.sh
	touch $@

# Main job: make the toy data, train the quickstart RetinaNet-LITv2 on CPU,
# test its checkpoint with tools/test.py, print the metrics, draw its
# predictions beside the ground truth of a few validation images
# (tools/infer.py; the last line names the folder).
demo: $(STAMP)
	$(PY) tools/quickstart.py

# LITv2-S on demo/demo.png: feature map shapes.
demo-backbone: $(STAMP)
	$(PY) tools/demo_backbone.py

# The suite but its heavy tier (~10 min on 2 cores); the GPU tests
# (tests/gpu/) are skipped, with the reason, on a machine without CUDA.
# docs/tests.md: the folders and the tiers.
test: $(STAMP)
	$(PY) -m pytest -q -m "not heavy" tests

# The heavy tier (marker `heavy`: several training processes, nodes and
# Slurm tasks, kill-and-resume, the quickstart trainings that must learn);
# CI (.ci/run) runs it after `make test`.
test-heavy: $(STAMP)
	$(PY) -m pytest -q -m heavy tests

# The fast tier, for development: every test but those marked `slow` or
# `heavy` (training runs, several processes, whole tools, the large
# mixed-precision checks).
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not heavy" tests

# ruff (pycodestyle, pyflakes, import order; pyproject.toml [tool.ruff]).
lint: $(STAMP)
	$(VENV)/bin/ruff check .

# Backbone speed: project vs the straightforward reference algorithm (CPU, fp32).
bench-hilo: $(STAMP)
	$(PY) benchmarks/bench_hilo.py --profile --memory --markdown benchmarks/results_hilo.md

# Whole RetinaNet LITv2-S (tools/fps.py, 1280x800, CPU): project vs baseline backbone.
bench-detector: $(STAMP)
	$(PY) benchmarks/bench_detector.py --markdown benchmarks/results_detector.md

# bf16 autocast vs fp32 (CPU): backbone S/M/B and RetinaNet-S speed, with the
# per-stage error against fp32 beside it.
bench-amp: $(STAMP)
	$(PY) benchmarks/bench_amp.py --markdown benchmarks/results_amp.md

# Params, FLOPs and CPU FPS of the 15 paper configs (markdown table).
bench: $(STAMP)
	$(PY) benchmarks/bench_configs.py --markdown benchmarks/results_configs.md

# ImageNet classifiers: throughput and train/test memory, the paper's method
# (batch 64, 30 timed runs; CUDA if present). On a CPU, pass smaller figures:
# make bench-cls BENCH_CLS_ARGS="--models litv2_s --batch-size 8 --runs 3 --warmup 1"
BENCH_CLS_ARGS ?=
bench-cls: $(STAMP)
	$(PY) tools/classification_benchmark.py $(BENCH_CLS_ARGS)

# LITv2 against the peers of the paper's speed tables (timm / mmdet builds), side
# by side: classifiers, backbones at 800x1280, RetinaNet, the single-attention-
# layer benchmark, training step; markdown + PNG charts. ~15 min on 2 CPU cores;
# BENCH_PEERS_ARGS=--quick for a few minutes, "--modes fp32 bf16 compile" for
# bf16 autocast and torch.compile too.
BENCH_PEERS_ARGS ?=
bench-peers: $(STAMP)
	$(PY) benchmarks/bench_peers.py --markdown benchmarks/results_peers.md \
		--json benchmarks/results_peers.json --figures benchmarks/figures_peers \
		$(BENCH_PEERS_ARGS)

# Wheels (.gpu_kit/wheels) for a GPU machine without network to run the
# OpenMMLab stack (mmcv without ops); there: bash tools/gpu_kit/run.sh.
gpu-kit:
	bash tools/gpu_kit/build.sh

# tools/slurm_train.sh / slurm_test.sh on a real single-node Slurm started
# here (root; installs slurm-wlm and munge if missing; ~3 min on 2 cores).
slurm-check: $(STAMP)
	PY=$(abspath $(PY)) bash tools/slurm_check.sh

clean-env:
	rm -rf $(VENV)

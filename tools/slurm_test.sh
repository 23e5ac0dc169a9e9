#!/usr/bin/env bash
# Test a checkpoint on a Slurm cluster, one task per GPU (mmdet's interface):
#   [GPUS=8] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [SRUN_ARGS="..."] \
#   tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [test.py args]
# GPUS_PER_NODE=0 asks for no GPU (CPU tasks over gloo; no --gres).
set -euo pipefail
if [ $# -lt 4 ]; then
    echo "usage: $0 PARTITION JOB_NAME CONFIG CHECKPOINT [test.py arguments]" >&2
    exit 2
fi
exec bash "$(dirname "$0")/slurm_srun.sh" "$1" "$2" test.py "$3" "$4" \
    --launcher=slurm "${@:5}"

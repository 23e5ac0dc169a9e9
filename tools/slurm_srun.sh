#!/usr/bin/env bash
# What tools/slurm_train.sh and tools/slurm_test.sh share: one srun with
# mmdet's variables, one task per GPU.
#   tools/slurm_srun.sh PARTITION JOB_NAME TOOL.py [tool arguments]
# GPUS (default 8), GPUS_PER_NODE (8; 0: CPU tasks over gloo, no --gres),
# CPUS_PER_TASK (5), SRUN_ARGS (extra srun options).
set -euo pipefail
PARTITION=$1
JOB_NAME=$2
TOOL=$3
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
TASKS_PER_NODE=$GPUS_PER_NODE
GRES=()
if [ "$GPUS_PER_NODE" -gt 0 ]; then
    GRES=(--gres="gpu:$GPUS_PER_NODE")
else
    TASKS_PER_NODE=$GPUS  # CPU tasks: all on one node unless SRUN_ARGS say
fi
ROOT=$(cd "$(dirname "$0")/.." && pwd)

# shellcheck disable=SC2086  # SRUN_ARGS holds several options
PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" \
exec srun --partition="$PARTITION" \
    --job-name="$JOB_NAME" \
    "${GRES[@]}" \
    --ntasks="$GPUS" \
    --ntasks-per-node="$TASKS_PER_NODE" \
    --cpus-per-task="$CPUS_PER_TASK" \
    --kill-on-bad-exit=1 \
    $SRUN_ARGS \
    python -u "$ROOT/tools/$TOOL" "${@:4}"

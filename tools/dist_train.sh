#!/usr/bin/env bash
# Train with several processes (one per GPU; without a GPU, CPU processes
# talking over gloo):  tools/dist_train.sh CONFIG NUM_PROCESSES [train.py args]
# Several machines: set NNODES, NODE_RANK, MASTER_ADDR and PORT on each.
# TORCHRUN picks the launcher (default: torchrun on PATH).
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 CONFIG NUM_PROCESSES [train.py arguments]" >&2
    exit 2
fi
CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
TORCHRUN=${TORCHRUN:-torchrun}

exec "$TORCHRUN" \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --master_port="$PORT" \
    --nproc_per_node="$GPUS" \
    "$(dirname "$0")/train.py" \
    "$CONFIG" \
    --launcher pytorch "${@:3}"

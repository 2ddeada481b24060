#!/usr/bin/env bash
# Explain with several processes, like mmdet's tools/dist_test.sh:
#   tools/dist_explain.sh CONFIG CHECKPOINT NPROC --input IMAGES/ --output OUT/ [options]
# One process per GPU with NCCL; without CUDA, NPROC CPU processes with gloo.
# Every image is explained by exactly one process; rank 0 writes one manifest.
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR and PORT as for torchrun.
set -euo pipefail
if [ $# -lt 3 ]; then
    echo "usage: $0 CONFIG CHECKPOINT NPROC [explain.py options]" >&2
    exit 2
fi
CONFIG=$1
CHECKPOINT=$2
NPROC=$3
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
PYTHON=${PYTHON:-python}
HERE=$(cd "$(dirname "$0")" && pwd)

PYTHONPATH="$HERE/..${PYTHONPATH:+:$PYTHONPATH}" OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} \
exec "$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$NPROC" --master_port="$PORT" \
    "$HERE/explain.py" "$CONFIG" "$CHECKPOINT" --launcher pytorch "${@:4}"

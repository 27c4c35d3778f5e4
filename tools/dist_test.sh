#!/usr/bin/env bash
# Multi-process evaluation through torch.distributed (one process per GPU; gloo on a CPU machine).
#   tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCS [test.py options]
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR, PORT in the environment.
# A failed job is reported once, as one line, with the failed rank's exit code (tools/dist_run.py).
set -e
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
DIR=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-python}
[ -x "$DIR/../.venv/bin/python" ] && [ "$PYTHON" = python ] && PYTHON="$DIR/../.venv/bin/python"
PYTHONPATH="$DIR/..:$PYTHONPATH" \
exec "$PYTHON" "$DIR/dist_run.py" \
    --nnodes="$NNODES" --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" --master_port="$PORT" \
    "$DIR/test.py" "$CONFIG" "$CHECKPOINT" --launcher pytorch "${@:4}"

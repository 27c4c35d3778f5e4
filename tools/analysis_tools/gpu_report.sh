#!/usr/bin/env bash
# Every GPU check of the project in one run, for a machine with one CUDA GPU:
#   1. build stm_mm._ext with the CUDA kernels in place (FORCE_CUDA=1),
#   2. the CUDA tests of the DCNv3 op (equality with the PyTorch reference, fp16/bf16, gradcheck),
#   3. the DCNv3 op benchmark (compiled CUDA vs PyTorch core at U-InternImage-tiny's shapes),
#   4. bf16 training and inference throughput of the five tiny models, with model FLOP
#      utilisation, every stage's MLP alone, and the fused vs reference attention ratio.
#
#   tools/analysis_tools/gpu_report.sh [OUT_DIR]        (default work_dirs/gpu_report)
#
# Environment: PYTHON (default python3), TORCH_CUDA_ARCH_LIST (default: the GPU's own),
# BATCH (training batch, default 128), MAX_JOBS. Logs and JSON records go to OUT_DIR.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
# this checkout's stm_mm first, whichever environment $PYTHON belongs to
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python3}
OUT_DIR=${1:-work_dirs/gpu_report}
BATCH=${BATCH:-128}
mkdir -p "$OUT_DIR"
export PYTHONUNBUFFERED=1

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv \
    | tee "$OUT_DIR/gpu.txt"
"$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' \
    | tee -a "$OUT_DIR/gpu.txt"

echo "== 1. building stm_mm._ext with CUDA"
start=$(date +%s)
FORCE_CUDA=1 "$PY" setup.py -q build_ext --inplace > "$OUT_DIR/build.log" 2>&1 \
    || { tail -40 "$OUT_DIR/build.log"; exit 1; }
echo "built in $(( $(date +%s) - start )) s"

echo "== 2. CUDA tests of the DCNv3 op"
"$PY" -m pytest tests/test_ops -q -rs -k "cuda and not sources_compile" -p no:cacheprovider 2>&1 \
    | tee "$OUT_DIR/tests_cuda.log"

echo "== 3. DCNv3 op: compiled CUDA vs PyTorch core"
"$PY" tools/analysis_tools/benchmark_dcnv3.py --device cuda --json "$OUT_DIR/dcnv3_cuda.json" \
    2>&1 | tee "$OUT_DIR/dcnv3_cuda.log"

tiny=()
for stm in halo pvt swin dwconv dcnv3; do tiny+=("configs/_base_/models/u_${stm}_tiny.py"); done

echo "== 4a. bf16 training step (forward + backward), batch $BATCH at 224x224"
"$PY" tools/analysis_tools/benchmark.py "${tiny[@]}" --device cuda --train --amp bf16 \
    --batch-size "$BATCH" --reference --utilisation --mlp --warmup 5 --iters 20 \
    --json "$OUT_DIR/tiny_bf16_train.json" 2>&1 | tee "$OUT_DIR/tiny_bf16_train.log"

echo "== 4b. bf16 inference, batch $((BATCH * 2)) at 224x224"
"$PY" tools/analysis_tools/benchmark.py "${tiny[@]}" --device cuda --amp bf16 \
    --batch-size $((BATCH * 2)) --utilisation --warmup 5 --iters 20 \
    --json "$OUT_DIR/tiny_bf16_infer.json" 2>&1 | tee "$OUT_DIR/tiny_bf16_infer.log"

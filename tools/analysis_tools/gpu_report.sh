#!/usr/bin/env bash
# Every GPU check of the project in one run (aimed at under 8 minutes on one H100):
#   1. build stm_mm._ext with the CUDA kernels in place (FORCE_CUDA=1),
#   2. the GPU tests: DCNv3 CUDA op, the Triton kernels against the portable paths in bf16 and
#      fp32 (tests marked `cuda`), and the Triton kernels' registers/spills on this GPU's arch,
#   3. op benchmarks: Halo and Swin fused (Triton) vs SDPA vs reference, DCNv3 Triton vs the
#      CUDA extension vs the PyTorch core vs the authors' multi-scale deformable attention
#      kernel (mmcv's ms_deform_attn source, built alone), at the tiny models' stage shapes,
#   4. bf16 training and inference throughput of the five tiny models, eager and compiled,
#      with model FLOP utilisation.
# JSON records (each with the device name) and logs go to OUT_DIR, by default
# docs/benchmarks/gpu/<device>/ (commit the JSON files).
#
#   tools/analysis_tools/gpu_report.sh [--dry-run] [OUT_DIR]
#
# --dry-run: the CPU-sized version of every step (CI runs it): no build, no GPU tests, training
# only (no inference runs), Triton under its interpreter, batch 1 (models: 2) at 32x32, one timed round, micro models; records go to OUT_DIR
# (default: a temporary folder), never to docs/.
# On a bare lent GPU machine (PyTorch, Triton and nvcc, but no OpenMMLab packages), fetch those
# here first with tools/analysis_tools/gpu_wheels.sh, carry .whl, and run there:
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl &&
#   PYTHONPATH=/tmp/site PYTHON=python3 tools/analysis_tools/gpu_report.sh
# Environment: PYTHON (default: .venv/bin/python if present, else python3),
# TORCH_CUDA_ARCH_LIST (default: the GPU's own), BATCH (training batch, default 128), MAX_JOBS,
# ITERS (timed rounds, default 10).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
dry=0
if [ "${1:-}" = --dry-run ]; then dry=1; shift; fi
ITERS=${ITERS:-10}
BATCH=${BATCH:-128}

if [ $dry = 1 ]; then
  OUT_DIR=${1:-$(mktemp -d)}
  export TRITON_INTERPRET=1 CUDA_VISIBLE_DEVICES=''
  device=cpu
  scale=micro
  size=(32 32)
  mixer_args=(--dry-run)
  dcn_args=(--device cpu --dry-run --impls triton compiled pytorch)
  model_args=(--batch-size 2 --device cpu --warmup 0 --iters 1)  # BatchNorm needs 2 in training
  compile_args=()   # inductor's CPU compile of five models would take minutes: eager only
  arch_args=(--arch 90)   # both archs are compiled by tests/test_ops/test_triton_compile.py
else
  command -v nvidia-smi >/dev/null || { echo "error: no nvidia-smi: this needs a CUDA GPU" \
    "(fix: run on a GPU machine, or pass --dry-run for the CPU check)" >&2; exit 2; }
  device=cuda
  scale=tiny
  size=(224 224)
  name=$("$PY" -c 'import torch; print(torch.cuda.get_device_name().replace(" ", "_"))')
  OUT_DIR=${1:-docs/benchmarks/gpu/$name}
  mixer_args=(--batch-size "$BATCH" --iters "$ITERS" --device cuda)
  dcn_args=(--device cuda --quick --impls triton compiled pytorch authors_msda)
  model_args=(--batch-size "$BATCH" --device cuda --warmup 5 --iters "$ITERS" --utilisation)
  compile_args=(--compile)
  arch_args=()      # this GPU's own architecture
fi
mkdir -p "$OUT_DIR"
echo "gpu_report: device $device, records in $OUT_DIR"
step() { echo; echo "== $*"; }

if [ $dry = 0 ]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv \
      | tee "$OUT_DIR/gpu.txt"
  "$PY" -c 'import torch, triton; print("torch", torch.__version__, "cuda", torch.version.cuda,
"triton", triton.__version__)' | tee -a "$OUT_DIR/gpu.txt"
  step "1. building stm_mm._ext with CUDA"
  start=$(date +%s)
  FORCE_CUDA=1 "$PY" setup.py -q build_ext --inplace > "$OUT_DIR/build.log" 2>&1 \
      || { tail -40 "$OUT_DIR/build.log"; exit 1; }
  echo "built in $(( $(date +%s) - start )) s"
  step "2a. GPU tests (DCNv3 CUDA op; Triton kernels vs the portable paths, bf16 and fp32)"
  "$PY" -m pytest tests/test_ops -q -rs -m cuda -k "not sources_compile" -p no:cacheprovider \
      2>&1 | tee "$OUT_DIR/tests_cuda.log"
fi

step "2b. Triton kernels: registers and spills per launch configuration"
"$PY" tools/analysis_tools/triton_resources.py ${arch_args[@]+"${arch_args[@]}"} \
    --json "$OUT_DIR/triton_resources.json"

step "3a. Halo, Swin and DCNv3 mixers: every implementation side by side"
"$PY" tools/analysis_tools/benchmark_mixers.py "${mixer_args[@]}" \
    --json "$OUT_DIR/mixers.json" 2>&1 | tee "$OUT_DIR/mixers.log"

step "3b. DCNv3 op: Triton vs CUDA extension vs PyTorch core vs the authors' MSDA kernel"
"$PY" tools/analysis_tools/benchmark_dcnv3.py "${dcn_args[@]}" \
    --json "$OUT_DIR/dcnv3_op.json" 2>&1 | tee "$OUT_DIR/dcnv3_op.log"

models=()
# the list = stm_mm.models.STM_NAMES (checked by tests/test_models/test_mixer_specs.py)
for stm in halo pvt swin dwconv dcnv3; do models+=("configs/_base_/models/u_${stm}_${scale}.py"); done
step "4a. bf16 training step (forward + backward) of the five $scale models"
"$PY" tools/analysis_tools/benchmark.py "${models[@]}" --train --amp bf16 \
    "${model_args[@]}" --input-size "${size[@]}" ${compile_args[@]+"${compile_args[@]}"} \
    --json "$OUT_DIR/models_bf16_train.json" 2>&1 | tee "$OUT_DIR/models_bf16_train.log"
if [ $dry = 1 ]; then echo; echo "gpu_report: dry run done, records in $OUT_DIR"; exit 0; fi
step "4b. bf16 inference of the five $scale models"
"$PY" tools/analysis_tools/benchmark.py "${models[@]}" --amp bf16 \
    "${model_args[@]}" --input-size "${size[@]}" ${compile_args[@]+"${compile_args[@]}"} \
    --json "$OUT_DIR/models_bf16_infer.json" 2>&1 | tee "$OUT_DIR/models_bf16_infer.log"
echo; echo "gpu_report: done, records in $OUT_DIR"

#!/usr/bin/env bash
# OpenMMLab's own tools (mmpretrain's and mmdet's, which their packages ship in .mim/tools) on the
# digits demo classifier, then on the digit-scenes detector: the commands of docs/analysis.md,
# "Using OpenMMLab's own tools with stm_mm", in that order. Needs the outputs of
# `make demo-cls STM=$STM` (data, log, checkpoint); the detection part runs when
# `make demo-det STM=$STM` has left a checkpoint.
#
#   STM=dwconv tools/demo/openmmlab_tools.sh
#
# Environment: STM (default dwconv), DATA (default data/digits), SCENES (default
# data/digit_scenes), WORK_DIRS (default work_dirs/demo), DET_CHECKPOINT (default: the last
# checkpoint in $WORK_DIRS/det_${STM}_micro/), OUT (default $WORK_DIRS/openmmlab_tools), PYTHON,
# EXTRA_CFG_OPTIONS / EXTRA_DET_CFG_OPTIONS (appended to every classification / detection
# --cfg-options).
set -euo pipefail
# shellcheck source=tools/demo/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
STM=${STM:-dwconv}
DATA=${DATA:-data/digits}
SCENES=${SCENES:-data/digit_scenes}
SCENES=${SCENES%/}
WORK_DIRS=${WORK_DIRS:-work_dirs/demo}
OUT=${OUT:-$WORK_DIRS/openmmlab_tools}
mkdir -p "$OUT"

config=configs/cls/digits/u_${STM}_micro_digits.py
checkpoint=$WORK_DIRS/cls_${STM}_micro.pth
# MMEngine's JSON log of the last training run: WORK_DIR/TIMESTAMP/vis_data/TIMESTAMP.json
log=$(ls -t "$WORK_DIRS/cls_${STM}_micro"/*/vis_data/2*.json | head -n 1)
image=$(ls "$DATA"/val/*/*.png | head -n 1)
options=(test_dataloader.dataset.data_root="$DATA" train_dataloader.dataset.data_root="$DATA")
if [ -n "${EXTRA_CFG_OPTIONS:-}" ]; then
  # shellcheck disable=SC2206
  options+=(${EXTRA_CFG_OPTIONS})
fi
mmpretrain_tools=$("$PY" -c 'import mmpretrain, os.path as p; print(p.join(p.dirname(mmpretrain.__file__), ".mim", "tools"))')
mmdet_tools=$("$PY" -c 'import mmdet, os.path as p; print(p.join(p.dirname(mmdet.__file__), ".mim", "tools"))')
run() { echo "== $*"; "$@"; }

# training curves and speed, from the JSON log
run "$PY" "$mmpretrain_tools/analysis_tools/analyze_logs.py" plot_curve "$log" --keys loss \
    --out "$OUT/loss.png"
run "$PY" "$mmpretrain_tools/analysis_tools/analyze_logs.py" cal_train_time "$log"
run "$PY" "$mmdet_tools/analysis_tools/analyze_logs.py" plot_curve "$log" --keys loss lr \
    --out "$OUT/loss_lr_mmdet.png"
# the full config
run "$PY" "$mmpretrain_tools/misc/print_config.py" "$config" > "$OUT/config.txt"
# what the training pipeline makes of the images
run "$PY" "$mmpretrain_tools/visualization/browse_dataset.py" "$config" -o "$OUT/browse" \
    -m original -n 4 --cfg-options "${options[@]}"
# predictions on the test set, then their confusion matrix and the best / worst images
run "$PY" tools/test.py "$config" "$checkpoint" --out "$OUT/results.pkl" --work-dir "$OUT/test" \
    --cfg-options "${options[@]}"
run "$PY" "$mmpretrain_tools/analysis_tools/confusion_matrix.py" "$config" "$OUT/results.pkl" \
    --show-path "$OUT/confusion_matrix.png" --include-values --cfg-options "${options[@]}"
run "$PY" "$mmpretrain_tools/analysis_tools/analyze_results.py" "$config" "$OUT/results.pkl" \
    --out-dir "$OUT/results" --topk 4 --cfg-options "${options[@]}"
# Grad-CAM; the default layer (backbone.stage_norms.3) is 1x1 at 32 px: take stage 1's 4x4
run "$PY" "$mmpretrain_tools/visualization/vis_cam.py" "$image" "$config" "$checkpoint" \
    --target-layers backbone.stage_norms.1 --save-path "$OUT/cam.png"
# parameters and MACs
run "$PY" tools/analysis_tools/get_flops.py "$config" --input-size 32

# the digit-scenes Mask R-CNN of make demo-det STM=$STM, when there is one: mmdet's own tools
det_config=configs/det/digit_scenes/u_${STM}_micro_maskrcnn_digits.py
det_checkpoint=${DET_CHECKPOINT:-}
if [ -z "$det_checkpoint" ] && [ -f "$WORK_DIRS/det_${STM}_micro/last_checkpoint" ]; then
  det_checkpoint=$(cat "$WORK_DIRS/det_${STM}_micro/last_checkpoint")
fi
if [ -n "$det_checkpoint" ] && [ -f "$det_checkpoint" ]; then
  det_options=(train_dataloader.dataset.data_root="$SCENES/" test_dataloader.dataset.data_root="$SCENES/"
               test_evaluator.ann_file="$SCENES/annotations/instances_val.json")
  if [ -n "${EXTRA_DET_CFG_OPTIONS:-}" ]; then
    # shellcheck disable=SC2206
    det_options+=(${EXTRA_DET_CFG_OPTIONS})
  fi
  # the training pipeline's images with their boxes and masks
  run "$PY" "$mmdet_tools/analysis_tools/browse_dataset.py" "$det_config" \
      --output-dir "$OUT/det_browse" --not-show --cfg-options "${det_options[@]}"
  # predictions on the validation scenes, their confusion matrix and the best / worst images
  run "$PY" tools/test.py "$det_config" "$det_checkpoint" --out "$OUT/det_results.pkl" \
      --work-dir "$OUT/det_test" --cfg-options "${det_options[@]}"
  run "$PY" "$mmdet_tools/analysis_tools/confusion_matrix.py" "$det_config" \
      "$OUT/det_results.pkl" "$OUT/det" --cfg-options "${det_options[@]}"
  run "$PY" "$mmdet_tools/analysis_tools/analyze_results.py" "$det_config" \
      "$OUT/det_results.pkl" "$OUT/det_results" --topk 2 --cfg-options "${det_options[@]}"
else
  echo "== no digit-scenes detector (make demo-det STM=$STM, or DET_CHECKPOINT): skipping mmdet's" \
       "browse_dataset, confusion_matrix and analyze_results"
fi
echo "== outputs in $OUT"

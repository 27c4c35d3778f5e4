#!/usr/bin/env bash
# Detection demo on digit scenes (no download): transfer the backbone of the classification digits
# model to Mask R-CNN, train it on the embedded digit-scenes set and print its COCO metrics.
#
#   STM=halo tools/demo/det_digit_scenes.sh        (or: make demo-det STM=halo)
#
# Steps: (1) the classification checkpoint $WORK_DIRS/cls_${STM}_micro.pth (made by
# tools/demo/cls_digits.sh = make demo-cls; run here when missing), (2) digit scenes written to
# $DATA if missing, (3) cls2det: classification -> detection backbone checkpoint, (4) Mask R-CNN
# training with tools/train.py, (5) evaluation with tools/test.py, metric table and JSON.
#
# Environment: STM (halo|pvt|swin|dwconv|dcnv3, default halo), DATA (default data/digit_scenes),
# WORK_DIRS (default work_dirs/demo), CLS_CHECKPOINT (default $WORK_DIRS/cls_${STM}_micro.pth),
# PYTHON, EXTRA_CFG_OPTIONS (appended to --cfg-options, e.g. "train_cfg.max_iters=200").
# Outputs: $WORK_DIRS/det_${STM}_micro/ (logs, checkpoint, coco_metrics.json).
set -euo pipefail
# shellcheck source=tools/demo/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
STM=${STM:-halo}
DATA=${DATA:-data/digit_scenes}
DATA=${DATA%/}
WORK_DIRS=${WORK_DIRS:-work_dirs/demo}
CLS_CHECKPOINT=${CLS_CHECKPOINT:-$WORK_DIRS/cls_${STM}_micro.pth}
STMS="halo pvt swin dwconv dcnv3"  # = stm_mm.models.STM_NAMES (checked by tests/test_models/test_mixer_specs.py)
case " $STMS " in
  *" $STM "*) ;;
  *) echo "det_digit_scenes.sh: unknown STM '$STM' (choose one of: $STMS)" >&2
     exit 2 ;;
esac
start=$(date +%s)

if [ ! -f "$CLS_CHECKPOINT" ]; then
  if [ -x tools/demo/cls_digits.sh ] && [ "$CLS_CHECKPOINT" = "$WORK_DIRS/cls_${STM}_micro.pth" ]; then
    echo "== no classification checkpoint $CLS_CHECKPOINT: running the classification demo first"
    echo "   (make demo-cls STM=$STM)"
    STM=$STM WORK_DIRS=$WORK_DIRS PYTHON=$PY tools/demo/cls_digits.sh
  else
    echo "det_digit_scenes.sh: $CLS_CHECKPOINT not found; run 'make demo-cls STM=$STM' first" >&2
    exit 1
  fi
fi

echo "== digit scenes: $DATA"
"$PY" tools/dataset_converters/digit_scenes.py "$DATA"

config=configs/det/digit_scenes/u_${STM}_micro_maskrcnn_digits.py
work_dir=$WORK_DIRS/det_${STM}_micro
backbone=$WORK_DIRS/det_${STM}_micro_backbone.pth
mkdir -p "$work_dir"

echo "== backbone transfer: $CLS_CHECKPOINT -> $backbone"
"$PY" tools/model_converters/cls2det.py "$CLS_CHECKPOINT" "$backbone" --config "$config"

options=(model.backbone.init_cfg.checkpoint="$backbone"
         train_dataloader.dataset.data_root="$DATA/" val_dataloader.dataset.data_root="$DATA/"
         test_dataloader.dataset.data_root="$DATA/"
         val_evaluator.ann_file="$DATA/annotations/instances_val.json"
         test_evaluator.ann_file="$DATA/annotations/instances_val.json")
if [ -n "${EXTRA_CFG_OPTIONS:-}" ]; then
  # shellcheck disable=SC2206
  options+=(${EXTRA_CFG_OPTIONS})
fi

echo "== training Mask R-CNN with U-${STM}-micro: $config -> $work_dir"
train_start=$(date +%s)
rm -f "$work_dir/last_checkpoint"
# --no-validate: evaluated once below with tools/test.py instead of also at the last iteration
"$PY" tools/train.py "$config" --work-dir "$work_dir" --no-validate --cfg-options "${options[@]}"
train_end=$(date +%s)
checkpoint=$(cat "$work_dir/last_checkpoint")

echo "== evaluating $checkpoint"
test_dir=$work_dir/test
"$PY" tools/test.py "$config" "$checkpoint" --work-dir "$test_dir" --cfg-options "${options[@]}"
end=$(date +%s)

# MMEngine's LoggerHook writes the test metrics to <test_dir>/<timestamp>/<timestamp>.json.
metrics=
for f in "$test_dir"/*/*.json; do  # timestamps sort chronologically: keep the newest
  if [ -f "$f" ] && [ "$(basename "$f" .json)" = "$(basename "$(dirname "$f")")" ]; then
    metrics=$f
  fi
done
[ -n "$metrics" ] || { echo "det_digit_scenes.sh: no metrics JSON under $test_dir" >&2; exit 1; }
cp "$metrics" "$work_dir/coco_metrics.json"

"$PY" - "$work_dir/coco_metrics.json" <<'PYEOF'
import json
import sys

with open(sys.argv[1]) as f:
    metrics = [json.loads(line) for line in f if line.strip()][-1]
names = ['mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l']
print()
print('== COCO metrics, digit scenes val (-1: no object of that size)')
print(f'{"":6}' + ''.join(f'{h:>8}' for h in ('AP', 'AP50', 'AP75', 'APs', 'APm', 'APl')))
for task, title in (('bbox', 'box'), ('segm', 'mask')):
    values = [metrics.get(f'coco/{task}_{n}') for n in names]
    if any(v is None for v in values):
        print(f'{title:6}  (no result: the model made no detections)')
        continue
    print(f'{title:6}' + ''.join(f'{v:8.3f}' for v in values))
PYEOF
echo
echo "metrics JSON:  $work_dir/coco_metrics.json  (MMEngine's copy: $metrics)"
echo "checkpoint:    $checkpoint"
echo "time:          train $((train_end - train_start)) s, total $((end - start)) s (STM=$STM)"

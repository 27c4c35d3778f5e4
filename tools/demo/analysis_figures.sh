#!/usr/bin/env bash
# Regenerate the analysis figures of docs/figures/ (docs/analysis.md) from the five micro models
# of the digits demo (make demo-cls STM=all): ERF of every stage side by side, translation /
# rotation invariance curves on the 360 held-out digits and their development over the kept
# epochs (Fig. 7c), Grad-CAM of the five on the same digits and on china.jpg; plus detection
# scale invariance and ERF@50 against AP by object size (Fig. 5) when digit-scenes detectors and
# data exist (make demo-det).
#
#   tools/demo/analysis_figures.sh
#
# A missing classification checkpoint ($WORK_DIRS/cls_<stm>_micro.pth) falls back to the
# initialised weights of that model, with a message, and its label in the figures ends in
# "(init)". A missing detection checkpoint drops that detector from the scale curves.
#
# Environment: WORK_DIRS (checkpoints, default work_dirs/demo), OUT (default docs/figures),
# ANALYSIS_DIR (full outputs, default work_dirs/analysis), PYTHON, THREADS (torch CPU threads,
# default 1: fastest on a busy machine), ERF_SIZE (default 64), ERF_IMAGES (default 16),
# INV_IMAGES (default 0 = all 360), DET_CKPT_FMT (printf pattern of the detector checkpoints,
# default $WORK_DIRS/det_%s_micro.pth; else the last checkpoint in $WORK_DIRS/det_<stm>_micro/,
# where make demo-det leaves it), DET_DATA (default data/digit_scenes/annotations/
# instances_val.json), DET_IMAGES (default 30), DET_ERF_DATA (images of the detectors' ERF,
# default data/digit_scenes/val), DET_ERF_SIZE (default 128), DIGITS (the digits image folder,
# default data/digits, written if missing), CAM_DIGITS (the classes whose first held-out scan
# Grad-CAM shows, default "0 3 5 8").
set -euo pipefail
# shellcheck source=tools/demo/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
WORK_DIRS=${WORK_DIRS:-work_dirs/demo}
OUT=${OUT:-docs/figures}
ANALYSIS_DIR=${ANALYSIS_DIR:-work_dirs/analysis}
THREADS=${THREADS:-1}
ERF_SIZE=${ERF_SIZE:-64}
ERF_IMAGES=${ERF_IMAGES:-16}
INV_IMAGES=${INV_IMAGES:-0}
DET_CKPT_FMT=${DET_CKPT_FMT:-$WORK_DIRS/det_%s_micro.pth}
DET_DATA=${DET_DATA:-data/digit_scenes/annotations/instances_val.json}
DET_IMAGES=${DET_IMAGES:-30}
DET_ERF_DATA=${DET_ERF_DATA:-data/digit_scenes/val}
DET_ERF_SIZE=${DET_ERF_SIZE:-128}
DIGITS=${DIGITS:-data/digits}
CAM_DIGITS=${CAM_DIGITS:-0 3 5 8}
STMS="halo pvt swin dwconv dcnv3"  # = stm_mm.models.STM_NAMES (checked by tests/test_models/test_mixer_specs.py)

name_of() {  # = the specs' labels (same test)
  case $1 in
    halo) echo U-HaloNet ;; pvt) echo U-PVT ;; swin) echo U-Swin ;; dwconv) echo U-DWConv ;;
    dcnv3) echo U-InternImage ;;
  esac
}

# classification models: CONFIG:CHECKPOINT:LABEL
cls_specs=()
missing=0
for stm in $STMS; do
  config=configs/cls/digits/u_${stm}_micro_digits.py
  ckpt=$WORK_DIRS/cls_${stm}_micro.pth
  label="$(name_of "$stm")-micro"
  if [ -f "$ckpt" ]; then
    cls_specs+=("$config:$ckpt:$label")
  else
    echo "analysis_figures.sh: $ckpt not found (train it with: make demo-cls STM=$stm);" \
         "using the initialised weights of $label, labelled '$label (init)'" >&2
    cls_specs+=("$config:none:$label (init)")
    missing=$((missing + 1))
  fi
done

split_spec() {  # CONFIG:CHECKPOINT:LABEL -> the three parts in spec_cfg, spec_ckpt, spec_label
  spec_cfg=${1%%:*}; local rest=${1#*:}
  spec_ckpt=${rest%%:*}; spec_label=${rest#*:}
}

mkdir -p "$OUT" "$ANALYSIS_DIR"
split_spec "${cls_specs[0]}"
echo "== ERF of every stage (${ERF_IMAGES} digits at ${ERF_SIZE}x${ERF_SIZE}) -> $ANALYSIS_DIR/erf"
"$PY" tools/analysis_tools/erf.py "$spec_cfg" "$spec_ckpt" --label "$spec_label" \
    --compare "${cls_specs[@]:1}" --data digits --num-images "$ERF_IMAGES" \
    --input-size "$ERF_SIZE" --out-dir "$ANALYSIS_DIR/erf" --threads "$THREADS"
cp "$ANALYSIS_DIR/erf/erf_compare.png" "$ANALYSIS_DIR/erf/erf_compare.json" "$OUT/"

echo "== translation / rotation invariance (held-out digits) -> $ANALYSIS_DIR/invariance"
"$PY" tools/analysis_tools/invariance.py cls "$spec_cfg" "$spec_ckpt" --label "$spec_label" \
    --compare "${cls_specs[@]:1}" --num-images "$INV_IMAGES" \
    --out-dir "$ANALYSIS_DIR/invariance" --threads "$THREADS" --plot-accuracy
cp "$ANALYSIS_DIR"/invariance/invariance_cls.{png,json,csv} "$OUT/"

# Grad-CAM of the five classifiers on the same held-out digits (32 px: stage 1's 4x4 map) and on
# scikit-learn's china.jpg at ImageNet's 224 px (stage 3's 7x7 map)
"$PY" tools/dataset_converters/digits_to_imagefolder.py "$DIGITS" > /dev/null
cam_dir=$(mktemp -d)
trap 'rm -rf "$cam_dir"' EXIT
"$PY" -c "import sys; from PIL import Image; from sklearn.datasets import load_sample_image
Image.fromarray(load_sample_image('china.jpg')).save(sys.argv[1])" "$cam_dir/china.jpg"
cam_images=()
for digit in $CAM_DIGITS; do
  cam_images+=("$(find "$DIGITS/val/$digit" -name '*.png' | sort | head -n 1)")
done
echo "== Grad-CAM (digits $CAM_DIGITS at 32 px, china.jpg at 224 px) -> $OUT/grad_cam.png"
"$PY" tools/analysis_tools/grad_cam.py --models "${cls_specs[@]}" \
    --images "${cam_images[@]}" "$cam_dir/china.jpg@224" \
    --out "$OUT/grad_cam.png" --json "$OUT/grad_cam.json"

# invariance over training (Fig. 7c): the runs of make demo-cls with at least two epoch_*.pth
train_specs=()
for stm in $STMS; do
  run=$WORK_DIRS/cls_${stm}_micro
  kept=0
  if [ -d "$run" ]; then kept=$(find "$run" -maxdepth 1 -name 'epoch_*.pth' | wc -l); fi
  if [ "$kept" -ge 2 ]; then
    train_specs+=("configs/cls/digits/u_${stm}_micro_digits.py:$run:$(name_of "$stm")-micro")
  fi
done
if [ ${#train_specs[@]} -gt 0 ]; then
  split_spec "${train_specs[0]}"
  compare=()
  if [ ${#train_specs[@]} -gt 1 ]; then compare=(--compare "${train_specs[@]:1}"); fi
  echo "== invariance over training (${#train_specs[@]} runs) -> $ANALYSIS_DIR/invariance_training"
  "$PY" tools/analysis_tools/invariance.py cls "$spec_cfg" "$spec_ckpt" --label "$spec_label" \
      ${compare[@]+"${compare[@]}"} --num-images "$INV_IMAGES" \
      --out-dir "$ANALYSIS_DIR/invariance_training" --threads "$THREADS"
  cp "$ANALYSIS_DIR"/invariance_training/invariance_cls_training.{png,json,csv} "$OUT/"
else
  echo "analysis_figures.sh: no $WORK_DIRS/cls_<stm>_micro/ with two or more epoch_*.pth" \
       "(make demo-cls keeps epochs 2, 4, ..., 10); skipping invariance over training" >&2
fi

det_checkpoint() {  # $DET_CKPT_FMT, else the last checkpoint of make demo-det's work dir
  # shellcheck disable=SC2059
  local ckpt
  ckpt=$(printf "$DET_CKPT_FMT" "$1")
  if [ ! -f "$ckpt" ] && [ -f "$WORK_DIRS/det_$1_micro/last_checkpoint" ]; then
    ckpt=$(cat "$WORK_DIRS/det_$1_micro/last_checkpoint")
  fi
  echo "$ckpt"
}

det_specs=()
for stm in $STMS; do
  ckpt=$(det_checkpoint "$stm")
  if [ -f "$ckpt" ]; then
    det_specs+=("configs/det/digit_scenes/u_${stm}_micro_maskrcnn_digits.py:$ckpt:$(name_of "$stm")-micro")
  fi
done
if [ ${#det_specs[@]} -gt 0 ] && [ -f "$DET_DATA" ]; then
  split_spec "${det_specs[0]}"
  compare=()
  if [ ${#det_specs[@]} -gt 1 ]; then compare=(--compare "${det_specs[@]:1}"); fi
  echo "== detection scale invariance (${DET_IMAGES} digit scenes) -> $ANALYSIS_DIR/invariance"
  "$PY" tools/analysis_tools/invariance.py det "$spec_cfg" "$spec_ckpt" --label "$spec_label" \
      ${compare[@]+"${compare[@]}"} --data "$DET_DATA" --num-images "$DET_IMAGES" \
      --out-dir "$ANALYSIS_DIR/invariance" --threads "$THREADS"
  cp "$ANALYSIS_DIR"/invariance/invariance_det.{png,json,csv} "$OUT/"
  "$PY" tools/analysis_tools/invariance.py plot "$OUT/invariance_cls.json" \
      "$OUT/invariance_det.json" --out "$OUT/invariance_all.png"

  # ERF against AP by object size (Fig. 5): ERF of every detector's backbone on validation
  # scenes, joined with the COCO metrics that make demo-det saved next to its checkpoint
  split_spec "${det_specs[0]}"
  echo "== ERF of the detectors (${ERF_IMAGES} scenes at ${DET_ERF_SIZE}) -> $ANALYSIS_DIR/erf_det"
  "$PY" tools/analysis_tools/erf.py "$spec_cfg" "$spec_ckpt" --label "$spec_label" \
      ${compare[@]+"${compare[@]}"} --data "$DET_ERF_DATA" --num-images "$ERF_IMAGES" \
      --input-size "$DET_ERF_SIZE" --out-dir "$ANALYSIS_DIR/erf_det" --threads "$THREADS"
  erf_json=$ANALYSIS_DIR/erf_det/erf_compare.json
  [ ${#det_specs[@]} -gt 1 ] || erf_json=$ANALYSIS_DIR/erf_det/erf.json
  ap_specs=()
  for stm in $STMS; do
    metrics=$WORK_DIRS/det_${stm}_micro/coco_metrics.json
    if [ -f "$(det_checkpoint "$stm")" ] && [ -f "$metrics" ]; then
      ap_specs+=("$erf_json:$metrics:$(name_of "$stm")-micro")
    fi
  done
  if [ ${#ap_specs[@]} -gt 0 ]; then
    echo "== ERF@50 against AP by object size -> $ANALYSIS_DIR/erf_vs_ap"
    "$PY" tools/analysis_tools/erf_vs_ap.py --from-json "${ap_specs[@]}" \
        --out-dir "$ANALYSIS_DIR/erf_vs_ap" \
        --title "digit-scenes micro detectors: AP by object size against ERF@50"
    cp "$ANALYSIS_DIR"/erf_vs_ap/erf_vs_ap.{png,json,csv} "$OUT/"
  else
    echo "analysis_figures.sh: no $WORK_DIRS/det_<stm>_micro/coco_metrics.json (make demo-det" \
         "writes it); skipping ERF against AP" >&2
  fi
else
  # shellcheck disable=SC2059
  echo "analysis_figures.sh: no digit-scenes detector checkpoints ($(printf "$DET_CKPT_FMT" '<stm>')" \
       "or $WORK_DIRS/det_<stm>_micro/last_checkpoint)" \
       "or no $DET_DATA; skipping the detection scale curves (run make demo-det first)" >&2
fi

echo
echo "== figures in $OUT:"
ls -l "$OUT"
if [ "$missing" -gt 0 ]; then
  echo "analysis_figures.sh: $missing of 5 classification checkpoints were missing; their" \
       "curves use initialised weights (labelled '(init)')" >&2
fi

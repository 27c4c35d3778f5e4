#!/usr/bin/env bash
# Regenerate the demo pictures of docs/figures/ (README, docs/classification.md, docs/detection.md)
# with tools/demo/image_demo.py and det_image_demo.py: the digits classifier and digit-scenes
# detector of one STM (make demo STM=$STM) on a held-out digit scan, a validation digit scene and
# scikit-learn's photograph china.jpg.
#
#   STM=dwconv tools/demo/image_demo_figures.sh
#
# Environment: STM (default dwconv), WORK_DIRS (checkpoints of make demo, default work_dirs/demo),
# DIGIT (default data/digits/val/7/0081.png), SCENE (default data/digit_scenes/val/000000.png),
# OUT (default docs/figures), PYTHON.
set -euo pipefail
# shellcheck source=tools/demo/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
STM=${STM:-dwconv}
WORK_DIRS=${WORK_DIRS:-work_dirs/demo}
DIGIT=${DIGIT:-data/digits/val/7/0081.png}
SCENE=${SCENE:-data/digit_scenes/val/000000.png}
OUT=${OUT:-docs/figures}
cls_config=configs/cls/digits/u_${STM}_micro_digits.py
det_config=configs/det/digit_scenes/u_${STM}_micro_maskrcnn_digits.py
cls_ckpt=$WORK_DIRS/cls_${STM}_micro.pth
det_ckpt=$(cat "$WORK_DIRS/det_${STM}_micro/last_checkpoint" 2>/dev/null || true)
for f in "$cls_ckpt" "$det_ckpt" "$DIGIT" "$SCENE"; do
  [ -f "$f" ] || { echo "image_demo_figures.sh: '$f' not found; fix: run make demo STM=$STM" >&2
                   exit 1; }
done
china=$(mktemp --suffix=.jpg)
trap 'rm -f "$china"' EXIT
"$PY" -c "import sys; from PIL import Image; from sklearn.datasets import load_sample_image
Image.fromarray(load_sample_image('china.jpg')).save(sys.argv[1])" "$china"

mkdir -p "$OUT"
"$PY" tools/demo/image_demo.py "$DIGIT" "$cls_config" "$cls_ckpt" --topk 3 \
    --out "$OUT/demo_cls_digit.png"
"$PY" tools/demo/image_demo.py "$china" "$cls_config" "$cls_ckpt" --topk 3 \
    --out "$OUT/demo_cls_china.jpg"
"$PY" tools/demo/det_image_demo.py "$SCENE" "$det_config" "$det_ckpt" --scale 4 \
    --out "$OUT/demo_det_scene.png"
"$PY" tools/demo/det_image_demo.py "$china" "$det_config" "$det_ckpt" \
    --out "$OUT/demo_det_china.jpg"

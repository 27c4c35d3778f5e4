#!/usr/bin/env bash
# Classification demo on the embedded digits (no download): convert scikit-learn's 1,797 digit
# scans to an image folder if missing, train the micro model of $STM from scratch with
# tools/train.py, evaluate top-1 with tools/test.py and keep the checkpoint for the detection demo.
#
#   STM=halo tools/demo/cls_digits.sh          (or: make demo-cls STM=halo)
#   STM=all  tools/demo/cls_digits.sh          (the five STMs, one after another)
#
# Environment: STM (halo|pvt|swin|dwconv|dcnv3|all, default halo), DATA (default data/digits),
# WORK_DIRS (default work_dirs/demo), PYTHON, EXTRA_CFG_OPTIONS (appended to --cfg-options,
# e.g. "train_cfg.max_epochs=5").
# Outputs: $WORK_DIRS/cls_${STM}_micro/ (logs, epoch_{2,4,...,10}.pth) and
# $WORK_DIRS/cls_${STM}_micro.pth (the last).
set -euo pipefail
# shellcheck source=tools/demo/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
STM=${STM:-halo}
DATA=${DATA:-data/digits}
WORK_DIRS=${WORK_DIRS:-work_dirs/demo}
ALL_STMS="halo pvt swin dwconv dcnv3"  # = stm_mm.models.STM_NAMES (checked by tests/test_models/test_mixer_specs.py)

if [ "$STM" = all ]; then
  stms=$ALL_STMS
else
  case " $ALL_STMS " in
    *" $STM "*) stms=$STM ;;
    *) echo "cls_digits.sh: unknown STM '$STM' (choose one of: $ALL_STMS, all)" >&2; exit 2 ;;
  esac
fi

echo "== digits dataset: $DATA"
"$PY" tools/dataset_converters/digits_to_imagefolder.py "$DATA"

mkdir -p "$WORK_DIRS"
summary=()
for stm in $stms; do
  config=configs/cls/digits/u_${stm}_micro_digits.py
  work_dir=$WORK_DIRS/cls_${stm}_micro
  # a checkpoint every 2 epochs, all kept: invariance over training (docs/analysis.md, Fig. 7c)
  options=(train_dataloader.dataset.data_root="$DATA" val_dataloader.dataset.data_root="$DATA"
           test_dataloader.dataset.data_root="$DATA"
           default_hooks.checkpoint.interval=2 default_hooks.checkpoint.max_keep_ckpts=-1)
  if [ -n "${EXTRA_CFG_OPTIONS:-}" ]; then
    # shellcheck disable=SC2206
    options+=(${EXTRA_CFG_OPTIONS})
  fi
  echo "== training U-${stm}-micro on digits: $config -> $work_dir"
  start=$(date +%s)
  rm -f "$work_dir/last_checkpoint"
  "$PY" tools/train.py "$config" --work-dir "$work_dir" --cfg-options "${options[@]}"
  trained=$(date +%s)
  checkpoint=$(cat "$work_dir/last_checkpoint")
  echo "== evaluating $checkpoint"
  test_log=$work_dir/test_output.txt
  "$PY" tools/test.py "$config" "$checkpoint" --work-dir "$work_dir/test" \
      --cfg-options "${options[@]}" 2>&1 | tee "$test_log"
  end=$(date +%s)
  top1=$(sed -n "s/.*'accuracy\/top1': \([0-9.]*\).*/\1/p" "$test_log" | tail -1)
  [ -n "$top1" ] || { echo "cls_digits.sh: no top-1 in the test output ($test_log)" >&2; exit 1; }
  cp "$checkpoint" "$WORK_DIRS/cls_${stm}_micro.pth"
  summary+=("$(printf '%-7s top-1 %6.2f %%   train %4d s   total %4d s   %s' "$stm" "$top1" \
                $((trained - start)) $((end - start)) "$WORK_DIRS/cls_${stm}_micro.pth")")
done

echo
echo "== digits classification summary (val split: 360 images, 10 classes)"
for line in "${summary[@]}"; do echo "$line"; done

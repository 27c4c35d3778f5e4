#!/usr/bin/env bash
# An installed (not editable) stm_mm keeps its model zoo and is a codebase openmim can use (#27).
#
# Builds this checkout's wheel (without the C++ extension: what is checked is the packaging),
# installs it into a scratch venv offline from the caches .venv was made from, and there, outside
# the checkout: mmpretrain.list_models('u-*') lists the 20 classifiers, get_model builds one,
# `mim list` shows stm_mm, `mim search stm_mm` reads its model index, `mim train` / `mim test` run
# a digits config for one epoch on 10 images and `mim run stm_mm get_flops` runs a tool from
# stm_mm/.mim. `make test` runs it after `make env`, before the test suite.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
start=$(date +%s)
# STM_MM_CACHE, UV_CACHE_DIR, STM_MM_UV, STM_MM_WHEELHOUSE (written by tools/setup_env.sh)
set -a
# shellcheck source=/dev/null
source .venv/stm_mm-caches
set +a
PY=$root/.venv/bin/python
uv=$STM_MM_UV
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

STM_MM_NO_EXT=1 "$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$tmp/dist" . 2>&1 |
  { grep -v -e '^\s*$' -e 'DEPRECATION' || true; }
wheel=$(ls "$tmp"/dist/stm_mm-*.whl)
"$uv" venv -q --python "$PY" "$tmp/venv"
vpy=$tmp/venv/bin/python
# shellcheck source=tools/uv_install.sh
source tools/uv_install.sh
UV_OFFLINE=1 uv_install --find-links "$STM_MM_WHEELHOUSE" -r requirements/build.txt "$wheel" \
  -r requirements/analysis.txt

cd "$tmp"  # nothing may come from the checkout
site=$("$vpy" - <<'PY'
from pathlib import Path

import mmpretrain

import stm_mm

site = Path(stm_mm.__file__).parent
assert site.parent.name == 'site-packages', f'imported {site}, not the installed wheel'
for name in ('configs', 'tools', 'model-index.yml'):
    assert (site / '.mim' / name).exists() and not (site / '.mim' / name).is_symlink(), name
models = mmpretrain.list_models('u-*')
assert len(models) == 20, models
model = mmpretrain.get_model('u-dwconv-micro_in1k')
assert type(model.backbone).__name__ == 'UnifiedBackbone'
print(site)
PY
)
site=$(tail -n 1 <<< "$site")  # mmengine may log to stdout before
echo "[check_wheel] $site: list_models('u-*') lists the 20 classifiers, get_model builds them"
mim=$tmp/venv/bin/mim
"$mim" list | grep -q '^stm[-_]mm ' || { "$mim" list; echo '[check_wheel] mim list: no stm_mm' >&2; exit 1; }
search=$("$mim" search stm_mm --valid-config)
for id in u-halo-tiny_in1k mask-rcnn_u-dcnv3-base_fpn_1x_coco; do
  grep -q "$id" <<< "$search" || { echo "$search"; echo "[check_wheel] mim search: no $id" >&2; exit 1; }
done
# train and test the digits U-DWConv-micro for one epoch on 10 images (config found in .mim)
"$vpy" -c 'from stm_mm.datasets import write_digits_imagefolder as w; w("digits", 32, per_class_limit=1)'
options=()
for split in train val test; do
  options+=("${split}_dataloader.dataset.data_root=digits" "${split}_dataloader.batch_size=10"
            "${split}_dataloader.num_workers=0" "${split}_dataloader.persistent_workers=False")
done
"$mim" train stm_mm u_dwconv_micro_digits.py --gpus 0 --work-dir work \
  --cfg-options "${options[@]}" train_cfg.max_epochs=1 > train.log 2>&1 || { tail -20 train.log; exit 1; }
"$mim" test stm_mm u_dwconv_micro_digits.py --checkpoint work/epoch_1.pth --gpus 0 \
  --cfg-options "${options[@]}" > test.log 2>&1 || { tail -20 test.log; exit 1; }
grep -q 'accuracy/top1' test.log || { tail -20 test.log; echo '[check_wheel] mim test: no top-1' >&2; exit 1; }
"$mim" run stm_mm get_flops "$site/.mim/configs/_base_/models/u_dwconv_micro.py" --input-size 32 |
  grep -E 'params|MACs'
echo "[check_wheel] mim list, search, train, test and run work on the installed stm_mm; passed in $(( $(date +%s) - start )) s"

#!/usr/bin/env bash
# An installed (not editable) stm_mm keeps its model zoo and is a codebase openmim can use (#27).
#
# Builds this checkout's wheel (without the C++ extension: what is checked is the packaging),
# installs it into a scratch venv offline from the caches .venv was made from, and there, outside
# the checkout: mmpretrain.list_models('u-*') lists the 20 classifiers, get_model builds one,
# `mim list` shows stm_mm, `mim search stm_mm` reads its model index, `mim train` / `mim test` run
# a digits config for one epoch on 10 images and `mim run stm_mm get_flops` runs a tool from
# stm_mm/.mim. `make test` runs it after `make env`, before the test suite.
#
# Where the time goes (2 cores): every python that imports torch, mmengine, mmpretrain and mmdet.
# So the python that checks list_models/get_model also writes the digits; the scratch venv's
# bytecode is cached for this run only (in /dev/shm or the scratch folder, deleted at the end) so
# that only the first of them compiles the stack; and checks that do not depend on each other run
# two at a time: `mim list` and `mim search` beside the python check, then `mim run get_flops`
# beside `mim train` and `mim test`. Every check above still runs, and fails the script.
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
# The bytecode cache (see below) in memory where there is /dev/shm: on this machine's disk,
# deleting its ~2,700 files takes as long as they save.
pyc=$(mktemp -d -p /dev/shm stm_mm-pyc.XXXXXX 2>/dev/null || echo "$tmp/pycache")
trap 'wait; rm -rf "$pyc" "$tmp"' EXIT  # wait: a check still running in the background
fail() { echo "[check_wheel] error: $*" >&2; exit 1; }

# The same wheel `pip wheel --no-build-isolation` builds (setuptools on .venv's python), sooner.
STM_MM_NO_EXT=1 UV_OFFLINE=1 "$uv" build -q --wheel --no-build-isolation --python "$PY" \
  -o "$tmp/dist" .
wheel=$(ls "$tmp"/dist/stm_mm-*.whl)
"$uv" venv -q --python "$PY" "$tmp/venv"
vpy=$tmp/venv/bin/python
# shellcheck source=tools/uv_install.sh
source tools/uv_install.sh
UV_OFFLINE=1 uv_install --find-links "$STM_MM_WHEELHOUSE" -r requirements/build.txt "$wheel" \
  -r requirements/analysis.txt

cd "$tmp"  # nothing may come from the checkout
# With PYTHONDONTWRITEBYTECODE=1 (set on some machines) each python below would compile torch and
# the OpenMMLab stack again (~5 s of CPU each); their bytecode goes to $pyc (nothing is written
# into the venv or elsewhere), where the next python finds it. Imports and checks are unchanged.
export PYTHONPYCACHEPREFIX=$pyc
unset PYTHONDONTWRITEBYTECODE
mim=$tmp/venv/bin/mim

# 1. In the background: the model zoo of the installed package, and the digits for mim train/test.
"$vpy" - > check.log 2>&1 <<'PY' &
from pathlib import Path

import mmpretrain

import stm_mm
from stm_mm.datasets import write_digits_imagefolder

site = Path(stm_mm.__file__).parent
assert site.parent.name == 'site-packages', f'imported {site}, not the installed wheel'
for name in ('configs', 'tools', 'model-index.yml'):
    assert (site / '.mim' / name).exists() and not (site / '.mim' / name).is_symlink(), name
models = mmpretrain.list_models('u-*')
assert len(models) == 20, models
model = mmpretrain.get_model('u-dwconv-micro_in1k')
assert type(model.backbone).__name__ == 'UnifiedBackbone'
write_digits_imagefolder('digits', 32, per_class_limit=1)  # 10 train and 10 val images
print(site)
PY
check=$!
# 2. Meanwhile (openmim, no torch): mim list and mim search.
"$mim" list | grep -q '^stm[-_]mm ' || { "$mim" list; fail 'mim list: no stm_mm'; }
search=$("$mim" search stm_mm --valid-config)
for id in u-halo-tiny_in1k mask-rcnn_u-dcnv3-base_fpn_1x_coco; do
  grep -q "$id" <<< "$search" || { echo "$search"; fail "mim search: no $id"; }
done
wait $check || { tail -30 check.log; fail 'the installed stm_mm (above)'; }
site=$(tail -n 1 check.log)  # mmengine may log to stdout before
[ -d "$site/.mim" ] || { cat check.log; fail "no $site/.mim"; }
echo "[check_wheel] $site: list_models('u-*') lists the 20 classifiers, get_model builds them"

# 3. In the background, beside 4: mim run get_flops (a tool from stm_mm/.mim).
"$mim" run stm_mm get_flops "$site/.mim/configs/_base_/models/u_dwconv_micro.py" --input-size 32 \
  > flops.log 2>&1 &
flops=$!
# 4. Train and test the digits U-DWConv-micro for one epoch on 10 images (config found in .mim).
options=()
for split in train val test; do
  options+=("${split}_dataloader.dataset.data_root=digits" "${split}_dataloader.batch_size=10"
            "${split}_dataloader.num_workers=0" "${split}_dataloader.persistent_workers=False")
done
"$mim" train stm_mm u_dwconv_micro_digits.py --gpus 0 --work-dir work \
  --cfg-options "${options[@]}" train_cfg.max_epochs=1 > train.log 2>&1 || { tail -20 train.log; exit 1; }
"$mim" test stm_mm u_dwconv_micro_digits.py --checkpoint work/epoch_1.pth --gpus 0 \
  --cfg-options "${options[@]}" > test.log 2>&1 || { tail -20 test.log; exit 1; }
grep -q 'accuracy/top1' test.log || { tail -20 test.log; fail 'mim test: no top-1'; }
wait $flops || { tail -20 flops.log; fail 'mim run stm_mm get_flops (above)'; }
grep -E 'params|MACs' flops.log || { tail -20 flops.log; fail 'mim run stm_mm get_flops: no params/MACs'; }
echo "[check_wheel] mim list, search, train, test and run work on the installed stm_mm; passed in $(( $(date +%s) - start )) s"

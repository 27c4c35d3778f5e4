#!/usr/bin/env bash
# Create or update this checkout's own virtual environment, .venv, and install this package into it.
#
# Every clone gets a real .venv of its own (#15: a shared environment's editable install pointed at
# whichever clone ran `make` last, so tools in one clone imported another clone's code). uv makes
# that cheap: it keeps one global cache ($UV_CACHE_DIR, default ~/.cache/uv) and hard-links the
# packages from it, so the ~6 GB of torch (a CUDA build) is unpacked once per machine and a second
# clone's environment takes seconds. uv itself (requirements/bootstrap.txt) is installed with pip
# into $STM_MM_CACHE (default ~/.cache/stm_mm). uv does not read pip's configuration, so the
# indexes and wheel folders pip is configured with (local copies of torch, say) are passed on to it.
# mmcv 2.1.0 has no wheel for torch 2.14, so it is built from source once (~5 min on 2 cores) into
# a wheelhouse keyed by the torch version and Python (a wheel cache keyed by the sdist alone would
# silently reuse a wheel built against another torch); so is the compiled stm_mm._ext. A second
# run takes seconds; every run checks that the environment is still consistent (`uv pip check`:
# a later `pip install` may have replaced a pinned package) and repairs or reports it.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
# The real interpreter (not a pyenv shim), its version and tag, from one start.
{ read -r PY; read -r pyversion; read -r pytag; } < <("$PY" -c 'import sys
print(sys.executable, sys.version, f"py{sys.version_info[0]}{sys.version_info[1]}", sep="\n")')
cache=${STM_MM_CACHE:-$HOME/.cache/stm_mm}
mkdir -p "$cache"
layout_version=3  # bump to force new environments when this script changes what it installs
key=$( (echo "$layout_version"; echo "$pyversion"
        cat requirements/bootstrap.txt requirements/build.txt requirements/runtime.txt \
          requirements/tests.txt requirements/analysis.txt) | sha256sum | cut -c1-12)
torch_ver=$(sed -n 's/^torch==//p' requirements/build.txt)
wheelhouse=$cache/wheelhouse/torch-$torch_ver-$pytag
mmcv_ver=$(sed -n 's/^mmcv==//p' requirements/runtime.txt)
uv_ver=$(sed -n 's/^uv==//p' requirements/bootstrap.txt)
uv=$cache/uv-$uv_ver/bin/uv
export UV_PYTHON_DOWNLOADS=never UV_NO_PROGRESS=1
vpy=$root/.venv/bin/python
requirements=(-r requirements/build.txt -r requirements/runtime.txt -r requirements/tests.txt
              -r requirements/analysis.txt)

# uv, once per machine and version (two clones setting up at once wait for each other).
exec 9>"$cache/.lock"
lock() {
  flock -n 9 || { echo "[setup_env] waiting for $cache/.lock: another checkout is setting up"; flock 9; }
}
if [ ! -x "$uv" ]; then
  lock
  if [ ! -x "$uv" ]; then
    rm -rf "$cache/uv-$uv_ver"
    "$PY" -m venv "$cache/uv-$uv_ver"
    "$cache/uv-$uv_ver/bin/pip" install -qq -r requirements/bootstrap.txt
  fi
  flock -u 9
fi

# uv_install: uv pip install into .venv from pip's configured package sources.
# shellcheck source=tools/uv_install.sh
source "$root/tools/uv_install.sh"

# The installed packages import (mmcv's compiled ops included), and the bytecode of what the tools
# and tests import is written, once per .venv: where PYTHONDONTWRITEBYTECODE=1 is set (this
# project's machines set it) every Python process would otherwise compile torch, MMEngine, mmcv,
# mmpretrain and mmdet from source again, ~13 s of CPU per process on 2 cores instead of ~5.
# (Importing writes the bytecode of just what is used: a third of compileall's time.)
import_and_write_bytecode() {
  env -u PYTHONDONTWRITEBYTECODE "$vpy" -c "import matplotlib.pyplot, mmcv.ops, mmdet.apis, \
mmdet.datasets, mmdet.evaluation, mmdet.models, mmengine.runner, mmpretrain.apis, \
mmpretrain.datasets, mmpretrain.evaluation, mmpretrain.models, onnx, pycocotools.coco, \
safetensors.torch, torch._dynamo, torch._inductor.compile_fx, torch.onnx, torchvision, triton
from mmcv.ops import RoIAlign, nms"
  echo "$key" > .venv/.bytecode
}

if [ -L .venv ]; then
  rm -f .venv  # the old layout's link to a shared environment: drop the link, keep its target
fi
if [ "$(cat .venv/.complete 2>/dev/null)" != "$key" ]; then
  echo "[setup_env] creating $root/.venv"
  start=$(date +%s)
  "$uv" venv -q --clear --seed --python "$PY" .venv
  uv_install -r requirements/build.txt
  if ! ls "$wheelhouse"/mmcv-"$mmcv_ver"-*.whl >/dev/null 2>&1; then
    lock
    if ! ls "$wheelhouse"/mmcv-"$mmcv_ver"-*.whl >/dev/null 2>&1; then
      echo "[setup_env] building mmcv $mmcv_ver with compiled ops against torch $torch_ver (~5 min)"
      tmp=$(mktemp -d "$cache/mmcv-build.XXXX")
      # FORCE_CUDA must not leak into mmcv's build: it would nvcc-compile all of mmcv's kernels.
      env -u FORCE_CUDA CXX="$root/tools/cxx20.sh" MAX_JOBS=${MAX_JOBS:-2} \
        "$vpy" -m pip wheel -qq --no-deps --no-build-isolation --no-cache-dir "mmcv==$mmcv_ver" -w "$tmp"
      mkdir -p "$wheelhouse"
      mv "$tmp"/mmcv-*.whl "$wheelhouse"/
      rm -rf "$tmp"
      echo "[setup_env] mmcv built in $(( $(date +%s) - start )) s since the start"
    fi
    flock -u 9
  fi
  uv_install --find-links "$wheelhouse" "${requirements[@]}"
  "$uv" pip check -q --python "$vpy"
  import_and_write_bytecode
  # The caches it was made from (tests and tools/check_wheel.sh install from them, offline).
  printf 'STM_MM_CACHE=%s\nUV_CACHE_DIR=%s\nSTM_MM_UV=%s\nSTM_MM_WHEELHOUSE=%s\n' "$cache" \
    "$("$uv" cache dir)" "$uv" "$wheelhouse" > .venv/stm_mm-caches
  echo "$key" > .venv/.complete
  echo "[setup_env] .venv ready in $(( $(date +%s) - start )) s"
fi

# Every run: still consistent? (`pip install openmim` 0.3.9, say, downgrades setuptools below
# torch's requirement.) Reinstall the pins once, then give up with the problems and the fix.
if ! problems=$("$uv" pip check --python "$vpy" 2>&1); then
  echo "[setup_env] .venv is inconsistent; reinstalling the pinned requirements:"
  sed 's/^/  /' <<< "$problems"
  uv_install --find-links "$wheelhouse" "${requirements[@]}"
  if ! problems=$("$uv" pip check --python "$vpy" 2>&1); then
    sed 's/^/  /' <<< "$problems" >&2
    echo "[setup_env] error: .venv is still inconsistent (above): uninstall the packages that" \
      "pin other versions, or start over with: rm -rf .venv && make env" >&2
    exit 1
  fi
  rm -f .venv/.bytecode  # the reinstalled packages have none yet
  echo "[setup_env] .venv repaired"
fi

if [ "$(cat .venv/.bytecode 2>/dev/null)" != "$key" ]; then
  import_and_write_bytecode
fi

# This package, editable (this checkout's code only), with its C++ extension stm_mm._ext in place.
# Again when the install points elsewhere (a copied tree), or the extension is missing, older than
# its sources or not yet checked against this .venv's torch, or stm_mm/.mim (configs, tools and
# model-index.yml for openmim and the model zoo, see setup.py) is missing. A built extension is
# kept per sources, torch, Python and CUDA setting, so other clones of the same code copy it.
# -I: look the package up as an installed one, not from this folder or $PYTHONPATH.
ext=$(ls stm_mm/_ext*.so 2>/dev/null | head -n 1 || true)
origin=$("$vpy" -I -c 'import importlib.util as u; s = u.find_spec("stm_mm"); print(s.origin if s else "")' \
  2>/dev/null || true)
ext_ok=1
if [ "${STM_MM_NO_EXT:-0}" != 1 ] && { [ -z "$ext" ] || [ ! -f .venv/.ext-checked ] || \
   [ -n "$(find ops/csrc setup.py -newer "$ext" -print -quit)" ]; }; then
  ext_ok=0
fi
if [ "$origin" != "$root/stm_mm/__init__.py" ] || [ $ext_ok = 0 ] || [ ! -d stm_mm/.mim ]; then
  no_ext=1  # the extension in place is right (or not wanted): install without building it
  if [ $ext_ok = 0 ]; then
    ext_key=$( (cat setup.py $(find ops/csrc -type f | sort); echo "${FORCE_CUDA:-} ${TORCH_CUDA_ARCH_LIST:-}"
      "$vpy" -c 'import sys, torch, torch.utils.cpp_extension as c
print(sys.version, torch.__version__, torch.cuda.is_available() and c.CUDA_HOME)' 2>/dev/null) | sha256sum | cut -c1-16)
    ext_cache=$cache/ext/$ext_key
    if ls "$ext_cache"/_ext*.so >/dev/null 2>&1; then cp "$ext_cache"/_ext*.so stm_mm/; else no_ext=0; fi
    [ $no_ext = 1 ] || echo "[setup_env] compiling stm_mm._ext (C++ ops of ops/csrc; minutes on 2 cores)"
  fi
  STM_MM_NO_EXT=$no_ext uv_install --no-deps --no-build-isolation -e .
  if [ $no_ext = 0 ]; then
    tmp=$(mktemp -d "$cache/ext-tmp.XXXX")
    cp stm_mm/_ext*.so "$tmp"/
    mkdir -p "$cache/ext"
    mv -T "$tmp" "$ext_cache" 2>/dev/null || rm -rf "$tmp"  # another clone may have won the race
  fi
  [ $ext_ok = 1 ] || touch .venv/.ext-checked
fi

#!/usr/bin/env bash
# Create or reuse the project's virtual environment and point .venv at it.
#
# The environment is about 6 GB (torch is a CUDA build), so it lives once per requirements hash
# in a cache directory ($STM_MM_CACHE, default ~/.cache/stm_mm) and .venv is a symlink to it:
# every clone on the machine shares it. mmcv 2.1.0 has no wheel for torch 2.14, so it is built
# from source once (~5 min on 2 cores) into a wheelhouse keyed by the torch version and Python
# (pip's own wheel cache is keyed by the sdist only, which would silently reuse a wheel built
# against another torch). Everything is idempotent: a second run takes seconds.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
cache=${STM_MM_CACHE:-$HOME/.cache/stm_mm}
mkdir -p "$cache"
layout_version=1  # bump to force a new environment when this script changes what it installs
key=$( (echo "$layout_version"; "$PY" -c 'import sys; print(sys.version)'; cat requirements/build.txt requirements/runtime.txt requirements/tests.txt) | sha256sum | cut -c1-12)
env_dir=$cache/venv-$key
torch_ver=$(sed -n 's/^torch==//p' requirements/build.txt)
pytag=$("$PY" -c 'import sys; print(f"py{sys.version_info[0]}{sys.version_info[1]}")')
wheelhouse=$cache/wheelhouse/torch-$torch_ver-$pytag
mmcv_ver=$(sed -n 's/^mmcv==//p' requirements/runtime.txt)

exec 9>"$cache/.lock"
flock 9  # two clones setting up at once wait for each other

if [ ! -f "$env_dir/.complete" ]; then
  echo "[setup_env] creating $env_dir (first time: ~6 min with the mmcv build, ~1 min with a cached mmcv wheel)"
  start=$(date +%s)
  rm -rf "$env_dir"
  "$PY" -m venv "$env_dir"
  vpy=$env_dir/bin/python
  "$vpy" -m pip install -q --upgrade "pip>=24"
  "$vpy" -m pip install -q -r requirements/build.txt
  if ! ls "$wheelhouse"/mmcv-"$mmcv_ver"-*.whl >/dev/null 2>&1; then
    echo "[setup_env] building mmcv $mmcv_ver with compiled ops against torch $torch_ver (~5 min)"
    tmp=$(mktemp -d "$cache/mmcv-build.XXXX")
    # FORCE_CUDA must not leak into mmcv's build: it would nvcc-compile all of mmcv's kernels.
    env -u FORCE_CUDA CXX="$root/tools/cxx20.sh" MAX_JOBS=${MAX_JOBS:-2} \
      "$vpy" -m pip wheel -q --no-deps --no-build-isolation --no-cache-dir "mmcv==$mmcv_ver" -w "$tmp"
    mkdir -p "$wheelhouse"
    mv "$tmp"/mmcv-*.whl "$wheelhouse"/
    rm -rf "$tmp"
  fi
  "$vpy" -m pip install -q --find-links "$wheelhouse" -r requirements/runtime.txt -r requirements/tests.txt
  "$vpy" -m pip check
  "$vpy" -c "import mmdet, mmpretrain, mmpretrain.datasets, mmcv.ops, torchvision; from mmcv.ops import RoIAlign, nms"
  touch "$env_dir/.complete"
  echo "[setup_env] environment ready in $(( $(date +%s) - start )) s"
fi
ln -sfn "$env_dir" .venv

# This package, editable, with its C++ extension (stm_mm._ext) built in place.
.venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .

#!/usr/bin/env bash
# Fetch, as wheels, what a bare GPU machine's image lacks for tools/analysis_tools/gpu_report.sh
# (it has PyTorch, Triton, nvcc, numpy, scipy, OpenCV, matplotlib, pytest, hypothesis, ...):
# the OpenMMLab stack at this project's versions and their small pure-Python needs, for
# Python $PY_VERSION on x86-64, into DIR (default .whl, ignored by git; about 8 MB).
# mmcv 2.1.0 has no wheel, so mmcv-lite 2.1.0 (the same Python package without compiled ops)
# stands in: the report times classifiers and backbones, which need none of mmcv's ops.
#
#   tools/analysis_tools/gpu_wheels.sh [DIR]
# then on the GPU machine, from the repository root, with DIR carried along:
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site DIR/*.whl &&
#   PYTHONPATH=/tmp/site PYTHON=python3 tools/analysis_tools/gpu_report.sh
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DIR=${1:-$root/.whl}
PY_VERSION=${PY_VERSION:-3.12}
runtime=$root/requirements/runtime.txt
pin() { sed -n "s/^$1==//p" "$runtime"; }
packages=("mmengine==$(pin mmengine)" "mmpretrain==$(pin mmpretrain)" "mmdet==$(pin mmdet)"
          "mmcv-lite==$(pin mmcv)" addict termcolor yapf platformdirs mat4py modelindex
          ordered-set pycocotools shapely terminaltables)
mkdir -p "$DIR"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PY_VERSION" \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d "$DIR" "${packages[@]}"
echo "gpu_wheels: $(ls "$DIR"/*.whl | wc -l) wheels, $(du -sh "$DIR" | cut -f1), in $DIR"

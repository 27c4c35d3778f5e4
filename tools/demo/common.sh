# Sourced by the demo scripts: go to the root of this checkout, put its stm_mm first on
# PYTHONPATH (whichever interpreter runs them) and pick the
# interpreter: $PYTHON, else .venv/bin/python, else python. Sets root and PY.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python; fi
fi

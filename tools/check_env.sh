#!/usr/bin/env bash
# Each checkout has its own .venv, and tools run from it import that checkout's code only (#15).
#
# The defect it guards against: all clones shared one environment whose editable install pointed
# at the clone where `make` ran last, so after `make` in a second clone, tools in the first
# imported the second's code. Checked on the .venv `make env` has just built: it is a real folder
# whose stm_mm is this checkout's; a second clone (whose stm_mm is a decoy, and whose .venv is an
# old-layout link to a shared environment) is set up offline from the caches this .venv was made
# from, twice (the second run finds everything in place); the link is replaced and its target
# kept, this checkout's tools still import this checkout's stm_mm, and the other clone's import
# its decoy (so the check can fail). `make test` runs it right after `make env`.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
start=$(date +%s)
vpy=$root/.venv/bin/python
fail() { echo "[check_env] error: $*" >&2; exit 1; }

[ -d .venv ] && [ ! -L .venv ] || fail ".venv must be a real environment inside this checkout: run make env"
origin=$(cd / && "$vpy" -I -c 'import importlib.util as u; print(u.find_spec("stm_mm").origin)')
[ "$origin" = "$root/stm_mm/__init__.py" ] || fail ".venv imports stm_mm from $origin: run make env"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
other=$tmp/other
mkdir -p "$other/tools" "$other/stm_mm" "$tmp/shared-env"
cp -r setup.py requirements "$other"/
cp tools/setup_env.sh tools/uv_install.sh tools/cxx20.sh "$other/tools"/
echo "raise SystemExit('error: imported the other clone\\'s stm_mm')" > "$other/stm_mm/__init__.py"
touch "$tmp/shared-env/kept"
ln -s "$tmp/shared-env" "$other/.venv"

# Offline, from the caches this checkout's .venv was made from: nothing is downloaded.
set -a
# shellcheck source=/dev/null
source .venv/stm_mm-caches
set +a
for run in first second; do
  out=$(STM_MM_NO_EXT=1 UV_OFFLINE=1 bash "$other/tools/setup_env.sh" 2>&1) ||
    fail "setting up a second clone offline failed ($run run): ${out: -3000}"
  created=$(grep -c '^\[setup_env\] creating' <<< "$out" || true)
  [ "$run-$created" = first-1 ] || [ "$run-$created" = second-0 ] ||
    fail "the $run run of setup_env.sh in a second clone printed [setup_env] creating $created times: $out"
done
[ -e "$tmp/shared-env/kept" ] || fail "setup_env.sh deleted the target of an old-layout .venv link"
[ ! -L "$other/.venv" ] || fail "setup_env.sh kept an old-layout .venv link"

# `python tools/train.py --help` in each checkout, reporting the stm_mm it imported (runpy sets
# sys.path as python does).
run_tool='import atexit, os.path as p, runpy, sys; sys.argv = sys.argv[1:]
sys.path[0] = p.dirname(p.abspath(sys.argv[0]))
atexit.register(lambda: print("stm_mm from", getattr(sys.modules.get("stm_mm"), "__file__", None)))
runpy.run_path(sys.argv[0], run_name="__main__")'
imported=$(env -u PYTHONPATH "$vpy" -c "$run_tool" tools/train.py --help | tail -n 1)
[ "$imported" = "stm_mm from $root/stm_mm/__init__.py" ] ||
  fail "after setting up a second clone, this checkout's tools import: $imported"
cp tools/train.py "$other/tools"/
if decoy=$(cd "$other" && env -u PYTHONPATH .venv/bin/python tools/train.py --help 2>&1); then
  fail "the second clone's tools did not import its own stm_mm (the check above cannot fail)"
fi
grep -q "imported the other clone's stm_mm" <<< "$decoy" ||
  fail "the second clone's tools failed otherwise: ${decoy: -2000}"
echo "[check_env] one environment per checkout, a second clone set up offline:" \
  "ok in $(( $(date +%s) - start )) s"

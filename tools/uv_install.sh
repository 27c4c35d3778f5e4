# Sourced by tools/setup_env.sh and tools/check_wheel.sh. `uv_install ARGS...`: `uv pip install
# ARGS` into the environment of $vpy with uv ($uv), from the package sources pip is configured
# with ($PY's `pip config list`, read once): uv does not read pip's configuration, and a local
# copy of torch, say, is only found there.
uv_sources=()
pip_sources() { sed -n "s/^[^.]*\.$1='\(.*\)'$/\1/p" <<< "$pip_config"; }
uv_install() {
  if [ -z "${pip_config+set}" ]; then
    # e.g. global.extra-index-url='file:///opt/pypi/simple file:///opt/...'
    pip_config=$("$PY" -m pip config list 2>/dev/null || true)
    for url in $(pip_sources index-url); do uv_sources+=(--index-url "$url"); done
    for url in $(pip_sources extra-index-url); do uv_sources+=(--extra-index-url "$url"); done
    for dir in $(pip_sources find-links) ${PIP_FIND_LINKS:-}; do uv_sources+=(--find-links "$dir"); done
  fi
  # unsafe-best-match: the best version over all indexes, as pip does (uv's default takes a
  # package from the first index that has it, which would cap numpy at what a local mirror holds).
  "$uv" pip install -q --python "$vpy" --index-strategy unsafe-best-match \
    ${uv_sources[@]+"${uv_sources[@]}"} "$@"
}

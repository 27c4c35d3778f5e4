# Two commands do everything on a fresh machine:
#   make demo   train a micro model on the embedded digits, evaluate it, transfer its backbone to
#               Mask R-CNN, train/evaluate on digit scenes and print COCO metrics
#   make test   what CI runs: after `make env`, checks that this checkout's environment is its own
#               (tools/check_env.sh) and that an installed wheel keeps the model zoo and works
#               with openmim (tools/check_wheel.sh), then the test suite
# Both first set up the environment (tools/setup_env.sh: .venv, idempotent).
PY := .venv/bin/python
STM ?= halo
# The suite runs in two passes: everything else on $(WORKERS) pytest-xdist workers, then the tests
# marked `serial` (torchrun jobs, compilers: they want the whole machine) alone. (xdist's
# --dist loadgroup cannot keep them apart: with pytest 9.2 it ignores the groups.)
WORKERS ?= 2
PYTEST := $(PY) -m pytest tests -q

.PHONY: env check-env check-wheel test test-fast demo demo-cls demo-det

env:
	@tools/setup_env.sh

check-env: env
	@tools/check_env.sh

check-wheel: env
	@tools/check_wheel.sh

# Both passes run whatever the first gave; the exit status is the first failure's.
test: check-env check-wheel
	$(PYTEST) -n $(WORKERS) -m "not serial" --durations=30; parallel=$$?; \
	  $(PYTEST) -m serial --durations=10 && exit $$parallel

# The suite without the end-to-end (`slow`) tests, for the edit-test loop.
test-fast: env
	$(PYTEST) -n $(WORKERS) -m "not slow and not serial"; parallel=$$?; \
	  $(PYTEST) -m "serial and not slow" && exit $$parallel

demo: env demo-cls demo-det

demo-cls: env
	@STM=$(STM) tools/demo/cls_digits.sh

demo-det: env
	@STM=$(STM) tools/demo/det_digit_scenes.sh

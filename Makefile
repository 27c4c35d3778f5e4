# Two commands do everything on a fresh machine:
#   make demo   train a micro model on the embedded digits, evaluate it, transfer its backbone to
#               Mask R-CNN, train/evaluate on digit scenes and print COCO metrics
#   make test   what CI runs: after `make env`, checks that this checkout's environment is its own
#               (tools/check_env.sh) and that an installed wheel keeps the model zoo and works
#               with openmim (tools/check_wheel.sh), then the test suite
# Both first set up the environment (tools/setup_env.sh: .venv, idempotent).
PY := .venv/bin/python
STM ?= halo
# The suite runs on $(WORKERS) pytest-xdist workers, which split it in halves and take tests
# from each other's remaining ones when idle (worksteal); the end-to-end tests come first in
# each half (tests/conftest.py deals them) so that the long tests start early; command-line runs
# fork from a preloaded interpreter (tests/helpers/fork_python.py).
WORKERS ?= 2
PYTEST := $(PY) -m pytest tests -q -n $(WORKERS) --dist worksteal

.PHONY: env check-env check-wheel test test-fast demo demo-cls demo-det

env:
	@tools/setup_env.sh

check-env: env
	@tools/check_env.sh

check-wheel: env
	@tools/check_wheel.sh

test: check-env check-wheel
	$(PYTEST) --durations=30

# The suite without the end-to-end (`slow`) tests, for the edit-test loop.
test-fast: env
	$(PYTEST) -m "not slow" --durations=10

demo: env demo-cls demo-det

demo-cls: env
	@STM=$(STM) tools/demo/cls_digits.sh

demo-det: env
	@STM=$(STM) tools/demo/det_digit_scenes.sh

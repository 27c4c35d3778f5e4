# Two commands do everything on a fresh machine:
#   make demo   train a micro model on the embedded digits, evaluate it, transfer its backbone to
#               Mask R-CNN, train/evaluate on digit scenes and print COCO metrics
#   make test   the test suite (what CI runs), after checking that an installed wheel keeps the
#               model zoo and works with openmim (tools/check_wheel.sh)
# Both first set up the environment (tools/setup_env.sh: .venv, idempotent).
PY := .venv/bin/python
STM ?= halo

.PHONY: env check-wheel test test-fast demo demo-cls demo-det

env:
	@tools/setup_env.sh

check-wheel: env
	@tools/check_wheel.sh

test: check-wheel
	$(PY) -m pytest tests -q --durations=30

test-fast: env
	$(PY) -m pytest tests -q -m "not slow"

demo: env demo-cls demo-det

demo-cls: env
	@STM=$(STM) tools/demo/cls_digits.sh

demo-det: env
	@STM=$(STM) tools/demo/det_digit_scenes.sh

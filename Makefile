# The two commands of the README: `make demo` (the main job) and `make test` (the tests).
# Both run the idempotent set-up first (system packages when root, .venv, pinned pip packages).
PY := .venv/bin/python
ARGS ?=
# pmap is tested on two simulated CPU devices.
TEST_ENV := XLA_FLAGS=--xla_force_host_platform_device_count=2 JAX_PLATFORMS=cpu

.PHONY: setup demo test lint bench clean-demo

.venv/.setup-done: requirements.txt setup.cfg scripts/setup.sh
	bash scripts/setup.sh

setup: .venv/.setup-done

demo: setup
	$(PY) -m experiments.demo $(ARGS)

test: setup
	$(TEST_ENV) $(PY) -m pytest $(ARGS)

lint: setup
	.venv/bin/ruff check .

bench: setup
	$(PY) -m experiments.bench_dataset
	$(PY) -m experiments.bench_train
	$(PY) -m experiments.bench_sampler

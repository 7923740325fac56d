# The two commands of the README: `make demo` (the main job) and `make test` (the tests).
# Both run the idempotent set-up first (system packages when root, .venv, pinned pip packages).
PY := .venv/bin/python
ARGS ?=
# pmap is tested on two simulated CPU devices.
TEST_XLA_FLAGS := --xla_force_host_platform_device_count=2
TEST_ENV := XLA_FLAGS="$(TEST_XLA_FLAGS)" JAX_PLATFORMS=cpu
# The parallel test group compiles hundreds of tiny programs and runs each for milliseconds: with
# LLVM at -O0 (XLA's own HLO passes and fusion unchanged) test_keysynth.py + test_vocoder.py on two
# workers took 107 / 113 s against 178 / 171 s, interleaved (2 cores, 2026-12-02), and the whole
# group 419-513 s against 683 s. The serial group (real time) keeps the default optimization.
TEST_ENV_QUICK_COMPILE := XLA_FLAGS="$(TEST_XLA_FLAGS) --xla_backend_optimization_level=0" \
  JAX_PLATFORMS=cpu
# tcmalloc for the CPU jobs: glibc's malloc page-faults XLA's large buffers in at every step
# (deepsynth_jax/console.py). Looked up when the recipe runs, after `setup` has installed it.
FAST_MALLOC = LD_PRELOAD=$$(ls /usr/lib/*/libtcmalloc_minimal.so.4 2>/dev/null | head -1)

.PHONY: setup demo test lint bench clean-demo play frame-rates

.venv/.setup-done: requirements.txt setup.cfg scripts/setup.sh
	bash scripts/setup.sh

setup: .venv/.setup-done

demo: setup
	$(FAST_MALLOC) $(PY) -m experiments.demo $(ARGS)

# The README's per-frame-rate tables ("Any video"): builds the renderings, scores the default model.
frame-rates: setup
	$(FAST_MALLOC) bash scripts/frame_rate_tables.sh $(ARGS)

# The browser instrument: a local web server (127.0.0.1) playing the shipped models live.
play: setup
	$(PY) -m deepsynth_jax.instrument $(ARGS)

# The import layers (setup.cfg [importlinter]) first: a module importing a layer above its own
# fails the suite before any test runs.
# The whole suite: two pytest-xdist workers (whole files each, so module fixtures are built
# once), then the `serial` tests (real time, several processes) alone; the 15 slowest are
# printed, since the suite must stay under 10 minutes on 2 cores. With ARGS, one plain run.
# The parallel group runs on tcmalloc like the other CPU jobs; the serial group (the browser
# test starts chromium, which brings its own allocator) on the system's.
test: setup
	.venv/bin/lint-imports
ifeq ($(strip $(ARGS)),)
	$(TEST_ENV_QUICK_COMPILE) $(FAST_MALLOC) $(PY) -m pytest -n 2 --dist loadfile -m "not serial" \
	  --durations=15
	$(TEST_ENV) $(PY) -m pytest -m serial
else
	$(TEST_ENV) $(PY) -m pytest $(ARGS)
endif

lint: setup
	.venv/bin/ruff check .

# Each benchmark measures the fp32 matmul peak in its own process and prints its figures beside it.
# PYTORCH_PYTHON=<an interpreter with torch and wavenet_vocoder> also times the PyTorch WaveNet
# in this sitting and prints each training row as a multiple of it (experiments/bench_train.py).
PYTORCH_PYTHON ?=
bench: setup
	$(FAST_MALLOC) $(PY) -m experiments.bench_dataset
	$(FAST_MALLOC) $(PY) -m experiments.bench_train --cpu_devices=0 \
	  $(if $(PYTORCH_PYTHON),--pytorch_python=$(PYTORCH_PYTHON))
	$(FAST_MALLOC) $(PY) -m experiments.bench_sampler --cpu_devices=0

"""host_devices: a batch split over the local devices gives what one device gives.

`make test` runs with 2 CPU devices (XLA_FLAGS=--xla_force_host_platform_device_count=2); with one
device the split tests are skipped.
"""

from __future__ import annotations

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from data_gen.frame_timing import frame_index_and_age
from deepsynth_jax import host_devices, models
from deepsynth_jax.models import autoregressive, wavenet
from experiments import bench_sampler
from experiments.configs import keysynth_phase_cpu
from tests.test_autoregressive import _init as random_wavenet_params

two_devices = pytest.mark.skipif(
    jax.local_device_count() < 2,
    reason="needs 2 local devices: XLA_FLAGS=--xla_force_host_platform_device_count=2")


def _unsplit(monkeypatch):
  monkeypatch.setattr(host_devices, "shards", lambda batch: 1)


def _affine(x, y, w):
  return x @ w + y[:, None]


@two_devices
def test_a_batch_is_split_over_the_devices_that_divide_it():
  assert [host_devices.shards(b) for b in (1, 2, 3, 4, 16)] == [1, 2, 1, 2, 2]


@two_devices
def test_split_result_equals_one_device_and_lies_on_both(monkeypatch):
  rng = np.random.default_rng(0)
  # Small integers: every sum is exact, so the halves must land where they belong bit for bit
  # whatever order each device's compiled product adds in (that order may differ with the shape).
  x, y, w = (jnp.asarray(rng.integers(-4, 5, size=s), jnp.float32)
             for s in ((6, 5), (6,), (5, 3)))
  split = host_devices.map_over_devices(_affine, (x, y), (w,))
  assert len(split.sharding.device_set) == 2
  _unsplit(monkeypatch)
  whole = host_devices.map_over_devices(_affine, (x, y), (w,))
  assert len(whole.sharding.device_set) == 1
  np.testing.assert_array_equal(split, whole)


@two_devices
def test_under_jit_the_caller_owns_the_devices():
  x, y, w = jnp.ones((4, 2)), jnp.arange(4.0), jnp.eye(2)
  inside = jax.jit(lambda x, y, w: host_devices.map_over_devices(_affine, (x, y), (w,)))(x, y, w)
  np.testing.assert_array_equal(inside, _affine(x, y, w))


def test_no_batched_array_is_an_error():
  with pytest.raises(ValueError, match="at least one batched array"):
    host_devices.map_over_devices(_affine, (None,), ())


@two_devices
@pytest.mark.parametrize("greedy", [True, False])
def test_wavenet_samples_do_not_depend_on_the_split(monkeypatch, greedy):
  model = wavenet.WaveNet(num_layers=2, layers_per_stack=2, channels=8, skip_channels=8,
                          cond_features=8, encoder_channels=(4,), encoder_features=8)
  rng = np.random.default_rng(1)
  t, batch = 48, 4
  frames = jnp.asarray(rng.integers(0, 256, (batch, 3, 16, 104)), jnp.uint8)
  index, age = (jnp.asarray(np.tile(x, (batch, 1))) for x in
                frame_index_and_age(np.array([0, 16, 32]), t))
  params = random_wavenet_params(model, jnp.zeros((batch, t), jnp.int32), frames, index, age,
                                 seed=1)
  true_audio = jnp.asarray(rng.uniform(-0.5, 0.5, (batch, t)), jnp.float32)
  run = lambda: autoregressive.generate(model, params, frames, index, age, seed=3, greedy=greedy,
                                        true_audio=true_audio)
  split = run()
  assert len(split.buckets.sharding.device_set) == 2
  # The examples' true audio differs, so a split that swapped or mixed them would show.
  assert not np.allclose(split.sample_cross_entropy[:2], split.sample_cross_entropy[2:])
  _unsplit(monkeypatch)
  whole = run()
  np.testing.assert_array_equal(split.buckets, whole.buckets)
  np.testing.assert_allclose(split.sample_cross_entropy, whole.sample_cross_entropy, rtol=1e-6)


@two_devices
def test_keysynth_audio_does_not_depend_on_the_split(monkeypatch):
  config = keysynth_phase_cpu.get_config()
  config.init_from = ""
  generator = models.build_generator(config)
  t, batch = 2000, 2
  rng = np.random.default_rng(2)
  frames = jnp.asarray(rng.integers(0, 256, (batch, 3, 32, 208)), jnp.uint8)
  index, age = (jnp.asarray(np.tile(x, (batch, 1))) for x in
                frame_index_and_age(np.array([0, 700, 1400]), t))
  params = bench_sampler.random_params(generator, seed=2)
  # A reader that reads some keys pressed and others not (random ones read none: nothing plays).
  head = params["key_reader"]["Dense_3"]
  logits = generator.module.apply({"params": params}, frames, method="key_logits")
  head["bias"] = head["bias"] - jnp.median(logits)
  split = generator.generate(params, frames, index, age).audio
  assert len(split.sharding.device_set) == 2
  _unsplit(monkeypatch)
  whole = generator.generate(params, frames, index, age).audio
  # The same to float rounding (a clip alone is compiled apart from a loop over two), and the two
  # clips differ, so that a split that swapped or mixed them would show.
  np.testing.assert_allclose(split, whole, rtol=1e-5, atol=1e-5)
  assert float(jnp.max(jnp.abs(split[0] - split[1]))) > 0.1


def test_the_cpu_is_presented_as_the_devices_asked_for():
  """In a fresh process (the count is fixed when JAX starts): 3 devices; asking for another
  count afterwards is a clear error, asking for the same one is not."""
  script = (
      "from deepsynth_jax import host_devices\n"
      "host_devices.use_cpu_devices(3)\n"
      "import jax\n"
      "print(jax.local_device_count())\n"
      "host_devices.use_cpu_devices(3)\n"
      "try:\n"
      "  host_devices.use_cpu_devices(2)\n"
      "except RuntimeError as e:\n"
      "  print('refused:', e)\n")
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  out = subprocess.run([sys.executable, "-c", script], env={**env, "JAX_PLATFORMS": "cpu"},
                       capture_output=True, text=True, timeout=120, check=True).stdout
  lines = out.splitlines()
  assert lines[0] == "3"
  assert lines[1].startswith("refused: cannot present the CPU as 2 devices: JAX has already "
                             "started with 3")


def test_a_negative_count_is_an_error():
  with pytest.raises(ValueError, match="cpu_devices=-1"):
    host_devices.use_cpu_devices(-1)

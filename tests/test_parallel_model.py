"""Parallel generator: frame timing and key press tracking, keys gate the sound, the loss."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepsynth_jax import frames as frames_lib
from deepsynth_jax import models
from deepsynth_jax import parallel_model as pm
from deepsynth_jax.frame_encoder import previous_frame_rows
from experiments.configs import test as test_config


def test_frame_starts_recovers_each_referenced_frame():
  starts = np.array([0, 300, 700, 1000])
  index, age = frames_lib.frame_index_and_age(starts, 1200)
  # A crop of samples [500, 1100) refers to frames 1-3; it carries frame 0 too (the previous frame
  # of its first) and one padding frame.
  crop_index, crop_age = index[None, 500:1100], age[None, 500:1100]
  got = np.asarray(pm.frame_starts(jnp.asarray(crop_index), jnp.asarray(crop_age), 5))
  np.testing.assert_array_equal(got[0, 1:4], [300 - 500, 700 - 500, 1000 - 500])
  # Frame 0 has no sample in the crop: placed PRE_CLIP_AGE before the first referenced frame;
  # the padding frame is never current (at the crop's length).
  assert got[0, 0] == -200 - pm.PRE_CLIP_AGE
  assert got[0, 4] == 600
  whole = np.asarray(pm.frame_starts(jnp.asarray(index[None]), jnp.asarray(age[None]), 4))
  np.testing.assert_array_equal(whole[0], starts)


def test_key_press_times_follow_held_keys():
  # Key 0: pressed in frames 0-2 (one press); key 1: frames 1 and 3 (two presses); key 2: never.
  pressed = np.zeros((1, 4, 88), np.float32)
  pressed[0, 0:3, 0] = 1
  pressed[0, [1, 3], 1] = 1
  starts = np.array([[0.0, 100.0, 250.0, 400.0]], np.float32)
  press = np.asarray(pm.key_press_times(_held(pressed), jnp.asarray(starts)))
  np.testing.assert_array_equal(press[0, :3, 0], [0, 0, 0])
  np.testing.assert_array_equal(press[0, [1, 3], 1], [100, 400])
  # A soft "held" interpolates between the two answers.
  half = pressed.copy()
  half[0, 1, 0] = 0.5
  soft = np.asarray(pm.key_press_times(_held(half), jnp.asarray(starts)))
  assert soft[0, 1, 0] == pytest.approx(0.5 * 0 + 0.5 * 100)


def _held(pressed: np.ndarray) -> jax.Array:
  """p[f] p[f - 1]: the probability that each key is held over from the previous frame."""
  p = jnp.asarray(pressed)
  return p * previous_frame_rows(p)


def _read_keys_regardless_of_image(params, key_bias: np.ndarray):
  """Makes the key reader's logits independent of the image: the bias alone says which keys
  sound; and makes the untrained instrument audible."""
  reader = params["key_reader"]["Dense_2"]
  reader["kernel"] = jnp.zeros_like(reader["kernel"])
  reader["bias"] = jnp.asarray(key_bias, jnp.float32)
  params["harmonics"]["bias"] = jnp.ones_like(params["harmonics"]["bias"])
  return params


def _model_and_params(key_bias: np.ndarray, t: int = 1024):
  config = test_config.get_config()
  config.model = "parallel"
  model = models.build_model(config)
  frames = np.zeros((1, 2, 32, 208), np.uint8)
  index, age = frames_lib.frame_index_and_age(np.array([0, 200]), t)
  inputs = (jnp.asarray(frames), jnp.asarray(index[None]), jnp.asarray(age[None]))
  params = jax.jit(model.init)(jax.random.PRNGKey(0), *inputs)["params"]
  return model, _read_keys_regardless_of_image(params, key_bias), inputs


def test_keys_not_shown_pressed_are_silent():
  model, params, inputs = _model_and_params(np.full(88, -30.0))
  audio = np.asarray(model.apply({"params": params}, *inputs))
  assert audio.shape == (1, 1024)
  assert np.abs(audio).max() < 1e-6


@pytest.mark.parametrize("key", [27, 48])  # C3 (130.8 Hz) and A4 (440 Hz)
def test_a_pressed_key_sounds_at_its_pitch(key):
  bias = np.full(88, -30.0)
  bias[key] = 30.0
  model, params, inputs = _model_and_params(bias, t=4000)
  audio = np.asarray(model.apply({"params": params}, *inputs))[0]
  assert np.abs(audio).max() > 1e-3
  spectrum = np.abs(np.fft.rfft(audio[400:] * np.hanning(3600)))
  freqs = np.fft.rfftfreq(3600, 1 / 4000)
  fundamental = 440.0 * 2 ** ((key + 21 - 69) / 12)
  # Every spectral peak is a harmonic of the key (num_harmonics = 2 in the test config).
  peaks = freqs[spectrum > 0.2 * spectrum.max()]
  assert np.all(np.min(np.abs(peaks[:, None] - fundamental * np.arange(1, 3)[None]), axis=1) < 3)
  assert np.any(np.abs(peaks - fundamental) < 3)


@pytest.fixture
def parallel_run(data):
  """(config, model, initial params, a cropped training batch as jax arrays) of the test config."""
  config = test_config.get_config()
  config.model = "parallel"
  model = models.build_model(config)
  batch = next(data.batches("train", 2, seed=0, epoch=0, crop_samples=512))
  params = models.init_params(model, config, jax.random.PRNGKey(0), batch)
  return config, model, params, {k: jnp.asarray(v) for k, v in batch.items()}


def test_loss_reports_key_reading_and_trains_on_key_labels(parallel_run):
  config, model, params, batch = parallel_run
  loss, metrics = models.loss_fn(model, params, batch, config, train=True)
  assert np.isfinite(float(loss))
  assert 0.0 <= float(metrics["key_accuracy"]) <= 1.0
  assert float(metrics["key_cross_entropy"]) == pytest.approx(88 * np.log(2), rel=0.05)

  def reader_grad(weight, forced):
    config.parallel.key_weight = weight
    config.parallel.teacher_forced_keys = forced
    grads = jax.grad(lambda p: models.loss_fn(model, p, batch, config, train=True)[0])(params)
    return grads["key_reader"]["Dense_2"]["bias"]

  # Teacher-forced keys: the audio terms do not reach the reader, the label term does.
  assert float(jnp.abs(reader_grad(0.0, True)).max()) == 0.0
  assert float(jnp.abs(reader_grad(1.0, True)).max()) > 1e-3
  # Without, the reader also learns from the audio (the label-free variant).
  assert float(jnp.abs(reader_grad(0.0, False)).max()) > 0.0


def test_evaluation_plays_the_reader_keys_not_the_labels(parallel_run):
  config, model, params, batch = parallel_run
  # The reader reads every key as up: the reader's keys give silence.
  params = _read_keys_regardless_of_image(params, np.full(88, -30.0))
  assert batch["frame_keys"].any()
  _, trained = models.loss_fn(model, params, batch, config, train=True)
  _, evaluated = models.loss_fn(model, params, batch, config, train=False)
  silent = float(jnp.mean(jnp.abs(batch["audio"])))
  assert evaluated["l1"] == pytest.approx(silent, rel=1e-5)
  assert abs(float(trained["l1"]) - silent) > 1e-4

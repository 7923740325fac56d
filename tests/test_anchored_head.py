"""The WaveNet's anchored head (a Gaussian over the buckets around an anchor, `anchored_output`):
its bucket masses, the held gain of `anchor_mean="gain"`, the per-sample residual of
`anchor_mean="residual"`, which loss trains what, and the samplers on it."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from test_vocoder import _inputs, _numpy_params, _wavenet, assert_fast_sampler_equals_naive

from deepsynth_jax import audio as audio_lib
from deepsynth_jax.models import autoregressive, wavenet

# ---- the anchored head ----------------------------------------------------------------------


def _anchored_inputs(block: int = 8):
  model = _wavenet(use_sample_cond=True, anchored_output=True, anchor_block=block)
  tokens, frames, index, age, cond, buckets = _inputs()
  cond[..., 0] = 0.5 * np.sin(np.arange(cond.shape[1]) / 5.0)  # the anchor: a tone in [-1, 1]
  return model, _numpy_params(model, tokens, frames, index, age, cond, seed=1), (
      tokens, frames, index, age, cond, buckets)


def test_anchored_head_centres_on_the_anchor_and_holds_over_blocks():
  model, params, (tokens, frames, index, age, cond, buckets) = _anchored_inputs(block=8)
  assert "anchor_out" in params and "head_out" not in params
  logits = lambda tok, c: np.asarray(model.apply({"params": params}, tok, frames, index, age, c))
  base = logits(tokens, cond)
  # A density over the buckets with one peak per sample: rising, then falling.
  rising = np.diff(base - wavenet.bucket_log_widths(), axis=-1) > 0
  assert np.all(np.sum(np.diff(rising.astype(int), axis=-1) != 0, axis=-1) <= 1)
  # Gain and width come from each block's first sample: audio inside a block (t = 41..47, block
  # 40..47) moves nothing until the next block starts (48), and then it may.
  later = tokens.at[:, 42:].set((tokens[:, 42:] + 97) % 256)
  changed = logits(later, cond)
  np.testing.assert_array_equal(changed[:, :48], base[:, :48])
  assert np.abs(changed[:, 48:] - base[:, 48:]).max() > 1e-3
  # The anchor moves the mean at once.
  shifted = cond.copy()
  shifted[:, 44, 0] = -shifted[:, 44, 0] - 0.3
  moved = logits(tokens, shifted) - wavenet.bucket_log_widths()
  assert np.argmax(moved[0, 44]) != np.argmax(base[0, 44] - wavenet.bucket_log_widths())
  # The sampler (per-sample state carries the held head) equals the parallel forward, and its
  # greedy audio is the anchor times a gain: a positive correlation with it.
  scanned = autoregressive.teacher_forced_logits(model, params, tokens, frames, index, age,
                                                 sample_cond=cond)
  np.testing.assert_allclose(scanned, base, rtol=1e-4, atol=2e-3)
  greedy = autoregressive.generate(model, params, frames, index, age, greedy=True,
                                   sample_cond=cond)
  assert np.corrcoef(greedy.audio[0], cond[0, :, 0])[0, 1] > 0.8
  with pytest.raises(ValueError, match="naive_generate"):
    autoregressive.naive_generate(model, params, frames, index, age, sample_cond=cond)
  with pytest.raises(ValueError, match="needs use_sample_cond"):
    _wavenet(anchored_output=True).init(jax.random.key(0), tokens, frames, index, age)


def test_anchored_logits_are_a_discretized_gaussian_around_gain_times_anchor():
  anchor = jnp.asarray([0.0005, 0.1, -0.4, 0.003])
  params = jnp.zeros((4, 2))  # gain exp(0) = 1
  logits = wavenet.anchored_logits(params, anchor)
  # Log-density plus log bucket width: the bucket masses of N(anchor, s^2) (s from softplus(0)).
  s = wavenet.ANCHOR_MIN_WIDTH + wavenet.ANCHOR_WIDTH_SCALE * np.log(2.0)
  probs = np.asarray(jax.nn.softmax(logits))
  x = np.linspace(-1, 1, 400001)
  for row, m in enumerate(np.asarray(anchor)):  # each bucket's mass, numerically
    mass = np.bincount(audio_lib.quantize(x), weights=np.exp(-0.5 * ((x - m) / s) ** 2),
                       minlength=256)
    np.testing.assert_allclose(probs[row], mass / mass.sum(), atol=2e-3)
  # The sampler's greedy decoding takes the density's mode, the bucket nearest the mean (the
  # plain argmax would take a wider bucket further from zero), and temperature narrows it.
  widths = wavenet.bucket_log_widths()
  u = jnp.full((4,), 0.5)
  greedy = autoregressive.sample_from_logits(logits, u, 1.0, True, widths)
  np.testing.assert_array_equal(greedy, audio_lib.quantize(anchor))
  assert not np.array_equal(np.argmax(logits, -1), greedy)
  louder = wavenet.anchored_logits(params.at[:, 0].set(0.3), anchor)
  gain = np.exp(wavenet.ANCHOR_LOG_GAIN_RANGE * np.tanh(0.3))
  np.testing.assert_array_equal(
      autoregressive.sample_from_logits(louder, u, 1.0, True, widths),
      audio_lib.quantize(gain * anchor))
  draws = lambda t: np.stack([np.asarray(autoregressive.sample_from_logits(
      logits, jnp.full((4,), q), t, False, widths)) for q in np.linspace(0.01, 0.99, 50)])
  spread = lambda t: np.ptp(audio_lib.dequantize(draws(t)), axis=0)
  assert np.all(spread(0.1) < spread(1.0))
  # Without widths, the plain softmax as before.
  np.testing.assert_array_equal(autoregressive.sample_from_logits(logits, u, 1.0, True),
                                np.argmax(logits, -1))


def test_level_trained_gain_gets_no_gradient_from_the_logits():
  anchor = 0.3 * np.sin(np.arange(256) / 3.0)[None].astype(np.float32)
  ones = jnp.ones_like(anchor)
  np.testing.assert_allclose(wavenet.anchored_level_loss(ones, anchor, 2 * anchor, 64),
                             np.log(2.0) ** 2, rtol=1e-5)
  assert float(wavenet.anchored_level_loss(2 * ones, anchor, 2 * anchor, 64)) < 1e-10
  silent = np.zeros_like(anchor)  # no heard block: nothing to match
  assert float(wavenet.anchored_level_loss(ones, anchor, silent, 64)) == 0.0
  tokens, frames, index, age, cond, buckets = _inputs()
  cond[..., 0] = 0.5 * np.sin(np.arange(cond.shape[1]) / 5.0)
  model = _wavenet(use_sample_cond=True, anchored_output=True, anchor_block=8,
                   anchor_level_gain=True)
  params = _numpy_params(model, tokens, frames, index, age, cond, seed=1)

  def ce_and_gain(p):
    logits, head = model.apply({"params": p}, tokens, frames, index, age, cond, return_head=True)
    ce = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, buckets))
    return ce, head["gain"]

  grads, gain = jax.grad(ce_and_gain, has_aux=True)(params)
  assert float(jnp.abs(grads["anchor_out"]["kernel"]).max()) == 0.0  # none through the logits
  assert float(jnp.abs(grads["width_out"]["kernel"]).max()) > 0.0    # the width still learns
  assert gain.shape == tokens.shape and float(gain.min()) > 0


def test_residual_head_starts_at_the_anchor_and_follows_the_past_sample_by_sample():
  tokens, frames, index, age, cond, buckets = _inputs(t=48)
  # (No sample at exactly 0, where the two middle buckets tie.)
  cond[..., 0] = 0.5 * np.sin((np.arange(cond.shape[1]) + 0.5) / 5.0)
  model = _wavenet(use_sample_cond=True, anchored_output=True, anchor_mean="residual")
  fresh = jax.jit(model.init)(jax.random.key(0), tokens, frames, index, age, cond)["params"]
  assert "residual_out" in fresh and "anchor_out" not in fresh
  # Initialized, the mean is the anchor: greedy decoding plays it, the nearest bucket centre at
  # every sample.
  true_audio = audio_lib.dequantize(buckets)  # (given to every sampler call: one compilation)
  greedy = autoregressive.generate(model, fresh, frames, index, age, greedy=True,
                                   sample_cond=cond, true_audio=true_audio)
  centres = audio_lib.dequantize(np.arange(256))
  nearest = np.argmin(np.abs(cond[..., :1] - centres), axis=-1)
  np.testing.assert_array_equal(greedy.buckets, nearest)
  params = _numpy_params(model, tokens, frames, index, age, cond, seed=1)
  logits = lambda tok: np.asarray(model.apply({"params": params}, tok, frames, index, age, cond))
  base = logits(tokens)
  # No block: a changed sample at t = 20 (token 21) moves the distribution at 21 already.
  later = tokens.at[:, 21:].set((tokens[:, 21:] + 97) % 256)
  changed = logits(later)
  np.testing.assert_array_equal(changed[:, :21], base[:, :21])
  assert np.abs(changed[:, 21] - base[:, 21]).max() > 1e-3
  # Scan = parallel forward; the naive sampler (no held state to lose) = the fast one.
  scanned = autoregressive.teacher_forced_logits(model, params, tokens, frames, index, age,
                                                 sample_cond=cond)
  np.testing.assert_allclose(scanned, base, rtol=1e-4, atol=2e-3)
  assert_fast_sampler_equals_naive(model, params, frames, index, age, cond, true_audio)
  # The width learns from the anchor's own cross-entropy only, the residual from the logits
  # only, and the anchor's own loss does not move the anchor. (The width's MLP is made blind to
  # feature 0, the anchor, so that the anchor's gradient can only come through the mean.)
  blind = {**params, "width_hidden": {**params["width_hidden"],
                                      "kernel": params["width_hidden"]["kernel"].at[0].set(0.0)}}

  def losses(p, c):
    out, head = model.apply({"params": p}, tokens, frames, index, age, c, return_head=True)
    ce = lambda lg: jnp.mean(optax.softmax_cross_entropy_with_integer_labels(lg, buckets))
    return jnp.stack([ce(out), ce(head["anchor_logits"])])

  by_params, by_cond = jax.jit(jax.jacrev(losses, argnums=(0, 1)))(blind, jnp.asarray(cond))
  peak = lambda name, k: float(jnp.abs(by_params[name]["kernel"][k]).max())
  assert peak("width_out", 0) == 0.0 and peak("residual_out", 0) > 0     # the logits' loss
  assert peak("width_out", 1) > 0 and peak("residual_out", 1) == 0.0     # the anchor's loss
  assert float(jnp.abs(by_cond[1, ..., 0]).max()) == 0.0
  assert float(jnp.abs(by_cond[0, ..., 0]).max()) > 0
  with pytest.raises(ValueError, match="anchor_mean"):
    _wavenet(use_sample_cond=True, anchored_output=True, anchor_mean="mode").init(
        jax.random.key(0), tokens, frames, index, age, cond)

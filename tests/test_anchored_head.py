"""The WaveNet's anchored head (a Gaussian over the buckets around an anchor, `anchored_output`):
its bucket masses, the held gain of `anchor_mean="gain"`, the per-sample residual of
`anchor_mean="residual"`, which loss trains what, and the samplers on it."""

from __future__ import annotations

import functools

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


# One stack (the dilations divide the block); two stacks with a block no dilation divides.
GAIN_HEAD_SHAPES = [(4, 4, 8), (4, 2, 5)]  # layers, layers per stack, block


def _gain_head_model(layers: int, per_stack: int, block: int, t: int = 48):
  model = _wavenet(use_sample_cond=True, anchored_output=True, anchor_block=block,
                   num_layers=layers, layers_per_stack=per_stack)
  tokens, frames, index, age, cond, buckets = _inputs(t=t)
  cond[..., 0] = 0.5 * np.sin(np.arange(t) / 5.0)
  params = _numpy_params(model, tokens, frames, index, age, cond, seed=1)
  return model, params, (tokens, frames, index, age, cond, buckets)


@pytest.mark.parametrize("layers, per_stack, block", GAIN_HEAD_SHAPES)
def test_gain_head_reads_the_stack_at_block_starts_only(layers, per_stack, block):
  """The parallel forward evaluates each layer only at the rows the block starts read
  (`block_start_spacings`): its logits are the incremental step's, which runs the whole stack
  at every sample, and its gains and their gradients those of blocks of 1 sample (the plain
  forward, every layer at every sample; each sample then holds the gain of the one before)."""
  model, params, (tokens, frames, index, age, cond, buckets) = _gain_head_model(
      layers, per_stack, block)
  logits = jax.jit(model.apply)({"params": params}, tokens, frames, index, age, cond)
  stepped = autoregressive.teacher_forced_logits(model, params, tokens, frames, index, age,
                                                 sample_cond=cond)
  np.testing.assert_allclose(logits, stepped, rtol=1e-4, atol=2e-3)
  starts = np.arange(block, tokens.shape[1], block)  # block b + 1 starts at block b's gain
  every_sample = model.clone(anchor_block=1)
  weights = np.random.default_rng(0).normal(size=(tokens.shape[0], len(starts)))

  @functools.partial(jax.jit, static_argnums=1)
  def held(p, m, rows):  # a weighted sum of the gains held from the block starts
    gain = m.apply({"params": p}, tokens, frames, index, age, cond, return_head=True)[1]["gain"]
    return jnp.sum(weights * gain[:, rows])

  np.testing.assert_allclose(held(params, model, starts),
                             held(params, every_sample, starts - block + 1), rtol=1e-5)
  gradient = jax.jit(jax.grad(held), static_argnums=1)
  by_blocks = gradient(params, model, starts)
  by_samples = gradient(params, every_sample, starts - block + 1)
  for name in ("layer_convs_0", f"layer_convs_{layers - 1}", "layer_outs_0", "anchor_out"):
    assert float(jnp.abs(by_samples[name]["kernel"]).max()) > 1e-6  # the stack gets a gradient
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
               by_blocks, by_samples)
  # A window's blocks would not be the clip's: the gain head refuses windows.
  embedded = model.apply({"params": params}, tokens, method=lambda m, t: m.embed(t))
  frame_cond = model.apply({"params": params}, frames, method="frame_conditioning")
  with pytest.raises(ValueError, match="whole clips"):
    model.apply({"params": params}, embedded, frame_cond, index, age, cond,
                in_clip=np.ones(tokens.shape, bool), method="logits_from_embeddings")


def test_block_start_spacings():
  # One stack, dilations 1, 2, 4 and blocks of 8: layer i at every 2^(i+1)-th sample.
  assert wavenet.block_start_spacings((1, 2, 4), 8) == ((1, 2), (2, 4), (4, 8))
  # Two stacks: the upper stack's first layer (dilation 1) needs every sample below it.
  assert wavenet.block_start_spacings((1, 2, 1, 2), 4) == ((1, 1), (1, 1), (1, 2), (2, 4))
  assert wavenet.block_start_spacings((1, 2, 4), 5) == ((1, 1), (1, 1), (1, 5))


@pytest.mark.parametrize("layers, per_stack, block", GAIN_HEAD_SHAPES)
def test_block_sampler_draws_the_per_sample_samplers_samples(layers, per_stack, block):
  """With the gain head a block's samples depend on the past only through two gains:
  `generate` draws them a block at a time (`by_blocks`, its default for this head), with the
  per-sample scan's samples and free-running loss, greedy or not, for a clip that ends inside
  a block and one shorter than the receptive field; `log_gain_at` is the gain the parallel
  forward holds from each block's start."""
  model, params, (tokens, frames, index, age, cond, buckets) = _gain_head_model(
      layers, per_stack, block, t=45)
  true_audio = audio_lib.dequantize(buckets)
  run = lambda greedy, by_blocks: autoregressive.generate(
      model, params, frames, index, age, greedy=greedy, seed=4, sample_cond=cond,
      true_audio=true_audio, by_blocks=by_blocks)
  for greedy in (True, False):
    blocks, samples = run(greedy, None), run(greedy, False)
    np.testing.assert_array_equal(blocks.buckets, samples.buckets)
    np.testing.assert_allclose(blocks.sample_cross_entropy, samples.sample_cross_entropy,
                               rtol=1e-4, atol=1e-4)
  # A clip shorter than the receptive field (the gain's window runs past its end).
  _, short_frames, short_index, short_age, short_cond, _ = _inputs(t=12)
  short = lambda by_blocks: autoregressive.generate(
      model, params, short_frames, short_index, short_age, greedy=True, sample_cond=short_cond,
      by_blocks=by_blocks).buckets
  np.testing.assert_array_equal(short(None), short(False))
  _, head = jax.jit(functools.partial(model.apply, return_head=True))(
      {"params": params}, tokens, frames, index, age, cond)
  frame_cond = model.apply({"params": params}, frames, method="frame_conditioning")
  log_gain_at = jax.jit(lambda start: model.apply(
      {"params": params}, tokens, frame_cond, jnp.asarray(index), jnp.asarray(age),
      jnp.asarray(cond), start, method="log_gain_at"))
  for start in range(0, tokens.shape[1] - block, block):
    log_gain = log_gain_at(jnp.int32(start))
    # The next block starts at this block's gain (its ramp's offset 0).
    np.testing.assert_allclose(wavenet.anchor_gain(log_gain), head["gain"][:, start + block],
                               rtol=1e-5)
  with pytest.raises(ValueError, match="by_blocks"):
    plain = _wavenet(use_sample_cond=True)
    autoregressive.generate(plain, _numpy_params(plain, tokens, frames, index, age, cond),
                            frames, index, age, sample_cond=cond, by_blocks=True)


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

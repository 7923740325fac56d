"""WaveNet: shapes, causality (by gradients), and incremental == parallel forward."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from data_gen.frame_timing import frame_index_and_age
from deepsynth_jax import audio as audio_lib
from deepsynth_jax.models import wavenet

H, W = 16, 32


def _model(**kw):
  defaults = dict(num_layers=4, layers_per_stack=4, channels=8, skip_channels=8, cond_features=8,
                  encoder_channels=(4,), encoder_features=8)
  defaults.update(kw)
  return wavenet.WaveNet(**defaults)


def _inputs(rng: np.random.Generator, batch: int = 2, t: int = 64, num_frames: int = 3):
  buckets = rng.integers(0, 256, (batch, t)).astype(np.int32)
  frames = rng.integers(0, 256, (batch, num_frames, H, W)).astype(np.uint8)
  starts = np.array([0, t // 3, 2 * t // 3])[:num_frames]
  index, age = frame_index_and_age(starts, t)
  return (jnp.asarray(buckets), jnp.asarray(frames), jnp.asarray(np.tile(index, (batch, 1))),
          jnp.asarray(np.tile(age, (batch, 1))))


def _init(model, buckets, frames, index, age):
  tokens = audio_lib.audio_input_tokens(buckets)
  return model.init(jax.random.key(0), tokens, frames, index, age)


def test_output_shape_and_receptive_field():
  model = _model()
  buckets, frames, index, age = _inputs(np.random.default_rng(0))
  params = _init(model, buckets, frames, index, age)
  logits = model.apply(params, audio_lib.audio_input_tokens(buckets), frames, index, age)
  assert logits.shape == (2, 64, 256)
  assert logits.dtype == jnp.float32
  assert model.receptive_field == 1 + (1 + 2 + 4 + 8) + 1


def test_audio_input_tokens_shift_and_dropout():
  buckets = jnp.arange(12, dtype=jnp.int32).reshape(2, 6)
  tokens = audio_lib.audio_input_tokens(buckets)
  np.testing.assert_array_equal(tokens[:, 0], audio_lib.NO_AUDIO)
  np.testing.assert_array_equal(tokens[:, 1:], buckets[:, :-1])
  big = jnp.zeros((4, 4000), jnp.int32)
  keys = jax.random.split(jax.random.key(1), 4)
  dropped = audio_lib.audio_input_tokens(big, 0.75, keys)
  frac = float(jnp.mean(dropped[:, 1:] == audio_lib.NO_AUDIO))
  assert 0.72 < frac < 0.78
  # Per-example keys: an example's mask does not depend on its batch neighbours.
  alone = audio_lib.audio_input_tokens(big[1:2], 0.75, keys[1:2])
  np.testing.assert_array_equal(alone[0], dropped[1])
  with pytest.raises(ValueError, match="rng"):
    audio_lib.audio_input_tokens(big, 0.5)


@pytest.mark.parametrize("use_age", [True, False])
def test_causality_by_gradients(use_age):
  """d logits[t] / d input[s] == 0 exactly for every s > t (inputs are previous samples)."""
  model = _model(use_frame_age=use_age)
  buckets, frames, index, age = _inputs(np.random.default_rng(1), batch=1, t=40)
  params = _init(model, buckets, frames, index, age)
  tokens = audio_lib.audio_input_tokens(buckets)
  emb = model.apply(params, tokens, method=lambda m, tok: m.embed(tok))
  cond = model.apply(params, frames, method=wavenet.WaveNet.frame_conditioning)

  for t in (0, 7, 25):
    def loss_at_t(x, t=t):
      logits = model.apply(params, x, cond, index, age,
                           method=wavenet.WaveNet.logits_from_embeddings)
      return jnp.sum(logits[0, t] ** 2)
    grad = jax.grad(loss_at_t)(emb)
    per_step = np.asarray(jnp.sum(jnp.abs(grad[0]), axis=-1))
    assert np.all(per_step[t + 1:] == 0.0), f"logits at {t} see inputs after it"
    assert per_step[t] > 0.0  # the input at t is the bucket of sample t-1


def test_future_frames_do_not_leak():
  """Changing a frame that becomes current after t leaves the logits up to t unchanged."""
  model = _model()
  buckets, frames, index, age = _inputs(np.random.default_rng(2), batch=1, t=60)
  params = _init(model, buckets, frames, index, age)
  tokens = audio_lib.audio_input_tokens(buckets)
  base = model.apply(params, tokens, frames, index, age)
  changed = frames.at[:, 2].set(255 - frames[:, 2])  # frame 2 starts at sample 40
  other = model.apply(params, tokens, changed, index, age)
  np.testing.assert_array_equal(base[:, :40], other[:, :40])
  assert not np.allclose(base[:, 40:], other[:, 40:])


@pytest.mark.parametrize("start", [-16, -5, 30])
def test_a_window_of_a_clip_gives_the_clips_logits(start):
  """`window_logits` on rows start .. start + 34 (receptive field 17: 16 rows of halo; rows
  before the clip marked out of it) equals the whole clip's logits on the window's last 18."""
  model = _model()
  buckets, frames, index, age = _inputs(np.random.default_rng(5), batch=2, t=64)
  params = _init(model, buckets, frames, index, age)
  tokens = audio_lib.audio_input_tokens(buckets)
  whole = model.apply(params, tokens, frames, index, age)
  halo = model.receptive_field - 1
  rows = np.arange(start, start + halo + 18)
  clipped = np.clip(rows, 0, 63)
  cond = model.apply(params, frames, method=wavenet.WaveNet.frame_conditioning)
  window = model.apply(params, tokens[:, clipped], cond, index[:, clipped], age[:, clipped],
                       jnp.asarray(np.tile(rows >= 0, (2, 1))),
                       method=wavenet.WaveNet.window_logits)
  np.testing.assert_allclose(window[:, halo:], whole[:, rows[halo:]], rtol=1e-5, atol=1e-5)
  if start < 0:  # without the mark, the rows before the clip would be its first token's
    unmarked = model.apply(params, tokens[:, clipped], cond, index[:, clipped], age[:, clipped],
                           jnp.ones((2, len(rows)), bool), method=wavenet.WaveNet.window_logits)
    assert not np.allclose(unmarked[:, halo:], whole[:, rows[halo:]], atol=1e-3)


@pytest.mark.parametrize("layers,per_stack,video,age", [
    (1, 1, True, True), (4, 4, True, True), (6, 3, True, True), (10, 10, True, True),
    # The parallel forward leaves zero frame terms out without video; with neither input, a
    # layer's product has no extra inputs at all.
    (4, 4, False, True), (4, 4, False, False), (4, 4, True, False)])
def test_incremental_step_equals_parallel_forward(layers, per_stack, video, age):
  model = _model(num_layers=layers, layers_per_stack=per_stack, use_video=video,
                 use_frame_age=age)
  t = 96
  buckets, frames, index, age = _inputs(np.random.default_rng(3), batch=2, t=t)
  params = _init(model, buckets, frames, index, age)
  tokens = audio_lib.audio_input_tokens(buckets)
  parallel = model.apply(params, tokens, frames, index, age)

  cond = model.apply(params, frames, method=wavenet.WaveNet.frame_conditioning)
  state = model.apply(params, 2, method=wavenet.WaveNet.init_state)
  step = jax.jit(lambda s, tok, c, a: model.apply(params, s, tok, c, a,
                                                  method=wavenet.WaveNet.step))
  batch_idx = jnp.arange(2)
  incremental = []
  for i in range(t):
    logits, state = step(state, tokens[:, i], cond[batch_idx, index[:, i]], age[:, i])
    incremental.append(logits)
  np.testing.assert_allclose(np.stack(incremental, 1), parallel, rtol=1e-4, atol=1e-4)

"""The autoregressive decoder: exact against the whole-sequence forward, the naive sampler and
exact stub models; the free-running validation loss."""

from __future__ import annotations

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from data_gen.frame_timing import frame_index_and_age
from deepsynth_jax import audio as audio_lib
from deepsynth_jax import train
from deepsynth_jax.models import autoregressive, wavenet

H, W = 16, 32


COUNT, UNIFORM, TWO = 0, 1, 2


class StubWaveNet(nn.Module):
  """The WaveNet's sampling interface with a known output distribution, chosen by its params.

  params {"mode": int32, "peak": float32} (traced, so every stub run shares one compilation):
  COUNT: all mass (logit `peak`, 0 elsewhere) on bucket (previous + 1 + frame value + frame age)
    % 256, the previous bucket being 0 at the start; the frame value is its pixel [0, 0].
  UNIFORM: all logits 0.
  TWO: logits 0 and log 3 on buckets 0 and 1, -1e4 elsewhere (P = 1/4, 3/4).
  """

  def setup(self):
    self.mode = self.param("mode", lambda _: jnp.int32(COUNT))
    self.peak = self.param("peak", lambda _: jnp.float32(50.0))

  def frame_conditioning(self, frames):
    """(B, F, H, W) -> (B, F, 1, 2): each frame's pixel [0, 0]."""
    value = frames[:, :, 0, 0].astype(jnp.float32)
    return jnp.stack([value, value], axis=-1)[:, :, None, :]

  def init_state(self, batch_size):
    return {"t": jnp.zeros((), jnp.int32), "seen": jnp.zeros((batch_size,), jnp.int32)}

  def step(self, state, token, frame_cond_t, frame_age_t):
    mode, peak = self.mode, self.peak
    previous = jnp.where(token == audio_lib.NO_AUDIO, 0, token)
    target = (previous + 1 + frame_cond_t[:, 0, 0].astype(jnp.int32) + frame_age_t) % 256
    count = peak * jax.nn.one_hot(target, 256)
    two = jnp.full(count.shape, -1e4).at[:, 0].set(0.0).at[:, 1].set(math.log(3.0))
    logits = jnp.select([mode == COUNT, mode == UNIFORM], [count, jnp.zeros_like(count)], two)
    return logits, {"t": state["t"] + 1, "seen": state["seen"] + 1}


def stub(mode: int = COUNT, peak: float = 50.0) -> tuple[StubWaveNet, dict]:
  return StubWaveNet(), {"mode": jnp.int32(mode), "peak": jnp.float32(peak)}


T_STUB = 1000


def _stub_inputs():
  """Two clips of 3 frames (pixel values 3, 10, 200 and 7, 0, 99), T_STUB samples."""
  frames = np.zeros((2, 3, 4, 4), np.uint8)
  frames[:, :, 0, 0] = [[3, 10, 200], [7, 0, 99]]
  index, age = frame_index_and_age(np.array([0, 13, 31]), T_STUB)
  return frames, np.tile(index, (2, 1)), np.tile(age, (2, 1))


def _count_expected(frames, index, age):
  expected = np.zeros(index.shape, np.int32)
  for b in range(index.shape[0]):
    previous = 0
    for t in range(index.shape[1]):
      previous = (previous + 1 + int(frames[b, index[b, t], 0, 0]) + int(age[b, t])) % 256
      expected[b, t] = previous
  return expected


def _run(mode, peak=50.0, true_buckets=None, **kw):
  """All stub runs pass true audio, so that they share one compilation."""
  frames, index, age = kw.pop("inputs", None) or _stub_inputs()
  true_buckets = np.zeros(index.shape, np.int32) if true_buckets is None else true_buckets
  model, params = stub(mode, peak)
  return autoregressive.generate(model, params, frames, index, age,
                          true_audio=audio_lib.dequantize(true_buckets), **kw)


def test_stub_count_greedy_feeds_back_samples_and_gathers_frames():
  frames, index, age = _stub_inputs()
  expected = _count_expected(frames, index, age)
  # Scored against its own output the free-running CE is ~0; against other audio it is `peak`.
  mine = _run(COUNT, true_buckets=expected, greedy=True)
  np.testing.assert_array_equal(mine.buckets, expected)
  assert mine.buckets.dtype == jnp.int32 and mine.audio.dtype == jnp.float32
  np.testing.assert_allclose(mine.audio, audio_lib.dequantize(expected), rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(mine.cross_entropy, 0.0, atol=1e-6)
  assert mine.sample_cross_entropy.shape == index.shape
  other = _run(COUNT, true_buckets=(expected + 1) % 256, greedy=True)
  np.testing.assert_array_equal(other.buckets, expected)
  np.testing.assert_allclose(other.cross_entropy, 50.0, rtol=1e-5)


def test_precomputed_frame_conditioning_gives_the_same_samples():
  frames, index, age = _stub_inputs()
  model, params = stub(UNIFORM)
  cond = model.apply({"params": params}, frames, method="frame_conditioning")
  np.testing.assert_array_equal(
      autoregressive.generate(model, params, cond, index, age, seed=2).buckets,
      autoregressive.generate(model, params, frames, index, age, seed=2).buckets)


def test_stub_count_sampling_is_the_argmax_only_when_peaked():
  frames, index, age = _stub_inputs()
  expected = _count_expected(frames, index, age)
  # A 50-nat peak is (almost surely) sampled at temperature 1: the same as greedy.
  np.testing.assert_array_equal(_run(COUNT, seed=5).buckets, expected)
  np.testing.assert_array_equal(_run(COUNT, temperature=0.0).buckets, expected)
  # A 3-nat peak: greedy still follows it, sampling picks it with P = e^3 / (e^3 + 255) = 0.073
  # given its own past.
  np.testing.assert_array_equal(_run(COUNT, peak=3.0, greedy=True).buckets, expected)
  sampled = np.asarray(_run(COUNT, peak=3.0, seed=5).buckets)
  previous = np.concatenate([np.zeros((2, 1), np.int32), sampled[:, :-1]], axis=1)
  peak = (previous + 1 + np.take_along_axis(frames[:, :, 0, 0], index, 1) + age) % 256
  assert 0.05 < np.mean(sampled == peak) < 0.1  # 2000 draws: std 0.006


def test_uniform_stub_cross_entropy_and_seeds():
  out = _run(UNIFORM, seed=1)
  np.testing.assert_allclose(out.cross_entropy, math.log(256), rtol=1e-6)
  np.testing.assert_allclose(out.sample_cross_entropy, math.log(256), rtol=1e-6)
  counts = np.bincount(np.asarray(out.buckets).ravel(), minlength=256)
  assert counts.min() > 0 and counts.max() < 25  # ~8 per bucket
  np.testing.assert_array_equal(_run(UNIFORM, seed=1).buckets, out.buckets)
  other = _run(UNIFORM, seed=2)
  assert np.mean(np.asarray(other.buckets) == np.asarray(out.buckets)) < 0.05
  # An example's samples depend on (seed, example_id), not on its place in the batch.
  frames, index, age = _stub_inputs()
  swapped = _run(UNIFORM, seed=1, inputs=(frames[::-1], index[::-1], age[::-1]),
                 example_ids=[1, 0])
  np.testing.assert_array_equal(swapped.buckets[::-1], out.buckets)
  renamed = _run(UNIFORM, seed=1, example_ids=[1, 0])
  np.testing.assert_array_equal(renamed.buckets[::-1], out.buckets)


@pytest.mark.parametrize("temperature,p1", [(1.0, 0.75), (0.5, 0.9),
                                             (2.0, math.sqrt(3) / (1 + math.sqrt(3)))])
def test_temperature_scales_the_distribution(temperature, p1):
  buckets = np.asarray(_run(TWO, seed=3, temperature=temperature).buckets)
  assert set(np.unique(buckets)) <= {0, 1}
  assert abs(np.mean(buckets == 1) - p1) < 0.04  # 2000 draws: std <= 0.011


def test_inverse_cdf_never_picks_a_zero_mass_bucket():
  logits = jnp.full((4, 256), -1e4).at[:, 5].set(0.0).at[:, 9].set(0.0)
  u = jnp.asarray([0.0, 0.49, 0.51, 1.0 - 2.0 ** -24], jnp.float32)
  sample = jax.jit(autoregressive.sample_from_logits)
  assert sample(logits, u, 1.0, False).tolist() == [5, 5, 9, 9]
  assert sample(logits.at[:, 9].set(1.0), u, 1.0, True).tolist() == [9, 9, 9, 9]


def test_bad_arguments_raise_value_errors():
  frames, index, age = _stub_inputs()
  model, params = stub()
  with pytest.raises(ValueError, match="temperature"):
    autoregressive.generate(model, params, frames, index, age, temperature=-1.0)
  with pytest.raises(ValueError, match="frame_index"):
    autoregressive.generate(model, params, frames, index[:, :10], age)
  with pytest.raises(ValueError, match="true_audio"):
    autoregressive.generate(model, params, frames, index, age, true_audio=np.zeros((2, 3)))
  with pytest.raises(ValueError, match="example_ids"):
    autoregressive.generate(model, params, frames, index, age, example_ids=[0])


# ---- the real WaveNet -----------------------------------------------------------------------


def _wavenet(layers: int, per_stack: int) -> wavenet.WaveNet:
  return wavenet.WaveNet(num_layers=layers, layers_per_stack=per_stack, channels=8,
                         skip_channels=8, cond_features=8, encoder_channels=(4,),
                         encoder_features=8)


def _real_inputs(seed: int, batch: int = 2, t: int = 80):
  rng = np.random.default_rng(seed)
  buckets = rng.integers(0, 256, (batch, t)).astype(np.int32)
  frames = rng.integers(0, 256, (batch, 3, H, W)).astype(np.uint8)
  index, age = frame_index_and_age(np.array([0, t // 3, 2 * t // 3]), t)
  return buckets, frames, np.tile(index, (batch, 1)), np.tile(age, (batch, 1))


@functools.partial(jax.jit, static_argnums=0)
def _parallel_logits(model, params, tokens, frames, index, age):
  return model.apply({"params": params}, tokens, frames, index, age)


def _init(model, buckets, frames, index, age, seed=0):
  """Random parameters (biases too) of the init's shapes; flax's init compiles slowly."""
  tokens = audio_lib.audio_input_tokens(jnp.asarray(buckets))
  shapes = jax.eval_shape(model.init, jax.random.key(0), tokens, frames, index, age)["params"]
  rng = np.random.default_rng(seed)
  fan_in = lambda s: s.shape[-2] if len(s.shape) > 1 else 4
  return jax.tree.map(lambda s: jnp.asarray(rng.normal(0, 1 / np.sqrt(fan_in(s)), s.shape),
                                            s.dtype), shapes)


# T > every dilation, so every queue wraps around.
@pytest.mark.parametrize("layers,per_stack,t", [(1, 1, 48), (2, 2, 48), (6, 3, 48), (8, 8, 160)])
def test_teacher_forced_scan_equals_parallel_forward(layers, per_stack, t):
  model = _wavenet(layers, per_stack)
  buckets, frames, index, age = _real_inputs(layers, t=t)
  params = _init(model, buckets, frames, index, age)
  tokens = audio_lib.audio_input_tokens(jnp.asarray(buckets))
  parallel = _parallel_logits(model, params, tokens, frames, index, age)
  incremental = autoregressive.teacher_forced_logits(model, params, tokens, frames, index, age)
  assert incremental.shape == (2, t, 256)
  np.testing.assert_allclose(incremental, parallel, rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def small_model():
  model = _wavenet(2, 2)  # receptive field 1 + (1 + 2) + 1 = 5 < T: the naive window slides
  buckets, frames, index, age = _real_inputs(7, t=48)
  params = _init(model, buckets, frames, index, age)
  return model, params, buckets, frames, index, age


@pytest.mark.parametrize("greedy", [True, False])
def test_fast_sampler_equals_naive_sampler(small_model, greedy):
  model, params, buckets, frames, index, age = small_model
  true_audio = audio_lib.dequantize(buckets)
  fast = autoregressive.generate(model, params, frames, index, age, greedy=greedy, seed=4,
                          true_audio=true_audio)
  naive = autoregressive.naive_generate(model, params, frames, index, age, greedy=greedy, seed=4,
                                 true_audio=true_audio)
  np.testing.assert_array_equal(fast.buckets, naive.buckets)
  np.testing.assert_allclose(fast.sample_cross_entropy, naive.sample_cross_entropy, rtol=1e-4,
                             atol=1e-4)
  if not greedy:  # a random-init model is nearly uniform: samples vary
    assert len(np.unique(fast.buckets)) > 20


def test_free_running_cross_entropy_scores_the_true_audio_on_own_past(small_model):
  """Each step's CE is that of the TRUE bucket given the model's own generated past."""
  model, params, buckets, frames, index, age = small_model
  out = autoregressive.generate(model, params, frames, index, age, seed=4,
                         true_audio=audio_lib.dequantize(buckets))
  own_tokens = audio_lib.audio_input_tokens(out.buckets)
  logits = _parallel_logits(model, params, own_tokens, frames, index, age)
  expected = jax.nn.logsumexp(logits, -1) - jnp.take_along_axis(logits, buckets[..., None],
                                                                 -1)[..., 0]
  np.testing.assert_allclose(out.sample_cross_entropy, expected, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(out.cross_entropy, expected.mean(1), rtol=1e-5)


class _FakeData:
  """The parts of input_pipeline.DeepSynthData that free_running_validation uses."""

  def __init__(self, buckets, frames, index, age):
    self.segment_samples = buckets.shape[1]
    self._ex = {"audio": audio_lib.dequantize(buckets), "frames": frames, "frame_index": index,
                "frame_age": age, "example_id": np.arange(len(buckets), dtype=np.int32)}

  def num_examples(self, split):
    assert split == "validation"
    return len(self._ex["audio"])

  def batches(self, split, batch_size, *, num_examples, shuffle, drop_remainder, **unused):
    assert not shuffle and not drop_remainder
    for i in range(0, num_examples, batch_size):
      yield {k: v[i:min(i + batch_size, num_examples)] for k, v in self._ex.items()}


class _Decoder:
  """The part of a `models.Generator` that free_running_validation uses, for a bare WaveNet."""

  autoregressive = True

  def __init__(self, model):
    self.model = model

  def generate(self, params, frames, frame_index, frame_age, press_frames=True, **kwargs):
    del press_frames  # the method's WaveNet reads no kind of video
    return autoregressive.generate(self.model, params, frames, frame_index, frame_age, **kwargs)


def test_free_running_validation(small_model):
  model, params, buckets, frames, index, age = small_model
  buckets, frames = np.concatenate([buckets] * 2), np.concatenate([frames] * 2)
  index, age = np.concatenate([index] * 2), np.concatenate([age] * 2)
  data = _FakeData(buckets, frames, index, age)
  config = ml_collections.ConfigDict({
      "model": "wavenet", "seed": 4, "quantization": "mu_law",
      "eval": {"num_examples": 3, "batch_size": 2, "free_running_samples": 48}})
  result = train.free_running_validation(_Decoder(model), params, data, config)
  direct = [autoregressive.generate(model, params, frames[i:i + 2], index[i:i + 2],
                                    age[i:i + 2], seed=4,
                                    true_audio=audio_lib.dequantize(buckets[i:i + 2]),
                                    example_ids=[i, i + 1]).cross_entropy for i in (0, 2)]
  assert set(result) == {"cross_entropy"}
  np.testing.assert_allclose(result["cross_entropy"], np.mean(np.concatenate(direct)[:3]),
                             rtol=1e-5)
  # Greedy (temperature 0): the cross-entropy along the model's greedy samples.
  config.eval.free_running_temperature = 0.0
  greedy = train.free_running_validation(_Decoder(model), params, data, config)
  direct = [autoregressive.generate(model, params, frames[i:i + 2], index[i:i + 2],
                                    age[i:i + 2], greedy=True,
                                    true_audio=audio_lib.dequantize(buckets[i:i + 2])
                                    ).cross_entropy for i in (0, 2)]
  np.testing.assert_allclose(greedy["cross_entropy"], np.mean(np.concatenate(direct)[:3]),
                             rtol=1e-5)
  assert abs(greedy["cross_entropy"] - result["cross_entropy"]) > 1e-4
  config.eval.free_running_temperature = -1.0
  with pytest.raises(ValueError, match="free_running_temperature"):
    train.free_running_validation(_Decoder(model), params, data, config)
  config.eval.free_running_temperature = 1.0
  config.eval.free_running_samples = 10_000
  with pytest.raises(ValueError, match="free_running_samples"):
    train.free_running_validation(_Decoder(model), params, data, config)

"""The vocoder (video -> frozen KeySynth -> WaveNet with per-sample conditioning): the WaveNet
without per-sample conditioning is unchanged, the sampler with it equals the parallel forward and
is causal, the KeySynth stays frozen, generation, and training end to end."""

from __future__ import annotations

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax.training import train_state

from data_gen.frame_timing import frame_index_and_age
from deepsynth_jax import audio as audio_lib
from deepsynth_jax import checkpointing, input_pipeline, metrics, models, runs, train
from deepsynth_jax.models import autoregressive, vocoder, wavenet
from experiments import vocoder_gain_blocks
from experiments.configs import default, vocoder_cpu
from experiments.configs import test as test_config
from tests.conftest import write_keysynth_run

H, W = 16, 32


# ---- the WaveNet's per-sample conditioning ---------------------------------------------------


def _wavenet(**kw) -> wavenet.WaveNet:
  defaults = dict(num_layers=4, layers_per_stack=3, channels=8, skip_channels=8, cond_features=8,
                  encoder_channels=(4,), encoder_features=8, num_age_features=4)
  defaults.update(kw)
  return wavenet.WaveNet(**defaults)


def _inputs(batch: int = 2, t: int = 96, dim: int = 3, seed: int = 0):
  rng = np.random.default_rng(seed)
  frames = rng.integers(0, 256, (batch, 3, H, W)).astype(np.uint8)
  index, age = frame_index_and_age(np.array([0, t // 3, 2 * t // 3]), t)
  buckets = rng.integers(0, 256, (batch, t)).astype(np.int32)
  cond = rng.normal(size=(batch, t, dim)).astype(np.float32)
  return (audio_lib.audio_input_tokens(jnp.asarray(buckets)), frames, np.tile(index, (batch, 1)),
          np.tile(age, (batch, 1)), cond, buckets)


def _numpy_params(model, *args, seed: int = 0):
  """Parameters with the init's shapes drawn from numpy (independent of flax's initializers)."""
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), *args)["params"])
  rng = np.random.default_rng(seed)
  fan_in = lambda s: s.shape[-2] if len(s.shape) > 1 else 4
  return jax.tree.map(lambda s: jnp.asarray(rng.normal(0, 1 / np.sqrt(fan_in(s)), s.shape),
                                            s.dtype), shapes)


# Logits of the WaveNet below (frames, frame age, no per-sample conditioning) computed by the code
# before per-sample conditioning was added (their sum, and three entries).
GOLDEN_SUM = -3058.13916015625
GOLDEN_ENTRIES = [-1.135667085647583, -0.9817074537277222, 0.543921947479248]


def test_wavenet_without_sample_cond_is_unchanged():
  tokens, frames, index, age, cond, _ = _inputs()
  plain = _wavenet()
  params = _numpy_params(plain, tokens, frames, index, age)
  assert "sample_proj" not in params  # the same parameter tree as before
  logits = np.asarray(plain.apply({"params": params}, tokens, frames, index, age))
  np.testing.assert_allclose(logits.sum(), GOLDEN_SUM, rtol=1e-5)
  np.testing.assert_allclose([logits[0, 0, 0], logits[1, 50, 7], logits[0, 95, 255]],
                             GOLDEN_ENTRIES, rtol=1e-4, atol=1e-5)
  # A per-sample projection of exactly zero adds nothing: the same logits (to float32 rounding:
  # its zero weights lengthen each layer's product) and the same samples.
  conditioned = _wavenet(use_sample_cond=True)
  zero = {**params, "sample_proj": {"kernel": jnp.zeros((3, 4 * 16)), "bias": jnp.zeros(4 * 16)}}
  np.testing.assert_allclose(
      conditioned.apply({"params": zero}, tokens, frames, index, age, cond), logits,
      rtol=1e-5, atol=1e-5)
  a = autoregressive.generate(plain, params, frames, index, age, seed=1)
  b = autoregressive.generate(conditioned, zero, frames, index, age, seed=1, sample_cond=cond)
  np.testing.assert_array_equal(a.buckets, b.buckets)
  with pytest.raises(ValueError, match="use_sample_cond"):
    plain.apply({"params": params}, tokens, frames, index, age, cond)
  with pytest.raises(ValueError, match="use_sample_cond"):
    conditioned.apply({"params": zero}, tokens, frames, index, age)
  with pytest.raises(ValueError, match="sample_cond must be float"):
    autoregressive.generate(conditioned, zero, frames, index, age, sample_cond=cond[:, :10])


@pytest.fixture(scope="module")
def conditioned_model():
  model = _wavenet(use_sample_cond=True)
  tokens, frames, index, age, cond, _ = _inputs()
  return model, _numpy_params(model, tokens, frames, index, age, cond, seed=1)


def test_sampler_with_sample_cond_equals_the_parallel_forward(conditioned_model):
  model, params = conditioned_model
  tokens, frames, index, age, cond, _ = _inputs()
  parallel = model.apply({"params": params}, tokens, frames, index, age, cond)
  scanned = autoregressive.teacher_forced_logits(model, params, tokens, frames, index, age,
                                                 sample_cond=cond)
  np.testing.assert_allclose(scanned, parallel, rtol=1e-4, atol=1e-4)
  # The conditioning matters: other features, other logits at every sample.
  other = model.apply({"params": params}, tokens, frames, index, age, cond + 1.0)
  assert np.all(np.abs(np.asarray(other) - np.asarray(parallel)).max(axis=-1) > 1e-3)
  assert_fast_sampler_equals_naive(model, params, frames, index, age, cond,
                                   audio_lib.dequantize(_inputs()[5]))


def assert_fast_sampler_equals_naive(model, params, frames, index, age, cond, true_audio):
  """The fast and the naive sampler draw the same samples with the same free-running loss."""
  fast = autoregressive.generate(model, params, frames, index, age, seed=3, sample_cond=cond,
                                 true_audio=true_audio)
  naive = autoregressive.naive_generate(model, params, frames, index, age, seed=3,
                                        sample_cond=cond, true_audio=true_audio)
  np.testing.assert_array_equal(fast.buckets, naive.buckets)
  np.testing.assert_allclose(fast.sample_cross_entropy, naive.sample_cross_entropy, rtol=1e-4,
                             atol=1e-4)


def test_sample_cond_is_causal(conditioned_model):
  model, params = conditioned_model
  tokens, frames, index, age, cond, _ = _inputs()
  logits = lambda tok, c: np.asarray(model.apply({"params": params}, tok, frames, index, age, c))
  base = logits(tokens, cond)
  t0 = 40
  later_tokens = tokens.at[:, t0 + 1:].set((tokens[:, t0 + 1:] + 7) % 256)
  later_cond = cond.copy()
  later_cond[:, t0 + 1:] += 5.0
  for changed in (logits(later_tokens, cond), logits(tokens, later_cond)):
    np.testing.assert_array_equal(changed[:, :t0 + 1], base[:, :t0 + 1])
    assert np.abs(changed[:, t0 + 1:] - base[:, t0 + 1:]).max() > 1e-3
  # In the sampler: features after t0 do not change samples up to t0.
  a = autoregressive.generate(model, params, frames, index, age, seed=5, sample_cond=cond)
  b = autoregressive.generate(model, params, frames, index, age, seed=5, sample_cond=later_cond)
  np.testing.assert_array_equal(a.buckets[:, :t0 + 1], b.buckets[:, :t0 + 1])
  assert np.any(np.asarray(a.buckets[:, t0 + 1:]) != np.asarray(b.buckets[:, t0 + 1:]))


# ---- the vocoder ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data(tiny_data_dir):
  return input_pipeline.load_dataset(tiny_data_dir)


@pytest.fixture(scope="module")
def keysynth_run(tmp_path_factory, tiny_data_dir) -> str:
  """A KeySynth run directory as train.py leaves it (run.json and a best checkpoint), its
  harmonics louder than at the init, so that the frozen copy is recognizably this one."""
  return write_keysynth_run(str(tmp_path_factory.mktemp("keysynth_run")), tiny_data_dir, 0.5)


def _config(tiny_data_dir: str, keysynth_run: str):
  config = test_config.get_config()
  config.data_dir = tiny_data_dir
  config.model = "vocoder"
  config.vocoder.keysynth_run = keysynth_run
  config.vocoder.cond_layers = 1
  config.vocoder.cond_channels = 4
  config.vocoder.cond_kernel = 3
  config.optimizer.warmup_steps = 0
  return config


@pytest.fixture(scope="module")
def setup(tiny_data_dir, keysynth_run, data):
  config = _config(tiny_data_dir, keysynth_run)
  generator = models.build_generator(config, data.sample_rate)
  batch = generator.select_fields(next(data.batches("train", 4, seed=0, epoch=0,
                                                    crop_samples=256)))
  params = generator.init(jax.random.key(0), batch)
  return config, generator, batch, params


def test_configs_share_the_default_structure():
  structure = lambda c: jax.tree.map(lambda v: type(v).__name__, c.to_dict(),
                                     is_leaf=lambda v: isinstance(v, tuple))
  assert structure(vocoder_cpu.get_config()) == structure(default.get_config())
  assert vocoder_cpu.get_config().model == "vocoder"


def test_vocoder_holds_the_keysynth_run_and_reads_no_labels(setup, keysynth_run):
  config, generator, batch, params = setup
  assert isinstance(generator, vocoder.VocoderGenerator)
  assert generator.autoregressive and not generator.uses_key_labels
  assert set(generator.batch_fields) == {"audio", "frames", "frame_index", "frame_age",
                                         "example_id", "press_frames"}
  assert set(params) == {"keysynth", "wavenet", "cond_convs_0"}
  trained = checkpointing.best_params(keysynth_run)
  chex_equal = jax.tree.map(lambda a, b: np.array_equal(np.asarray(a), b), params["keysynth"],
                            trained)
  assert all(jax.tree.leaves(chex_equal))
  assert "encoder" not in params["wavenet"] and "sample_proj" in params["wavenet"]
  assert generator.params_mismatch(params, data_frame_shape(batch)) is None
  bad = config.copy_and_resolve_references()
  bad.optimizer.weight_decay = 1e-4
  with pytest.raises(ValueError, match="weight_decay"):
    models.build_generator(bad)
  bad = config.copy_and_resolve_references()
  bad.vocoder.keysynth_run = os.path.dirname(keysynth_run)
  with pytest.raises(checkpointing.CheckpointError, match="not a DeepSynth run"):
    models.build_generator(bad)


def data_frame_shape(batch) -> tuple[int, int]:
  return tuple(np.shape(batch["frames"])[2:])


def test_keysynth_stays_frozen_while_the_wavenet_trains(setup):
  config, generator, batch, params = setup
  tx, schedule = train.create_optimizer(config, 10)
  state = train_state.TrainState.create(apply_fn=generator.module.apply, params=params, tx=tx)
  keys = jax.random.split(jax.random.key(0), 4)

  @jax.jit
  def step(state):
    (loss, _), grads = jax.value_and_grad(
        lambda p: generator.loss(p, batch, train=True, keys=keys), has_aux=True)(state.params)
    return state.apply_gradients(grads=grads), loss, grads

  losses = []
  for _ in range(3):
    state, loss, grads = step(state)
    losses.append(float(loss))
    assert all(float(jnp.max(jnp.abs(g))) == 0.0 for g in jax.tree.leaves(grads["keysynth"]))
  assert losses[-1] < losses[0]
  same = jax.tree.map(lambda a, b: bool(np.array_equal(a, b)), state.params["keysynth"],
                      params["keysynth"])
  assert all(jax.tree.leaves(same))
  for part in ("wavenet", "cond_convs_0"):
    moved = jax.tree.map(lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))),
                         state.params[part], params[part])
    assert all(jax.tree.leaves(moved)), part


def test_generate_shapes_determinism_and_free_running_loss(setup):
  _, generator, batch, params = setup
  t = 80
  args = (batch["frames"][:2], batch["frame_index"][:2, :t], batch["frame_age"][:2, :t])
  kw = dict(true_audio=batch["audio"][:2, :t], example_ids=np.array([5, 9]),
            press_frames=batch["press_frames"][:2])
  a = generator.generate(params, *args, seed=1, **kw)
  assert a.audio.shape == (2, t) and a.audio.dtype == jnp.float32
  assert a.cross_entropy.shape == (2,) and np.all(np.isfinite(a.cross_entropy))
  assert float(jnp.max(jnp.abs(a.audio))) <= 1.0
  np.testing.assert_array_equal(generator.generate(params, *args, seed=1, **kw).audio, a.audio)
  assert not np.array_equal(generator.generate(params, *args, seed=2, **kw).audio, a.audio)
  # An example's samples depend on (seed, its id, its inputs), not on its batch.
  alone = generator.generate(params, *(x[1:] for x in args), seed=1,
                             true_audio=kw["true_audio"][1:], example_ids=np.array([9]),
                             press_frames=kw["press_frames"][1:])
  np.testing.assert_allclose(alone.audio[0], a.audio[1], atol=1e-6)
  # The free-running CE is the sampler's on the vocoder's features.
  features = generator.conditioning(params, *args, kw["press_frames"])
  assert features.shape == (2, t, 4)
  ref = autoregressive.generate(generator.module.wavenet, params["wavenet"], *args, seed=1,
                                true_audio=kw["true_audio"], example_ids=kw["example_ids"],
                                sample_cond=features)
  np.testing.assert_allclose(a.cross_entropy, ref.cross_entropy, rtol=1e-6)
  # Greedy decoding ignores the seed.
  g1 = generator.generate(params, *args, seed=1, greedy=True, press_frames=kw["press_frames"])
  g2 = generator.generate(params, *args, seed=7, greedy=True, press_frames=kw["press_frames"])
  np.testing.assert_array_equal(g1.audio, g2.audio)
  assert g1.cross_entropy is None


def test_anchored_vocoder_centres_on_its_keysynth(tiny_data_dir, keysynth_run, data):
  config = _config(tiny_data_dir, keysynth_run)
  config.vocoder.anchored = True
  config.vocoder.anchor_block = 16
  generator = models.build_generator(config, data.sample_rate)
  module = generator.module
  assert module.anchored and module.wavenet.anchored_output
  keysynth_audio = jnp.asarray(1.2 * np.sin(np.arange(96) / 4.0)[None], jnp.float32)
  variables = module.init(jax.random.key(0), keysynth_audio, method=vocoder.Vocoder.sample_features)
  assert "anchor_correction" in variables["params"]
  features = module.apply(variables, keysynth_audio, method=vocoder.Vocoder.sample_features)
  assert features.shape == (1, 96, 1 + 4)
  # The correction starts at zero: the anchor is the KeySynth audio itself (clipped to [-1, 1]).
  np.testing.assert_allclose(features[..., 0], np.clip(keysynth_audio, -1, 1), atol=1e-6)
  # Without the correction it stays so, whatever the parameters.
  config.vocoder.anchor_correction = False
  plain = models.build_generator(config, data.sample_rate).module
  variables = plain.init(jax.random.key(0), keysynth_audio, method=vocoder.Vocoder.sample_features)
  assert "anchor_correction" not in variables["params"]
  variables = jax.tree.map(lambda x: x + 0.3, variables)
  features = plain.apply(variables, keysynth_audio, method=vocoder.Vocoder.sample_features)
  np.testing.assert_array_equal(features[..., 0], np.clip(keysynth_audio, -1, 1))
  config.vocoder.anchor_correction = True
  bad = config.copy_and_resolve_references()
  bad.quantization = "linear"
  with pytest.raises(ValueError, match="mu_law"):
    models.build_generator(bad, data.sample_rate)


def test_residual_vocoder_with_scheduled_sampling(tiny_data_dir, keysynth_run, data):
  config = _config(tiny_data_dir, keysynth_run)
  config.vocoder.anchored = True
  config.vocoder.anchor_mean = "residual"
  config.vocoder.own_samples = 1.0
  generator = models.build_generator(config, data.sample_rate)
  batch = generator.select_fields(next(data.batches("train", 2, seed=0, epoch=0,
                                                    crop_samples=128)))
  params = generator.init(jax.random.key(0), batch)
  # The residual mean's loss adds the anchor's own cross-entropy (which trains the width); at
  # initialization the residual is zero, so the two are the same distribution's.
  evaluate = jax.jit(lambda p: generator.loss(p, batch, train=False))
  loss, metrics = evaluate(params)
  np.testing.assert_allclose(loss, metrics["cross_entropy"] + metrics["anchor_cross_entropy"],
                             rtol=1e-6)
  np.testing.assert_allclose(metrics["cross_entropy"], metrics["anchor_cross_entropy"],
                             rtol=1e-6)
  # Scheduled sampling: in training, the past fed is the model's own greedy samples.
  # Away from the init, so that the residual (zero there) reads the past.
  residual = params["wavenet"]["residual_out"]
  params["wavenet"]["residual_out"] = {**residual, "kernel": residual["kernel"] + 0.3}
  keys = jax.random.split(jax.random.key(1), 2)
  loss = jax.jit(lambda p: generator.loss(p, batch, train=True, keys=keys)[1])
  own = loss(params)
  clip = (batch["frames"], batch["frame_index"], batch["frame_age"], batch["press_frames"])
  greedy = generator.generate(params, *clip[:3], greedy=True, press_frames=clip[3])
  tokens = audio_lib.audio_input_tokens(jnp.asarray(audio_lib.quantize(greedy.audio)))
  logits = jax.jit(generator.module.apply)({"params": params}, tokens, *clip)
  expected = optax.softmax_cross_entropy_with_integer_labels(
      logits, audio_lib.quantize(batch["audio"])).mean()
  np.testing.assert_allclose(own["cross_entropy"], expected, rtol=1e-3)
  # Evaluation feeds the recording: another loss.
  true_past = evaluate(params)[1]["cross_entropy"]
  assert abs(float(true_past) - float(own["cross_entropy"])) > 1e-3
  config.vocoder.own_samples = 1.5
  with pytest.raises(ValueError, match="own_samples"):
    models.build_generator(config, data.sample_rate)
  config.vocoder.own_samples = 0.5
  config.vocoder.level_loss = 1.0  # trains a gain, which the residual mean has not
  with pytest.raises(ValueError, match="level_loss"):
    models.build_generator(config, data.sample_rate)


def test_trains_end_to_end_and_records_no_key_labels(tmp_path, tiny_data_dir, keysynth_run):
  config = _config(tiny_data_dir, keysynth_run)
  config.max_steps = 2
  config.eval.selection_metric = "free_running"
  workdir = str(tmp_path / "vocoder")
  progress = train.train_and_evaluate(config, workdir, show_progress=False)
  assert progress["step"] == 2
  row = progress["history"][-1]
  assert np.isfinite(row["fr_cross_entropy"]) and row["selection_loss"] == row["fr_cross_entropy"]
  with open(os.path.join(workdir, "run.json")) as f:
    record = json.load(f)
  assert record["learned_from"]["uses_key_labels"] is False
  assert record["config"]["model"] == "vocoder"
  # The checkpoint is self-contained: the frozen KeySynth is inside, unchanged by training.
  run = runs.load_run(workdir)
  same = jax.tree.map(lambda a, b: bool(np.array_equal(np.asarray(a), b)),
                      run.params["keysynth"], checkpointing.best_params(keysynth_run))
  assert all(jax.tree.leaves(same))
  assert not run.learned_from["uses_key_labels"]


def test_gain_blocks_experiment_plays_the_model_at_its_own_block(tiny_data_dir, keysynth_run,
                                                                 data):
  config = _config(tiny_data_dir, keysynth_run)
  config.vocoder.anchored = True
  config.vocoder.anchor_correction = False
  config.vocoder.anchor_block = 16
  generator = models.build_generator(config, data.sample_rate)
  batch = generator.select_fields(next(data.batches("train", 1, seed=0, epoch=0,
                                                    crop_samples=256)))
  params = generator.init(jax.random.key(1), batch)
  run = runs.Run(config=config, generator=generator, params=params,
                 sample_rate=data.sample_rate, frame_shape=None,
                 segment_samples=data.segment_samples, step=0)
  table = vocoder_gain_blocks.block_rows(run, data, [0], [16, 64], num_samples=1000,
                                         keysynth_gains=[1.0, 0.5])
  level = "keysynth x the recording's level"
  assert set(table) == {"block 16", "block 64", "keysynth", "keysynth, quantized",
                        "keysynth x 1", "keysynth x 0.5", level}
  assert table["keysynth x 1"] == table["keysynth"]
  # Played at the block it was built with, the row is the model's own greedy generation.
  ex = data.example("test", 0)
  audio, ce = run.generate(ex["frames"][None], ex["frame_index"][None, :1000],
                           ex["frame_age"][None, :1000], greedy=True,
                           true_audio=ex["audio"][None, :1000])
  truth = ex["audio"][:1000]
  keysynth = np.asarray(vocoder_gain_blocks._keysynth_audio(
      generator.module, params, ex["frames"][None], ex["frame_index"][None, :1000],
      ex["frame_age"][None, :1000]))[0]
  half = np.clip(0.5 * keysynth, -1, 1)  # the untrained KeySynth is loud enough to clip
  assert table["keysynth x 0.5"]["rms"] == pytest.approx(float(np.sqrt(np.mean(half ** 2))),
                                                          rel=1e-5)
  assert table[level]["rms"] == pytest.approx(float(np.sqrt(np.mean(truth ** 2))), rel=1e-4)
  expected = metrics.audio_metrics(audio[0], truth, data.sample_rate,
                                   metrics.clip_notes(data.notes("test", 0), len(truth)))
  assert table["block 16"]["stft_distance"] == pytest.approx(expected["stft_distance"])
  assert table["block 16"]["free_running_ce"] == pytest.approx(float(ce[0]))
  assert table["block 16"]["stft_distance"] != table["block 64"]["stft_distance"]
  config.vocoder.anchored = False
  plain = models.build_generator(config, data.sample_rate)
  with pytest.raises(ValueError, match="gain-anchored"):
    vocoder_gain_blocks.block_rows(dataclasses.replace(run, generator=plain), data, [0], [16],
                                   num_samples=1000)

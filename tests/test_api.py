"""deepsynth_jax.sample: a trained run's audio for sparse frames or dense video, and its errors."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax.training import train_state

import deepsynth_jax
from data_gen.frame_timing import frame_index_and_age
from deepsynth_jax import api, checkpointing, input_pipeline, models, runs, train
from deepsynth_jax.models import autoregressive
from experiments.configs import test as test_config


def random_params(generator: models.Generator, batch: dict, seed: int = 0):
  """Random parameters (biases too) with the init's shapes; flax's init compiles slowly."""
  shapes = jax.eval_shape(generator.init, jax.random.key(0), batch)
  rng = np.random.default_rng(seed)
  fan_in = lambda s: s.shape[-2] if len(s.shape) > 1 else 4
  return jax.tree.map(lambda s: jnp.asarray(rng.normal(0, 1 / np.sqrt(fan_in(s)), s.shape),
                                            s.dtype), shapes)


def make_run_dir(workdir: str, data_dir: str, model_name: str = "wavenet",
                 overrides: dict | None = None, pressed_bias: float = 0.0) -> str:
  """A run directory as train.py leaves it: run.json and a best checkpoint (random params) of the
  test config with `model_name` and the flattened config `overrides` ({"a.b": value});
  `pressed_bias` is added to a KeySynth's key logits (the key reader's output bias: (88,) for
  "columns", (1,) shared by the keys for "placed"), so that random keys are shown pressed,
  p > 0.5, and sound when generation rounds the key states."""
  config = test_config.get_config()
  config.data_dir = data_dir
  config.model = model_name
  config.update_from_flattened_dict(overrides or {})
  data = input_pipeline.load_dataset(data_dir)
  generator = models.build_generator(config, data.sample_rate)
  batch = next(data.batches("train", 1, seed=0, epoch=0, crop_samples=64))
  params = random_params(generator, batch)
  if pressed_bias:
    params = jax.tree_util.tree_map_with_path(
        lambda path, x: x + pressed_bias if ("key_reader" in jax.tree_util.keystr(path)
                                             and x.shape in ((88,), (1,))) else x, params)
  state = train_state.TrainState.create(apply_fn=generator.module.apply, params=params,
                                        tx=optax.sgd(0.1))
  checkpointing.write_run_record(
      workdir, config, train._data_facts(data),
      learned_from={"uses_key_labels": generator.uses_key_labels,
                    "frame_mode": str(data.manifest.get("frames", "sparse"))})
  ckpts = checkpointing.RunCheckpoints(workdir)
  progress = {"step": 3, "epoch": 1, "batch_in_epoch": 0, "best_selection_loss": 5.0,
              "best_step": 3, "history": []}
  ckpts.save_best(3, state, progress, 5.0)
  ckpts.close()
  return workdir


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_data_dir):
  return make_run_dir(str(tmp_path_factory.mktemp("run")), tiny_data_dir)


def test_sample_matches_the_sampler_and_is_deterministic(run_dir, clip):
  frames, starts = clip
  seconds = 0.3
  audio = deepsynth_jax.sample(frames, starts, checkpoint=run_dir, seconds=seconds, seed=3)
  assert audio.shape == (1200,) and audio.dtype == np.float32
  assert np.all(np.abs(audio) <= 1.0) and np.std(audio) > 0
  # The API pads frames and length for compilation reuse; the samples are those of the sampler
  # on the unpadded clip.
  run = api.load_run(run_dir)
  keep = starts < 1200
  index, age = frame_index_and_age(starts[keep], 1200)
  direct = autoregressive.generate(run.generator.module, run.params, frames[keep][None],
                                   index[None], age[None], seed=3)
  np.testing.assert_array_equal(audio, np.clip(np.asarray(direct.audio[0]), -1, 1))

  hits = runs._load_run_cached.cache_info().hits
  again = deepsynth_jax.sample(frames, starts, checkpoint=run_dir, seconds=seconds, seed=3)
  assert runs._load_run_cached.cache_info().hits == hits + 1  # loaded once per process
  np.testing.assert_array_equal(again, audio)
  other = deepsynth_jax.sample(frames, starts, checkpoint=run_dir, seconds=seconds, seed=4)
  assert np.mean(other != audio) > 0.5
  greedy = deepsynth_jax.sample(frames, starts, checkpoint=run_dir, seconds=seconds, greedy=True)
  np.testing.assert_array_equal(
      greedy, deepsynth_jax.sample(frames, starts, checkpoint=run_dir, seconds=seconds,
                                   temperature=0.0, seed=9))
  # params + config give the same model as the run directory.
  same = deepsynth_jax.sample(frames, starts, params=run.params, config=run.config,
                              seconds=seconds, seed=3)
  np.testing.assert_array_equal(same, audio)


def test_default_length(run_dir):
  run = api.load_run(run_dir)
  starts, length = api._frame_starts(2, np.array([0, 100]), None, None, run)
  assert length == 20000  # the run's segment length (5 s)
  _, length = api._frame_starts(2, np.array([0, 20500]), None, None, run)
  assert length == 24500  # 1 s past the last frame
  starts, length = api._frame_starts(7, None, 30.0, None, run)
  np.testing.assert_array_equal(starts, np.round(np.arange(7) * 4000 / 30))
  assert length == 934  # the video's length, ceil(7 / 30 s * 4000)
  _, length = api._frame_starts(7, None, 30.0, 0.5, run)
  assert length == 2000


@pytest.mark.filterwarnings("ignore::deepsynth_jax.api.FrameModeWarning")
def test_dense_video_is_converted_and_straightened(run_dir, clip):
  frames, _ = clip
  fps = 40.0
  starts = np.round(np.arange(len(frames)) * 4000 / fps).astype(np.int64)
  sparse = deepsynth_jax.sample(frames, starts, checkpoint=run_dir, seconds=0.3, seed=1)
  gray_video = deepsynth_jax.sample(frames, fps=fps, checkpoint=run_dir, seconds=0.3, seed=1)
  np.testing.assert_array_equal(gray_video, sparse)
  rgb = np.repeat(frames[..., None], 3, axis=-1)  # R = G = B: grayscale conversion is exact
  np.testing.assert_array_equal(
      deepsynth_jax.sample(rgb, fps=fps, checkpoint=run_dir, seconds=0.3, seed=1), sparse)
  # Another size is another camera: the keyboard is located and straightened to the model's
  # view (`Run.fit_frames`), here a scale of 2 x 3 undone; camera video (fps) is also filtered
  # in time, press frames are not.
  big = np.repeat(np.repeat(rgb, 2, axis=1), 3, axis=2)
  resized = deepsynth_jax.sample(big, fps=fps, checkpoint=run_dir, seconds=0.3, seed=1)
  assert resized.shape == (1200,) and np.all(np.isfinite(resized))
  run = runs.load_run(run_dir)
  straight = run.fit_frames(big[..., 0], press_frames=True)
  assert straight.shape == frames.shape
  assert np.mean(np.abs(straight.astype(np.float64) - frames)) < 20
  np.testing.assert_array_equal(
      deepsynth_jax.sample(big[..., 0], starts, checkpoint=run_dir, seconds=0.3, seed=1),
      deepsynth_jax.sample(straight, starts, checkpoint=run_dir, seconds=0.3, seed=1))
  np.testing.assert_array_equal(
      resized, deepsynth_jax.sample(run.fit_frames(big[..., 0], press_frames=False), fps=fps,
                                    checkpoint=run_dir, seconds=0.3, seed=1))
  with pytest.raises(api.SampleInputError, match="do not show a keyboard"):
    deepsynth_jax.sample(np.random.default_rng(0).integers(0, 256, big.shape[:3], np.uint8),
                         fps=fps, checkpoint=run_dir, seconds=0.3)


def test_keysynth_is_one_forward_pass(tmp_path, tiny_data_dir, clip):
  run_dir = make_run_dir(str(tmp_path / "keysynth_run"), tiny_data_dir, "keysynth")
  frames, starts = clip
  audio = deepsynth_jax.sample(frames, starts, checkpoint=run_dir, seconds=0.2)
  run = api.load_run(run_dir)
  keep = starts < 800
  index, age = frame_index_and_age(starts[keep], 800)
  direct = run.generator.module.apply({"params": run.params}, frames[keep][None], index[None],
                                      age[None])
  assert audio.shape == (800,) and audio.dtype == np.float32
  np.testing.assert_allclose(audio, np.clip(np.asarray(direct[0]), -1, 1), rtol=1e-4, atol=1e-4)
  # params + config (no run directory) give the same audio: the frame-size check does not need
  # a frame encoder (it used to call one, which KeySynth does not have: AttributeError).
  same = deepsynth_jax.sample(frames, starts, params=run.params, config=run.config, seconds=0.2)
  np.testing.assert_array_equal(same, audio)
  # The placed key reader reads keys at fractions of the image width: any frame width fits it.
  narrower = deepsynth_jax.sample(frames[:, :, :-2], starts, params=run.params,
                                  config=run.config, seconds=0.2)
  assert narrower.shape == (800,) and np.all(np.isfinite(narrower))
  # The column reader has a weight per image column: another width does not fit, one line says so.
  columns = run.config.copy_and_resolve_references()
  columns.keysynth.reader = "columns"
  generator = models.build_generator(columns)
  batch = next(input_pipeline.load_dataset(tiny_data_dir).batches("train", 1, seed=0, epoch=0,
                                                                  crop_samples=64))
  params = random_params(generator, batch)
  with pytest.raises(api.SampleInputError, match=r"params do not fit config on frames of 32 x 206"):
    deepsynth_jax.sample(frames[:, :, :-2], starts, params=params, config=columns, seconds=0.2)


def _bad_calls(run_dir, frames, starts):
  run = dict(checkpoint=run_dir, seconds=0.1)
  return [
      ("rank", lambda: deepsynth_jax.sample(frames[0], starts[:1], **run), "(F, H, W)"),
      ("dtype", lambda: deepsynth_jax.sample(frames.astype(np.float32), starts, **run), "uint8"),
      ("empty", lambda: deepsynth_jax.sample(frames[:0], starts[:0], **run), "empty"),
      ("rgb without fps", lambda: deepsynth_jax.sample(
          np.repeat(frames[..., None], 3, -1), starts, **run), "fps"),
      ("count", lambda: deepsynth_jax.sample(frames, starts[:-1], **run), "one per frame"),
      ("nan", lambda: deepsynth_jax.sample(frames[:2], np.array([0.0, np.nan]), **run), "NaN"),
      ("order", lambda: deepsynth_jax.sample(frames[:2], np.array([0, 0]), **run),
       "strictly increase"),
      ("first", lambda: deepsynth_jax.sample(frames[:1], np.array([5]), **run), "sample 0"),
      ("seconds-like", lambda: deepsynth_jax.sample(frames[:2], np.array([0.0, 0.5]), **run),
       "whole numbers"),
      ("both", lambda: deepsynth_jax.sample(frames, starts, fps=30, **run), "exactly one"),
      ("neither", lambda: deepsynth_jax.sample(frames, **run), "exactly one"),
      ("fps", lambda: deepsynth_jax.sample(frames, fps=-1, **run), "fps"),
      ("seconds", lambda: deepsynth_jax.sample(frames, starts, checkpoint=run_dir, seconds=0),
       "seconds"),
      ("temperature", lambda: deepsynth_jax.sample(frames, starts, temperature=-1, **run),
       "temperature"),
      ("no model", lambda: deepsynth_jax.sample(frames, starts, seconds=0.1), "checkpoint="),
      ("two models", lambda: deepsynth_jax.sample(frames, starts, params={}, **run), "not both"),
  ]


def test_bad_inputs_raise_one_clear_value_error(run_dir, clip):
  frames, starts = clip
  for name, call, message in _bad_calls(run_dir, frames, starts):
    with pytest.raises(api.SampleInputError, match=message):
      call()
      pytest.fail(f"no error for {name}")


def test_unknown_or_empty_checkpoint(tmp_path, clip):
  frames, starts = clip
  with pytest.raises(checkpointing.CheckpointError, match="does not exist"):
    deepsynth_jax.sample(frames, starts, checkpoint=str(tmp_path / "nope"))
  with pytest.raises(checkpointing.CheckpointError, match="not a DeepSynth run"):
    deepsynth_jax.sample(frames, starts, checkpoint=str(tmp_path))
  config = test_config.get_config()
  checkpointing.write_run_record(str(tmp_path), config, {"sample_rate": 4000})
  with pytest.raises(checkpointing.CheckpointError, match="no committed checkpoint"):
    deepsynth_jax.sample(frames, starts, checkpoint=str(tmp_path))


def test_video_of_another_kind_than_the_training_video_warns_once(tmp_path, tiny_data_dir, clip):
  run_dir = make_run_dir(str(tmp_path / "sparse_run"), tiny_data_dir, "keysynth")
  assert api.load_run(run_dir).learned_from["frame_mode"] == "sparse"
  frames, starts = clip
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # sparse frames for a sparse-trained model: no warning
    deepsynth_jax.sample(frames, starts, checkpoint=run_dir, seconds=0.2)
  with pytest.warns(api.FrameModeWarning, match=r"learned from sparse video .* dense video"):
    deepsynth_jax.sample(frames, fps=30, checkpoint=run_dir, seconds=0.2)
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # once per run and kind of video
    deepsynth_jax.sample(frames, fps=30, checkpoint=run_dir, seconds=0.2)

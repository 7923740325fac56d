"""One model for any video: renderings mixed in training, press frames vs camera frames, dense
video through `sample()` and the audio teacher's onsets for camera video."""

from __future__ import annotations

import os
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import deepsynth_jax
from data_gen import frame_timing, keyboard, make_dataset
from deepsynth_jax import (
  api,
  audio_teacher,
  checkpointing,
  input_pipeline,
  models,
  renderings,
  train,
)
from deepsynth_jax.models import keysynth
from deepsynth_jax.models.frame_encoder import previous_frame_rows
from experiments.configs import test as test_config


@pytest.fixture(scope="module")
def dense_data_dir(tiny_data_dir, tmp_path_factory) -> str:
  """The tiny dataset's songs rendered as 30 fps camera video (same audio and segments)."""
  out = tmp_path_factory.mktemp("tiny_dataset_fps30")
  make_dataset.build_dataset(str(out), midi_dir=os.path.join(tiny_data_dir, "midi"), num_songs=0,
                             workers=1, progress=False, frames="fps:30")
  return str(out)


@pytest.fixture(scope="module")
def mix(tiny_data_dir, dense_data_dir):
  return renderings.load_training_data(tiny_data_dir, (dense_data_dir,))


def _epoch(data, **kw):
  return list(data.batches("train", 2, seed=3, epoch=1, crop_samples=1000, **kw))


def test_mix_takes_each_batch_from_one_rendering_deterministically(mix, dense_data_dir):
  assert isinstance(mix, renderings.RenderingMix) and mix.frame_mode == "sparse+fps:30"
  first, again = _epoch(mix), _epoch(mix)
  for a, b in zip(first, again, strict=True):
    assert all(np.array_equal(a[k], b[k]) for k in a)
  kinds = [bool(b["press_frames"][0]) for b in first]
  assert True in kinds and False in kinds, "an epoch should draw both renderings"
  dense = input_pipeline.load_dataset(dense_data_dir)
  for i, batch in enumerate(first):
    assert len(set(batch["press_frames"].tolist())) == 1
    source = mix.renderings[mix.rendering_of_batch("train", 3, 1, i)]
    own = next(source.batches("train", 2, seed=3, epoch=1, crop_samples=1000, start_batch=i))
    assert all(np.array_equal(batch[k], own[k]) for k in own)
  # The audio and crops are the same whichever rendering a batch comes from.
  sparse_batch = next(mix.renderings[0].batches("train", 2, seed=3, epoch=1, crop_samples=1000))
  dense_batch = next(dense.batches("train", 2, seed=3, epoch=1, crop_samples=1000))
  np.testing.assert_array_equal(sparse_batch["audio"], dense_batch["audio"])
  assert dense_batch["frames"].shape[1] > sparse_batch["frames"].shape[1]
  # Validation cycles through the renderings in split order.
  assert [mix.rendering_of_batch("validation", 0, 0, b) for b in range(4)] == [0, 1, 0, 1]


def test_camera_augmentation_is_seeded_and_keeps_the_model_frame_size(tiny_data_dir,
                                                                      dense_data_dir):
  seen = renderings.load_training_data(tiny_data_dir, (dense_data_dir,), camera_augment=1.0)
  plain = renderings.load_training_data(tiny_data_dir, (dense_data_dir,))
  a, b, clean = _epoch(seen), _epoch(seen), _epoch(plain)
  for x, y, z in zip(a, b, clean, strict=True):
    np.testing.assert_array_equal(x["frames"], y["frames"])
    assert x["frames"].shape == z["frames"].shape and x["frames"].dtype == np.uint8
    assert not np.array_equal(x["frames"], z["frames"])
    np.testing.assert_array_equal(x["audio"], z["audio"])
  # Evaluation batches are never augmented.
  val = next(seen.batches("validation", 1, seed=3, epoch=0, shuffle=False))
  val_plain = next(plain.batches("validation", 1, seed=3, epoch=0, shuffle=False))
  np.testing.assert_array_equal(val["frames"], val_plain["frames"])


def test_a_rendering_of_other_songs_is_refused(tiny_data_dir, tmp_path):
  from tests.conftest import make_song_midi

  midis = tmp_path / "midis"
  midis.mkdir()
  for i in range(6):
    (midis / f"s{i}.mid").write_bytes(make_song_midi(100 + i, 14.0 + 4 * i))
  other = tmp_path / "other"
  make_dataset.build_dataset(str(other), midi_dir=str(midis), num_songs=0, workers=1,
                             progress=False, frames="fps:30")
  with pytest.raises(input_pipeline.DatasetError, match="not a rendering of the songs"):
    renderings.load_training_data(tiny_data_dir, (str(other),))


def _keysynth_pressing(key: int, frames: np.ndarray, index: np.ndarray, age: np.ndarray):
  """(generator, params): the test config's KeySynth (column reader) reading `key` pressed in
  every frame whatever the image, with an audible instrument."""
  config = test_config.get_config()
  config.model = "keysynth"
  config.keysynth.reader = "columns"
  generator = models.build_generator(config)
  params = generator.init(jax.random.PRNGKey(0), {"frames": frames, "frame_index": index[None],
                                                  "frame_age": age[None]})
  params = jax.tree_util.tree_map(np.array, params)  # mutable copies
  heads = [p for p in params["key_reader"].values() if np.shape(p.get("bias")) == (88,)]
  assert len(heads) == 1, "expected one key-reader layer with 88 outputs"
  heads[0]["kernel"][:] = 0.0
  heads[0]["bias"][:] = -30.0
  heads[0]["bias"][key] = 30.0
  params["harmonics"]["bias"][:] = 1.0
  return generator, params


def test_camera_frames_are_clock_ticks_not_re_strikes():
  """A new frame showing the same held key: with press frames a re-strike, with camera frames
  just the next tick (the audio is that of the clip without that frame)."""
  t = 2400
  frames = np.zeros((1, 3, 32, 208), np.uint8)
  index, age = frame_timing.frame_index_and_age(np.array([0, 800, 1600]), t)
  generator, params = _keysynth_pressing(40, frames, index, age)

  def play(press, starts):
    idx, ag = frame_timing.frame_index_and_age(np.array(starts), t)
    return np.asarray(generator.generate(params, frames, idx[None], ag[None],
                                         press_frames=press).audio[0])

  for press in (False, True):
    two, three = play(press, [0, 800]), play(press, [0, 800, 1600])
    assert np.abs(two).max() > 1e-3
    # (the control block before 1600 already ramps towards the amplitudes at 1600)
    np.testing.assert_allclose(three[:1584], two[:1584], atol=1e-6)
    if press:
      assert np.abs(three[1600:] - two[1600:]).max() > 1e-3, "no re-strike heard"
    else:
      np.testing.assert_allclose(three, two, atol=1e-6)


def test_dense_video_through_sample_is_played_as_camera_frames(tiny_data_dir, dense_data_dir,
                                                              tmp_path):
  config = test_config.get_config()
  config.model = "keysynth"
  config.data_dir = tiny_data_dir
  config.extra_data_dirs = (dense_data_dir,)
  config.camera_augment = 0.5
  config.max_steps = 2
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(config, workdir, show_progress=False)
  facts = checkpointing.learned_from(checkpointing.read_run_record(workdir))
  assert facts["frame_mode"] == "sparse+fps:30" and facts["uses_key_labels"] is False
  run = api.load_run(workdir)
  ex = input_pipeline.load_dataset(dense_data_dir).example("test", 0)
  frames = ex["frames"][:int(ex["num_frames"])]
  with warnings.catch_warnings():
    warnings.simplefilter("error", api.FrameModeWarning)  # trained on both kinds: no warning
    audio = deepsynth_jax.sample(frames, fps=30, checkpoint=workdir, seconds=1.0)
    sparse = deepsynth_jax.sample(frames[:3], np.array([0, 400, 900]), checkpoint=workdir,
                                  seconds=1.0)
  assert audio.shape == sparse.shape == (4000,)
  starts = np.round(np.arange(len(frames)) * 4000 / 30).astype(np.int64)
  keep = int(np.sum(starts < 4000))
  index, age = frame_timing.frame_index_and_age(starts[:keep], 4000)
  expected, _ = run.generate(frames[None, :keep], index[None], age[None], press_frames=False)
  np.testing.assert_allclose(audio, expected[0], atol=1e-6)
  # A camera video of another size is resized to the model's.
  big = np.repeat(np.repeat(frames, 2, axis=1), 2, axis=2)
  resized = deepsynth_jax.sample(big, fps=30, checkpoint=workdir, seconds=1.0)
  assert resized.shape == (4000,) and np.all(np.isfinite(resized))


def test_hard_held_keeps_a_held_key_press_time_in_camera_video():
  p = jnp.array([0.9, 0.4])
  previous = jnp.array([0.95, 0.9])
  np.testing.assert_array_equal(keysynth.held_over(p, previous, hard=True), [1.0, 0.0])
  np.testing.assert_allclose(keysynth.held_over(p, previous), p * previous)
  grad = jax.grad(lambda x: keysynth.held_over(x, previous, hard=True).sum())(p)
  np.testing.assert_allclose(grad, previous)  # straight through the product
  # A key shown pressed (p = 0.9) in 30 frames of 30 fps video, from the first frame on.
  pressed = jnp.full((1, 30, 88), 0.9)
  starts = jnp.asarray(np.round(np.arange(30) * 4000 / 30)[None], jnp.float32)
  for hard in (True, False):
    kept = keysynth.press_kept(pressed, previous_frame_rows(pressed), hard)
    press = np.asarray(keysynth.key_press_times(kept, starts))[0, :, 0]
    if hard:
      np.testing.assert_array_equal(press, 0.0)
    else:  # the soft product creeps towards each new frame: the key seems ever younger
      assert press[-1] > 0.5 * float(starts[0, -1])
  # A key shown released keeps its press time too (its residual sound does not restart), and a
  # key newly shown pressed takes the frame's start.
  p = jnp.asarray([[[0.01], [0.02], [0.9], [0.9]]])
  kept = keysynth.press_kept(p, previous_frame_rows(p), hard=True)
  press = np.asarray(keysynth.key_press_times(kept, jnp.asarray([[0.0, 100, 200, 300]])))
  np.testing.assert_array_equal(press[0, :, 0], [0, 0, 200, 200])


def test_hard_key_states_sound_a_key_fully_or_not_at_all():
  """A camera's noise leaves every key at a small p; with `hard_held` the partials take p only
  where p > 0.5, so those keys are silent and a key shown pressed sounds as before."""
  p = jnp.array([0.07, 0.3, 0.7, 1.0])
  np.testing.assert_allclose(keysynth.sounding(p, hard=True), [0.0, 0.0, 0.7, 1.0])
  np.testing.assert_array_equal(keysynth.sounding(p), p)
  np.testing.assert_array_equal(jax.grad(lambda x: keysynth.sounding(x, True).sum())(p), 1.0)
  config = test_config.get_config()
  config.model = "keysynth"
  config.keysynth.hard_held = True
  generator = models.build_generator(config)
  t, f = 256, 2
  frames = jnp.zeros((1, f, 16, 104), jnp.uint8)
  index = jnp.asarray(np.repeat(np.arange(f), t // f)[None], jnp.int32)
  age = jnp.asarray(np.tile(np.arange(t // f), f)[None], jnp.int32)
  module = generator.module
  params = jax.jit(module.init)(jax.random.PRNGKey(0), frames, index, age)["params"]
  apply = jax.jit(lambda level: module.apply(  # camera frames: the soft re-strike cue is off
      {"params": params}, frames, index, age, False, key_states=jnp.full((1, f, 88), level)))
  play = lambda level: np.asarray(apply(level))
  np.testing.assert_array_equal(play(0.3), 0.0)
  np.testing.assert_allclose(play(0.8), 0.8 * play(1.0), atol=1e-6)
  assert np.abs(play(1.0)).max() > 0


def test_camera_video_teacher_credits_the_first_frame_after_an_onset():
  from tests.test_audio_teacher import _piano_like

  rate, fps = 4000, 30
  # Struck 25 ms after a frame start (frames start every 33 ms at 30 fps), so that the onset
  # detector's lag correction (DETECTOR_LAG_SECONDS) cannot move them past a frame boundary.
  audio = _piano_like(40, 4100, 12000) + _piano_like(55, 8100, 12000)
  starts = keyboard.dense_frame_starts(12000, rate, fps)
  heard = audio_teacher.heard_new_keys(audio, starts, rate, press_frames=False)
  first_after = [int(np.searchsorted(starts, s)) for s in (4100, 8100)]
  assert heard[first_after[0], 40] == 1 and heard[first_after[1], 55] == 1
  others = np.ones(len(starts), bool)
  others[first_after] = False
  assert heard[others].sum() == 0


def test_hard_key_states_apply_to_generation_not_to_training(data):
  """`keysynth.hard_held` rounds key states in generation and validation; training stays soft
  (rounded states would leave the reader no gradient to grow p towards 1)."""
  soft_config, hard_config = test_config.get_config(), test_config.get_config()
  for config in (soft_config, hard_config):
    config.model = "keysynth"
  hard_config.keysynth.hard_held = True
  soft, hard = models.build_generator(soft_config), models.build_generator(hard_config)
  audio_teacher.add_heard_keys(data)
  batch = {k: jnp.asarray(v) for k, v in
           next(data.batches("train", 2, seed=0, epoch=0, crop_samples=512)).items()}
  params = soft.init(jax.random.PRNGKey(0), batch)
  loss = lambda g, train: float(jax.jit(lambda p: g.loss(p, batch, train=train)[0])(params))
  assert loss(hard, True) == loss(soft, True)
  assert loss(hard, False) != loss(soft, False)
  args = (params, batch["frames"], batch["frame_index"], batch["frame_age"])
  assert not np.array_equal(np.asarray(hard.generate(*args).audio),
                            np.asarray(soft.generate(*args).audio))

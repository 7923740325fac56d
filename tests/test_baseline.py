"""Tests of the transcribe-then-synthesize baseline on clean simulated keyboard frames."""

from __future__ import annotations

import os

import numpy as np
import pytest

from data_gen import keyboard, synth
from deepsynth_jax import baseline

H, W = 16, 104  # the smallest keyboard the renderer supports: tiny and fast


def states(*pressed_sets) -> np.ndarray:
  out = np.zeros((len(pressed_sets), 88), bool)
  for i, pitches in enumerate(pressed_sets):
    out[i, np.asarray(pitches, int) - 21] = True
  return out


def test_keys_to_notes_starts_and_ends_notes_at_frame_changes():
  keys = states([60], [60, 64], [64], [], [60])
  starts = np.array([0, 100, 250, 400, 500])
  got = baseline.keys_to_notes(keys, starts, num_samples=800, velocity=70)
  want = np.array([[0, 250, 60, 70],      # held through frame 1, released in frame 2
                   [100, 400, 64, 70],    # newly pressed in frame 1, released in frame 3
                   [500, 800, 60, 70]],   # pressed again in the last frame: ends at the clip end
                  np.int64)
  np.testing.assert_array_equal(got, want)
  assert got.dtype == np.int64


def test_keys_to_notes_empty_and_bad_inputs():
  assert baseline.keys_to_notes(states([], []), np.array([0, 10]), 20).shape == (0, 4)
  with pytest.raises(ValueError, match="frame starts"):
    baseline.keys_to_notes(states([60]), np.array([0, 10]), 20)
  with pytest.raises(ValueError, match="strictly increase"):
    baseline.keys_to_notes(states([60], [61]), np.array([0, 0]), 20)
  with pytest.raises(ValueError, match=r"\(F, 88\)"):
    baseline.keys_to_notes(np.zeros((2, 87)), np.array([0, 10]), 20)


def test_key_and_note_scores():
  truth = states([60, 64], [60])
  assert baseline.key_scores(truth, truth)["f1"] == 1.0
  half = baseline.key_scores(states([60], [60]), truth)
  assert half["precision"] == 1.0 and half["recall"] == pytest.approx(2 / 3)
  notes = np.array([[0, 400, 60, 80], [4000, 4400, 62, 80]], np.int64)
  assert baseline.note_scores(notes, notes, 4000)["f1"] == 1.0
  shifted = notes.copy()
  shifted[1, 2] += 1
  assert baseline.note_scores(shifted, notes, 4000)["f1"] == pytest.approx(0.5)


TINY_NOTES = np.array([[0, 300, 48, 90], [0, 600, 64, 90], [300, 900, 67, 90],
                       [600, 900, 72, 90], [900, 1200, 21, 90], [900, 1200, 108, 90]], np.int64)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  # Brief training on clean frames: the tiny example's key states among a few random chords.
  _, _, example_keys = keyboard.render_video(TINY_NOTES, 1200, 4000, "sparse", H, W)
  rng = np.random.default_rng(0)
  keys = np.concatenate([example_keys.astype(bool), rng.random((12, 88)) < 0.05])
  frames = keyboard.render_frames(keys, H, W)
  model = baseline.train_classifier(frames, keys, steps=300, batch_size=16, learning_rate=3e-3,
                                    seed=0, channels=(8, 8), hidden=16, velocity=90)
  workdir = str(tmp_path_factory.mktemp("baseline"))
  baseline.save_baseline(model, workdir)
  return model, workdir


def test_trained_classifier_recovers_the_notes_of_a_tiny_example(trained):
  model, workdir = trained
  frames, starts, keys = keyboard.render_video(TINY_NOTES, 1200, 4000, "sparse", H, W)
  predicted = baseline.predict_keys(model, frames)
  np.testing.assert_array_equal(predicted, keys.astype(bool))
  got = baseline.transcribe(model, frames, starts, 1200)
  np.testing.assert_array_equal(got, TINY_NOTES)
  # The saved checkpoint reproduces the same notes; saving again replaces it.
  second = baseline.save_baseline(model, workdir)
  assert second.endswith("2")
  loaded = baseline.load_baseline(workdir)
  assert loaded.config == model.config
  np.testing.assert_array_equal(baseline.transcribe(loaded, frames, starts, 1200), TINY_NOTES)


@pytest.mark.skipif(not os.path.isfile(synth.DEFAULT_SOUNDFONT), reason="no SoundFont installed")
def test_baseline_audio_renders_the_transcribed_notes(trained):
  model, _ = trained
  frames, starts, _ = keyboard.render_video(TINY_NOTES, 1200, 4000, "sparse", H, W)
  audio = baseline.baseline_audio(model, frames, starts, 1200, 4000, synth.DEFAULT_SOUNDFONT)
  assert audio.dtype == np.float32 and audio.shape == (1200,) and np.abs(audio).max() > 0.01
  expected = baseline.synthesize(TINY_NOTES, 1200, 4000, synth.DEFAULT_SOUNDFONT)
  np.testing.assert_array_equal(audio, expected)


def test_training_is_deterministic(trained):
  model, _ = trained
  rng = np.random.default_rng(0)
  keys = rng.random((20, 88)) < 0.05
  frames = keyboard.render_frames(keys, H, W)
  kwargs = dict(steps=3, batch_size=16, learning_rate=3e-3, seed=1, channels=(8, 8), hidden=16)
  a = baseline.train_classifier(frames, keys, **kwargs)  # the fixture's model: compiled once
  b = baseline.train_classifier(frames, keys, **kwargs)
  import jax
  for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params), strict=True):
    assert np.asarray(x).tobytes() == np.asarray(y).tobytes()
  c = baseline.train_classifier(frames, keys, **{**kwargs, "seed": 2})
  assert np.asarray(jax.tree.leaves(c.params)[0]).tobytes() != np.asarray(
      jax.tree.leaves(a.params)[0]).tobytes()


def test_bad_frames_and_workdir_raise_clear_errors(trained, tmp_path):
  model, _ = trained
  with pytest.raises(baseline.BaselineError, match="trained on 16x104"):
    baseline.predict_keys(model, np.zeros((1, 32, 208), np.uint8))
  with pytest.raises(baseline.BaselineError, match="uint8"):
    baseline.predict_keys(model, np.zeros((1, H, W), np.float32))
  with pytest.raises(baseline.BaselineError, match="no baseline checkpoint"):
    baseline.load_baseline(str(tmp_path))

"""Tests of the transcribe-then-synthesize baseline (transcription, baseline_train, baseline_eval
and the `deepsynth_jax.baseline` command line) on clean simulated keyboard frames."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from data_gen import keyboard, synth
from deepsynth_jax import baseline_eval, baseline_train, checkpointing, transcription

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
H, W = 16, 104  # the smallest keyboard the renderer supports: tiny and fast


def states(*pressed_sets) -> np.ndarray:
  out = np.zeros((len(pressed_sets), 88), bool)
  for i, pitches in enumerate(pressed_sets):
    out[i, np.asarray(pitches, int) - 21] = True
  return out


def test_keys_to_notes_starts_and_ends_notes_at_frame_changes():
  keys = states([60], [60, 64], [64], [], [60])
  starts = np.array([0, 100, 250, 400, 500])
  got = transcription.keys_to_notes(keys, starts, num_samples=800, velocity=70)
  want = np.array([[0, 250, 60, 70],      # held through frame 1, released in frame 2
                   [100, 400, 64, 70],    # newly pressed in frame 1, released in frame 3
                   [500, 800, 60, 70]],   # pressed again in the last frame: ends at the clip end
                  np.int64)
  np.testing.assert_array_equal(got, want)
  assert got.dtype == np.int64


def test_keys_to_notes_empty_and_bad_inputs():
  assert transcription.keys_to_notes(states([], []), np.array([0, 10]), 20).shape == (0, 4)
  with pytest.raises(ValueError, match="frame starts"):
    transcription.keys_to_notes(states([60]), np.array([0, 10]), 20)
  with pytest.raises(ValueError, match="strictly increase"):
    transcription.keys_to_notes(states([60], [61]), np.array([0, 0]), 20)
  with pytest.raises(ValueError, match=r"\(F, 88\)"):
    transcription.keys_to_notes(np.zeros((2, 87)), np.array([0, 10]), 20)


def test_key_and_note_scores():
  truth = states([60, 64], [60])
  assert baseline_eval.key_scores(truth, truth)["f1"] == 1.0
  half = baseline_eval.key_scores(states([60], [60]), truth)
  assert half["precision"] == 1.0 and half["recall"] == pytest.approx(2 / 3)
  notes = np.array([[0, 400, 60, 80], [4000, 4400, 62, 80]], np.int64)
  assert baseline_eval.note_scores(notes, notes, 4000)["f1"] == 1.0
  shifted = notes.copy()
  shifted[1, 2] += 1
  assert baseline_eval.note_scores(shifted, notes, 4000)["f1"] == pytest.approx(0.5)


TINY_NOTES = np.array([[0, 300, 48, 90], [0, 600, 64, 90], [300, 900, 67, 90],
                       [600, 900, 72, 90], [900, 1200, 21, 90], [900, 1200, 108, 90]], np.int64)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  # Brief training on clean frames: the tiny example's key states among a few random chords.
  _, _, example_keys = keyboard.render_video(TINY_NOTES, 1200, 4000, "sparse", H, W)
  rng = np.random.default_rng(0)
  keys = np.concatenate([example_keys.astype(bool), rng.random((12, 88)) < 0.05])
  frames = keyboard.render_frames(keys, H, W)
  model = baseline_train.train_classifier(frames, keys, steps=300, batch_size=16,
                                          learning_rate=3e-3, seed=0, channels=(8, 8), hidden=16,
                                          velocity=90)
  workdir = str(tmp_path_factory.mktemp("baseline"))
  baseline_train.save_baseline(model, workdir)
  return model, workdir


def test_trained_classifier_recovers_the_notes_of_a_tiny_example(trained):
  model, workdir = trained
  frames, starts, keys = keyboard.render_video(TINY_NOTES, 1200, 4000, "sparse", H, W)
  predicted = transcription.predict_keys(model, frames)
  np.testing.assert_array_equal(predicted, keys.astype(bool))
  got = transcription.transcribe(model, frames, starts, 1200)
  np.testing.assert_array_equal(got, TINY_NOTES)
  # The saved checkpoint reproduces the same notes; saving again replaces it.
  second = baseline_train.save_baseline(model, workdir)
  assert second.endswith("2")
  assert transcription.checkpoint_steps(workdir) == [2]
  loaded = transcription.load_baseline(workdir)
  assert loaded.config == model.config
  np.testing.assert_array_equal(transcription.transcribe(loaded, frames, starts, 1200), TINY_NOTES)


@pytest.mark.skipif(not os.path.isfile(synth.DEFAULT_SOUNDFONT), reason="no SoundFont installed")
def test_baseline_audio_renders_the_transcribed_notes(trained):
  model, _ = trained
  frames, starts, _ = keyboard.render_video(TINY_NOTES, 1200, 4000, "sparse", H, W)
  audio = transcription.baseline_audio(model, frames, starts, 1200, 4000, synth.DEFAULT_SOUNDFONT)
  assert audio.dtype == np.float32 and audio.shape == (1200,) and np.abs(audio).max() > 0.01
  expected = transcription.synthesize(TINY_NOTES, 1200, 4000, synth.DEFAULT_SOUNDFONT)
  np.testing.assert_array_equal(audio, expected)


def test_training_is_deterministic(trained):
  model, _ = trained
  rng = np.random.default_rng(0)
  keys = rng.random((20, 88)) < 0.05
  frames = keyboard.render_frames(keys, H, W)
  kwargs = dict(steps=3, batch_size=16, learning_rate=3e-3, seed=1, channels=(8, 8), hidden=16)
  a = baseline_train.train_classifier(frames, keys, **kwargs)  # the fixture's model: compiled once
  b = baseline_train.train_classifier(frames, keys, **kwargs)
  for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params), strict=True):
    assert np.asarray(x).tobytes() == np.asarray(y).tobytes()
  c = baseline_train.train_classifier(frames, keys, **{**kwargs, "seed": 2})
  assert np.asarray(jax.tree.leaves(c.params)[0]).tobytes() != np.asarray(
      jax.tree.leaves(a.params)[0]).tobytes()


def test_bad_frames_and_workdir_raise_clear_errors(trained, tmp_path):
  model, _ = trained
  with pytest.raises(transcription.BaselineError, match="trained on 16x104"):
    transcription.predict_keys(model, np.zeros((1, 32, 208), np.uint8))
  with pytest.raises(transcription.BaselineError, match="uint8"):
    transcription.predict_keys(model, np.zeros((1, H, W), np.float32))
  with pytest.raises(transcription.BaselineError, match="no baseline checkpoint"):
    transcription.load_baseline(str(tmp_path))


def assert_same_params(a, b):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_a_workdir_written_before_the_split_into_modules_still_loads(trained, tmp_path):
  # The earlier layout: one orbax CheckpointManager step holding the params (StandardSave) and
  # the config (JsonSave) as two items.
  model, _ = trained
  manager = ocp.CheckpointManager(
      str(tmp_path / "checkpoint"),
      options=ocp.CheckpointManagerOptions(create=True, enable_async_checkpointing=False))
  manager.save(1, args=ocp.args.Composite(params=ocp.args.StandardSave(model.params),
                                          config=ocp.args.JsonSave(model.config)))
  manager.wait_until_finished()
  manager.close()
  loaded = transcription.load_baseline(str(tmp_path))
  assert loaded.config == model.config
  assert_same_params(loaded.params, model.params)
  # Saving into it adds a step in today's layout and removes the old one.
  baseline_train.save_baseline(model, str(tmp_path))
  assert transcription.checkpoint_steps(str(tmp_path)) == [2]
  assert_same_params(transcription.load_baseline(str(tmp_path)).params, model.params)


def test_foreign_or_damaged_checkpoints_raise_clear_errors(trained, tmp_path):
  model, _ = trained
  step = str(tmp_path / "checkpoint" / "1")
  checkpointing.save_params(step, model.params, {"format": "another/1"})
  with pytest.raises(transcription.BaselineError, match="not a deepsynth_jax.baseline/1"):
    transcription.load_baseline(str(tmp_path))
  with pytest.raises(checkpointing.CheckpointError, match="already exists"):
    checkpointing.save_params(step, model.params, {})
  (tmp_path / "checkpoint" / "2").mkdir()
  with pytest.raises(checkpointing.CheckpointError, match="cannot be restored"):
    transcription.load_baseline(str(tmp_path))
  with pytest.raises(checkpointing.CheckpointError, match="holds no saved parameters"):
    checkpointing.restore_params(str(tmp_path / "nowhere"))


def test_split_frames_takes_each_frame_of_the_split_once(data):
  for split in ("train", "test"):
    frames, keys, velocities = baseline_train.split_frames(data, split)
    # Reference: straight from the song files, the frames current during a segment of the split.
    segments = np.asarray(data.manifest["splits"][split], np.int64).reshape(-1, 2)
    want_frames, want_keys, want_velocities = [], [], []
    for song in np.unique(segments[:, 0]).tolist():
      path = os.path.join(data.data_dir, data.manifest["songs"][song]["file"])
      with np.load(path) as z:
        starts = z["frame_start"].astype(np.int64)
        ends = np.append(starts[1:], np.iinfo(np.int64).max)
        used = np.zeros(starts.shape[0], bool)
        for start in segments[segments[:, 0] == song, 1]:
          used |= (starts < start + data.segment_samples) & (ends > start)
        want_frames.append(z["frames"][used])
        want_keys.append(z["frame_keys"][used])
        want_velocities.append(z["notes"][:, 3])
    np.testing.assert_array_equal(frames, np.concatenate(want_frames))
    np.testing.assert_array_equal(keys, np.concatenate(want_keys))
    np.testing.assert_array_equal(np.sort(velocities), np.sort(np.concatenate(want_velocities)))


def run_cli(*args: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-m", "deepsynth_jax.baseline", *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=600)


@pytest.mark.skipif(not os.path.isfile(synth.DEFAULT_SOUNDFONT), reason="no SoundFont installed")
def test_command_line_trains_saves_and_evaluates(tiny_data_dir, data, tmp_path):
  workdir = tmp_path / "run"
  done = run_cli(f"--data_dir={tiny_data_dir}", f"--workdir={workdir}", "--steps=2",
                 "--batch_size=4", "--num_eval_segments=1")
  assert done.returncode == 0, done.stderr[-3000:]
  assert "frame-level keys" in done.stdout
  with open(workdir / "metrics.json") as f:
    results = json.load(f)
  assert results["split"] == "test" and results["num_segments"] == 1
  assert results["config"]["steps"] == 2 and results["config"]["batch_size"] == 4
  assert set(results["audio"]) == {"baseline", "reference audio", "white noise (matched RMS)"}
  test_frames, _, _ = baseline_train.split_frames(data, "test")
  assert results["frame_keys"]["num_frames"] == test_frames.shape[0]
  loaded = transcription.load_baseline(str(workdir))
  assert loaded.config == results["config"]
  frames = data.example("test", 0)["frames"][:2]
  assert transcription.predict_keys(loaded, frames).shape == (2, 88)
  # A bad input is one line on stderr, not a traceback.
  failed = run_cli(f"--data_dir={tmp_path / 'missing'}", f"--workdir={tmp_path / 'other'}")
  assert failed.returncode == 1 and "Traceback" not in failed.stderr
  assert "error: no dataset in" in failed.stderr

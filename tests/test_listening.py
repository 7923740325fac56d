"""deepsynth_jax.listening: the swap probe (audio generated from segment B's frames for slot A,
scored against B's and A's notes, and the teacher-forced video gain of autoregressive models),
the silence probe and `listening_report`.

Fake runs whose audio is known prove that the probes measure what they claim: a perfect listener
(it plays the true audio of the frames it is shown) matches the shown notes and not the other
segment's; a model that ignores the video (it plays slot A's audio whatever it sees) the reverse.
Real (random-parameter) KeySynth and WaveNet run directories give the report's shape."""

from __future__ import annotations

import os
import sys
import types

import numpy as np
import pytest

from data_gen import keyboard
from deepsynth_jax import evaluate, listening, runs

sys.path.insert(0, os.path.dirname(__file__))
from test_api import make_run_dir  # noqa: E402  (the same fake trained run)

SPLIT = "train"  # the tiny dataset's only split with several songs
LENGTH = 8000  # 2 s: enough notes for the F1 scores to tell two songs apart
SWAP_KEYS = {"vs_shown_onset_f1", "vs_shown_pitch_f1", "vs_other_onset_f1", "vs_other_pitch_f1"}
GAIN_KEYS = {"teacher_forced_ce_own_video", "teacher_forced_ce_swapped_video", "video_gain"}
SILENCE_KEYS = {"silence_rms", "silence_peak", "reference_rms"}


class FakeRun:
  """What the probes use of a `runs.Run`: `generate`, `params` and `generator.autoregressive`.

  `play(frames, frame_index, frame_age, example_id)` gives the audio (T,) of one clip; every
  call is recorded."""

  def __init__(self, play, autoregressive=False):
    self.play = play
    self.params = {"fake": np.zeros(())}
    self.generator = types.SimpleNamespace(autoregressive=autoregressive)
    self.calls = []

  def fit_frames(self, frames, press_frames=True):
    return frames

  def generate(self, frames, frame_index, frame_age, *, seed=0, temperature=1.0, greedy=False,
               true_audio=None, example_ids=None, press_frames=True):
    assert frames.ndim == 4 and frame_index.shape == frame_age.shape and len(example_ids) == 1
    self.calls.append({"frames": frames[0], "frame_index": frame_index[0],
                       "frame_age": frame_age[0], "example_id": int(example_ids[0]),
                       "seed": seed, "press_frames": bool(np.all(press_frames))})
    audio = self.play(frames[0], frame_index[0], frame_age[0], int(example_ids[0]))
    assert audio.shape == frame_index.shape[1:]
    return np.asarray(audio, np.float32)[None], None


def _song(data, index):
  return data.segment(SPLIT, index)[0]


@pytest.fixture(scope="module")
def pair(data):
  """(a, b): two examples of different songs."""
  a = 0
  b = next(i for i in range(data.num_examples(SPLIT)) if _song(data, i) != _song(data, a))
  return a, b


def _example_shown(data, frames):
  """The example whose frames these are, or None."""
  found = [i for i in range(data.num_examples(SPLIT))
           if np.array_equal(data.example(SPLIT, i)["frames"], frames)]
  assert len(found) <= 1
  return found[0] if found else None


def listener(data):
  """Plays the true audio of the frames it is shown (silence for frames of no example): a model
  that follows the video."""
  def play(frames, index, age, _):
    shown = _example_shown(data, frames)
    if shown is None:
      return np.zeros(len(index), np.float32)
    return data.example(SPLIT, shown)["audio"][:len(index)]

  return play


def ignorer(data):
  """Plays slot `example_id`'s true audio whatever the frames: a model that ignores the video."""
  return lambda frames, index, age, example_id: data.example(SPLIT, example_id)["audio"][
      :len(index)]


def test_swap_partner_is_an_example_of_another_song(data):
  n = data.num_examples(SPLIT)
  songs = [_song(data, i) for i in range(n)]
  first = songs[0]
  others = [i for i in range(n) if songs[i] != first]
  same = [i for i in range(n) if songs[i] == first]
  assert len(same) >= 3 and others
  candidates = same + others[:2]
  for a in same:
    assert listening.swap_partner(data, SPLIT, a, candidates) == others[0]
  assert listening.swap_partner(data, SPLIT, others[1], candidates) == same[0]
  # All candidates from one song: the next candidate (wrapping round), never the example itself.
  assert listening.swap_partner(data, SPLIT, same[0], same) == same[1]
  assert listening.swap_partner(data, SPLIT, same[-1], same) == same[0]


def test_swap_test_scores_the_shown_notes_for_a_model_that_listens(data, pair):
  a, b = pair
  run = FakeRun(listener(data))
  out = listening.swap_test(run, data, SPLIT, a, b, length=LENGTH, seed=5)
  assert set(out) == SWAP_KEYS | {"partner"} and out["partner"] == b
  # One generation, from B's frames and timing, for slot A, LENGTH samples long.
  (call,) = run.calls
  ex_b = data.example(SPLIT, b)
  np.testing.assert_array_equal(call["frames"], ex_b["frames"])
  np.testing.assert_array_equal(call["frame_index"], ex_b["frame_index"][:LENGTH])
  np.testing.assert_array_equal(call["frame_age"], ex_b["frame_age"][:LENGTH])
  assert call["example_id"] == a and call["seed"] == 5
  # B's true audio matches B's notes, and A's notes far less.
  assert out["vs_shown_onset_f1"] >= 0.8 and out["vs_shown_pitch_f1"] >= 0.5
  assert out["vs_other_pitch_f1"] <= 0.15
  assert out["vs_other_onset_f1"] <= out["vs_shown_onset_f1"] - 0.3


def test_swap_test_scores_the_other_notes_for_a_model_that_ignores_the_video(data, pair):
  a, b = pair
  listens = listening.swap_test(FakeRun(listener(data)), data, SPLIT, a, b, length=LENGTH)
  ignores = listening.swap_test(FakeRun(ignorer(data)), data, SPLIT, a, b, length=LENGTH)
  # The ignoring model plays A's audio: its scores are the listener's with the notes swapped
  # (A's audio against A's notes scores like B's audio against B's).
  assert ignores["vs_other_onset_f1"] >= 0.8 and ignores["vs_other_pitch_f1"] >= 0.5
  assert ignores["vs_shown_pitch_f1"] <= 0.15
  assert ignores["vs_shown_onset_f1"] <= ignores["vs_other_onset_f1"] - 0.3
  assert listens["vs_shown_pitch_f1"] > ignores["vs_shown_pitch_f1"] + 0.3
  assert ignores["vs_other_pitch_f1"] > listens["vs_other_pitch_f1"] + 0.3


def _video_dependent_ce(data, a, run):
  """A teacher-forced fn: CE 2.0 of A's audio with A's frames, 2.75 with any other frames."""
  calls = []
  ex_a = data.example(SPLIT, a)

  def fn(params, batch):
    calls.append(batch)
    assert params is run.params
    np.testing.assert_array_equal(batch["audio"], ex_a["audio"][None, :LENGTH])
    assert batch["frame_index"].shape == batch["frame_age"].shape == (1, LENGTH)
    own = np.array_equal(batch["frames"][0], ex_a["frames"])
    return {"cross_entropy": np.float32(2.0 if own else 2.75)}

  return fn, calls


def test_video_gain_is_swapped_minus_own_cross_entropy(data, pair):
  a, b = pair
  run = FakeRun(listener(data), autoregressive=True)
  fn, calls = _video_dependent_ce(data, a, run)
  out = listening.swap_test(run, data, SPLIT, a, b, length=LENGTH, teacher_forced_fn=fn)
  assert set(out) == SWAP_KEYS | GAIN_KEYS | {"partner"}
  assert out["teacher_forced_ce_own_video"] == pytest.approx(2.0)
  assert out["teacher_forced_ce_swapped_video"] == pytest.approx(2.75)
  assert out["video_gain"] == pytest.approx(0.75)
  ex_b = data.example(SPLIT, b)
  shown = sorted(_example_shown(data, c["frames"][0]) for c in calls)
  assert shown == sorted([a, b])
  swapped = next(c for c in calls if np.array_equal(c["frames"][0], ex_b["frames"]))
  np.testing.assert_array_equal(swapped["frame_index"][0], ex_b["frame_index"][:LENGTH])
  np.testing.assert_array_equal(swapped["frame_age"][0], ex_b["frame_age"][:LENGTH])


def test_video_gain_is_reported_for_autoregressive_models_only(data, pair):
  a, b = pair
  run = FakeRun(listener(data), autoregressive=False)
  fn, calls = _video_dependent_ce(data, a, run)
  out = listening.swap_test(run, data, SPLIT, a, b, length=LENGTH, teacher_forced_fn=fn)
  assert set(out) == SWAP_KEYS | {"partner"} and not calls
  # Without a teacher-forced function there is no gain either.
  out = listening.swap_test(FakeRun(listener(data), autoregressive=True), data, SPLIT, a, b,
                            length=LENGTH)
  assert set(out) == SWAP_KEYS | {"partner"}


def test_silence_test_measures_the_audio_of_the_untouched_keyboard(data):
  quiet = FakeRun(lambda frames, index, age, _: np.zeros(len(index), np.float32))
  out = listening.silence_test(quiet, data, seed=2, seconds=0.5)
  assert out == {"silence_rms": 0.0, "silence_peak": 0.0}
  (call,) = quiet.calls
  untouched = keyboard.render_keyboard(np.zeros(88, bool), *data.frame_shape)
  assert call["frames"].shape == (1, *data.frame_shape)
  np.testing.assert_array_equal(call["frames"][0], untouched)
  np.testing.assert_array_equal(call["frame_index"], np.zeros(2000))  # 0.5 s at 4 kHz
  np.testing.assert_array_equal(call["frame_age"], np.arange(2000))
  assert call["seed"] == 2

  rng = np.random.default_rng(0)
  noise = rng.uniform(-0.5, 0.5, 8000).astype(np.float32)
  noise[100] = -0.875
  noisy = FakeRun(lambda frames, index, age, _: noise[:len(index)])
  out = listening.silence_test(noisy, data)  # the default: 2 s
  assert len(noisy.calls[0]["frame_index"]) == 8000
  assert out["silence_rms"] == pytest.approx(np.sqrt(np.mean(noise.astype(np.float64) ** 2)))
  assert out["silence_rms"] == pytest.approx(0.5 / np.sqrt(3), rel=0.05)
  assert out["silence_peak"] == pytest.approx(0.875)


def test_listening_report_of_fake_runs(data, pair):
  a, b = pair
  indices = [a, a + 1, b]  # a and a + 1: one song; b: another
  assert _song(data, a + 1) == _song(data, a) != _song(data, b)
  run = FakeRun(listener(data))
  report = listening.listening_report(run, data, SPLIT, indices, length=LENGTH)
  rows = report["swap"]["examples"]
  assert [r["index"] for r in rows] == indices and [r["partner"] for r in rows] == [b, b, a]
  for key in SWAP_KEYS:
    assert report["swap"]["mean"][key] == pytest.approx(np.mean([r[key] for r in rows]))
  assert report["swap"]["mean"]["vs_shown_pitch_f1"] > report["swap"]["mean"][
      "vs_other_pitch_f1"] + 0.3
  silence = report["silence"]
  assert set(silence) == SILENCE_KEYS
  assert silence["silence_rms"] == silence["silence_peak"] == 0.0  # the listener's silence
  assert len(run.calls) == len(indices) + 1  # one generation per example, one for silence
  reference = np.mean([np.sqrt(np.mean(data.example(SPLIT, i)["audio"][:LENGTH].astype(
      np.float64) ** 2)) for i in indices])
  assert silence["reference_rms"] == pytest.approx(reference) and reference > 0.01


@pytest.mark.parametrize("model_name", ["keysynth", "wavenet"])
def test_listening_report_of_a_real_run(tmp_path, tiny_data_dir, data, pair, model_name):
  a, b = pair
  run = runs.load_run(make_run_dir(str(tmp_path / model_name), tiny_data_dir, model_name))
  length = 800
  report = listening.listening_report(run, data, SPLIT, [a, b], length=length, seed=1,
                                      teacher_forced_fn=evaluate.teacher_forced_fn(run))
  assert set(report) == {"swap", "silence"}
  rows = report["swap"]["examples"]
  assert [(r["index"], r["partner"]) for r in rows] == [(a, b), (b, a)]
  expected = SWAP_KEYS | (GAIN_KEYS if run.generator.autoregressive else set())
  assert run.generator.autoregressive == (model_name == "wavenet")
  assert set(report["swap"]["mean"]) == expected
  for row in rows:
    assert set(row) == expected | {"index", "partner"}
    assert all(np.isfinite(row[k]) and 0 <= row[k] <= 1 for k in SWAP_KEYS)
    if run.generator.autoregressive:
      assert row["teacher_forced_ce_own_video"] > 0
      assert row["video_gain"] == pytest.approx(
          row["teacher_forced_ce_swapped_video"] - row["teacher_forced_ce_own_video"])
  silence = report["silence"]
  assert set(silence) == SILENCE_KEYS
  assert 0 <= silence["silence_rms"] <= silence["silence_peak"] <= 1
  reference = np.mean([np.sqrt(np.mean(data.example(SPLIT, i)["audio"][:length].astype(
      np.float64) ** 2)) for i in (a, b)])
  assert silence["reference_rms"] == pytest.approx(reference)

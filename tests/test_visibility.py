"""Tests of data_gen.visibility: which onsets sparse and dense keyboard video can show."""

from __future__ import annotations

import numpy as np
import pytest

from data_gen import keyboard, visibility

SR = 4000


def dense(fps: float, seconds: float = 3.0) -> np.ndarray:
  return keyboard.dense_frame_starts(int(seconds * SR), SR, fps)


def notes_of(*rows) -> np.ndarray:
  """Rows (onset, offset, pitch) -> int64 (M, 4) with velocity 80."""
  return np.array([[on, off, p, 80] for on, off, p in rows], np.int64).reshape(-1, 4)


def vis(notes, frames, press_frames=False):
  return visibility.onset_visibility(notes, frames, press_frames=press_frames, sample_rate=SR)


def test_isolated_note_visible_at_30fps():
  v = vis(notes_of((1000, 3000, 60)), dense(30))
  assert v["visible"].tolist() == [True]
  assert v["restrike"].tolist() == [False]


def test_note_shorter_than_a_frame_between_frames_is_invisible():
  frames = dense(30)  # 0, 133, 267, ...
  assert frames[1] == 133 and frames[2] == 267
  v = vis(notes_of((140, 200, 60)), frames)
  assert v["visible"].tolist() == [False]
  # ... but seen with press frames, which put a frame at its onset.
  n = notes_of((140, 200, 60))
  assert vis(n, keyboard.sparse_frame_starts(n), press_frames=True)["visible"].tolist() == [True]


@pytest.mark.parametrize("fps", [5, 24, 30, 60, 1000, SR])
def test_legato_repeat_is_an_invisible_restrike_in_dense_video(fps):
  n = notes_of((1000, 2000, 60), (2000, 3000, 60))
  v = vis(n, dense(fps))
  assert v["restrike"].tolist() == [False, True]
  assert v["visible"].tolist() == [True, False]


def test_legato_repeat_is_visible_with_press_frames():
  n = notes_of((1000, 2000, 60), (2000, 3000, 60))
  v = vis(n, keyboard.sparse_frame_starts(n), press_frames=True)
  assert v["restrike"].tolist() == [False, True]
  assert v["visible"].tolist() == [True, True]


def test_repeat_after_100ms_gap_visible_at_30fps_not_at_5fps():
  n = notes_of((1000, 2000, 60), (2400, 3000, 60))  # 400 samples = 100 ms released
  v30 = vis(n, dense(30))
  assert v30["restrike"].tolist() == [False, True]
  assert v30["visible"].tolist() == [True, True]
  f5 = dense(5)  # 0, 800, 1600, 2400, ...: no frame in [2000, 2400)
  assert not np.any((f5 >= 2000) & (f5 < 2400))
  assert vis(n, f5)["visible"].tolist() == [True, False]


def test_restrike_gap_threshold():
  gap = int(visibility.RESTRIKE_GAP_SECONDS * SR)
  n = notes_of((0, 1000, 60), (1000 + gap, 9000, 60), (0, 1000, 62), (1001 + gap, 9000, 62),
               (5000, 6000, 64))
  v = vis(n, dense(30, 3))
  assert v["restrike"].tolist() == [False, True, False, False, False]


def test_overlapping_same_pitch_notes_use_the_union_of_intervals():
  # A holds the key over B's gap: B ends at 2000, C starts at 2500 with frames in between, but A
  # still sounds until 3000, so the key is never shown released before C.
  n = notes_of((1000, 3000, 60), (1500, 2000, 60), (2500, 4000, 60))
  v = vis(n, dense(30, 2))
  assert v["restrike"].tolist() == [False, True, True]
  assert v["visible"].tolist() == [True, False, False]
  # Legato after A while a shorter B (the latest previous onset) ended long before: the key stays
  # shown pressed by A at the frame before C's onset.
  n2 = notes_of((1000, 3000, 60), (1500, 2000, 60), (3000, 4000, 60))
  assert vis(n2, dense(30, 2))["visible"].tolist() == [True, False, False]
  # Re-struck while held: B starts inside A, key never released.
  v = vis(notes_of((1000, 3000, 60), (2000, 5000, 60)), dense(60, 2))
  assert v["visible"].tolist() == [True, False]
  # Press frames show both re-strikes.
  assert vis(n, keyboard.sparse_frame_starts(n), press_frames=True)["visible"].all()


def test_two_onsets_between_frames_credit_one_press():
  f5 = dense(5)  # 0, 800, 1600, ...
  # Both sound at 1600: one press is shown, credited to the earlier.
  assert vis(notes_of((900, 2000, 60), (1000, 2500, 60)), f5)["visible"].tolist() == [True, False]
  # The first ends before 1600: the press shown at 1600 is the second's.
  assert vis(notes_of((900, 1000, 60), (1100, 2000, 60)), f5)["visible"].tolist() == [False, True]
  # Same-pitch notes with an identical onset are one press in either video.
  n = notes_of((1000, 2000, 60), (1000, 2000, 60))
  assert vis(n, f5)["visible"].tolist() == [True, False]
  assert vis(n, keyboard.sparse_frame_starts(n), press_frames=True)["visible"].tolist() == [
      True, False]


def test_input_order_is_kept():
  n = notes_of((2400, 3000, 60), (5000, 6000, 62), (1000, 2000, 60))
  v = vis(n, dense(5, 2))
  assert v["restrike"].tolist() == [True, False, False]
  assert v["visible"].tolist() == [False, True, True]


def test_empty_notes_and_summary():
  for press in (False, True):
    v = vis(np.zeros((0, 4), np.int64), dense(30), press_frames=press)
    assert v["visible"].shape == (0,) and v["restrike"].shape == (0,)
    assert v["visible"].dtype == bool
    s = visibility.visibility_summary(np.zeros((0, 4)), dense(30), press_frames=press)
    assert s == {"onsets": 0, "visible_onsets": 0, "onset_ceiling": None, "restrikes": 0,
                 "visible_restrikes": 0, "restrike_ceiling": None}
  n = notes_of((1000, 2000, 60), (2000, 3000, 60), (5000, 6000, 62))
  s = visibility.visibility_summary(n, dense(30, 2), press_frames=False, sample_rate=SR)
  assert s["onsets"] == 3 and s["visible_onsets"] == 2
  assert s["onset_ceiling"] == pytest.approx(2 / 3)
  assert s["restrikes"] == 1 and s["visible_restrikes"] == 0 and s["restrike_ceiling"] == 0.0
  s = visibility.visibility_summary(n[[0, 2]], dense(30, 2), press_frames=False)
  assert s["restrike_ceiling"] is None and s["onset_ceiling"] == 1.0


def test_press_frames_need_a_frame_at_the_onset():
  n = notes_of((1000, 2000, 60), (1500, 1500, 62))  # the second has zero length: never shown
  assert vis(n, [0, 1000, 1500], press_frames=True)["visible"].tolist() == [True, False]
  assert vis(n, [0, 999, 1500], press_frames=True)["visible"].tolist() == [False, False]
  assert vis(n, [], press_frames=True)["visible"].tolist() == [False, False]
  assert vis(n, [], press_frames=False)["visible"].tolist() == [False, False]


# -- property check against the rendered key states ---------------------------------------------

def oracle_visible(notes: np.ndarray, starts: np.ndarray) -> np.ndarray:
  """Every change of a key from released to pressed between consecutive rendered frames (or a key
  pressed at the first frame) shows one onset: the earliest one of that key in (previous frame,
  this frame] whose note alone renders the key pressed at this frame."""
  keys = keyboard.keys_at(notes, starts)
  seen = np.zeros(len(notes), bool)
  for f in range(len(starts)):
    for k in np.flatnonzero(keys[f]):
      if f > 0 and keys[f - 1, k]:
        continue
      lo = starts[f - 1] if f > 0 else -np.inf
      cands = [i for i in range(len(notes))
               if notes[i, 2] - keyboard.LOWEST_PITCH == k and lo < notes[i, 0] <= starts[f]
               and keyboard.keys_at(notes[i:i + 1], starts[f:f + 1])[0, k]]
      assert cands, "a key goes down at a frame with no note starting since the previous frame"
      seen[min(cands, key=lambda i: (notes[i, 0], i))] = True
  return seen


def oracle_restrike(notes: np.ndarray) -> np.ndarray:
  gap = visibility.RESTRIKE_GAP_SECONDS * SR
  return np.array([any(n[2] == m[2] and m[0] < n[0] and m[1] >= n[0] - gap for m in notes)
                   for n in notes], bool)


@pytest.mark.parametrize("seed", range(6))
def test_matches_rendered_key_states_on_random_notes(seed):
  rng = np.random.default_rng(seed)
  num_samples = 6000
  checked = 0
  for _ in range(250):
    m = int(rng.integers(0, 9))
    onset = rng.integers(0, num_samples, m)
    length = rng.choice([0, 50, 150, 400, 1200], m) + rng.integers(0, 100, m)
    pitch = rng.choice([60, 61, 62], m)
    notes = np.stack([onset, onset + length, pitch, np.full(m, 80)], 1).astype(np.int64)
    if rng.random() < 0.5:
      starts = keyboard.dense_frame_starts(num_samples, SR, float(rng.choice([5, 12, 24, 30, 60])))
    else:  # arbitrary sampled frames, sometimes landing on onsets
      pool = np.concatenate([rng.integers(1, num_samples, 12), onset[:2]])
      starts = np.unique(np.concatenate([[0], rng.choice(pool, int(rng.integers(0, 10)))]))
    v = vis(notes, starts)
    np.testing.assert_array_equal(v["visible"], oracle_visible(notes, starts), err_msg=str(
        (notes[:, :3].tolist(), starts.tolist())))
    np.testing.assert_array_equal(v["restrike"], oracle_restrike(notes))
    # Press frames on the method's own sparse video: every lasting, non-duplicate onset is seen.
    sparse = keyboard.sparse_frame_starts(notes)
    dup = np.array([any(notes[j, 0] == notes[i, 0] and notes[j, 2] == notes[i, 2]
                        for j in range(i)) for i in range(m)], bool).reshape(-1)
    np.testing.assert_array_equal(vis(notes, sparse, press_frames=True)["visible"],
                                  (notes[:, 1] > notes[:, 0]) & ~dup)
    checked += int(v["visible"].sum())
  assert checked > 100  # the cases exercise visible notes, not only invisible ones


def test_rendering_names_say_what_the_video_shows():
  from experiments import restrike_ceiling

  name = restrike_ceiling.rendering_name
  assert name({"frames": "sparse"}) == "sparse"
  assert name({"frames": "fps:30", "camera": {"style": "held_out"}}) == "fps:30, held_out camera"
  assert (name({"frames": "fps:24", "camera": {"style": "clean"}, "repeat_release_ms": 50.0})
          == "fps:24, keys up 50 ms before repeats")

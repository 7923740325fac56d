"""deepsynth_jax.comparison: which examples a side-by-side comparison uses (`spread_indices`), the
generation speed it reports (`speed`) and its Markdown table (`comparison_table`)."""

from __future__ import annotations

import numpy as np
import pytest

from deepsynth_jax import comparison


class FakeData:
  """The two methods `spread_indices` reads of a dataset: songs of the given sizes, song by song."""

  def __init__(self, song_sizes: dict[int, int]):
    self.rows = [(song, 1000 * k) for song, n in song_sizes.items() for k in range(n)]

  def num_examples(self, split):
    return len(self.rows)

  def segment(self, split, index):
    return self.rows[index]


def _by_song(data, split, indices):
  songs = {}
  for i in indices:
    songs.setdefault(data.segment(split, i)[0], []).append(i)
  return songs


def test_spread_indices_on_the_tiny_dataset(data):
  split = "train"
  songs = _by_song(data, split, range(data.num_examples(split)))
  assert len(songs) >= 2 and all(len(rows) >= 3 for rows in songs.values())
  picked = comparison.spread_indices(data, split, 2)
  # Two per song: its first and its last example.
  assert picked == sorted(i for rows in songs.values() for i in (rows[0], rows[-1]))
  assert comparison.spread_indices(data, split, 1) == sorted(rows[0] for rows in songs.values())
  everything = comparison.spread_indices(data, split, 1000)
  assert everything == list(range(data.num_examples(split)))
  for per_song in (2, 3):
    chosen = _by_song(data, split, comparison.spread_indices(data, split, per_song))
    assert set(chosen) == set(songs)
    assert all(len(chosen[s]) == per_song for s in songs)


def test_spread_indices_are_evenly_spaced_sorted_and_unique():
  data = FakeData({7: 9, 3: 1, 5: 4, 8: 2})  # song 7: rows 0-8, 3: 9, 5: 10-13, 8: 14-15
  picked = comparison.spread_indices(data, "test", 3)
  assert picked == sorted(set(picked))
  chosen = _by_song(data, "test", picked)
  assert chosen[7] == [0, 4, 8]  # evenly spaced, first and last included
  assert chosen[3] == [9]  # a song shorter than per_song gives all it has
  assert chosen[8] == [14, 15]
  assert len(chosen[5]) == 3 and chosen[5][0] == 10 and chosen[5][-1] == 13
  gaps = np.diff(chosen[5])
  assert gaps.max() - gaps.min() <= 1
  assert comparison.spread_indices(data, "test", 1) == [0, 9, 10, 14]
  assert comparison.spread_indices(FakeData({}), "test", 3) == []


def test_speed_leaves_out_the_first_timing_when_there_are_others():
  # Three clips of 1 s at 4 kHz: the first (with compilation) took 10 s, the others 0.5 s each.
  fast = comparison.speed([10.0, 0.5, 0.5], 4000, 4000)
  assert fast["samples_per_second"] == pytest.approx(8000.0)
  assert fast["real_time_factor"] == pytest.approx(2.0)
  assert fast["timed_examples"] == 2 and fast["includes_compilation"] is False
  # One clip only: it is timed, compilation included, and says so.
  once = comparison.speed([4.0], 2000, 4000)
  assert once["samples_per_second"] == pytest.approx(500.0)
  assert once["real_time_factor"] == pytest.approx(0.125)
  assert once["timed_examples"] == 1 and once["includes_compilation"] is True


def _music(stft, onset, pitch, corr=0.25):
  return {"stft_distance": stft, "onset_f1": onset, "pitch_f1": pitch, "pitch_precision": 0.5,
          "waveform_correlation": corr}


def _result(tf, fr, music, rtf, learned_from=None):
  """The parts of an `evaluate.evaluate_run` result that the table reads."""
  return {"learned_from": learned_from or {},
          "mean": {"teacher_forced_cross_entropy": tf, "free_running_cross_entropy": fr,
                   "music": music, "reference_music": _music(0.0, 0.95, 0.71, 1.0),
                   "noise_music": _music(2.5, 0.125, 0.02, 0.0)},
          "speed": {"real_time_factor": rtf, "samples_per_second": rtf * 4000}}


def _rows(table: str) -> list[list[str]]:
  return [[c.strip() for c in line.strip().strip("|").split("|")] for line in table.splitlines()]


def test_comparison_table_rows_and_columns():
  results = {"wavenet": _result(2.25, 3.5, _music(1.5, 0.4, 0.25), 0.04,
                               {"uses_key_labels": False, "frame_mode": "sparse"}),
             "keysynth": _result(None, 1.75, _music(0.75, 0.9, 0.6), 120.0,
                                 {"uses_key_labels": True, "frame_mode": "fps:30"})}
  baseline = {"music": _music(1.0, 0.8, 0.5), "speed": {"real_time_factor": 12.34}}
  rows = _rows(comparison.comparison_table(results, baseline))
  assert rows[0] == ["audio", "key labels", "training video", "teacher-forced CE",
                     "free-running CE", "STFT distance", "waveform corr.", "onset F1",
                     "pitch F1", "generation (x real time)"]
  assert rows[1][0] == "---" and len(rows[1]) == 10 and all(c == "---:" for c in rows[1][1:])
  assert rows[2:] == [
      ["reference audio", "-", "-", "-", "-", "0.000", "1.000", "0.950", "0.710", "-"],
      ["white noise (matched RMS)", "-", "-", "-", "-", "2.500", "0.000", "0.125", "0.020", "-"],
      ["baseline: transcribe + FluidSynth", "yes", "-", "-", "-", "1.000", "0.250", "0.800",
       "0.500", "12.3"],
      ["wavenet", "no", "sparse", "2.250", "3.500", "1.500", "0.250", "0.400", "0.250", "0.0"],
      ["keysynth", "yes", "fps:30", "-", "1.750", "0.750", "0.250", "0.900", "0.600", "120.0"],
  ]
  assert all(len(r) == 10 for r in rows)


def test_comparison_table_without_baseline_or_music_metrics():
  plain = _result(2.0, 2.5, {}, 1.0)
  del plain["mean"]["reference_music"], plain["mean"]["noise_music"], plain["mean"]["music"]
  rows = _rows(comparison.comparison_table({"run": plain}))
  assert [r[0] for r in rows[2:]] == ["reference audio", "white noise (matched RMS)", "run"]
  assert rows[2][1:] == ["-"] * 9
  assert rows[4][1:] == ["-", "-", "2.000", "2.500", "-", "-", "-", "-", "1.0"]

"""Cutting songs into overlapping segments and splitting them into train/validation/test.

A song of N samples gets windows of `segment_samples` (5 s = 20,000 samples at 4 kHz) every
`hop_samples` = segment - overlap (3 s): starts 0, hop, 2 hop, ... for
max(1, ceil((N - overlap) / hop)) windows, i.e. until a window reaches the song's end; the last one
is zero-padded. Every sample is covered and no window lies inside the previous one's overlap.

Splits are by song by default (the method: no song is in two splits): song indices are shuffled
with the seed and the first 60% train, next 20% validation, rest test (12/4/4 of 20); with at
least 3 songs every split gets one. `split_by='segment'` shuffles all segments instead (overlapping
neighbours then land in different splits, so validation is optimistic).
"""

from __future__ import annotations

import numpy as np

SPLITS = ("train", "validation", "test")
DEFAULT_FRACTIONS = (0.6, 0.2, 0.2)


def seconds_to_samples(seconds: float, sample_rate: int, name: str) -> int:
  """A duration in whole samples; ValueError if it is not a whole number of samples."""
  samples = float(seconds) * int(sample_rate)
  if not np.isfinite(samples) or abs(samples - round(samples)) > 1e-6:
    raise ValueError(f"--{name}={seconds} is not a whole number of samples at {sample_rate} Hz")
  return int(round(samples))


def check_windows(segment_samples: int, overlap_samples: int) -> int:
  """Returns hop = segment - overlap; ValueError unless 0 <= overlap < segment."""
  if segment_samples <= 0:
    raise ValueError(f"segment length must be positive, got {segment_samples} samples")
  if not 0 <= overlap_samples < segment_samples:
    raise ValueError(f"overlap ({overlap_samples} samples) must be >= 0 and shorter than the "
                     f"segment ({segment_samples} samples)")
  return segment_samples - overlap_samples


def segment_starts(num_samples: int, segment_samples: int, hop_samples: int) -> np.ndarray:
  """int64 (S,): start samples of a song's windows (see module docstring)."""
  overlap = segment_samples - hop_samples
  count = max(1, -(-(int(num_samples) - overlap) // hop_samples))
  return np.arange(count, dtype=np.int64) * hop_samples


def frame_ranges(frame_start: np.ndarray, starts: np.ndarray,
                 segment_samples: int) -> tuple[np.ndarray, np.ndarray]:
  """For windows at `starts` (S,): (first frame index, number of frames) int64 (S,), (S,).

  A window's frames are the one current at its start and every frame starting inside it.
  """
  fs = np.asarray(frame_start, np.int64)
  starts = np.asarray(starts, np.int64)
  first = np.searchsorted(fs, starts, side="right") - 1
  end = np.searchsorted(fs, starts + segment_samples, side="left")
  return first, end - first


def parse_fractions(fractions) -> tuple[float, float, float]:
  """'0.6,0.2,0.2' or a 3-sequence -> 3 non-negative floats summing to 1 (ValueError if not)."""
  if isinstance(fractions, str):
    fractions = fractions.split(",")
  try:
    f = tuple(float(x) for x in fractions)
  except (TypeError, ValueError):
    f = ()
  if len(f) != 3 or min(f) < 0 or abs(sum(f) - 1.0) > 1e-6 or f[0] <= 0:
    raise ValueError(f"--split_fractions={fractions!r} must be three numbers train,validation,test "
                     ">= 0 (train > 0) summing to 1, e.g. 0.6,0.2,0.2")
  return f


def _counts(n: int, fractions: tuple[float, float, float]) -> tuple[int, int, int]:
  val = int(round(fractions[1] * n))
  test = int(round(fractions[2] * n))
  if n >= 3:
    val = max(val, 1) if fractions[1] > 0 else 0
    test = max(test, 1) if fractions[2] > 0 else 0
  val = min(val, max(n - 1, 0))
  test = min(test, max(n - 1 - val, 0))
  return n - val - test, val, test


def assign(n: int, fractions: tuple[float, float, float], seed: int) -> list[str]:
  """Split name for each of n items: a seeded shuffle cut by the fractions."""
  order = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5EED])).permutation(n)
  train, val, _ = _counts(n, fractions)
  names = [""] * n
  for rank, i in enumerate(order.tolist()):
    names[i] = "train" if rank < train else "validation" if rank < train + val else "test"
  return names


def build_splits(song_starts: list[np.ndarray], split_by: str,
                 fractions: tuple[float, float, float], seed: int
                 ) -> tuple[list[str], dict[str, list[list[int]]]]:
  """Assigns segments to splits.

  Args:
    song_starts: per song, int64 (S_i,) window starts.
    split_by: 'song' or 'segment'.
    fractions: train, validation, test fractions.
    seed: shuffle seed.

  Returns:
    (per-song split name ('mixed' when split by segment), {split: [[song_index, start], ...]}),
    each split's list in song then start order.
  """
  segs = [[i, int(s)] for i, starts in enumerate(song_starts) for s in starts.tolist()]
  if split_by == "song":
    song_split = assign(len(song_starts), fractions, seed)
    names = [song_split[i] for i, _ in segs]
  elif split_by == "segment":
    song_split = ["mixed"] * len(song_starts)
    names = assign(len(segs), fractions, seed)
  else:
    raise ValueError(f"--split_by={split_by!r} must be 'song' or 'segment'")
  splits: dict[str, list[list[int]]] = {name: [] for name in SPLITS}
  for seg, name in zip(segs, names, strict=True):
    splits[name].append(seg)
  return song_split, splits

"""Carrying sparse video frames to audio rate.

A clip's video is a list of F frames, frame f being current from sample `frame_start[f]` (at the
audio sample rate, 4 kHz by default) until the next frame starts. `frame_start[0]` is 0 and the
starts strictly increase. Every audio sample t then has a current frame index and an age (samples
since that frame became current), which the model uses as conditioning.
"""

from __future__ import annotations

import numpy as np


def validate_frame_start(frame_start: np.ndarray, num_samples: int) -> np.ndarray:
  """Checks frame starts (F,) and returns them as int64; raises ValueError naming the problem."""
  starts = np.asarray(frame_start)
  if starts.ndim != 1 or starts.shape[0] == 0:
    raise ValueError(f"frame_start must be a non-empty 1-D array of sample indices, got shape "
                     f"{starts.shape}")
  if not np.issubdtype(starts.dtype, np.integer):
    if not np.all(np.isfinite(starts)) or np.any(starts != np.round(starts)):
      raise ValueError("frame_start must hold whole sample indices (finite integers)")
    starts = starts.astype(np.int64)
  starts = starts.astype(np.int64)
  if starts[0] != 0:
    raise ValueError(f"the first frame must start at sample 0, got {starts[0]}: pass the frame "
                     "current at the start of the clip first")
  if np.any(np.diff(starts) <= 0):
    bad = int(np.argmax(np.diff(starts) <= 0)) + 1
    raise ValueError(f"frame starts must strictly increase; frame {bad} starts at {starts[bad]} "
                     f"after frame {bad - 1} at {starts[bad - 1]}")
  if starts[-1] >= num_samples:
    raise ValueError(f"frame {len(starts) - 1} starts at sample {starts[-1]}, at or past the "
                     f"clip's end ({num_samples} samples)")
  return starts


def frame_index_and_age(frame_start: np.ndarray, num_samples: int) -> tuple[np.ndarray, np.ndarray]:
  """Per-sample current frame index and age.

  Args:
    frame_start: (F,) int, sample index at which each frame becomes current; [0] == 0, increasing.
    num_samples: T, number of audio samples in the clip.

  Returns:
    (frame_index, frame_age), both int32 (T,): the index into the F frames current at each sample,
    and the number of samples since that frame became current (0 at the frame's first sample).
  """
  starts = validate_frame_start(frame_start, num_samples)
  t = np.arange(num_samples, dtype=np.int64)
  index = np.searchsorted(starts, t, side="right") - 1
  age = t - starts[index]
  return index.astype(np.int32), age.astype(np.int32)


def frame_start_from_times(frame_times_s: np.ndarray, sample_rate: int) -> np.ndarray:
  """Frame times in seconds (F,) -> frame starts in samples (F,), rounded to the nearest sample."""
  times = np.asarray(frame_times_s, np.float64)
  if times.ndim != 1 or not np.all(np.isfinite(times)):
    raise ValueError("frame times must be a finite 1-D array of seconds")
  return np.round(times * sample_rate).astype(np.int64)

"""The audio teacher: keys heard struck at each frame's start, from audio and frame times only."""

from __future__ import annotations

import numpy as np

from deepsynth_jax import audio_teacher


def _piano_like(key: int, start: int, length: int, rate: int = 4000) -> np.ndarray:
  """A decaying harmonic tone of key k (MIDI 21 + k) from `start`, silence before."""
  f0 = 440.0 * 2 ** ((key + 21 - 69) / 12)
  t = np.arange(length - start) / rate
  tone = sum(np.sin(2 * np.pi * h * f0 * t) / h for h in range(1, 6) if h * f0 < rate / 2)
  out = np.zeros(length, np.float32)
  out[start:] = 0.2 * tone * np.exp(-3 * t)
  return out


def test_a_key_struck_at_a_frame_is_heard_there_only():
  audio = _piano_like(40, 4000, 12000) + _piano_like(55, 8000, 12000)
  heard = audio_teacher.heard_new_keys(audio, np.array([0, 4000, 8000]), 4000)
  assert heard.shape == (3, 88) and heard.dtype == np.float32
  assert heard[0].sum() == 0  # silence
  assert heard[1, 40] == 1 and heard[1].sum() <= 2
  # The second frame's new key, not the one still sounding from the first.
  assert heard[2, 55] == 1 and heard[2, 40] == 0


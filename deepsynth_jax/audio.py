"""Audio quantization and WAV I/O.

Waveforms are float32 in [-1, 1] at the dataset's sample rate (4 kHz by default). The model predicts
each sample as one of `NUM_BUCKETS` = 256 buckets (0..255), mu-law companded by default or linear.
Works on numpy and jax arrays alike (the functions only use array methods shared by both).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

NUM_BUCKETS = 256
MU = NUM_BUCKETS - 1
SCHEMES = ("mu_law", "linear")

Array = Any  # np.ndarray or jax.Array


def _xp(x: Array):
  """numpy for numpy inputs, jax.numpy for jax arrays (without importing jax eagerly)."""
  if isinstance(x, np.ndarray) or np.isscalar(x):
    return np
  import jax.numpy as jnp
  return jnp


def quantize(audio: Array, scheme: str = "mu_law") -> Array:
  """Maps float audio in [-1, 1] (values outside are clipped) to int32 buckets 0..255."""
  xp = _xp(audio)
  x = xp.clip(audio, -1.0, 1.0)
  if scheme == "mu_law":
    x = xp.sign(x) * xp.log1p(MU * xp.abs(x)) / np.log1p(MU)
  elif scheme != "linear":
    raise ValueError(f"unknown quantization scheme {scheme!r}; expected one of {SCHEMES}")
  buckets = xp.floor((x + 1.0) / 2.0 * MU + 0.5)
  return xp.clip(buckets, 0, MU).astype(xp.int32)


def dequantize(buckets: Array, scheme: str = "mu_law") -> Array:
  """Maps int buckets 0..255 back to float32 audio in [-1, 1] (bucket centres)."""
  xp = _xp(buckets)
  x = buckets.astype(xp.float32) / MU * 2.0 - 1.0
  if scheme == "mu_law":
    x = xp.sign(x) * xp.expm1(xp.abs(x) * np.log1p(MU)) / MU
  elif scheme != "linear":
    raise ValueError(f"unknown quantization scheme {scheme!r}; expected one of {SCHEMES}")
  return x.astype(xp.float32)


def pcm16_to_float(pcm: np.ndarray) -> np.ndarray:
  """int16 PCM -> float32 in [-1, 1)."""
  return (np.asarray(pcm, np.int16).astype(np.float32) / 32768.0).astype(np.float32)


def float_to_pcm16(audio: np.ndarray) -> np.ndarray:
  """float audio in [-1, 1] -> int16 PCM (clipped, rounded)."""
  return np.clip(np.round(np.asarray(audio, np.float64) * 32767.0), -32768, 32767).astype(np.int16)


def write_wav(path: str, audio: np.ndarray, sample_rate: int) -> None:
  """Writes mono float audio as 16-bit PCM WAV, atomically (temp file + rename)."""
  from scipy.io import wavfile

  audio = np.asarray(audio)
  if audio.ndim != 1:
    raise ValueError(f"write_wav expects mono audio of shape (T,), got {audio.shape}")
  tmp = f"{path}.tmp-{os.getpid()}"
  wavfile.write(tmp, int(sample_rate), float_to_pcm16(audio))
  os.replace(tmp, path)

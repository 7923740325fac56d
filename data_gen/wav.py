"""16-bit PCM and WAV files: how the dataset stores audio and how every tool writes it.

Float audio is float32 in [-1, 1] at the dataset's sample rate (4 kHz by default). PCM conversion
scales by 32768 both ways, so int16 -> float -> int16 is exact and float -> int16 clips +1.0 to
32767.
"""

from __future__ import annotations

import os

import numpy as np


def pcm16_to_float(pcm: np.ndarray) -> np.ndarray:
  """int16 PCM -> float32 in [-1, 1)."""
  return (np.asarray(pcm, np.int16).astype(np.float32) / 32768.0).astype(np.float32)


def float_to_pcm16(audio: np.ndarray) -> np.ndarray:
  """float audio in [-1, 1] -> int16 PCM (clipped, rounded)."""
  return np.clip(np.round(np.asarray(audio, np.float64) * 32768.0), -32768, 32767).astype(np.int16)


def write_wav(path: str, audio: np.ndarray, sample_rate: int) -> None:
  """Writes mono float audio as 16-bit PCM WAV, atomically (temp file + rename)."""
  from scipy.io import wavfile

  audio = np.asarray(audio)
  if audio.ndim != 1:
    raise ValueError(f"write_wav expects mono audio of shape (T,), got {audio.shape}")
  tmp = f"{path}.tmp-{os.getpid()}"
  wavfile.write(tmp, int(sample_rate), float_to_pcm16(audio))
  os.replace(tmp, path)

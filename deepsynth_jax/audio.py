"""Audio quantization: float waveforms <-> 256 buckets.

Waveforms are float32 in [-1, 1] at the dataset's sample rate (4 kHz by default). The model predicts
each sample as one of `NUM_BUCKETS` = 256 buckets (0..255), mu-law companded by default or linear.
Works on numpy and jax arrays alike (the functions only use array methods shared by both).
Teacher-forced autoregressive models read the previous sample as a token: its bucket, or
`NO_AUDIO` where it is unknown or dropped (`audio_input_tokens`).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

NUM_BUCKETS = 256
MU = NUM_BUCKETS - 1
SCHEMES = ("mu_law", "linear")

Array = Any  # np.ndarray or jax.Array


def _xp(x: Array):
  """numpy for numpy inputs, jax.numpy for jax arrays and tracers."""
  if isinstance(x, np.ndarray) or np.isscalar(x):
    return np
  return jnp


def mu_law_compand(audio: Array) -> Array:
  """float audio in [-1, 1] -> its mu-law companding in [-1, 1] (the scale in which the mu-law
  buckets are uniform, 2 / MU wide)."""
  xp = _xp(audio)
  return xp.sign(audio) * xp.log1p(MU * xp.abs(audio)) / np.log1p(MU)


def mu_law_expand(companded: Array) -> Array:
  """The inverse of `mu_law_compand`: companded values in [-1, 1] -> audio in [-1, 1]."""
  xp = _xp(companded)
  return xp.sign(companded) * xp.expm1(xp.abs(companded) * np.log1p(MU)) / MU


def quantize(audio: Array, scheme: str = "mu_law") -> Array:
  """Maps float audio in [-1, 1] (values outside are clipped) to int32 buckets 0..255."""
  xp = _xp(audio)
  x = xp.clip(audio, -1.0, 1.0)
  if scheme == "mu_law":
    x = mu_law_compand(x)
  elif scheme != "linear":
    raise ValueError(f"unknown quantization scheme {scheme!r}; expected one of {SCHEMES}")
  buckets = xp.floor((x + 1.0) / 2.0 * MU + 0.5)
  return xp.clip(buckets, 0, MU).astype(xp.int32)


def dequantize(buckets: Array, scheme: str = "mu_law") -> Array:
  """Maps int buckets 0..255 back to float32 audio in [-1, 1] (bucket centres)."""
  xp = _xp(buckets)
  x = buckets.astype(xp.float32) / MU * 2.0 - 1.0
  if scheme == "mu_law":
    x = mu_law_expand(x)
  elif scheme != "linear":
    raise ValueError(f"unknown quantization scheme {scheme!r}; expected one of {SCHEMES}")
  return x.astype(xp.float32)


NO_AUDIO = NUM_BUCKETS  # token for "previous sample unknown / dropped"
NUM_TOKENS = NUM_BUCKETS + 1  # the autoregressive models' input vocabulary


def audio_input_tokens(buckets: Array, dropout_rate: float = 0.0,
                       rng: Array | None = None) -> Array:
  """Model input tokens for teacher forcing: the previous sample's bucket, with dropout.

  Args:
    buckets: int32 (B, T) true buckets 0..255.
    dropout_rate: probability p of replacing each input token by NO_AUDIO (training only).
    rng: (B,) per-example PRNG keys (required when dropout_rate > 0); keying per example makes
      the mask independent of how the batch is split across devices.

  Returns:
    int32 (B, T): token t is bucket t-1 (NO_AUDIO at t = 0), possibly dropped.
  """
  tokens = jnp.pad(buckets, ((0, 0), (1, 0)), constant_values=NO_AUDIO)[:, :-1]
  if dropout_rate > 0.0:
    if rng is None:
      raise ValueError("audio-input dropout needs per-example rng keys")
    keep = jax.vmap(lambda k: jax.random.bernoulli(k, 1.0 - dropout_rate, tokens.shape[1:]))(rng)
    tokens = jnp.where(keep, tokens, NO_AUDIO)
  return tokens

"""Reads the 88 key states off a keyboard frame: uint8 (H, W) image -> 88 logits.

Shared by the transcribe-then-synthesize baseline (`deepsynth_jax.baseline`) and the parallel
generator's key head (`deepsynth_jax.parallel_model`). Column k of the output is MIDI pitch 21 + k;
logit > 0 means "pressed".
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

NUM_KEYS = 88


class KeyReader(nn.Module):
  """uint8 frames (..., H, W) -> 88 key logits (..., 88) float32.

  VGG-like: per stage a 3x3 conv + ReLU and a max-pool halving the height (and the width in the
  first `width_pools` stages); the remaining rows are max-pooled away, leaving a feature vector
  per image column; a dense layer shared by all columns (`hidden` ReLU units -> 4 features)
  describes each column, and a final dense layer maps all columns' features to the 88 logits.
  Sharing the column layers across the keyboard lets keys seldom pressed in the training songs
  use what was learned on the others; only the last layer (which columns are which key) is
  per key.
  """

  channels: Sequence[int] = (8, 16, 16)
  hidden: int = 32
  width_pools: int = 0

  @nn.compact
  def __call__(self, frames: jax.Array) -> jax.Array:
    lead = frames.shape[:-2]
    x = frames.reshape((-1, *frames.shape[-2:]))
    x = x.astype(jnp.float32)[..., None] / 255.0 - 0.5
    for i, c in enumerate(self.channels):
      x = nn.relu(nn.Conv(c, (3, 3))(x))
      window = (2 if x.shape[1] >= 2 else 1, 2 if i < self.width_pools else 1)
      x = nn.max_pool(x, window, strides=window)
    x = jnp.max(x, axis=1)  # (N, W', C): one feature vector per column
    x = nn.relu(nn.Dense(self.hidden)(x))
    x = nn.Dense(4)(x)
    x = nn.Dense(NUM_KEYS)(x.reshape((x.shape[0], -1)))
    return x.reshape((*lead, NUM_KEYS))

"""Video side of the model: a VGG-like frame encoder and the per-frame conditioning.

Frames are uint8 grayscale (H, W) images of the keyboard. The encoder runs once per frame of a
clip (not once per audio sample); the conditioning of frame f combines its features with those of
frame f-1 ("current and previous frame"), and is later carried to audio rate by each sample's
frame index (see `data_gen.frame_timing`).
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from deepsynth_jax.models.conv_ops import Conv3x3, max_pool


class FrameEncoder(nn.Module):
  """VGG-like CNN: blocks of 3x3 convolutions + ReLU, then 2x2 max-pooling, then a dense layer.

  The convolutions and pools are `conv_ops`' (flax's values and parameters, gradients that are
  cheaper on a CPU).

  Attributes:
    channels: output channels of each block (one block per entry, each ending in a 2x2 pool).
    convs_per_block: 3x3 convolutions in each block (VGG uses 2-3; 1 is enough for CPU runs).
    features: size of the output feature vector.
    input_pool: average-pool the frame by this factor (both axes) before the first convolution;
      2 quarters the encoder's cost, which dominates a CPU training step (keys stay >= 2 px wide
      at the default 32 x 208 frames).
  """

  channels: Sequence[int] = (16, 32, 64)
  convs_per_block: int = 1
  features: int = 128
  input_pool: int = 1

  @nn.compact
  def __call__(self, frames: jax.Array) -> jax.Array:
    """Encodes frames.

    Args:
      frames: uint8 (..., H, W) grayscale frames.

    Returns:
      float32 (..., features).
    """
    lead = frames.shape[:-2]
    x = frames.reshape((-1, *frames.shape[-2:], 1)).astype(jnp.float32) / 255.0 - 0.5
    if self.input_pool > 1:
      x = nn.avg_pool(x, (self.input_pool, self.input_pool), strides=(self.input_pool,) * 2,
                      padding="SAME")
    for block, ch in enumerate(self.channels):
      for i in range(self.convs_per_block):
        x = nn.relu(Conv3x3(ch, name=f"conv{block}_{i}")(x))
      x = max_pool(x, (2, 2), padding="SAME")
    x = x.reshape((x.shape[0], -1))
    x = nn.relu(nn.Dense(self.features, name="dense")(x))
    return x.reshape((*lead, self.features))


class FrameConditioning(nn.Module):
  """Per-frame conditioning from the current and the previous frame's features.

  Output row f depends on frames f and f-1 only (frame -1 is taken as "no frame", zeros), so the
  conditioning of an audio sample never sees a frame that is not yet current.
  """

  features: int = 128
  use_previous_frame: bool = True

  @nn.compact
  def __call__(self, frame_features: jax.Array) -> jax.Array:
    """(B, F, D) frame features -> (B, F, features) conditioning."""
    x = frame_features
    if self.use_previous_frame:
      x = jnp.concatenate([x, previous_frame_rows(x)], axis=-1)
    x = nn.relu(nn.Dense(self.features, name="mix")(x))
    return nn.Dense(self.features, name="out")(x)


def previous_frame_rows(per_frame: jax.Array) -> jax.Array:
  """(B, F, ...) per-frame rows -> the same shape with row f holding row f - 1 (row 0: zeros,
  "no frame")."""
  pad = [(0, 0), (1, 0)] + [(0, 0)] * (per_frame.ndim - 2)
  return jnp.pad(per_frame, pad)[:, :-1]


def gather_frames(per_frame: jax.Array, frame_index: jax.Array) -> jax.Array:
  """Carries per-frame rows to audio rate: (B, F, ...) and int (B, T) -> (B, T, ...).

  A batched gather (vmap of take) rather than `take_along_axis`, whose (B, T)-sized iota indices
  XLA spends seconds constant-folding when compiling the gradient.
  """
  return jax.vmap(lambda rows, index: jnp.take(rows, index, axis=0))(per_frame, frame_index)


def frame_age_features(frame_age: jax.Array, sample_rate: int, num_features: int) -> jax.Array:
  """Smooth features of the time since the current frame began (where we are in a note's decay).

  Args:
    frame_age: int (..., T) samples since the current frame became current.
    sample_rate: audio sample rate in Hz (4000 by default).
    num_features: K, number of exponential decays exp(-age / tau_k), with tau_k spaced
      geometrically from 2.5 ms to 4 s (covering a piano note's attack to its long decay).

  Returns:
    float32 (..., T, K), each in (0, 1].
  """
  taus = jnp.asarray(np.geomspace(0.0025, 4.0, num_features) * sample_rate, jnp.float32)
  return jnp.exp(-frame_age.astype(jnp.float32)[..., None] / taus)

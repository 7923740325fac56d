"""Reads the 88 key states off a keyboard frame: uint8 (H, W) image -> 88 logits.

Shared by the transcribe-then-synthesize baseline (`deepsynth_jax.transcription`) and the
KeySynth model's key head (`deepsynth_jax.models.keysynth`). Column k of the output is MIDI
pitch 21 + k; logit > 0 means "pressed".
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from data_gen.keyboard import NUM_KEYS, is_black_key
from data_gen.keyboard import NUM_WHITE as NUM_WHITE_KEYS
from deepsynth_jax.models.conv_ops import conv3x3, max_pool


def key_positions() -> np.ndarray:
  """float32 (88,): each key's centre in white-key widths from the keyboard's left end.

  White key j (0..51, left to right) is centred at j + 0.5; a black key at the boundary of the
  white keys beside it (the number of white keys to its left).
  """
  black = is_black_key()
  whites_left = np.cumsum(~black) - (~black)  # white keys strictly to the left of key k
  return np.where(black, whites_left, whites_left + 0.5).astype(np.float32)


class ConvStage(nn.Module):
  """One trunk stage, float32 (N, H, W, C) -> (N, H // a, W // b, features): a 3x3 "SAME"
  convolution with bias, ReLU, and a max-pool by `window` = (a, b) (stride = window, the
  trailing row / column of an odd size dropped), as `nn.max_pool(nn.relu(nn.Conv(features,
  (3, 3))(x)), window, strides=window)` computes it, with the same parameters (kernel
  (3, 3, C, features) lecun-normal, bias zeros): checkpoints and initial values are unchanged.

  A one-channel input (the grayscale frame) is convolved as shifted copies of the image times
  the kernel's taps, once per position in the pooling window, and the max taken over those:
  max-pool and ReLU commute, so this is the same function. On a CPU, XLA's convolution ran that
  stage's convolution at ~4 GFLOP/s (7.7 ms for a 5 s clip's 30 frames of 32 x 208); the shifted
  copies alone take 0.6 ms, but 10 ms once XLA fuses a max-pool after them; the pooled output
  computed directly, as here, takes 0.4 ms. The wider stages after it keep XLA's convolution,
  which runs at 45-70 GFLOP/s there (`conv_ops`: the same values, cheaper gradients).
  """

  features: int
  window: tuple[int, int] = (2, 1)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    channels = x.shape[-1]
    kernel = self.param("kernel", nn.initializers.lecun_normal(),
                        (3, 3, channels, self.features))
    bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
    a, b = self.window
    if channels > 1:
      return max_pool(nn.relu(conv3x3(x, kernel) + bias), self.window)
    rows, cols = x.shape[1] // a, x.shape[2] // b
    padded = jnp.pad(x[..., 0], ((0, 0), (1, 1), (1, 1)))

    def conv_at(r: int, c: int) -> jax.Array:  # the convolution at rows r::a, columns c::b
      return sum(padded[:, r + i:r + i + a * rows:a, c + j:c + j + b * cols:b, None]
                 * kernel[i, j, 0] for i in range(3) for j in range(3))

    pooled = functools.reduce(jnp.maximum, (conv_at(r, c) for r in range(a) for c in range(b)))
    return nn.relu(pooled + bias)


def _column_features(frames: jax.Array, channels: Sequence[int], width_pools: int) -> jax.Array:
  """uint8 (N, H, W) -> float32 (N, W', C): conv stages, then the rows max-pooled away."""
  x = frames.astype(jnp.float32)[..., None] / 255.0 - 0.5
  for i, c in enumerate(channels):
    window = (2 if x.shape[1] >= 2 else 1, 2 if i < width_pools else 1)
    x = ConvStage(c, window, name=f"Conv_{i}")(x)  # the names nn.Conv had
  return jnp.max(x, axis=1)


class ColumnConv(nn.Module):
  """A width-3 convolution along the columns, float32 (N, W, I) -> (N, W, features):
  out[:, w] = [x[:, w - 1], x[:, w], x[:, w + 1]] @ kernel + bias (zeros past the edges), with
  `nn.Dense`'s parameters on those concatenated columns ("kernel" (3 I, features) lecun-normal,
  "bias" zeros). Computed as one product of x by the three taps side by side, whose outputs are
  shifted and summed: the (N, W, 3 I) concatenation would copy the input three times."""

  features: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    i, f = x.shape[-1], self.features
    kernel = self.param("kernel", nn.initializers.lecun_normal(), (3 * i, f))
    bias = self.param("bias", nn.initializers.zeros_init(), (f,))
    taps = x @ jnp.swapaxes(kernel.reshape(3, i, f), 0, 1).reshape(i, 3 * f)   # (N, W, 3F)
    left, middle, right = taps[..., :f], taps[..., f:2 * f], taps[..., 2 * f:]
    pad = lambda y, before, after: jnp.pad(y, ((0, 0), (before, after), (0, 0)))
    return pad(left[:, :-1], 1, 0) + middle + pad(right[:, 1:], 0, 1) + bias


class RowTrunk(nn.Module):
  """uint8 (N, H, W) -> float32 (N, W, C): per stage a width-3 convolution along the image's
  columns that sees a column's H pixels at once (the rows are its input channels; `ColumnConv`),
  + ReLU.

  A keyboard's keys run down the image: a key's press changes the profile down its columns
  (sinks, shadow, shade), which a column's H pixels show. As products of (N W, H) by (H, 3 C),
  the whole trunk is ~1 MFLOP a 32 x 208 frame (the VGG-like stages: 15.4 MFLOP in
  convolutions of 8 and 16 channels, which XLA's CPU convolution runs at 10-90 GFLOP/s).
  """

  channels: Sequence[int] = (16, 16)

  @nn.compact
  def __call__(self, frames: jax.Array) -> jax.Array:
    x = jnp.swapaxes(frames, 1, 2).astype(jnp.float32) / 255.0 - 0.5          # (N, W, H)
    for i, c in enumerate(self.channels):
      x = nn.relu(ColumnConv(c, name=f"Rows_{i}")(x))
    return x


def read_places(x: jax.Array, centre: jax.Array, window: int) -> jax.Array:
  """Column features float32 (N, W, D) read at positions (K,) in columns and the `window`
  columns on either side, by linear interpolation, each position clipped to [0, W - 1]:
  (N, K, 2 window + 1, D), out[:, k, j] = x at clip(centre[k] + j - window).

  The 2 window + 2 columns each key reads are consecutive, so they are one slice of x padded by
  repeating its edge columns (with `centre` clipped to where every offset reads an edge column
  past either edge, which is what the per-position clip reads): K slices instead of gathering
  2 (2 window + 1) K single columns, which XLA's CPU gather does element by element (the
  placed reader's read of a sparse clip's 30 frames took 1.3 ms, 13% of a
  `models/demo_keysynth_faster` clip; read as slices, the clip is 1.22x as fast, 2026-12-02).
  The same values to float32 rounding (the shipped models' audio bit for bit).
  """
  columns = x.shape[1]
  pad = 2 * window + 1
  padded = jnp.pad(x, ((0, 0), (pad, pad), (0, 0)), mode="edge")
  centre = jnp.clip(centre, -window - 0.5, columns - 1 + window + 0.5)
  base = jnp.floor(centre)
  frac = (centre - base)[:, None, None, None]
  starts = base.astype(jnp.int32) + pad - window
  span = jax.vmap(lambda start: jax.lax.dynamic_slice_in_dim(padded, start, 2 * window + 2,
                                                            axis=1))(starts)  # (K, N, 2w+2, D)
  read = span[:, :, :-1] * (1.0 - frac) + span[:, :, 1:] * frac
  return jnp.swapaxes(read, 0, 1)


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
    x = _column_features(frames.reshape((-1, *frames.shape[-2:])), self.channels,
                         self.width_pools)  # (N, W', C): one feature vector per column
    x = nn.relu(nn.Dense(self.hidden)(x))
    x = nn.Dense(4)(x)
    x = nn.Dense(NUM_KEYS)(x.reshape((x.shape[0], -1)))
    return x.reshape((*lead, NUM_KEYS))


class PlacedKeyReader(nn.Module):
  """uint8 frames (..., H, W) -> 88 key logits (..., 88) float32, each key read at its place.

  The trunk's column features (N, W', C) are described per column by a shared MLP, then read at
  key k's position x_k = W' (left + width * u_k / 52) by linear interpolation (u_k from
  `key_positions`; `left` and `width`, fractions of the image width, are learned and start at
  0 and 1), together with the columns `window` on either side; a classifier shared by all keys
  (plus a learned bias for black keys) maps them to the logit. The positions are differentiable,
  so the placement is learned with the rest. The column features come from `trunk`.
  """

  channels: Sequence[int] = (8, 16, 16)
  hidden: int = 32
  window: int = 1
  # The column features: "conv" (VGG-like stages, `_column_features`) or "rows" (`RowTrunk`,
  # ~15x fewer FLOPs, all of them in plain products).
  trunk: str = "conv"

  @nn.compact
  def __call__(self, frames: jax.Array) -> jax.Array:
    lead = frames.shape[:-2]
    flat = frames.reshape((-1, *frames.shape[-2:]))
    if self.trunk == "conv":
      x = _column_features(flat, self.channels, 0)
    elif self.trunk == "rows":
      x = RowTrunk(self.channels)(flat)
    else:
      raise ValueError(f"unknown key reader trunk {self.trunk!r}; use 'conv' or 'rows'")
    x = nn.relu(nn.Dense(self.hidden)(x))
    x = nn.Dense(self.hidden)(x)  # (N, W', D) column descriptors
    columns = x.shape[1]
    left = self.param("left", nn.initializers.zeros, ())
    width = self.param("width", nn.initializers.ones, ())
    centre = columns * (left + width * jnp.asarray(key_positions()) / NUM_WHITE_KEYS) - 0.5
    read = read_places(x, centre, self.window)                              # (N, 88, 2w+1, D)
    read = read.reshape((*read.shape[:2], -1))
    black = jnp.asarray(is_black_key(), jnp.float32)[None, :, None]
    h = nn.relu(nn.Dense(self.hidden)(jnp.concatenate(
        [read, jnp.broadcast_to(black, (*read.shape[:2], 1))], axis=-1)))
    logits = nn.Dense(1)(h)[..., 0]
    return logits.reshape((*lead, NUM_KEYS))

"""The key reader's trunk stage: the same function and parameters as flax's conv, ReLU, pool;
and the placed reader's read of each key's place."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepsynth_jax.models import key_reader


class _FlaxStage(nn.Module):
  """The stage as the key reader wrote it before `ConvStage`: nn.Conv, ReLU, nn.max_pool."""

  features: int
  window: tuple[int, int]

  @nn.compact
  def __call__(self, x):
    y = nn.relu(nn.Conv(self.features, (3, 3), name="Conv_0")(x))
    return nn.max_pool(y, self.window, strides=self.window)


class _Stage(nn.Module):
  features: int
  window: tuple[int, int]

  @nn.compact
  def __call__(self, x):
    return key_reader.ConvStage(self.features, self.window, name="Conv_0")(x)


@pytest.mark.parametrize("channels,window,shape", [
    (1, (2, 1), (3, 32, 20)),   # the grayscale frame: the shifted-copies path
    (1, (2, 2), (2, 9, 11)),    # odd sizes: the trailing row and column are dropped
    (1, (1, 1), (2, 1, 7)),     # one row left: no pooling
    (3, (2, 1), (2, 8, 10)),    # wider inputs: XLA's convolution
    (3, (2, 2), (2, 7, 9)),
])
def test_conv_stage_is_flax_conv_relu_and_max_pool(channels, window, shape):
  x = jnp.asarray(np.random.default_rng(0).normal(size=(*shape, channels)), jnp.float32)
  expected_params = _FlaxStage(4, window).init(jax.random.key(1), x)
  params = _Stage(4, window).init(jax.random.key(1), x)
  # The same tree and initial values, so checkpoints trained with nn.Conv load unchanged.
  assert jax.tree.structure(params) == jax.tree.structure(expected_params)
  jax.tree.map(np.testing.assert_array_equal, params, expected_params)
  params = jax.tree.map(lambda p: p + 0.1, params)  # a nonzero bias too
  expected = _FlaxStage(4, window).apply(params, x)
  got = _Stage(4, window).apply(params, x)
  assert got.shape == expected.shape
  np.testing.assert_allclose(got, expected, atol=1e-5)
  assert float(jnp.max(got)) > 0 and float(jnp.min(got)) == 0.0  # ReLU on both sides of 0


@pytest.mark.parametrize("window", [0, 1, 2])
def test_read_places_interpolates_each_clipped_position(window):
  """The placed reader's read as slices of the edge-padded columns equals reading each position
  (centre + offset, clipped to the image) by its own interpolation, past either edge too."""
  x = jax.random.normal(jax.random.PRNGKey(0), (3, 20, 5))
  centre = jnp.asarray([-30.0, -3.2, -1.7, -1.0, -0.3, 0.0, 0.4, 1.5, 9.25, 17.9, 18.5, 19.0,
                        19.2, 21.6, 50.0])
  offsets = jnp.arange(-window, window + 1, dtype=jnp.float32)
  at = jnp.clip(centre[:, None] + offsets[None], 0.0, 19.0)                # (K, 2w+1)
  lo = jnp.floor(at).astype(jnp.int32)
  hi = jnp.minimum(lo + 1, 19)
  frac = (at - lo)[..., None]
  expected = x[:, lo] * (1.0 - frac) + x[:, hi] * frac                    # (N, K, 2w+1, D)
  np.testing.assert_allclose(key_reader.read_places(x, centre, window), expected, atol=1e-6)

"""The key reader's trunk stage: the same function and parameters as flax's conv, ReLU, pool."""

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

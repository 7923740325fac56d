"""The frame CNNs' convolution and max-pool: flax's values and gradients, ties included."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepsynth_jax.models import conv_ops, frame_encoder


@pytest.mark.parametrize("shape,window,padding", [
    ((3, 8, 10, 4), (2, 2), "VALID"),
    ((3, 9, 11, 4), (2, 2), "VALID"),   # a trailing partial window is dropped
    ((3, 9, 11, 4), (2, 2), "SAME"),    # ... or padded with -inf
    ((2, 7, 5, 2), (2, 2), "SAME"),
    ((2, 9, 11, 3), (2, 1), "VALID"),
    ((2, 6, 6, 2), (1, 1), "VALID"),
])
def test_max_pool_values_and_gradient_are_flaxs_with_ties(shape, window, padding):
  # Three values only: most windows hold their maximum twice or more, and the gradient must go
  # to the first of them (row-major), as XLA's select-and-scatter sends it.
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.integers(0, 3, shape), jnp.float32)
  expected, expected_vjp = jax.vjp(
      lambda x: nn.max_pool(x, window, strides=window, padding=padding), x)
  got, got_vjp = jax.vjp(lambda x: conv_ops.max_pool(x, window, padding), x)
  np.testing.assert_array_equal(got, expected)
  grad = jnp.asarray(rng.normal(size=expected.shape), jnp.float32)
  got_grad, expected_grad = got_vjp(grad)[0], expected_vjp(grad)[0]
  np.testing.assert_array_equal(got_grad, expected_grad)
  # Each window passes its gradient to exactly one element.
  assert int(jnp.sum(got_grad != 0)) == int(jnp.sum(grad != 0))


def test_max_pool_rejects_an_unknown_padding():
  with pytest.raises(ValueError, match="padding"):
    conv_ops.max_pool(jnp.zeros((1, 4, 4, 1)), (2, 2), "FULL")


def test_conv3x3_values_and_gradients_are_xlas():
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.normal(size=(4, 8, 12, 5)), jnp.float32)
  kernel = jnp.asarray(rng.normal(size=(3, 3, 5, 7)), jnp.float32)
  grad = jnp.asarray(rng.normal(size=(4, 8, 12, 7)), jnp.float32)
  conv = lambda x, k: jax.lax.conv_general_dilated(
      x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
  expected, expected_vjp = jax.vjp(conv, x, kernel)
  got, got_vjp = jax.vjp(conv_ops.conv3x3, x, kernel)
  np.testing.assert_array_equal(got, expected)
  for g, e in zip(got_vjp(grad), expected_vjp(grad), strict=True):
    scale = float(jnp.max(jnp.abs(e)))
    np.testing.assert_allclose(g, e, atol=1e-5 * scale)
  # An asymmetric kernel: a transposed tap (i, j) <-> (j, i) would fail the kernel gradient.
  assert float(jnp.max(jnp.abs(kernel - kernel.transpose(1, 0, 2, 3)))) > 0


def test_conv3x3_module_has_nn_convs_parameters_and_values():
  x = jnp.asarray(np.random.default_rng(2).normal(size=(2, 6, 9, 3)), jnp.float32)
  flax_conv, conv = nn.Conv(4, (3, 3), padding="SAME"), conv_ops.Conv3x3(4)
  expected_params = flax_conv.init(jax.random.key(3), x)
  params = conv.init(jax.random.key(3), x)
  assert jax.tree.structure(params) == jax.tree.structure(expected_params)
  jax.tree.map(np.testing.assert_array_equal, params, expected_params)
  params = jax.tree.map(lambda p: p + 0.1, params)
  np.testing.assert_array_equal(conv.apply(params, x), flax_conv.apply(params, x))


class _FlaxFrameEncoder(nn.Module):
  """The frame encoder as it was written with nn.Conv and nn.max_pool."""

  @nn.compact
  def __call__(self, frames):
    x = frames[..., None].astype(jnp.float32) / 255.0 - 0.5
    for block, ch in enumerate((4, 6)):
      x = nn.relu(nn.Conv(ch, (3, 3), padding="SAME", name=f"conv{block}_0")(x))
      x = nn.max_pool(x, (2, 2), strides=(2, 2), padding="SAME")
    return nn.relu(nn.Dense(5, name="dense")(x.reshape((x.shape[0], -1))))


def test_frame_encoder_trains_as_with_flaxs_layers():
  # Frames with flat regions (ties in every pool, as rendered keyboards have).
  frames = jnp.asarray(np.random.default_rng(4).integers(0, 2, (3, 10, 13)) * 200, jnp.uint8)
  encoder = frame_encoder.FrameEncoder(channels=(4, 6), features=5)
  params = encoder.init(jax.random.key(5), frames)
  expected_params = _FlaxFrameEncoder().init(jax.random.key(5), frames)
  jax.tree.map(np.testing.assert_array_equal, params, expected_params)
  loss = lambda module: lambda p: jnp.sum(jnp.sin(module.apply(p, frames)))
  value, grads = jax.value_and_grad(loss(encoder))(params)
  expected_value, expected_grads = jax.value_and_grad(loss(_FlaxFrameEncoder()))(params)
  np.testing.assert_allclose(value, expected_value, rtol=1e-6)
  jax.tree.map(lambda g, e: np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-6),
               grads, expected_grads)

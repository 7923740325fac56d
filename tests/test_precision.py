"""models/precision.py: float32 products are the plain ones; bfloat16 products, forward and
backward, are the float32 products of bfloat16-rounded operands; the WaveNet runs on them."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepsynth_jax import audio as audio_lib
from deepsynth_jax.models import precision, wavenet

BF16 = jnp.bfloat16


def _round(x):
  """x rounded to bfloat16, back in float32."""
  return jnp.asarray(x).astype(BF16).astype(jnp.float32)


def _normal(rng, *shape):
  return jnp.asarray(rng.standard_normal(shape), jnp.float32)


def test_float32_dense_is_flax_dense_bit_for_bit():
  rng = np.random.default_rng(0)
  x = _normal(rng, 3, 5, 7)
  params = nn.Dense(4).init(jax.random.key(0), x)
  ours = precision.Dense(4)
  assert (jax.tree.map(jnp.shape, ours.init(jax.random.key(0), x))
          == jax.tree.map(jnp.shape, params))
  np.testing.assert_array_equal(ours.apply(params, x), nn.Dense(4).apply(params, x))
  loss = lambda module: lambda p, x: jnp.sum(jnp.sin(module.apply(p, x)))
  for a, b in zip(jax.tree.leaves(jax.grad(loss(ours), (0, 1))(params, x)),
                  jax.tree.leaves(jax.grad(loss(nn.Dense(4)), (0, 1))(params, x))):
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("rows", [(6, 4), (2, 12000)])  # 12,000 rows: summed in 3 blocks
def test_bfloat16_matmul_is_the_product_of_rounded_operands(rows):
  rng = np.random.default_rng(1)
  x, kernel, cotangent = _normal(rng, *rows, 24), _normal(rng, 24, 16), _normal(rng, *rows, 16)
  out, vjp = jax.vjp(lambda x, k: precision.matmul(x, k, BF16), x, kernel)
  assert out.dtype == jnp.float32
  np.testing.assert_allclose(out, _round(x) @ _round(kernel), rtol=1e-5, atol=1e-5)
  x_grad, kernel_grad = vjp(cotangent)
  g = _round(cotangent)
  np.testing.assert_allclose(x_grad, g @ _round(kernel).T, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(kernel_grad, jnp.einsum("...i,...f->if", _round(x), g),
                             rtol=1e-4, atol=1e-3)
  # and not the float32 product: the rounding is real (8 bits of mantissa)
  assert np.max(np.abs(out - x @ kernel)) > 1e-3


@pytest.mark.parametrize("dilation", [1, 4, 50])  # 50 > T: the past tap is all zeros
def test_causal_conv_float32_and_bfloat16(dilation):
  rng = np.random.default_rng(2)
  b, t, c, e, f = 2, 40, 6, 5, 8
  x, kernel = _normal(rng, b, t, c), _normal(rng, 2 * c, f)
  extra, extra_kernel = _normal(rng, b, t, e), _normal(rng, b, e, f)
  cotangent = _normal(rng, b, t, f)

  def reference(x, kernel, extra, extra_kernel):
    past = jnp.concatenate([jnp.zeros((b, dilation, c)), x], axis=1)[:, :t]
    return (jnp.einsum("bti,if->btf", jnp.concatenate([past, x], axis=-1), kernel)
            + jnp.einsum("bte,bef->btf", extra, extra_kernel))

  operands = (x, kernel, extra, extra_kernel)
  conv = lambda x, k, e, ek, dtype=jnp.float32: precision.causal_conv(x, dilation, k, e, ek, dtype)
  np.testing.assert_allclose(conv(*operands), reference(*operands), rtol=1e-5, atol=1e-5)
  out, vjp = jax.vjp(lambda *a: conv(*a, dtype=BF16), *operands)
  expected, expected_vjp = jax.vjp(reference, *(_round(a) for a in operands))
  np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
  for got, want in zip(vjp(cotangent), expected_vjp(_round(cotangent)), strict=True):
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_unknown_dtype_is_one_clear_error():
  with pytest.raises(ValueError, match="float16.*float32.*bfloat16"):
    precision.compute_dtype("float16")


def _wavenet_inputs(rng, batch=2, t=48):
  buckets = jnp.asarray(rng.integers(0, 256, (batch, t)), jnp.int32)
  frames = jnp.asarray(rng.integers(0, 256, (batch, 3, 16, 32)), jnp.uint8)
  index = jnp.asarray(np.tile(np.repeat(np.arange(3), t // 3), (batch, 1)), jnp.int32)
  age = jnp.asarray(np.tile(np.tile(np.arange(t // 3), 3), (batch, 1)), jnp.int32)
  return buckets, frames, index, age


def test_bfloat16_wavenet_follows_float32_in_both_forwards():
  kw = dict(num_layers=3, layers_per_stack=3, channels=16, skip_channels=16, cond_features=8,
            encoder_channels=(4,), encoder_features=8)
  full, mixed = wavenet.WaveNet(**kw), wavenet.WaveNet(**kw, dtype=BF16)
  buckets, frames, index, age = _wavenet_inputs(np.random.default_rng(3))
  tokens = audio_lib.audio_input_tokens(buckets)
  params = jax.jit(full.init)(jax.random.key(0), tokens, frames, index, age)
  shapes = jax.eval_shape(mixed.init, jax.random.key(0), tokens, frames, index, age)
  assert jax.tree.map(jnp.shape, shapes) == jax.tree.map(jnp.shape, params)  # interchangeable
  reference = jax.jit(full.apply)(params, tokens, frames, index, age)
  parallel = jax.jit(mixed.apply)(params, tokens, frames, index, age)
  assert parallel.dtype == jnp.float32
  scale = float(jnp.std(reference))
  assert 0 < float(jnp.max(jnp.abs(parallel - reference))) < 0.05 * scale

  cond = jax.jit(lambda p, f: mixed.apply(p, f, method=wavenet.WaveNet.frame_conditioning))(
      params, frames)
  state = jax.jit(lambda p: mixed.apply(p, 2, method=wavenet.WaveNet.init_state))(params)
  step = jax.jit(lambda s, tok, c, a: mixed.apply(params, s, tok, c, a,
                                                  method=wavenet.WaveNet.step))
  incremental = []
  for i in range(tokens.shape[1]):
    logits, state = step(state, tokens[:, i], cond[jnp.arange(2), index[:, i]], age[:, i])
    incremental.append(logits)
  assert float(jnp.max(jnp.abs(jnp.stack(incremental, 1) - reference))) < 0.05 * scale

  loss = lambda model: lambda p: jnp.mean(jax.nn.log_softmax(
      model.apply(p, tokens, frames, index, age))[..., 0])
  g_full, g_mixed = (jax.jit(jax.grad(loss(model)))(params) for model in (full, mixed))
  for a, b in zip(jax.tree.leaves(g_full), jax.tree.leaves(g_mixed), strict=True):
    a, b = np.ravel(a), np.ravel(b)
    cosine = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-30))
    assert cosine > 0.99 or float(np.linalg.norm(a)) < 1e-6

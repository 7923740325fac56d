"""DenseOfParts: nn.Dense of the concatenated inputs, part by part."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from deepsynth_jax.models.dense_of_parts import DenseOfParts


def test_parts_give_the_dense_of_their_concatenation_with_its_parameters():
  """Parts carried to the output's shape after the product (rows gathered, scaled per row,
  broadcast) give what nn.Dense gives on the concatenation, from the same parameters, and
  both initialize to the same parameters from the same key."""
  rng = np.random.default_rng(0)
  per_row = jnp.asarray(rng.normal(size=(2, 5, 3)), jnp.float32)     # (B, P, 3)
  per_point = jnp.asarray(rng.normal(size=(2, 4)), jnp.float32)      # (B, 4), scaled per (B, P)
  scale = jnp.asarray(rng.normal(size=(2, 5)), jnp.float32)
  table = jnp.asarray(rng.normal(size=(7, 2)), jnp.float32)          # rows picked per (B, P)
  picks = jnp.asarray(rng.integers(0, 7, (2, 5)))
  shared = jnp.asarray(rng.normal(size=(1,)), jnp.float32)           # one row for all
  parts = [(per_row, None), (per_point, lambda y: scale[..., None] * y[:, None]),
           (table, lambda y: y[picks]), (shared, None)]
  concatenated = jnp.concatenate(
      [per_row, scale[..., None] * per_point[:, None], table[picks],
       jnp.broadcast_to(shared, (2, 5, 1))], axis=-1)                # (B, P, 10)
  key = jax.random.PRNGKey(3)
  params = jax.jit(lambda k: DenseOfParts(6).init(k, parts))(key)
  assert jax.tree.map(jnp.shape, params) == {"params": {"kernel": (10, 6), "bias": (6,)}}
  dense = nn.Dense(6)
  np.testing.assert_array_equal(params["params"]["kernel"],
                                jax.jit(dense.init)(key, concatenated)["params"]["kernel"])
  params["params"]["bias"] = jnp.asarray(rng.normal(size=6), jnp.float32)
  np.testing.assert_allclose(jax.jit(lambda p: DenseOfParts(6).apply(p, parts))(params),
                             dense.apply(params, concatenated), rtol=1e-5, atol=1e-6)

"""A dense layer of inputs side by side, computed part by part (`DenseOfParts`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import numpy as np

# A part: its inputs (..., D) and how x @ W carries to the output's shape (None: as it is).
Part = tuple[jax.Array, Callable[[jax.Array], jax.Array] | None]


class DenseOfParts(nn.Module):
  """`nn.Dense` of inputs concatenated on their last axis, computed part by part without the
  concatenation: sum_i spread_i(x_i @ kernel rows of part i) + bias.

  A part is (x_i (..., D_i), spread_i or None): `spread_i`, linear and commuting with the
  product (a gather of rows, a broadcast, a per-row scale), carries x_i @ W_i to the output's
  shape, so a part shared by many output rows (a key's pitch features, a control point's frame
  age) is multiplied once per row it has, and nothing of the output's size but the sum is
  written. Parameters as `nn.Dense`'s ("kernel" (sum D_i, features), "bias" (features,)), in
  the same order, so either module reads the other's checkpoints and initializes to the same
  values from the same key.
  """

  features: int
  kernel_init: Callable = nn.initializers.lecun_normal()
  bias_init: Callable = nn.initializers.zeros_init()

  @nn.compact
  def __call__(self, parts: Sequence[Part]) -> jax.Array:
    widths = [x.shape[-1] for x, _ in parts]
    kernel = self.param("kernel", self.kernel_init, (sum(widths), self.features))
    out = self.param("bias", self.bias_init, (self.features,))
    for (x, spread), first in zip(parts, np.cumsum([0, *widths[:-1]])):
      y = x @ kernel[first:first + x.shape[-1]]
      out = out + (y if spread is None else spread(y))
    return out

"""A causal sequence model's loss and gradient computed window by window, in a CPU's cache.

A training step of the WaveNet on a batch of whole clips runs every layer over all B x T rows
before the next: each elementwise pass (gates, residual sums, their gradients) streams a
(B T, 2C) float32 array, 65 MB at batch 8 x 8,000, through memory. Cut into windows of a
thousand rows or so, one window's forward and backward run together and its activations (1.2 MB
an array at 1,128 rows x 256) stay in a core's cache. A causal model's output at row t depends
on the rows t - halo .. t only, so the rows a window scores are exact when the window also
carries the `halo` rows before them; rows before the sequence's start are marked `in_clip`
False, and the model treats them as its causal zero padding. The scored rows of all windows are
the sequence's rows once each, so the sums of their values and gradients are those of the whole
sequence, to float rounding. The price: each window recomputes its halo (halo / window more
FLOPs).

The windows run one after another in a `lax.scan` whose body takes its own gradient; nothing is
differentiated through the scan, so no window's activations are kept past its iteration.
Per-example inputs (e.g. a clip's frame conditioning, computed once outside) get their
gradients summed per example, for the caller to carry back through what made them.

Shapes: per-row inputs (B, T, ...); per-example inputs (B, ...); a window has R = halo + window
rows, and `row_values` sees it with a batch axis of 1: (1, R, ...) and (1, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

Array = jax.Array
PyTree = Any


def window_rows(length: int, window: int, halo: int) -> tuple[Array, Array, Array]:
  """Which rows of a length-T sequence each window reads and scores.

  Returns:
    rows: int32 (N, halo + window) the sequence rows of each window's rows (clipped into
      0..T-1; N = ceil(T / window)); window c scores rows c window .. (c + 1) window - 1.
    in_clip: bool (N, halo + window) the row lies in the sequence (False before its start and
      past its end).
    scored: bool (N, halo + window) the row is one of the window's own (not its halo) and in
      the sequence: every sequence row is scored by exactly one window.
  """
  if window < 1 or halo < 0:
    raise ValueError(f"window={window} must be >= 1 and halo={halo} >= 0")
  count = -(-length // window)
  offsets = jnp.arange(halo + window)
  rows = (jnp.arange(count) * window - halo)[:, None] + offsets
  in_clip = (rows >= 0) & (rows < length)
  scored = in_clip & (offsets >= halo)
  return jnp.clip(rows, 0, length - 1).astype(jnp.int32), in_clip, scored


def windowed_value_and_grad(
    row_values: Callable[[PyTree, PyTree, PyTree, Array], dict[str, Array]],
    params: PyTree, per_example: PyTree, per_row: PyTree, *, window: int, halo: int,
    loss: str = "loss") -> tuple[dict[str, Array], tuple[PyTree, PyTree]]:
  """Means over all B x T rows of a causal model's per-row values, and the gradient of one.

  Args:
    row_values: (params, example, rows, in_clip) -> {name: float32 (1, R) value at each row},
      for one window: `example` is `per_example` at the window's example and `rows` is
      `per_row` at the window's rows (each with a batch axis of 1), `in_clip` bool (1, R).
      The value at a scored row may depend only on that row and the `halo` rows before it
      (and must treat rows outside the clip as the model's causal padding).
    params: the parameters to differentiate by.
    per_example: pytree of (B, ...) arrays, differentiated too.
    per_row: pytree of (B, T, ...) arrays (not differentiated: integer tokens and the like).
    window: rows each window scores.
    halo: rows of context before them (the model's receptive field minus one).
    loss: the name of the value whose mean is differentiated.

  Returns:
    ({name: mean of that value over the B T rows}, (gradient of means[loss] with respect to
    params, and to per_example)).
  """
  batch, length = jax.tree.leaves(per_row)[0].shape[:2]
  rows, in_clip, scored = window_rows(length, window, halo)
  count = rows.shape[0]
  # Window w = b count + c: example b's window c.
  windows = jax.tree.map(lambda x: x[:, rows].reshape(batch * count, 1, *rows.shape[1:],
                                                      *x.shape[2:]), per_row)
  example = jnp.repeat(jnp.arange(batch), count)
  in_clip, scored = jnp.tile(in_clip, (batch, 1)), jnp.tile(scored, (batch, 1))
  norm = 1.0 / (batch * length)

  def objective(p, ex, inputs, clip, score):
    values = row_values(p, ex, inputs, clip[None])
    sums = {k: jnp.sum(jnp.where(score, v[0], 0.0)) for k, v in values.items()}
    return sums[loss] * norm, sums

  def one_window(carry, xs):
    grads, example_grads, sums = carry
    inputs, b, clip, score = xs
    ex = jax.tree.map(lambda x: jax.lax.dynamic_slice_in_dim(x, b, 1), per_example)
    (_, window_sums), (g, g_ex) = jax.value_and_grad(objective, argnums=(0, 1), has_aux=True)(
        params, ex, inputs, clip, score)
    example_grads = jax.tree.map(
        lambda acc, x: jax.lax.dynamic_update_slice_in_dim(
            acc, jax.lax.dynamic_slice_in_dim(acc, b, 1) + x, b, 0), example_grads, g_ex)
    return (jax.tree.map(jnp.add, grads, g), example_grads,
            jax.tree.map(jnp.add, sums, window_sums)), None

  zeros = lambda tree: jax.tree.map(jnp.zeros_like, tree)
  sums_shape = jax.eval_shape(lambda: objective(params, jax.tree.map(lambda x: x[:1], per_example),
                                                jax.tree.map(lambda x: x[0], windows),
                                                in_clip[0], scored[0])[1])
  init = (zeros(params), zeros(per_example),
          jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), sums_shape))
  (grads, example_grads, sums), _ = jax.lax.scan(one_window, init,
                                                  (windows, example, in_clip, scored))
  return {k: v * norm for k, v in sums.items()}, (grads, example_grads)

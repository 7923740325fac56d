"""Window-by-window loss and gradient == the whole sequence's, for a causal model."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepsynth_jax.models import windowed_gradient

HALO = 3  # the toy model's: a tap 1 row back, then one 2 rows back


def _shift(x, d):
  return jnp.pad(x, ((0, 0), (d, 0), (0, 0)))[:, : x.shape[1]]


def _toy_values(params, bias, x, in_clip):
  """A causal two-layer model: per-row values (B, T) from x (B, T, 3) and a per-example bias
  (B, 4); rows outside the clip act as its zero padding."""
  keep = lambda v: jnp.where(in_clip[..., None], v, 0.0)
  x = keep(x)
  h = keep(jnp.tanh(x @ params["now"] + _shift(x, 1) @ params["past"] + bias[:, None]))
  out = jnp.tanh(h @ params["out"] + _shift(h, 2) @ params["out_past"])
  return {"loss": jnp.sum(out ** 2, -1), "first": out[..., 0]}


def _problem(batch=2, length=10):
  rng = np.random.default_rng(0)
  params = {k: jnp.asarray(rng.normal(size=s), jnp.float32) for k, s in
            {"now": (3, 4), "past": (3, 4), "out": (4, 5), "out_past": (4, 5)}.items()}
  bias = jnp.asarray(rng.normal(size=(batch, 4)), jnp.float32)
  x = jnp.asarray(rng.normal(size=(batch, length, 3)), jnp.float32)
  return params, bias, x


def _whole(params, bias, x):
  def mean_loss(p, b):
    values = _toy_values(p, b, x, jnp.ones(x.shape[:2], bool))
    return jnp.mean(values["loss"]), {k: jnp.mean(v) for k, v in values.items()}
  (_, means), grads = jax.value_and_grad(mean_loss, argnums=(0, 1), has_aux=True)(params, bias)
  return means, grads


def _windowed(params, bias, x, window, halo=HALO):
  return windowed_gradient.windowed_value_and_grad(
      lambda p, b, rows, clip: _toy_values(p, b, rows["x"], clip), params, bias, {"x": x},
      window=window, halo=halo)


@pytest.mark.parametrize("window", [1, 4, 5, 10, 25])
def test_windows_give_the_whole_sequences_means_and_gradients(window):
  params, bias, x = _problem()
  means, grads = _windowed(params, bias, x, window)
  expected_means, expected_grads = _whole(params, bias, x)
  for name in ("loss", "first"):
    np.testing.assert_allclose(means[name], expected_means[name], rtol=1e-5)
  for got, want in zip(jax.tree.leaves(grads), jax.tree.leaves(expected_grads)):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_a_halo_shorter_than_the_receptive_field_is_not_the_whole_sequence():
  params, bias, x = _problem()
  means, _ = _windowed(params, bias, x, window=4, halo=HALO - 1)
  assert abs(float(means["loss"]) - float(_whole(params, bias, x)[0]["loss"])) > 1e-4


def test_every_row_is_scored_by_exactly_one_window():
  rows, in_clip, scored = windowed_gradient.window_rows(length=10, window=4, halo=3)
  assert rows.shape == in_clip.shape == scored.shape == (3, 7)
  np.testing.assert_array_equal(np.sort(np.asarray(rows)[np.asarray(scored)]), np.arange(10))
  # Window 0 starts 3 rows before the sequence, the last one runs 2 rows past its end.
  np.testing.assert_array_equal(in_clip[0], [False] * 3 + [True] * 4)
  np.testing.assert_array_equal(in_clip[2], [True] * 5 + [False] * 2)
  np.testing.assert_array_equal(rows[1], np.arange(1, 8))
  with pytest.raises(ValueError, match="window=0"):
    windowed_gradient.window_rows(10, 0, 3)

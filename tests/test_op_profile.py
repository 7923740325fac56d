"""The op profile joins a traced run with XLA's program: every op of a known function is found."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from experiments import op_profile


def test_a_matmul_and_an_elementwise_op_land_in_their_groups_with_their_flops():
  a = jnp.asarray(np.random.default_rng(0).normal(size=(256, 128)), jnp.float32)
  b = jnp.asarray(np.random.default_rng(1).normal(size=(128, 64)), jnp.float32)

  def fn(a, b):
    with jax.named_scope("product"):
      p = a @ b
    with jax.named_scope("squash"):
      return jnp.tanh(p) * 2.0 + jnp.sin(p)

  profile = op_profile.profile_ops(fn, (a, b), (("product", r"product"), ("squash", r"squash")),
                                   repeats=1)
  rows = {(r.group, r.kind): r for r in profile.rows}
  product = rows[("product", op_profile.PRODUCTS)]
  assert product.gflop == 2 * 256 * 128 * 64 / 1e9  # multiply-adds x 2
  assert product.ms > 0 and product.gflop_per_s > 0
  squash = rows[("squash", op_profile.OTHER_OPS)]
  assert squash.gflop == 0 and squash.ms > 0
  assert abs(sum(r.ms for r in profile.rows) - profile.op_ms) < 1e-9
  assert profile.wall_ms > 0


def test_flops_of_dots_and_convolutions_in_hlo_text():
  hlo = """
%fused_computation.1 (p0: f32[10,20], p1: f32[20,30]) -> f32[10,30] {
  %p0 = f32[10,20]{1,0} parameter(0)
  %p1 = f32[20,30]{1,0} parameter(1)
  ROOT %dot.1 = f32[10,30]{1,0} dot(%p0, %p1), lhs_contracting_dims={1}, rhs_contracting_dims={0}
}

ENTRY %main (a: f32[10,20], b: f32[20,30], x: f32[2,8,8,3], k: f32[3,3,3,4]) -> f32[10,30] {
  %a = f32[10,20]{1,0} parameter(0)
  %b = f32[20,30]{1,0} parameter(1)
  %x = f32[2,8,8,3]{3,2,1,0} parameter(2)
  %k = f32[3,3,3,4]{3,2,1,0} parameter(3)
  %conv.2 = f32[2,8,8,4]{3,2,1,0} convolution(%x, %k), window={size=3x3 pad=1_1x1_1}, \
dim_labels=b01f_01io->b01f, metadata={op_name="jit(f)/conv_general_dilated"}
  ROOT %ynn_fusion.1 = f32[10,30]{1,0} fusion(%a, %b), kind=kCustom, \
calls=%fused_computation.1, metadata={op_name="jit(f)/dot_general"}
}
"""
  table = op_profile.instructions(hlo)
  assert table["ynn_fusion.1"] == ("jit(f)/dot_general", 2.0 * 10 * 30 * 20, False)
  assert table["conv.2"] == ("jit(f)/conv_general_dilated", 2.0 * (2 * 8 * 8 * 4) * (3 * 3 * 3),
                             True)  # a bare convolution: Eigen's, not in the trace
  assert table["a"] == ("", 0.0, False)


def test_a_bare_dot_is_counted_but_not_timed():
  """A weight gradient (rows contracted in both operands) stays a bare `dot` on a CPU, whose
  trace event ends before its work; its FLOPs are reported, its time is not taken as known."""
  x = jnp.ones((4000, 64), jnp.float32)
  g = jnp.ones((4000, 32), jnp.float32)
  profile = op_profile.profile_ops(lambda x, g: jnp.einsum("ti,tf->if", x, g), (x, g),
                                   (("gradient", r"ti,tf"),), repeats=1)
  if jax.default_backend() != "cpu":
    return
  (row,) = profile.rows
  assert row.kind == op_profile.UNTIMED_PRODUCTS
  assert row.gflop == 2 * 4000 * 64 * 32 / 1e9
  assert profile.op_ms == 0.0

"""Matrix products at a chosen input precision: float32, or bfloat16 inputs with float32 sums.

`dtype` float32 is the plain product (`x @ kernel`, XLA's own gradient): every model's default,
bit for bit what it computed before this module existed. `dtype` bfloat16 is mixed precision as
TPUs run float32 products by default (`jax.lax.Precision.DEFAULT`): both operands of every
product, forward and backward, are rounded to bfloat16 (8 bits of mantissa), the sums are
float32, and so are the outputs, the parameters and everything between the products. On CPUs
with AMX or AVX-512 BF16 (Intel Sapphire Rapids and later; measured there: a 2048 x 2048 product
4.1-5.1x as fast as in float32) and on accelerators such products are several times faster.

The gradients are written out (`jax.custom_vjp`) rather than left to JAX's transpose of a
product with `preferred_element_type`, which runs the backward products in float32 (JAX types
the cotangent float32). They also give XLA's CPU backend the layouts it runs fast: a weight
gradient sums over the batch and time axes, which XLA would contract as the first axis of both
operands (Eigen's product, 57-106 GFLOP/s in microbenchmarks on that CPU); written as blocks of
8,000 rows it becomes one transposed copy and one product of the fast kind (100-219 GFLOP/s).

Shapes: x float32 (..., I), kernel float32 (I, F) -> float32 (..., F).
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

DTYPES = ("float32", "bfloat16")


def compute_dtype(name: str) -> Any:
  """The dtype a config's `dtype` string names ("float32" or "bfloat16")."""
  if name not in DTYPES:
    raise ValueError(f"dtype={name!r}; use one of {DTYPES}")
  return jnp.dtype(name)


def _rows(x: jax.Array) -> jax.Array:
  """(..., I) -> (N, I) with N the product of the leading axes."""
  return x.reshape(-1, x.shape[-1])


def _weight_gradient(x: jax.Array, grad: jax.Array) -> jax.Array:
  """sum over rows of x^T grad: (..., I), (..., F) -> float32 (I, F)."""
  x, grad = _rows(x), _rows(grad)
  n = x.shape[0]
  block = next((b for b in (8000, 4096, 4000, 2048, 1024) if n % b == 0 and n > b), n)
  return jnp.einsum("bti,btf->if", x.reshape(-1, block, x.shape[-1]),
                    grad.reshape(-1, block, grad.shape[-1]), preferred_element_type=jnp.float32)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _low_precision_matmul(x: jax.Array, kernel: jax.Array, dtype: Any) -> jax.Array:
  return _low_precision_matmul_forward(x, kernel, dtype)[0]


def _low_precision_matmul_forward(x, kernel, dtype):
  x, kernel = x.astype(dtype), kernel.astype(dtype)
  return jnp.matmul(x, kernel, preferred_element_type=jnp.float32), (x, kernel)


def _low_precision_matmul_backward(dtype, residuals, grad):
  x, kernel = residuals
  grad = grad.astype(dtype)
  x_grad = jnp.matmul(grad, kernel.T, preferred_element_type=jnp.float32)
  return x_grad, _weight_gradient(x, grad)


_low_precision_matmul.defvjp(_low_precision_matmul_forward, _low_precision_matmul_backward)


def matmul(x: jax.Array, kernel: jax.Array, dtype: Any = jnp.float32) -> jax.Array:
  """float32 (..., I) @ (I, F) -> float32 (..., F), the operands rounded to `dtype`."""
  if jnp.dtype(dtype) == jnp.float32:
    return x @ kernel
  return _low_precision_matmul(x, kernel, jnp.dtype(dtype))


def shift_right(x: jax.Array, distance: int) -> jax.Array:
  """(B, T, C) -> x delayed by `distance` rows along T, zeros shifted in."""
  return jnp.pad(x, ((0, 0), (distance, 0), (0, 0)))[:, : x.shape[1]]


def _shift_left(x: jax.Array, distance: int) -> jax.Array:
  """The transpose of `shift_right`: (B, T, C) -> x advanced by `distance` rows, zeros at the
  end."""
  return jnp.pad(x, ((0, 0), (0, distance), (0, 0)))[:, distance:]


def _conv_inputs(x, dilation, extra):
  return jnp.concatenate([shift_right(x, dilation), x, extra], axis=-1)


def _conv_product(inputs, kernel, extra_kernel):
  kernels = jnp.concatenate(
      [jnp.broadcast_to(kernel, (inputs.shape[0], *kernel.shape)), extra_kernel], axis=1)
  return jnp.einsum("bti,bif->btf", inputs, kernels, preferred_element_type=jnp.float32)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 5))
def _low_precision_causal_conv(x, dilation, kernel, extra, extra_kernel, dtype):
  return _low_precision_causal_conv_forward(x, dilation, kernel, extra, extra_kernel, dtype)[0]


def _low_precision_causal_conv_forward(x, dilation, kernel, extra, extra_kernel, dtype):
  # Rounded before the shift and the concatenation: they move half the bytes.
  x, extra = x.astype(dtype), extra.astype(dtype)
  kernel, extra_kernel = kernel.astype(dtype), extra_kernel.astype(dtype)
  out = _conv_product(_conv_inputs(x, dilation, extra), kernel, extra_kernel)
  return out, (x, extra, kernel, extra_kernel)


def _low_precision_causal_conv_backward(dilation, dtype, residuals, grad):
  x, extra, kernel, extra_kernel = residuals
  channels = x.shape[-1]
  grad = grad.astype(dtype)
  # The shared kernel's products are plain ones; only the extra inputs' weights are per example.
  taps_grad = jnp.matmul(grad, kernel.T, preferred_element_type=jnp.float32)   # (B, T, 2C)
  x_grad = taps_grad[..., channels:] + _shift_left(taps_grad[..., :channels], dilation)
  # sum_t x_{t-d} grad_t = sum_t x_t grad_{t+d}: both taps' rows are products of x (whose
  # transposed copy XLA makes once), not of the concatenated inputs (a slow transpose on a CPU).
  kernel_grad = jnp.concatenate([_weight_gradient(x, _shift_left(grad, dilation)),
                                 _weight_gradient(x, grad)], axis=0)
  extra_grad = jnp.einsum("btf,bef->bte", grad, extra_kernel, preferred_element_type=jnp.float32)
  extra_kernel_grad = jnp.einsum("bte,btf->bef", extra, grad, preferred_element_type=jnp.float32)
  return x_grad, kernel_grad, extra_grad, extra_kernel_grad


_low_precision_causal_conv.defvjp(_low_precision_causal_conv_forward,
                                  _low_precision_causal_conv_backward)


def causal_conv(x: jax.Array, dilation: int, kernel: jax.Array, extra: jax.Array,
                extra_kernel: jax.Array, dtype: Any = jnp.float32) -> jax.Array:
  """A kernel-2 dilated causal convolution with more inputs, as one product per example:
  y_t = [x_{t-d}, x_t, extra_t] @ [kernel; extra_kernel[b]].

  Args:
    x: float32 (B, T, C), zeros before the first row.
    dilation: d, in rows.
    kernel: float32 (2C, F), shared by all examples (rows: the tap at t-d, then the tap at t).
    extra: float32 (B, T, E) more inputs at each row.
    extra_kernel: float32 (B, E, F) their weights, one set per example.
    dtype: the operands' precision (float32, or bfloat16 with float32 sums).

  Returns:
    float32 (B, T, F).
  """
  if jnp.dtype(dtype) == jnp.float32:
    return _conv_product(_conv_inputs(x, dilation, extra), kernel, extra_kernel)
  return _low_precision_causal_conv(x, dilation, kernel, extra, extra_kernel, jnp.dtype(dtype))


def strided_causal_conv(x: jax.Array, dilation: int, stride: int, kernel: jax.Array,
                        extra: jax.Array, extra_kernel: jax.Array,
                        dtype: Any = jnp.float32) -> jax.Array:
  """`causal_conv`'s rows 0, stride, 2 stride, ... only: y_j = [x_{j s - d}, x_{j s}, extra_j]
  @ [kernel; extra_kernel[b]], with x float32 (B, T, C), extra float32 (B, ceil(T / s), E) at
  those rows; float32 (B, ceil(T / s), F). The same products, on 1 / s of the rows (XLA's own
  gradients: the rows are few)."""
  if stride == 1:
    return causal_conv(x, dilation, kernel, extra, extra_kernel, dtype)
  inputs = jnp.concatenate([shift_right(x, dilation)[:, ::stride], x[:, ::stride], extra], -1)
  if jnp.dtype(dtype) != jnp.float32:
    inputs, kernel, extra_kernel = (v.astype(dtype) for v in (inputs, kernel, extra_kernel))
  return _conv_product(inputs, kernel, extra_kernel)


class Dense(nn.Module):
  """`nn.Dense(features)` with its products at `dtype` (`matmul`): the same parameters ("kernel"
  (I, features) lecun-normal, "bias" zeros), so checkpoints are interchangeable.
  float32 (..., I) -> float32 (..., features)."""

  features: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param("kernel", nn.initializers.lecun_normal(), (x.shape[-1], self.features))
    bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
    return matmul(x, kernel, self.dtype) + bias

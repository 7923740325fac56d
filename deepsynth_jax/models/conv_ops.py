"""The frame CNNs' 3x3 convolution and max-pool: flax's values, gradients that are cheap on a CPU.

Both compute what `nn.Conv(features, (3, 3))` (padding "SAME") and `nn.max_pool(x, window,
strides=window)` compute, forward and backward, from the same parameters. Only the way the
gradient is computed differs. Profiled on a CPU training step of the WaveNet (its frame encoder
on 320 frames of 16 x 104), XLA spent ~0.7 s of a 5.8 s step on them:
- the max-pool's gradient by select-and-scatter, which materialises int32 index arrays of the
  pooled tensor's full size (`iota`), then gathers and scatters through them (~0.45 s); here it is
  a comparison with the window's maximum, kept for the first maximum of each window only (the
  element select-and-scatter picks: row-major order, ties to the first), i.e. a few elementwise
  ops that XLA fuses;
- the convolution's kernel gradient at 4-7 GFLOP/s (~0.25 s); here it is one matrix product of
  the input's 3x3 patches (N H W, 9 C_in) with the output's gradient (N H W, C_out), which runs
  at the machine's matmul rate (equal to XLA's to float rounding). The input gradient stays
  XLA's (it runs at 40-80 GFLOP/s). On an accelerator the kernel gradient is XLA's too.

Shapes: x float32 (N, H, W, C) (NHWC), kernel (3, 3, C_in, C_out) (HWIO), as flax's.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

_DIMENSIONS = ("NHWC", "HWIO", "NHWC")


def _conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
  return jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=_DIMENSIONS)


@jax.custom_vjp
def conv3x3(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """float32 (N, H, W, C_in), (3, 3, C_in, C_out) -> (N, H, W, C_out): the "SAME" 3x3
  cross-correlation `nn.Conv` computes (without its bias), with the kernel's gradient as one
  matrix product of patches."""
  return _conv(x, kernel)


def _conv3x3_forward(x, kernel):
  return _conv(x, kernel), (x, kernel)


def _conv3x3_backward(residuals, grad):
  x, kernel = residuals
  if jax.default_backend() != "cpu":  # an accelerator's own kernel gradient is fast, and the
    return jax.vjp(_conv, x, kernel)[1](grad)  # patches (9x the input) would cost memory
  n, h, w, c_in = x.shape
  _, input_grad = jax.vjp(lambda x: _conv(x, kernel), x)
  padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  patches = jnp.concatenate([padded[:, i:i + h, j:j + w] for i in range(3) for j in range(3)],
                            axis=-1)  # (N, H, W, 9 C_in): tap (i, j)'s channels at (3 i + j) C_in
  kernel_grad = jnp.einsum("pk,pc->kc", patches.reshape(n * h * w, 9 * c_in),
                           grad.reshape(n * h * w, -1))
  return input_grad(grad)[0], kernel_grad.reshape(kernel.shape)


conv3x3.defvjp(_conv3x3_forward, _conv3x3_backward)


class Conv3x3(nn.Module):
  """`nn.Conv(features, (3, 3), padding="SAME")` with `conv3x3`'s gradient: the same parameters
  ("kernel" (3, 3, C_in, features) lecun-normal, "bias" zeros), so checkpoints and initial values
  are unchanged. float32 (N, H, W, C_in) -> (N, H, W, features)."""

  features: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param("kernel", nn.initializers.lecun_normal(),
                        (3, 3, x.shape[-1], self.features))
    bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
    return conv3x3(x, kernel) + bias


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _pool_whole_windows(x: jax.Array, window: tuple[int, int]) -> jax.Array:
  # XLA's reduce-window: on a CPU it pools 2x2 windows 3x faster than a max over a reshape.
  return nn.max_pool(x, window, strides=window)


def _pool_forward(x, window):
  y = _pool_whole_windows(x, window)
  return y, (x, y)


def _pool_backward(window, residuals, grad):
  x, y = residuals
  n, h, w, c = x.shape
  a, b = window
  windows = x.reshape(n, h // a, a, w // b, b, c)
  taken = jnp.zeros(y.shape, bool)
  rows = []
  for i in range(a):
    cols = []
    for j in range(b):
      first = (windows[:, :, i, :, j] == y) & ~taken
      taken = taken | first
      cols.append(jnp.where(first, grad, 0.0))
    rows.append(jnp.stack(cols, axis=3))
  return (jnp.stack(rows, axis=2).reshape(x.shape),)


_pool_whole_windows.defvjp(_pool_forward, _pool_backward)


def max_pool(x: jax.Array, window: tuple[int, int], padding: str = "VALID") -> jax.Array:
  """float32 (N, H, W, C) -> (N, H', W', C): the max over windows of `window` = (a, b) with
  stride = window, as `nn.max_pool(x, window, strides=window, padding=padding)` computes it.

  padding "VALID" drops a trailing partial window (H' = H // a); "SAME" pads with -inf as XLA
  does (H' = ceil(H / a)). The gradient goes to each window's first maximum in row-major order,
  as XLA's select-and-scatter sends it, so gradients equal `nn.max_pool`'s, ties included.
  """
  window = tuple(int(s) for s in window)
  if padding == "VALID":
    a, b = window
    x = x[:, : x.shape[1] // a * a, : x.shape[2] // b * b]
  elif padding == "SAME":
    pads = jax.lax.padtype_to_pads(x.shape[1:3], window, window, "SAME")
    x = jnp.pad(x, ((0, 0), *pads, (0, 0)), constant_values=-jnp.inf)
  else:
    raise ValueError(f"padding={padding!r}; use 'VALID' or 'SAME'")
  return _pool_whole_windows(x, window)

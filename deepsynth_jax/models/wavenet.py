"""The DeepSynth WaveNet: audio buckets predicted from the previous audio and the video.

Shapes: B batch, T audio samples (4 kHz), F frames, C residual channels, S skip channels,
L layers. Audio enters as int tokens: bucket 0..255 of the previous sample, or `NO_AUDIO` (256)
where the previous sample is unknown (start of a clip) or was dropped by audio-input dropout. The
logits at sample t depend only on tokens at samples <= t (i.e. buckets before t) and on the frames
current at or before t.

Two ways to run the same parameters:
- `__call__`: the whole sequence in parallel (teacher forcing: training, teacher-forced loss).
- `step`: one sample, with a queue per layer holding its last `dilation` inputs (the sampler).
The two agree to float32 rounding; `tests/test_wavenet.py` checks it. With `dtype` bfloat16 every
product rounds its operands to bfloat16 (sums and everything else float32; models/precision.py):
faster training on hardware with bf16 products, the same parameters.

Optional local conditioning (`use_sample_cond`): per-sample features `sample_cond` float32
(B, T, D), projected to every layer's gate like the frame conditioning but indexed by sample rather
than by frame (e.g. another model's audio for a vocoder, `deepsynth_jax.models.vocoder`). The
logits at t then also depend on `sample_cond` rows <= t. Without it (the default) the model, its
parameters and its outputs are exactly those of the method's WaveNet.

Optional anchored output (`anchored_output`, with per-sample conditioning): instead of 256 free
logits, the bucket distribution is a Gaussian of mean g * anchor and std s in linear audio units,
discretized to the mu-law buckets (`anchored_logits`), where the anchor is feature 0 of
`sample_cond` (audio in [-1, 1], e.g. a synthesizer's waveform). Its logits are a log-density
plus `bucket_log_widths`, so the sampler applies temperature and greedy decoding to the density
(`autoregressive.sample_from_logits`): greedy is the bucket nearest the mean, and temperature T
scales the std by sqrt(T). Only the gain g comes from the stack, i.e. from the audio so far: the
head's output at the first sample of each `anchor_block`-sample block (which has seen the audio
before the block only), ramped linearly over the block from the previous block's, so that the
gain moves without clicks. The width s comes from the per-sample features alone, through a
small MLP. So the audio so far says how loud a note is, the anchor gives the waveform, and
neither the mean nor the width can follow the model's own past sample by sample: a teacher-forced
WaveNet learns to continue its input, and free-running it drifts (exposure bias), as a width
read from its own samples would (measured: too narrow fed its own greedy samples, too wide fed
its own noise). The stack is read at each block's first sample only: the parallel forward
evaluates each layer only where the layers above read it (`block_start_spacings`: about two
layers' work at every sample instead of L), and a sampler draws a block at a time
(`log_gain_at`, `autoregressive.generate`'s `by_blocks`).

With `anchor_mean="residual"` the mean is the anchor itself plus a residual the stack predicts at
every sample, in units of the width: m = anchor + s * r (r = ANCHOR_RESIDUAL_RANGE * tanh(.), zero
at initialization). There is no gain to shrink: a loss-optimal gain is below the level ratio
wherever the anchor is imperfect, and fed its own quieter past the gain head shrinks it again
(measured: a sixth of the recording's loudness). The width gets no gradient through these logits:
it is trained by the cross-entropy of the anchor alone, N(anchor, s) (`__call__(...,
return_head=True)`), i.e. as wide as the error is when the stack's residual has nothing to say,
which is what free-running sampling feeds it (its own past, not the recording's). That loss
does not train the anchor: its optimum, E[audio | video], is the quiet mean again.
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from deepsynth_jax import audio as audio_lib
from deepsynth_jax.audio import NUM_BUCKETS, NUM_TOKENS, audio_input_tokens
from deepsynth_jax.models import autoregressive, precision, windowed_gradient
from deepsynth_jax.models.frame_encoder import (
  FrameConditioning,
  FrameEncoder,
  frame_age_features,
)
from deepsynth_jax.models.generator import GeneratedAudio, Generator

Array = jax.Array
State = dict[str, Any]


class CausalConv(nn.Module):
  """Kernel-2 dilated causal convolution: y_t = W0 x_{t-d} + W1 x_t + b.

  Both taps are one matmul over [x_{t-d}, x_t], in the parallel and the incremental form alike.
  """

  in_features: int
  features: int
  dilation: int
  dtype: Any = jnp.float32

  def setup(self):
    self.kernel = self.param("kernel", nn.initializers.lecun_normal(),
                             (2 * self.in_features, self.features))
    self.bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))

  def __call__(self, x: Array) -> Array:
    """(B, T, in) -> (B, T, features)."""
    return self.step(precision.shift_right(x, self.dilation), x)

  def step(self, x_past: Array, x_now: Array) -> Array:
    """x_{t-d}, x_t (..., in) -> y_t (..., features)."""
    inputs = jnp.concatenate([x_past, x_now], axis=-1)
    return precision.matmul(inputs, self.kernel, self.dtype) + self.bias

  def with_extra_inputs(self, x: Array, extra: Array, extra_kernel: Array) -> Array:
    """`__call__(x)` + extra @ extra_kernel, per example, as one matmul.

    Args:
      x: (B, T, in).
      extra: (B, T, E) more inputs at each sample.
      extra_kernel: (B, E, features) their weights, one set per example.

    Returns:
      (B, T, features).
    """
    return precision.causal_conv(x, self.dilation, self.kernel, extra, extra_kernel,
                                 self.dtype) + self.bias

  def strided_with_extra_inputs(self, x: Array, spacing: int, stride: int, extra: Array,
                                extra_kernel: Array) -> Array:
    """`with_extra_inputs`' outputs at every `stride`-th row of x, whose rows are `spacing`
    samples apart (the dilation a multiple of it): x (B, T, in), extra (B, ceil(T / stride), E)
    at the output rows, extra_kernel (B, E, features) -> (B, ceil(T / stride), features)."""
    return precision.strided_causal_conv(x, self.dilation // spacing, stride, self.kernel, extra,
                                         extra_kernel, self.dtype) + self.bias


class DenseParams(nn.Module):
  """`nn.Dense(features)`'s parameters without its product, for a caller that applies them in
  pieces: "kernel" (in_features, features) lecun-normal and "bias" (features,) zeros, as
  `nn.Dense` names and initializes them (so checkpoints are interchangeable)."""

  features: int

  @nn.compact
  def __call__(self, in_features: int) -> tuple[Array, Array]:
    """-> (kernel float32 (in_features, features), bias float32 (features,))."""
    kernel = self.param("kernel", nn.initializers.lecun_normal(), (in_features, self.features))
    bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
    return kernel, bias


class WaveNet(nn.Module):
  """Video-conditioned WaveNet over 256 audio buckets.

  Attributes:
    num_layers: L dilated layers; dilation of layer i is 2 ** (i % layers_per_stack).
    layers_per_stack: layers before the dilation cycle restarts (L for one stack).
    channels: C, residual channels (the gate has 2C).
    skip_channels: S.
    cond_features: size of the per-frame conditioning vector.
    encoder_channels, encoder_convs_per_block, encoder_features, encoder_input_pool: the
      VGG-like frame encoder (see FrameEncoder).
    use_previous_frame: condition on the previous frame's features too (the method's design).
    use_video: False makes an audio-only model (no frame conditioning at all; the ablation's
      "no video" baseline).
    use_frame_age: add features of the time since the current frame began.
    num_age_features: K for `frame_age_features`.
    sample_rate: audio rate in Hz, for the frame-age features.
    use_sample_cond: True adds per-sample conditioning (a `sample_cond` input of D features per
      sample, projected to every layer's gate; its parameters are "sample_proj").
    anchored_output: the Gaussian-around-an-anchor head (module docstring; needs
      use_sample_cond). Its parameters are "anchor_out", "width_hidden" and "width_out" instead
      of "head_out".
    anchor_block: samples per step of the anchored head's gain (ramped between steps).
    anchor_level_gain: the gain gets no gradient through the logits (the same forward): it is
      trained by a loss on the level it gives (`anchored_level_loss`), not on the mean, since the
      mean's loss shrinks it below the level ratio wherever the anchor is imperfect, and a
      model fed its own quieter past then shrinks it again.
    anchor_mean: "gain" (mean = gain x anchor, the gain held per block) or "residual" (mean =
      anchor + width x the stack's residual at every sample; parameters "residual_out" instead of
      "anchor_out"); module docstring.
    dtype: precision of the stack's products: float32, or bfloat16 operands with float32 sums
      (`precision.matmul`; the frame encoder and the per-frame projection run in float32, their
      output rounded where it enters a layer's product, as are the frame-age and per-sample
      features and their weights).
  """

  num_layers: int = 10
  layers_per_stack: int = 10
  channels: int = 128
  skip_channels: int = 128
  cond_features: int = 128
  encoder_channels: tuple[int, ...] = (16, 32, 64)
  encoder_convs_per_block: int = 1
  encoder_features: int = 128
  encoder_input_pool: int = 1
  use_previous_frame: bool = True
  use_frame_age: bool = True
  num_age_features: int = 8
  sample_rate: int = 4000
  use_video: bool = True
  use_sample_cond: bool = False
  anchored_output: bool = False
  anchor_block: int = 64
  anchor_level_gain: bool = False
  anchor_mean: str = "gain"
  dtype: Any = jnp.float32

  @property
  def log_bucket_widths(self) -> np.ndarray | None:
    """For the sampler: the logits are a log-density plus these (anchored head), else None."""
    return bucket_log_widths() if self.anchored_output else None

  @property
  def dilations(self) -> tuple[int, ...]:
    return tuple(2 ** (i % self.layers_per_stack) for i in range(self.num_layers))

  @property
  def receptive_field(self) -> int:
    """Number of past samples (buckets) that the logits at t can see."""
    return 1 + sum(self.dilations) + 1

  def setup(self):
    c, gate = self.channels, 2 * self.channels
    self.encoder = FrameEncoder(self.encoder_channels, self.encoder_convs_per_block,
                                self.encoder_features, self.encoder_input_pool)
    self.conditioning = FrameConditioning(self.cond_features, self.use_previous_frame)
    self.embed = nn.Embed(NUM_TOKENS, c)
    self.input_conv = CausalConv(c, c, 1, dtype=self.dtype)
    self.layer_convs = [CausalConv(c, gate, d, dtype=self.dtype) for d in self.dilations]
    # All layers' conditioning projections as one matmul, computed once per frame.
    self.cond_proj = nn.Dense(self.num_layers * gate)
    if self.use_frame_age:
      self.age_proj = self.param("age_kernel", nn.initializers.lecun_normal(),
                                 (self.num_age_features, self.num_layers * gate))
    if self.use_sample_cond:
      # All layers' per-sample projections (D, L 2C): one matmul before the sampler's scan; in
      # the parallel forward, layer i's columns enter its dilated convolution's product.
      self.sample_proj = DenseParams(self.num_layers * gate)
    self.layer_outs = [precision.Dense(c + self.skip_channels, self.dtype) for _ in self.dilations]
    self.head_hidden = precision.Dense(c, self.dtype)
    if self.anchored_output:
      if not self.use_sample_cond:
        raise ValueError("anchored_output needs use_sample_cond (the anchor is "
                         "sample_cond[..., 0])")
      if self.anchor_block < 1:
        raise ValueError(f"anchor_block={self.anchor_block} must be >= 1")
      if self.anchor_mean not in ANCHOR_MEANS:
        raise ValueError(f"anchor_mean={self.anchor_mean!r}; use one of {ANCHOR_MEANS}")
      if self.anchor_mean == "residual":
        if self.anchor_level_gain:
          raise ValueError("anchor_level_gain trains a gain; anchor_mean='residual' has none")
        zeros = nn.initializers.zeros_init()  # the mean starts at the anchor
        self.residual_out = nn.Dense(1, kernel_init=zeros, bias_init=zeros)
      else:
        self.anchor_out = nn.Dense(1)  # log-gain pre-activation, from the stack
      self.width_hidden = nn.Dense(ANCHOR_WIDTH_HIDDEN)  # width, from the features alone
      self.width_out = nn.Dense(1)
    else:
      self.head_out = precision.Dense(NUM_BUCKETS, self.dtype)

  # ---- conditioning -------------------------------------------------------------------------

  def frame_conditioning(self, frames: Array) -> Array:
    """uint8 (B, F, H, W) frames -> float32 (B, F, L, 2C) per-layer gate conditioning."""
    if not self.use_video:
      return jnp.zeros((*frames.shape[:2], self.num_layers, 2 * self.channels), jnp.float32)
    features = self.encoder(frames)
    cond = self.conditioning(features)
    proj = self.cond_proj(cond)
    return proj.reshape((*proj.shape[:-1], self.num_layers, 2 * self.channels))

  def _age_conditioning(self, frame_age: Array) -> Array | None:
    """int (...,) ages -> float32 (..., L, 2C), or None without frame-age features."""
    if not self.use_frame_age:
      return None
    feats = frame_age_features(frame_age, self.sample_rate, self.num_age_features)
    proj = feats @ self.age_proj
    return proj.reshape((*proj.shape[:-1], self.num_layers, 2 * self.channels))

  def sample_conditioning(self, sample_cond: Array) -> dict[str, Array]:
    """float32 (B, T, D) per-sample features -> {"gate": float32 (B, T, L, 2C) per-layer gate
    terms, "anchor": float32 (B, T) feature 0 (what the anchored head centres on), and with
    `anchored_output` "width": float32 (B, T) the anchored head's width pre-activation}."""
    if not self.use_sample_cond:
      raise ValueError("this WaveNet has no per-sample conditioning (use_sample_cond=False)")
    kernel, bias = self.sample_proj(sample_cond.shape[-1])
    proj = sample_cond @ kernel + bias
    return {"gate": proj.reshape((*proj.shape[:-1], self.num_layers, 2 * self.channels)),
            **self.sample_head_terms(sample_cond)}

  def sample_head_terms(self, sample_cond: Array) -> dict[str, Array]:
    """`sample_conditioning` without "gate": "anchor" and, anchored, "width" (B, T)."""
    out = {"anchor": sample_cond[..., 0]}
    if self.anchored_output:
      out["width"] = self.width_out(nn.relu(self.width_hidden(sample_cond)))[..., 0]
    return out

  def _check_sample_cond(self, sample_cond: Array | None) -> None:
    if (sample_cond is not None) != self.use_sample_cond:
      raise ValueError(f"sample_cond must be given exactly when use_sample_cond "
                       f"(use_sample_cond={self.use_sample_cond}, sample_cond "
                       f"{'given' if sample_cond is not None else 'None'})")

  # ---- parallel (teacher-forced) forward ----------------------------------------------------

  def __call__(self, tokens: Array, frames: Array, frame_index: Array,
               frame_age: Array, sample_cond: Array | None = None,
               return_head: bool = False) -> Array | tuple[Array, dict[str, Array]]:
    """Teacher-forced logits for a whole clip.

    Args:
      tokens: int32 (B, T) input tokens from `audio_input_tokens` (previous buckets or NO_AUDIO).
      frames: uint8 (B, F, H, W).
      frame_index: int32 (B, T) index of the frame current at each sample.
      frame_age: int32 (B, T) samples since that frame became current.
      sample_cond: float32 (B, T, D) per-sample features, given exactly when `use_sample_cond`.

    Returns:
      float32 (B, T, 256) logits over buckets; with `return_head` (anchored head) also a dict:
      "gain" float32 (B, T) at every sample (anchor_mean "gain"), or "anchor_logits" float32
      (B, T, 256), the logits of N(anchor, width) whose cross-entropy trains the width
      (anchor_mean "residual").
    """
    return self.logits_from_embeddings(self.embed(tokens), self.frame_conditioning(frames),
                                       frame_index, frame_age, sample_cond, return_head)

  def _layer_inputs(self, batch: int, frame_cond: Array, frame_index: Array, frame_age: Array,
                    sample_cond: Array | None) -> tuple[Array | None, Any, Array | None]:
    """The layers' extra inputs float32 (B, T, E) (None if none), `extra_kernel(i)` their
    weights (B, E, 2C) for layer i, and the per-sample projection's bias (L, 2C) (None without
    per-sample conditioning)."""
    gate = 2 * self.channels
    # Each layer's conditioning enters its dilated convolution's matmul as more inputs: the
    # one-hot of the current frame (its weights: that example's per-frame rows of layer i), the
    # age features and the per-sample features (their weights: layer i's columns of the
    # projections `_age_conditioning` and `sample_conditioning` use). Same values as adding them
    # after; as separate products (F or K deep, written and read back at (B, T, 2C)) the frame
    # and age terms ran at 6-30 GFLOP/s and took a sixth of a CPU training step, and the
    # per-sample projection, (B, T, L, 2C) sliced per layer, half of the shipped vocoder's
    # (copies of the slices forward, padding them back backward). A gather of the frame's row is
    # worse: its gradient is a scatter-add. Without video the frame terms are zero: left out.
    num_layers = self.num_layers
    extra, weights = [], []  # (B, T, E) inputs, and their (B or 1, E, L, 2C) weights per layer
    if self.use_video:
      extra.append(jax.nn.one_hot(frame_index, frame_cond.shape[1], dtype=jnp.float32))   # F
      weights.append(frame_cond)
    if self.use_frame_age:
      extra.append(frame_age_features(frame_age, self.sample_rate,
                                      self.num_age_features).astype(jnp.float32))   # K
      weights.append(self.age_proj.reshape(1, -1, num_layers, gate))
    sample_bias = None
    if sample_cond is not None:
      sample_kernel, sample_bias = self.sample_proj(sample_cond.shape[-1])   # (D, L 2C)
      extra.append(sample_cond.astype(jnp.float32))                           # D
      weights.append(sample_kernel.reshape(1, -1, num_layers, gate))
      sample_bias = sample_bias.reshape(num_layers, gate)
    extra = jnp.concatenate(extra, axis=-1) if extra else None
    extra_kernel = lambda i: jnp.concatenate(
        [jnp.broadcast_to(w[:, :, i], (batch, w.shape[1], gate)) for w in weights], axis=1)
    return extra, extra_kernel, sample_bias

  def logits_from_embeddings(self, x: Array, frame_cond: Array, frame_index: Array,
                             frame_age: Array, sample_cond: Array | None = None,
                             return_head: bool = False, in_clip: Array | None = None
                             ) -> Array | tuple[Array, dict[str, Array]]:
    """As `__call__`, from embedded tokens (B, T, C) and `frame_conditioning` (B, F, L, 2C)
    (and the raw per-sample features (B, T, D) when `use_sample_cond`).

    `in_clip`: bool (B, T), for a window cut from a longer clip (`window_logits`): False at
    rows outside the clip, where every layer's input is then zero, the causal padding the whole
    clip's forward has there. None: every row is in the clip.
    """
    self._check_sample_cond(sample_cond)
    keep = (lambda v: v) if in_clip is None else (
        lambda v: jnp.where(in_clip[..., None], v, 0.0))
    x = keep(self.input_conv(keep(x)))
    extra, extra_kernel, sample_bias = self._layer_inputs(x.shape[0], frame_cond, frame_index,
                                                          frame_age, sample_cond)
    sample_terms = None if sample_cond is None else self.sample_head_terms(sample_cond)
    if self.gains_by_block and self.anchor_block > 1:  # the stack is read at block starts only
      if in_clip is not None:
        raise ValueError("in_clip: a window of a clip has its own grid of gain blocks; the gain "
                         "head is computed on whole clips only")
      return self._gain_head(self._block_start_skip(x, extra, extra_kernel, sample_bias),
                             sample_terms, x.shape[1], return_head)
    skip = 0.0
    for i, (conv, out) in enumerate(zip(self.layer_convs, self.layer_outs)):
      if extra is None:
        pre_gate = conv(x)
      else:
        pre_gate = conv.with_extra_inputs(x, extra, extra_kernel(i))
      if sample_cond is not None:
        pre_gate = pre_gate + sample_bias[i]
      x, skip_i = self._gated_residual(pre_gate, x, out)
      x = keep(x)
      skip = skip + skip_i
    if not self.anchored_output:
      if return_head:
        raise ValueError("return_head needs the anchored head (anchored_output=True)")
      return self._head(skip)
    if self.gains_by_block:  # blocks of one sample: the stack is read at every sample
      return self._gain_head(skip, sample_terms, x.shape[1], return_head)
    # The residual head.
    width = anchor_width(sample_terms["width"])
    fixed = jax.lax.stop_gradient(width)  # the width learns from "anchor_logits" only
    logits = gaussian_bucket_logits(sample_terms["anchor"] + fixed * self._residual(skip), fixed)
    if return_head:  # the anchor's own loss trains the width, not the anchor: it would shrink
      anchor = jax.lax.stop_gradient(sample_terms["anchor"])  # the mean towards E[x | video]
      return logits, {"anchor_logits": gaussian_bucket_logits(anchor, width)}
    return logits

  def _block_start_skip(self, x: Array, extra: Array, extra_kernel: Any,
                        sample_bias: Array) -> Array:
    """The stack's skip sum (B, ceil(T / anchor_block), S) at each block's first sample, from
    the input conv's output x (B, T, C), the layers' extra inputs (B, T, E) and per-layer
    weights `extra_kernel(i)` (B, E, 2C): each layer evaluated only at the rows the layers above
    read (`block_start_spacings`): for dilations 1 .. 2^(L-1), layer i at every 2^(i+1)-th
    sample, so the whole stack costs about two layers at every sample instead of L."""
    spacings = block_start_spacings(self.dilations, self.anchor_block)
    x = x[:, ::spacings[0][0]]
    skip = 0.0
    for i, (conv, out) in enumerate(zip(self.layer_convs, self.layer_outs, strict=True)):
      spacing, out_spacing = spacings[i]
      stride = out_spacing // spacing
      pre_gate = conv.strided_with_extra_inputs(x, spacing, stride, extra[:, ::out_spacing],
                                                extra_kernel(i)) + sample_bias[i]
      x, skip_i = self._gated_residual(pre_gate, x[:, ::stride], out)
      skip = skip + skip_i[:, ::self.anchor_block // out_spacing]
    return skip

  def _gain_head(self, block_skip: Array, sample_terms: dict[str, Array], length: int,
                 return_head: bool) -> Array | tuple[Array, dict[str, Array]]:
    """The "gain" head's logits (B, T, 256) (and its per-sample gain) from the stack's skip sum
    at each block's first sample (B, blocks, S) and the per-sample anchor and width (B, T)."""
    now = self._log_gain(block_skip)                                        # (B, blocks)
    before = jnp.concatenate([now[:, :1], now[:, :-1]], axis=1)
    log_gain = self.block_log_gains(before, now).reshape(now.shape[0], -1)[:, :length]
    trained = jax.lax.stop_gradient(log_gain) if self.anchor_level_gain else log_gain
    logits = self.gain_head_logits(trained, sample_terms["width"], sample_terms["anchor"])
    if return_head:
      return logits, {"gain": anchor_gain(log_gain)}
    return logits

  def window_logits(self, tokens: Array, frame_cond: Array, frame_index: Array,
                    frame_age: Array, in_clip: Array) -> Array:
    """Teacher-forced logits (B, T, 256) of a window of a clip: its tokens, frame index and age
    int32 (B, T), the clip's `frame_conditioning` (B, F, L, 2C), and `in_clip` bool (B, T)
    (rows before the clip's start are its causal padding). Rows that have `receptive_field` - 1
    in-clip or padding rows before them in the window equal `__call__`'s on the whole clip."""
    return self.logits_from_embeddings(self.embed(tokens), frame_cond, frame_index, frame_age,
                                       in_clip=in_clip)

  def _gated_residual(self, pre_gate: Array, x: Array, out: nn.Dense) -> tuple[Array, Array]:
    a, b = jnp.split(pre_gate, 2, axis=-1)
    res_skip = out(jnp.tanh(a) * jax.nn.sigmoid(b))
    res, skip = res_skip[..., : self.channels], res_skip[..., self.channels:]
    return (x + res) * math.sqrt(0.5), skip

  def _hidden(self, skip: Array) -> Array:
    return nn.relu(self.head_hidden(nn.relu(skip)))

  def _head(self, skip: Array) -> Array:
    return self.head_out(self._hidden(skip))

  def _log_gain(self, skip: Array) -> Array:
    """(..., S) skip sum -> (...) the anchored head's log-gain pre-activation."""
    return self.anchor_out(self._hidden(skip))[..., 0]

  def _residual(self, skip: Array) -> Array:
    """(..., S) skip sum -> (...) the residual anchored head's offset of the mean, in widths."""
    return ANCHOR_RESIDUAL_RANGE * jnp.tanh(self.residual_out(self._hidden(skip))[..., 0])

  # ---- incremental forward (sampling) -------------------------------------------------------

  def _queue_layout(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(lengths, first rows) of the packed queues: the input conv's (1), then each layer's."""
    lengths = (1, *self.dilations)
    starts = tuple(sum(lengths[:i]) for i in range(len(lengths)))
    return lengths, starts

  def init_state(self, batch_size: int) -> State:
    """Empty queues (zeros = causal padding) and t = 0.

    The queue of the input conv (length 1) and of each layer (length = its dilation) holding its
    last inputs are packed as consecutive rows of one float32 (1 + sum(dilations), B, C) array.
    """
    lengths, _ = self._queue_layout()
    state = {
        "t": jnp.zeros((), jnp.int32),
        "queues": jnp.zeros((sum(lengths), batch_size, self.channels), jnp.float32),
    }
    if self.anchored_output and self.anchor_mean == "gain":
      # the anchored head's log-gain at this block's and the last's start
      state["gain_now"] = jnp.zeros((batch_size,), jnp.float32)
      state["gain_before"] = jnp.zeros((batch_size,), jnp.float32)
    return state

  def step(self, state: State, token: Array, frame_cond_t: Array, frame_age_t: Array,
           sample_cond_t: Array | None = None) -> tuple[Array, State]:
    """One sample of the incremental forward.

    Args:
      state: from `init_state` or the previous `step`.
      token: int32 (B,) input token at time t (bucket t-1, or NO_AUDIO).
      frame_cond_t: float32 (B, L, 2C) the current frame's row of `frame_conditioning`.
      frame_age_t: int32 (B,) age of the current frame at t.
      sample_cond_t: row t of `sample_conditioning`'s output ({"gate": float32 (B, L, 2C),
        "anchor" and, anchored, "width": float32 (B,)}), given exactly when
        `use_sample_cond`.

    Returns:
      (logits (B, 256) for sample t, state for t + 1).
    """
    t = state["t"]
    lengths, starts = self._queue_layout()
    # Row of each queue holding its input from `length` steps ago, overwritten by this step's.
    # One gather and one scatter (which depends on the gather through x) let XLA update the
    # queues in place; a separate read and write per queue made it copy every queue every step.
    # (lax.rem and in-bounds, sorted indices: index arithmetic that XLA fuses into the gather
    # is recomputed for every element it copies.)
    slots = jnp.asarray(starts) + jax.lax.rem(t, jnp.asarray(lengths))
    index = dict(mode="promise_in_bounds", indices_are_sorted=True, unique_indices=True)
    past = state["queues"].at[slots].get(**index)                  # (1 + L, B, C)
    x_now = self.embed(token)
    inputs = [x_now]
    x = self.input_conv.step(past[0], x_now)
    age_cond = self._age_conditioning(frame_age_t)
    cond = frame_cond_t if age_cond is None else frame_cond_t + age_cond
    self._check_sample_cond(sample_cond_t)
    if sample_cond_t is not None:
      cond = cond + sample_cond_t["gate"]
    skip = 0.0
    for i, (conv, out) in enumerate(zip(self.layer_convs, self.layer_outs, strict=True)):
      inputs.append(x)
      x, skip_i = self._gated_residual(conv.step(past[i + 1], x) + cond[:, i], x, out)
      skip = skip + skip_i
    queues = state["queues"].at[slots].set(jnp.stack(inputs), **index)
    if not self.anchored_output:
      return self._head(skip), {"t": t + 1, "queues": queues}
    if self.anchor_mean == "residual":
      width = anchor_width(sample_cond_t["width"])
      logits = gaussian_bucket_logits(sample_cond_t["anchor"] + width * self._residual(skip),
                                      width)
      return logits, {"t": t + 1, "queues": queues}
    offset = t % self.anchor_block
    starts = offset == 0
    now = jnp.where(starts, self._log_gain(skip), state["gain_now"])
    before = jnp.where(t == 0, now, jnp.where(starts, state["gain_now"], state["gain_before"]))
    log_gain = before + (now - before) * (offset.astype(jnp.float32) / self.anchor_block)
    logits = self.gain_head_logits(log_gain, sample_cond_t["width"], sample_cond_t["anchor"])
    return logits, {"t": t + 1, "queues": queues, "gain_now": now, "gain_before": before}

  # ---- the gain at one sample (block-parallel sampling of the anchored "gain" head) ----------

  @property
  def gains_by_block(self) -> bool:
    """Whether every sample's distribution depends on the audio so far only through the gain at
    its block's and the previous block's first sample (the anchored head with anchor_mean
    "gain"): then a block's samples can be drawn at once, given those two gains."""
    return self.anchored_output and self.anchor_mean == "gain"

  def block_log_gains(self, before: Array, now: Array) -> Array:
    """The "gain" head's log-gain pre-activation at each sample of a block float32
    (..., anchor_block): ramped linearly from the previous block's first sample's, `before`
    (...), to this block's first sample's, `now` (...), as `step` does sample by sample."""
    ramp = jnp.arange(self.anchor_block, dtype=jnp.float32) / self.anchor_block
    return before[..., None] + (now - before)[..., None] * ramp

  def gain_head_logits(self, log_gain: Array, width: Array, anchor: Array) -> Array:
    """The "gain" head's logits float32 (..., 256) from its log-gain and width pre-activations
    and the anchor float32 (...) (`anchored_logits`)."""
    return anchored_logits(jnp.stack([log_gain, width], axis=-1), anchor)

  def log_gain_at(self, tokens: Array, frame_cond: Array, frame_index: Array, frame_age: Array,
                  sample_cond: Array, position: Array) -> Array:
    """The anchored head's log-gain pre-activation float32 (B,) at sample `position` (a traced
    int32 scalar, a multiple of `anchor_block`) of a clip: what `__call__`'s stack computes
    there, from the window of the clip it reads.

    Inputs are the whole clip's: tokens int32 (B, T) (only those at or before `position` are
    read), `frame_conditioning` (B, F, L, 2C), frame_index and frame_age int32 (B, T), the raw
    per-sample features float32 (B, T, D). The window holds the `receptive_field` - 1 samples
    before `position` (rounded up to whole blocks, so that its blocks are the clip's) and is run
    through the parallel forward's stack at its block starts (`_block_start_skip`); rows the
    output at `position` does not read may see the window's edge as padding.
    """
    block = self.anchor_block
    before = -(-(self.receptive_field - 1) // block) * block
    window = before + 1
    short = window - tokens.shape[1]
    if short > 0:  # a clip shorter than the window: rows after `position` are never read
      pad = lambda v: jnp.pad(v, ((0, 0), (0, short)) + ((0, 0),) * (v.ndim - 2))
      tokens, frame_index, frame_age, sample_cond = map(
          pad, (tokens, frame_index, frame_age, sample_cond))
    start = jnp.maximum(position - before, 0)
    cut = lambda v: jax.lax.dynamic_slice_in_dim(v, start, window, axis=1)
    x = self.input_conv(self.embed(cut(tokens)))
    extra, extra_kernel, sample_bias = self._layer_inputs(x.shape[0], frame_cond,
                                                          cut(frame_index), cut(frame_age),
                                                          cut(sample_cond))
    now = self._log_gain(self._block_start_skip(x, extra, extra_kernel, sample_bias))
    return jnp.take(now, (position - start) // block, axis=1)


def block_start_spacings(dilations: tuple[int, ...], block: int) -> tuple[tuple[int, int], ...]:
  """Per layer i, (spacing of the rows its input is read at, spacing of the rows its output is
  read at), in samples from the clip's first, for the stack's output at every `block`-th sample:
  a layer's outputs are read where the layer above reads its input, and it reads its input
  there and `dilation` samples before (both on a grid of spacing gcd(output spacing, dilation))."""
  spacings, out_spacing = [], block
  for dilation in reversed(dilations):
    spacing = math.gcd(out_spacing, dilation)
    spacings.insert(0, (spacing, out_spacing))
    out_spacing = spacing
  return tuple(spacings)


# The anchored head's gain g = exp(ANCHOR_LOG_GAIN_RANGE * tanh(.)), within [1/8, 8]: the
# simulator's velocities 40 .. 110 scale a note by 0.25 .. 1.9 (experiments/note_waveforms.py).
ANCHOR_LOG_GAIN_RANGE = math.log(8.0)
# Its width (std) in linear audio units: ANCHOR_MIN_WIDTH + ANCHOR_WIDTH_SCALE * softplus(.),
# from an MLP with ANCHOR_WIDTH_HIDDEN ReLU units on the per-sample features.
ANCHOR_MIN_WIDTH = 1e-3
ANCHOR_WIDTH_SCALE = 0.05
ANCHOR_WIDTH_HIDDEN = 32
# The residual head's offset of the mean, in widths: within +-ANCHOR_RESIDUAL_RANGE.
ANCHOR_RESIDUAL_RANGE = 4.0
ANCHOR_MEANS = ("gain", "residual")


def bucket_log_widths() -> np.ndarray:
  """float32 (256,) log of each mu-law bucket's width in linear audio units (the interval of
  [-1, 1] that `audio.quantize` maps to it): a density's log at the bucket centres plus these
  is the log of the buckets' probability masses, up to the density's curvature within a bucket."""
  half = 1.0 / audio_lib.MU  # buckets are 2 / MU wide in the companded domain
  edges = np.clip(np.linspace(-1.0 - half, 1.0 + half, NUM_BUCKETS + 1), -1.0, 1.0)
  linear = audio_lib.mu_law_expand(edges)
  return np.log(np.diff(linear)).astype(np.float32)


def anchor_gain(pre_activation: Array) -> Array:
  """The anchored head's gain from its pre-activation: exp(ANCHOR_LOG_GAIN_RANGE * tanh(.))."""
  return jnp.exp(ANCHOR_LOG_GAIN_RANGE * jnp.tanh(pre_activation))


def anchored_level_loss(gain: Array, anchor: Array, audio: Array, block: int) -> Array:
  """Squared log-ratio of levels, per block of `block` samples: the true audio's RMS against
  gain x the anchor's, gain (B, T) averaged over the block; anchor, audio float32 (B, T) in
  [-1, 1]. Blocks where either is silent (RMS < 1e-3) are left out. Scalar, mean over blocks."""
  b, t = audio.shape
  n = t // block
  cut = lambda x: x[:, :n * block].reshape(b, n, block)
  rms = lambda x: jnp.sqrt(jnp.mean(jnp.square(cut(x)), axis=-1))
  level_true, level_anchor = rms(audio), rms(anchor)
  heard = (level_true > 1e-3) & (level_anchor > 1e-3)
  error = (jnp.log(jnp.maximum(level_true, 1e-3))
           - jnp.log(jnp.mean(cut(gain), axis=-1) * jnp.maximum(level_anchor, 1e-3)))
  return jnp.sum(jnp.where(heard, error * error, 0.0)) / jnp.maximum(jnp.sum(heard), 1)


def anchored_logits(params: Array, anchor: Array) -> Array:
  """The anchored head's bucket logits.

  Args:
    params: float32 (..., 2) (log-gain, width) pre-activations.
    anchor: float32 (...) audio in [-1, 1] the distribution centres on (after the gain).

  Returns:
    float32 (..., 256) logits: a Gaussian of mean m = gain * anchor and std s in linear audio
    units, discretized to the mu-law buckets: -((c_k - m) / s)^2 / 2 + log(width_k) over the
    bucket centres c_k (`bucket_log_widths`). The Gaussian is linear because the error of a
    waveform is: in the companded domain a small error near a zero crossing is a large one
    (5.2 nats against 4.6 for the same gains and widths on validation crops).
  """
  return gaussian_bucket_logits(anchor_gain(params[..., 0]) * anchor, anchor_width(params[..., 1]))


def anchor_width(pre_activation: Array) -> Array:
  """The anchored head's std in linear audio units from its pre-activation:
  ANCHOR_MIN_WIDTH + ANCHOR_WIDTH_SCALE * softplus(.)."""
  return ANCHOR_MIN_WIDTH + ANCHOR_WIDTH_SCALE * jax.nn.softplus(pre_activation)


def gaussian_bucket_logits(mean: Array, std: Array) -> Array:
  """float32 (...) mean and std in linear audio units -> float32 (..., 256) logits of that
  Gaussian discretized to the mu-law buckets: -((c_k - mean) / std)^2 / 2 + log(width_k) over the
  bucket centres c_k (`bucket_log_widths`)."""
  centres = jnp.asarray(audio_lib.dequantize(np.arange(NUM_BUCKETS)), jnp.float32)
  z = (centres - mean[..., None]) / std[..., None]
  return -0.5 * z * z + jnp.asarray(bucket_log_widths())


def wavenet_from_config(config: ml_collections.ConfigDict, sample_rate: int, *, use_video: bool,
                        use_frame_age: bool, use_sample_cond: bool = False,
                        anchored_output: bool = False, anchor_block: int = 64,
                        anchor_level_gain: bool = False, anchor_mean: str = "gain") -> WaveNet:
  """The WaveNet of a config's `wavenet`, `encoder` and `conditioning` sections."""
  c = config.wavenet
  return WaveNet(num_layers=c.num_layers, layers_per_stack=c.layers_per_stack,
                 channels=c.channels, skip_channels=c.skip_channels, use_video=use_video,
                 cond_features=config.conditioning.features,
                 encoder_channels=tuple(config.encoder.channels),
                 encoder_convs_per_block=config.encoder.convs_per_block,
                 encoder_features=config.encoder.features,
                 encoder_input_pool=config.encoder.input_pool,
                 use_previous_frame=config.conditioning.use_previous_frame,
                 use_frame_age=use_frame_age,
                 num_age_features=config.conditioning.num_age_features,
                 sample_rate=sample_rate, use_sample_cond=use_sample_cond,
                 anchored_output=anchored_output, anchor_block=anchor_block,
                 anchor_level_gain=anchor_level_gain, anchor_mean=anchor_mean,
                 dtype=precision.compute_dtype(c.get("dtype", "float32")))


class WaveNetGenerator(Generator):
  """The method's model: teacher-forced softmax cross-entropy with audio-input dropout in
  training, generation by the autoregressive `lax.scan` decoder (`autoregressive.generate`)."""

  autoregressive = True

  def build_module(self) -> WaveNet:
    config = self.config
    if config.wavenet.get("train_window", 0) < 0:
      raise ValueError(f"config.wavenet.train_window={config.wavenet.train_window}: use 0 (the "
                       "whole batch at once) or a window length in samples")
    use_video = config.conditioning.get("use_video", True)  # absent in runs made before the flag
    return wavenet_from_config(config, self.sample_rate, use_video=use_video,
                               use_frame_age=bool(config.conditioning.use_frame_age and use_video))

  def module_inputs(self, batch: dict) -> tuple[Any, ...]:
    buckets = audio_lib.quantize(jnp.asarray(batch["audio"]), self.config.quantization)
    return (audio_input_tokens(buckets), batch["frames"], batch["frame_index"],
            batch["frame_age"])

  def _buckets_and_tokens(self, batch: dict, train: bool,
                          keys: jax.Array | None) -> tuple[Array, Array]:
    """The clip's buckets int32 (B, T) and its input tokens (B, T), with audio-input dropout
    when `train`."""
    buckets = audio_lib.quantize(batch["audio"], self.config.quantization)
    rate = self.config.wavenet.audio_dropout if train else 0.0
    return buckets, audio_input_tokens(buckets, rate, keys if rate > 0 else None)

  def loss(self, params: Any, batch: dict, *, train: bool,
           keys: jax.Array | None = None) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Teacher-forced softmax cross-entropy in nats per sample, with audio-input dropout when
    `train` (keys: (B,) per-example keys)."""
    buckets, tokens = self._buckets_and_tokens(batch, train, keys)
    logits = self.module.apply({"params": params}, tokens, batch["frames"], batch["frame_index"],
                               batch["frame_age"])
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, buckets)
    accuracy = jnp.mean(jnp.argmax(logits, -1) == buckets)
    loss = jnp.mean(ce)
    return loss, {"loss": loss, "cross_entropy": loss, "accuracy": accuracy}

  def loss_and_grad(self, params: Any, batch: dict, *, keys: jax.Array
                    ) -> tuple[tuple[jax.Array, dict[str, jax.Array]], Any]:
    """With `wavenet.train_window` > 0, the training loss and its gradient window by window
    (`windowed_gradient`): each example's clip in windows of that many samples plus the
    receptive field's halo, each window's forward and backward in turn, so that its
    activations stay in a CPU core's cache; the frame encoder runs once per clip. The same
    loss, metrics and gradient as the whole batch at once, to float rounding."""
    window = self.config.wavenet.get("train_window", 0)
    if not window:
      return super().loss_and_grad(params, batch, keys=keys)
    module = self.module
    buckets, tokens = self._buckets_and_tokens(batch, True, keys)
    frame_cond, frame_cond_vjp = jax.vjp(
        lambda p: module.apply({"params": p}, batch["frames"], method=WaveNet.frame_conditioning),
        params)

    def row_values(p, cond, rows, in_clip):
      logits = module.apply({"params": p}, rows["tokens"], cond, rows["frame_index"],
                            rows["frame_age"], in_clip, method=WaveNet.window_logits)
      return {"loss": optax.softmax_cross_entropy_with_integer_labels(logits, rows["buckets"]),
              "accuracy": (jnp.argmax(logits, -1) == rows["buckets"]).astype(jnp.float32)}

    per_row = {"tokens": tokens, "buckets": buckets, "frame_index": batch["frame_index"],
               "frame_age": batch["frame_age"]}
    means, (grads, cond_grads) = windowed_gradient.windowed_value_and_grad(
        row_values, params, frame_cond, per_row, window=window,
        halo=module.receptive_field - 1)
    grads = jax.tree.map(jnp.add, grads, frame_cond_vjp(cond_grads)[0])
    loss = means["loss"]
    return (loss, {"loss": loss, "cross_entropy": loss, "accuracy": means["accuracy"]}), grads

  def generate(self, params: Any, frames: Any, frame_index: Any, frame_age: Any, *,
               seed: int = 0, temperature: float = 1.0, greedy: bool = False,
               true_audio: Any = None, example_ids: Any = None,
               press_frames: Any = True) -> GeneratedAudio:
    del press_frames  # the method's WaveNet reads frames and their timing only
    out = autoregressive.generate(self.module, params, frames, frame_index, frame_age,
                                  temperature=temperature, seed=seed, greedy=greedy,
                                  true_audio=true_audio, example_ids=example_ids,
                                  quantization=self.config.quantization)
    # Bucket centres are within [-1, 1] up to float32 rounding of the mu-law expansion.
    return GeneratedAudio(audio=jnp.clip(out.audio, -1.0, 1.0), cross_entropy=out.cross_entropy)

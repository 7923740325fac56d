"""A parallel (non-autoregressive) generator: the whole waveform from the video in one pass.

The method's discussion suggests that predicting audio from the video alone "would be much
faster" than sampling one bucket at a time. This model has no audio input. It uses the same frame
encoder and conditioning as the WaveNet, then:

1. at a control rate (every `hop` = 16 samples, 4 ms at 4 kHz) a stack of dilated convolutions
   over [conditioning of the current frame, frame-age features] predicts an envelope for each of
   the 88 keys; a partial's amplitude is its key's envelope times a learned weight per partial, in
   a harmonic oscillator bank of the first `num_harmonics` harmonics of every key (equal
   temperament, A4 = 440 Hz) below 0.95 x Nyquist;
2. amplitudes are interpolated linearly between control points and the oscillators are summed.
   Per control block this is two matmuls with fixed (partials x hop) cosine/sine tables, so the
   synthesis costs O(partials) multiply-adds per sample and no per-sample transcendental.

Loss (`loss_fn`): L1 on the waveform + multi-resolution STFT (spectral convergence + log-magnitude
L1), and optionally the 256-bucket cross-entropy of a discretized Gaussian centred on the
prediction in mu-law space (scale learned), which makes its cross-entropy comparable with the
WaveNet's. Oscillator phases are fixed by absolute time, so the STFT terms carry the learning
signal; the waveform L1 only has weight where phases agree.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from deepsynth_jax import audio as audio_lib
from deepsynth_jax.frame_encoder import (
  FrameConditioning,
  FrameEncoder,
  frame_age_features,
  gather_frames,
)

STFT_SIZES = (64, 128, 256, 512)


def oscillator_bank(sample_rate: int, num_harmonics: int) -> tuple[np.ndarray, np.ndarray,
                                                                    np.ndarray]:
  """The partials: harmonics of the 88 keys below 0.95 x Nyquist.

  Returns:
    (frequency in Hz (M,), key 0..87 (M,), harmonic number 1..num_harmonics (M,)).
  """
  keys = 440.0 * 2.0 ** ((np.arange(88) + 21 - 69) / 12.0)
  harmonic = np.arange(1, num_harmonics + 1)
  freqs = keys[:, None] * harmonic[None]
  key_of = np.broadcast_to(np.arange(88)[:, None], freqs.shape)
  number = np.broadcast_to(harmonic[None], freqs.shape)
  keep = freqs < 0.95 * sample_rate / 2
  return freqs[keep], key_of[keep], number[keep]


def partial_frequencies(sample_rate: int, num_harmonics: int) -> np.ndarray:
  """Frequencies in Hz (M,) of the oscillator bank (see `oscillator_bank`)."""
  return oscillator_bank(sample_rate, num_harmonics)[0]


class ParallelGenerator(nn.Module):
  """Video -> waveform in one pass (see module docstring). Output float32 (B, T) in ~[-1, 1]."""

  channels: int = 128
  num_layers: int = 8
  hop: int = 16
  num_harmonics: int = 6
  cond_features: int = 128
  encoder_channels: tuple[int, ...] = (16, 32, 64)
  encoder_convs_per_block: int = 1
  encoder_features: int = 128
  encoder_input_pool: int = 1
  use_previous_frame: bool = True
  use_frame_age: bool = True
  num_age_features: int = 8
  sample_rate: int = 4000

  def setup(self):
    self.encoder = FrameEncoder(self.encoder_channels, self.encoder_convs_per_block,
                                self.encoder_features, self.encoder_input_pool)
    self.conditioning = FrameConditioning(self.cond_features, self.use_previous_frame)
    self.input_proj = nn.Dense(self.channels)
    self.convs = [nn.Conv(2 * self.channels, (3,), kernel_dilation=(2 ** i,), padding="SAME")
                  for i in range(self.num_layers)]
    self.res = [nn.Dense(self.channels) for _ in range(self.num_layers)]
    _, _, number = oscillator_bank(self.sample_rate, self.num_harmonics)
    # Each key's loudness over time, times a learned spectrum (amplitude of each of its partials):
    # the network only has to find which keys sound, as a transcriber would.
    self.key_envelope = nn.Dense(88, kernel_init=nn.initializers.normal(1e-3))
    self.partial_weights = self.param(
        "partial_weights", lambda _, n: jnp.asarray(1.0 / n, jnp.float32), number)
    # Scale of the bucket distribution in companded units; starts wide (near-uniform CE).
    self.log_scale = self.param("log_scale", nn.initializers.constant(-0.5), ())

  def _omega(self) -> np.ndarray:
    """Angular frequency per sample (M,)."""
    return 2 * np.pi * partial_frequencies(self.sample_rate, self.num_harmonics) / self.sample_rate

  def control_amplitudes(self, frames: jax.Array, frame_index: jax.Array,
                         frame_age: jax.Array) -> jax.Array:
    """Partial amplitudes at control points t = 0, hop, 2 hop, ... (B, ceil(T/hop) + 1, M)."""
    t = frame_index.shape[1]
    points = np.arange(-(-t // self.hop) + 1) * self.hop
    inside = np.minimum(points, t - 1)  # the last point(s) may lie past the clip's end
    cond = self.conditioning(self.encoder(frames))                       # (B, F, D)
    x = gather_frames(cond, frame_index[:, inside])                      # (B, P, D)
    if self.use_frame_age:
      age = frame_age[:, inside] + (points - inside)
      x = jnp.concatenate([x, frame_age_features(age, self.sample_rate,
                                                 self.num_age_features)], axis=-1)
    h = nn.relu(self.input_proj(x))
    for conv, res in zip(self.convs, self.res):
      a, b = jnp.split(conv(h), 2, axis=-1)
      h = h + res(jnp.tanh(a) * jax.nn.sigmoid(b))
    _, key_of, _ = oscillator_bank(self.sample_rate, self.num_harmonics)
    return self.key_envelope(h)[..., key_of] * self.partial_weights

  def __call__(self, frames: jax.Array, frame_index: jax.Array,
               frame_age: jax.Array) -> jax.Array:
    """Generates the waveform.

    Args:
      frames: uint8 (B, F, H, W); frame_index, frame_age: int32 (B, T) as for the WaveNet.

    Returns:
      float32 (B, T) audio.
    """
    t = frame_index.shape[1]
    amps = self.control_amplitudes(frames, frame_index, frame_age)     # (B, P, M), P = n + 1
    n = amps.shape[1] - 1
    omega = self._omega()
    starts = np.arange(n) * self.hop
    # Oscillator phases at each block start, reduced mod 2 pi in float64 before going to float32.
    phase = jnp.asarray(np.mod(starts[:, None] * omega[None], 2 * np.pi), jnp.float32)
    sin0, cos0 = jnp.sin(phase), jnp.cos(phase)                          # (n, M)
    r = np.arange(self.hop)
    table = jnp.asarray(np.concatenate([np.cos(omega[:, None] * r), np.sin(omega[:, None] * r)]),
                        jnp.float32)                                     # (2M, hop)
    start, delta = amps[:, :-1], amps[:, 1:] - amps[:, :-1]

    def block(a):  # sum_m a_m(t_i) sin(omega_m (t_i + r)) for every block i and offset r
      return jnp.concatenate([a * sin0, a * cos0], axis=-1) @ table    # (B, n, hop)

    ramp = jnp.asarray(r / self.hop, jnp.float32)
    out = block(start) + ramp * block(delta)
    return out.reshape(out.shape[0], -1)[:, :t]

  def bucket_logits(self, waveform: jax.Array, scheme: str = "mu_law") -> jax.Array:
    """(B, T) waveform -> (B, T, 256) logits of a discretized Gaussian around it (companded)."""
    centres = audio_lib.dequantize(jnp.arange(audio_lib.NUM_BUCKETS), scheme)
    if scheme == "mu_law":
      compand = lambda x: jnp.sign(x) * jnp.log1p(audio_lib.MU * jnp.abs(x)) / np.log1p(
          audio_lib.MU)
    else:
      compand = lambda x: x
    y = compand(jnp.clip(waveform, -1.0, 1.0))[..., None]
    c = compand(centres)
    return -0.5 * ((c - y) / jnp.exp(self.log_scale)) ** 2


def multi_resolution_stft_loss(pred: jax.Array, target: jax.Array,
                               sizes: tuple[int, ...] = STFT_SIZES) -> jax.Array:
  """Mean over FFT sizes of spectral convergence + log-magnitude L1 (Hann window, hop n/4)."""
  total = 0.0
  for n in sizes:
    hop = n // 4
    count = 1 + (pred.shape[-1] - n) // hop
    if count < 1:
      continue
    idx = np.arange(count)[:, None] * hop + np.arange(n)[None]
    window = jnp.asarray(np.hanning(n + 1)[:-1], jnp.float32)
    mag = lambda x, idx=idx, window=window: jnp.abs(jnp.fft.rfft(x[..., idx] * window, axis=-1))
    p, q = mag(pred), mag(target)
    convergence = jnp.linalg.norm(q - p) / (jnp.linalg.norm(q) + 1e-7)
    log_l1 = jnp.mean(jnp.abs(jnp.log(p + 1e-5) - jnp.log(q + 1e-5)))
    total = total + convergence + log_l1
  return total / len(sizes)


def loss_fn(model: ParallelGenerator, params: Any, batch: dict,
            config: ml_collections.ConfigDict) -> tuple[jax.Array, dict[str, Any]]:
  """Weighted L1 + STFT (+ bucket CE) loss of the parallel generator, and its metrics."""
  variables = {"params": params}
  pred = model.apply(variables, batch["frames"], batch["frame_index"], batch["frame_age"])
  target = batch["audio"]
  l1 = jnp.mean(jnp.abs(pred - target))
  stft = multi_resolution_stft_loss(pred, target)
  buckets = audio_lib.quantize(target, config.quantization)

  def bucket_ce(waveform):
    logits = model.apply(variables, waveform, config.quantization,
                         method=ParallelGenerator.bucket_logits)
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, buckets))

  c = config.parallel
  objective = c.l1_weight * l1 + c.stft_weight * stft
  if c.ce_weight > 0:
    objective = objective + c.ce_weight * bucket_ce(pred)
  # The CE of the stopped prediction trains only the distribution's scale, so the reported CE is
  # meaningful even when ce_weight = 0; it is optimized but not part of the reported "loss".
  ce = bucket_ce(jax.lax.stop_gradient(pred))
  return objective + ce, {"loss": objective, "l1": l1, "stft": stft, "cross_entropy": ce}

"""KeySynth: a key reader plays a learned additive instrument, the whole clip in one pass.

The method's discussion suggests that predicting audio from the video alone "would be much
faster" than sampling one bucket at a time. This model has no audio input; it is a learned
instrument played by a learned key reader:

1. a key reader (`deepsynth_jax.models.key_reader`) reads each frame's 88 key states,
   p (B, F, 88) in [0, 1]; with `key_weight` > 0 it is trained on the key states the simulator
   drew (binary cross-entropy against the batch's `frame_keys`), with 0 only through the audio
   loss. With `teacher_forced_keys` the instrument below is trained on the drawn key states
   instead of the reader's (as the WaveNet is fed the true audio), so it learns the instrument
   from the first step while the reader learns to read; generation always uses the reader's;
2. each key's press time is tracked through the frames (a key held from one frame to the next
   keeps its press time; soft, so gradients reach p), giving every key its age at every control
   point t = 0, hop, 2 hop, ... (hop = 16 samples, 4 ms at 4 kHz, in training; generation may
   use a coarser one, `keysynth.generation_hop`);
3. an MLP shared by all keys maps (the key's age, its pitch, whether it is held over from the
   previous frame, and the time since the current frame began if that frame shows no newly
   pressed key) to the amplitudes of its first `num_harmonics` harmonics, times p: a key that the
   frame does not show pressed is silent, so the pitch of the output is the video's by
   construction and the MLP learns the instrument (attack, decay, spectrum by register) from the
   audio. The last input is the re-strike cue: sparse video has a frame at every press, so a new
   frame that shows no new key means a held key was struck again, which no image can show.
   Camera video (a frame every 1/fps s, `press_frames` False) is a clock, not events: the
   re-strike cue and the held-over input are off, and generation rounds the key states
   (`hard_held`, `press_kept`) so that a key keeps its press time from frame to frame, and a key
   not shown pressed is silent (`sounding`: a camera's noise leaves every key at p ~ 0.07, a
   chorus of all the keys at 7%, where the simulator's sharp frames give ~0). In
   generation the MLP plays only the `max_voices` keys most likely pressed at each control point
   (the others' p is the reader's floor of ~0.01, which otherwise plays a quiet chorus of every
   key); training plays all 88;
4. those amplitudes drive a harmonic oscillator bank (equal temperament, A4 = 440 Hz, partials
   below 0.95 x Nyquist), interpolated linearly between control points; per control block this
   is two matmuls with fixed (partials x hop) cosine/sine tables, so the synthesis costs
   O(partials) multiply-adds per sample and no per-sample transcendental.

Loss (`loss_fn`): L1 on the waveform + multi-resolution STFT (spectral convergence + log-magnitude
L1) + `key_weight` x the key reader's cross-entropy, and optionally the 256-bucket cross-entropy
of a discretized Gaussian centred on the prediction in mu-law space (scale learned), which makes
its cross-entropy comparable with the WaveNet's. With oscillator phases fixed by absolute time the
STFT terms carry the learning signal (the waveform L1 only has weight where phases agree); with
`onset_grid` each note restarts its partials at learned phases when it starts on the simulator's
16-sample grid, and the L1 teaches the phases too (`note_phases`).
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from deepsynth_jax import audio as audio_lib
from deepsynth_jax import host_devices
from deepsynth_jax.models.dense_of_parts import DenseOfParts
from deepsynth_jax.models.frame_encoder import (
  frame_age_features,
  gather_frames,
  previous_frame_rows,
)
from deepsynth_jax.models.generator import GeneratedAudio, Generator
from deepsynth_jax.models.key_reader import NUM_KEYS, KeyReader, PlacedKeyReader

STFT_SIZES = (64, 128, 256, 512)
# Assumed age (samples) of the first frame of a clip whose start lies before the clip (the
# "previous frame" of a training crop): keys it shows have been down for at least this long.
PRE_CLIP_AGE = 2000
# Radians per sample of one unit of `partial_detune` (0.01 rad/sample = 6.4 Hz at 4 kHz): a
# step of the optimizer moves a partial by a fraction of a hertz.
DETUNE_SCALE = 1e-2
# Samples between the instrument's control points in training (4 ms at 4 kHz).
TRAINING_HOP = 16
# Radians of one unit of `partial_phase`: an optimizer step (~ the learning rate in parameter
# units) then turns a phase by ~0.1 rad, so it can reach any phase within a fine-tuning.
PHASE_SCALE = 50.0


# sin(2 pi x) = x S(x^2) and cos(2 pi x) = C(x^2) for x in [-1/2, 1/2] turn, S and C of degree 6:
# least squares on 400,001 evenly spaced points, max error 4e-9 and 4e-8 in float64.
_SIN_TURN = (6.2831852818799, -41.34169821452579, 81.60506498406222, -76.7021538564329,
             42.020501589799956, -14.883474455011315, 3.2191726797200926)
_COS_TURN = (0.9999999922905631, -19.739205554139552, 64.93917223798083, -85.45116590206567,
             60.17623132116691, -26.000531890234512, 6.5756177282611405)


def sin_cos_turns(x: jax.Array) -> tuple[jax.Array, jax.Array]:
  """sin(2 pi x) and cos(2 pi x) of float32 x (any shape) in [-1/2, 1/2] turn, within 1e-6 of
  the exact values.

  The oscillator bank needs both for every partial at every control block (412,500 of each in a
  5 s clip). XLA's CPU sin and cos took 5.2 ms for them, half of the synthesis; two polynomials
  vectorize (synthesis 10.6 -> 2 ms, 2026-11-30, with a reduction of radians to [-pi, pi] that
  phases kept in turns (`partial_turns`) no longer need).
  """
  return x * _polynomial(_SIN_TURN, x * x), _polynomial(_COS_TURN, x * x)


@jax.custom_jvp
def partial_turns(freq: jax.Array, points: jax.Array, starts: jax.Array,
                  rows: jax.Array) -> jax.Array:
  """Each partial's phase at control points in turns of its note, f (p - s) mod 1, in [-1/2, 1/2).

  Args:
    freq: float32 (M,) the partials' frequencies in turns per sample, in (0, 1/2).
    points: int32 (B, P) samples of the control points.
    starts: float32 (B, R, M) integer samples at which each partial's note started, in R rows.
    rows: int (B, P) the row of `starts` of each point (a clip's frame current there; or P rows,
      one per point).

  In 32-bit fixed-point turns, where p f and s f wrap at whole turns in exact integer arithmetic:
  within 2^-24 turn of the float32 frequencies' phases at any clip length (for f >= 2^-9, 7.8 Hz
  at 4 kHz, which f x 2^32 holds exactly; float32 ages of 20,000 samples times f were off by up
  to 5e-4 turn), and the starts are multiplied per row (30
  frames of a 5 s clip) rather than per control point (1,251). The derivative in `freq` is the age
  p - s (the starts and points have none).
  """
  fixed = jnp.round(freq * np.float32(2.0 ** 32)).astype(jnp.uint32)
  as_u32 = lambda v: jax.lax.bitcast_convert_type(v.astype(jnp.int32), jnp.uint32)
  started = as_u32(starts) * fixed                                          # (B, R, M)
  wrapped = as_u32(points)[..., None] * fixed - gather_frames(started, rows)  # (B, P, M)
  signed = jax.lax.bitcast_convert_type(wrapped, jnp.int32)
  return signed.astype(jnp.float32) * np.float32(2.0 ** -32)


@partial_turns.defjvp
def _partial_turns_jvp(primals, tangents):
  freq, points, starts, rows = primals
  age = points[..., None].astype(jnp.float32) - gather_frames(starts, rows)
  return partial_turns(*primals), age * tangents[0]


def release_envelope(amplitudes: jax.Array, previous: jax.Array, decay: float) -> jax.Array:
  """Partial amplitudes (B, P, M) at consecutive control points that fall no faster than by
  `decay` per point: out[p] = max(a[p], decay x out[p - 1]), out[-1] = `previous` (B, M) (the
  envelope at the point before, zeros at the start of a clip).

  A key the video shows released is silent from the next control point on (4 ms later): a cut
  that an onset detector hears as a click, where a piano's damper fades the string over tens of
  ms. Rising amplitudes (attacks) and decays slower than `decay` pass unchanged.

  A loop updating the amplitudes point by point in place: `lax.scan` would first fill its stacked
  output with zeros (0.8 -> 0.6 ms for a 5 s clip's (1, 1251, 330) on one core, 2026-12-02)."""
  def step(p, out):
    row = jnp.maximum(jax.lax.dynamic_index_in_dim(out, p, 1, keepdims=False),
                      decay * jax.lax.dynamic_index_in_dim(out, p - 1, 1, keepdims=False))
    return jax.lax.dynamic_update_index_in_dim(out, row, p, 1)

  first = jnp.maximum(amplitudes[:, 0], decay * previous)
  return jax.lax.fori_loop(1, amplitudes.shape[1], step, amplitudes.at[:, 0].set(first))


def _polynomial(coefficients: tuple[float, ...], x: jax.Array) -> jax.Array:
  """sum_k coefficients[k] x^k (Horner, float32)."""
  acc = jnp.full_like(x, coefficients[-1])
  for c in coefficients[-2::-1]:
    acc = acc * x + np.float32(c)
  return acc


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


def per_partial(per_key: jax.Array, key_of: np.ndarray) -> jax.Array:
  """float32 (..., 88) values of the keys -> (..., M) each partial's key's value (`key_of` (M,)
  from `oscillator_bank`), exactly (integers to 2^24, e.g. ages in samples, stay integers).

  A product with the (88, M) one-hot of the partials' keys: one term per sum, and HIGHEST keeps
  an accelerator from rounding the operands. XLA's CPU gather `per_key[..., key_of]` wrote its
  output transposed, and each of the synthesis' four fusions that read the note phases re-read
  it across the grain: half the speed of a sparse 5 s clip on an Intel Xeon (`bench_sampler
  --configs=parallel`, batch 1: 141-188x real time with the gather, 253-329x with this)."""
  one_hot = jnp.asarray(np.eye(NUM_KEYS, dtype=np.float32)[:, key_of])
  return jnp.matmul(per_key, one_hot, precision=jax.lax.Precision.HIGHEST)


def partial_frequencies(sample_rate: int, num_harmonics: int) -> np.ndarray:
  """Frequencies in Hz (M,) of the oscillator bank (see `oscillator_bank`)."""
  return oscillator_bank(sample_rate, num_harmonics)[0]


def frame_starts(frame_index: jax.Array, frame_age: jax.Array, num_frames: int) -> jax.Array:
  """Start of each frame in clip samples, from the per-sample frame index and age.

  Args:
    frame_index, frame_age: int (B, T) as from `data_gen.frame_timing.frame_index_and_age`.
    num_frames: F, the frames axis of the clip's frames.

  Returns:
    float32 (B, F): where each frame became current (negative if before the clip). A frame no
    sample refers to is placed PRE_CLIP_AGE before the first referenced one if it precedes it
    (a training crop's previous frame), and at T (never current) otherwise (padding).
  """
  t = frame_index.shape[1]
  begin = jnp.arange(t, dtype=jnp.float32)[None] - frame_age.astype(jnp.float32)
  starts = jax.vmap(lambda b, i: jax.ops.segment_max(b, i, num_segments=num_frames))(
      begin, frame_index)
  referenced = jnp.isfinite(starts)
  first = jnp.argmax(referenced, axis=1)
  first_start = jnp.take_along_axis(starts, first[:, None], axis=1)
  before = jnp.arange(num_frames)[None] < first[:, None]
  fallback = jnp.where(before, first_start - PRE_CLIP_AGE, jnp.float32(t))
  return jnp.where(referenced, starts, fallback)


def held_over(pressed: jax.Array, previous: jax.Array, hard: bool = False) -> jax.Array:
  """Probability (..., 88) that a key a frame shows pressed was already shown in the previous
  frame: p[f] p[f - 1] from pressed probabilities (..., 88). With `hard`, the key states are
  rounded (shown pressed iff p > 0.5) in the forward pass, gradients passing straight through
  the product."""
  held = pressed * previous
  if hard:
    held = held + jax.lax.stop_gradient(jnp.round(pressed) * jnp.round(previous) - held)
  return held


def sounding(pressed: jax.Array, hard: bool = False) -> jax.Array:
  """The factor (..., 88) on each key's partials from pressed probabilities (..., 88): p, or with
  `hard` p where the key is shown pressed (p > 0.5) and 0 elsewhere in the forward pass
  (gradients straight through). The instrument learned its loudness times the soft p, so a
  pressed key keeps it."""
  if not hard:
    return pressed
  return pressed + jax.lax.stop_gradient(pressed * jnp.round(pressed) - pressed)


def press_kept(pressed: jax.Array, previous: jax.Array, hard: bool = False) -> jax.Array:
  """Weight (..., 88) with which each key keeps the previous frame's press time (else it is
  pressed at this frame's start), from pressed probabilities (..., 88).

  Soft: `held_over` (p[f] p[f - 1]), so a key not shown held over is "pressed" again at every
  frame. In sparse video every frame is a press, so that is harmless; in camera video it is not:
  a held key at p = 0.77 moves its press time 41% of the way to each new frame (it stays about
  0.1 s old at 30 fps and never decays), and a released key's faint residual sound restarts its
  attack at every frame (30 clicks a second). Hard: a key keeps its press time unless the frame
  newly shows it pressed (round(p[f]) (1 - round(p[f - 1])) = 1); gradients pass straight
  through p[f] p[f - 1].
  """
  soft = pressed * previous
  if not hard:
    return soft
  newly = jnp.round(pressed) * (1.0 - jnp.round(previous))
  return soft + jax.lax.stop_gradient(1.0 - newly - soft)


def next_press_time(held: jax.Array, previous_press: jax.Array, start: jax.Array) -> jax.Array:
  """A frame's press times (..., 88): a held-over key keeps the previous frame's press time, any
  other key was pressed at the frame's start (..., ); the expectation of the two when `held`
  is a probability."""
  return held * previous_press + (1.0 - held) * start[..., None]


def no_new_key(pressed: jax.Array, previous: jax.Array) -> jax.Array:
  """Probability (...,) that a frame shows no newly pressed key, from its and the previous
  frame's pressed probabilities (..., 88) (computed in log space)."""
  return jnp.exp(jnp.sum(jnp.log1p(-pressed * (1.0 - previous) + 1e-6), axis=-1))


def key_press_times(held: jax.Array, starts: jax.Array) -> jax.Array:
  """When each key was pressed, as of each frame: (B, F, 88) weights of keeping the previous
  frame's press time (`press_kept`) and (B, F) frame starts -> float32 (B, F, 88) samples.

  A key shown in frames f - 1 and f is the same press (it cannot be seen released between them),
  so it keeps the press time of frame f - 1; otherwise its press time is frame f's start. With
  soft weights (p[f] p[f - 1] for press probabilities p) the press time is the expectation of
  the two.
  """

  def step(carry, xs):
    h, start = xs
    press = next_press_time(h, carry, start)
    return press, press

  init = jnp.zeros((held.shape[0], held.shape[2]), jnp.float32)
  _, press = jax.lax.scan(step, init, (jnp.swapaxes(held, 0, 1), starts.T))
  return jnp.swapaxes(press, 0, 1)


def pitch_features(num_frequencies: int = 4) -> np.ndarray:
  """Fixed smooth features of each key's pitch (88, 1 + 2 num_frequencies), for the shared MLP."""
  x = (np.arange(NUM_KEYS) - 43.5) / 43.5
  angles = np.pi * x[:, None] * (2.0 ** np.arange(num_frequencies))[None]
  return np.concatenate([x[:, None], np.sin(angles), np.cos(angles)], axis=1).astype(np.float32)


class KeySynth(nn.Module):
  """Video -> waveform in one pass (see module docstring). Output float32 (B, T) in ~[-1, 1]."""

  envelope_hidden: int = 64
  envelope_layers: int = 2
  # Samples between control points in generation and validation; training's is TRAINING_HOP
  # (`loss_fn`). The instrument is a function of time, so a model plays at any hop: a coarser
  # one interpolates its amplitudes over longer blocks and costs less per second of audio.
  hop: int = TRAINING_HOP
  num_harmonics: int = 6
  key_channels: tuple[int, ...] = (8, 16, 16)
  key_hidden: int = 32
  num_age_features: int = 8
  sample_rate: int = 4000
  reader: str = "columns"  # "columns" (`KeyReader`) or "placed" (`PlacedKeyReader`)
  # The placed reader's column features: "conv" (VGG-like stages) or "rows" (`RowTrunk`).
  reader_trunk: str = "conv"
  # Key states rounded (p > 0.5) for `held_over` / `press_kept` / `sounding` in generation and
  # validation (training keeps them soft: `loss_fn`). Needed for camera video.
  hard_held: bool = False
  # Voices: the instrument MLP plays only the `max_voices` most-pressed keys at each control point
  # (0 = all 88) in generation and validation; training plays all 88 (`loss_fn`), so that the
  # audio loss reaches keys the reader does not yet press.
  max_voices: int = 0
  # Note-relative oscillator phases (`note_phases`), for audio whose notes start on a grid of
  # this many samples after the press (the simulator's FluidSynth applies a note-on at its next
  # 64-frame block at 16 kHz: 16 samples at 4 kHz). 0: phases fixed by absolute time
  # (`block_sin_cos`), as before. Clips must start on the grid (`config.crop_align`).
  onset_grid: int = 0
  # Release time (ms) of a key's sound in generation and validation (`release_envelope`: a
  # released key fades by e every `release_ms`, no faster); 0 = cut within one control block.
  # Training never fades (`loss_fn`).
  release_ms: float = 0.0

  def setup(self):
    if self.reader == "placed":
      self.key_reader = PlacedKeyReader(self.key_channels, self.key_hidden,
                                        trunk=self.reader_trunk)
    elif self.reader_trunk != "conv":
      raise ValueError(f"keysynth.reader_trunk={self.reader_trunk!r} needs reader='placed'")
    elif self.reader == "columns":
      self.key_reader = KeyReader(self.key_channels, self.key_hidden)
    else:
      raise ValueError(f"unknown keysynth.reader {self.reader!r}; use 'columns' or 'placed'")
    # The first layer reads the instrument's input features part by part (`_instrument`).
    self.envelope = [(nn.Dense if i else DenseOfParts)(self.envelope_hidden)
                     for i in range(self.envelope_layers)]
    # Starts quiet: the untrained instrument adds little to the STFT loss's log-magnitude term.
    self.harmonics = (nn.Dense if self.envelope_layers else DenseOfParts)(
        self.num_harmonics, kernel_init=nn.initializers.normal(1e-2),
        bias_init=nn.initializers.constant(-4.0))
    # Scale of the bucket distribution in companded units; starts wide (near-uniform CE).
    self.log_scale = self.param("log_scale", nn.initializers.constant(-0.5), ())
    if self.onset_grid:
      if self.onset_grid < 0:
        raise ValueError(f"keysynth.onset_grid={self.onset_grid} must be 0 or positive")
      num_partials = len(self._omega())
      # Each partial's phase at its note's start, and its detuning (in DETUNE_SCALE radians per
      # sample) from the equal-tempered harmonic: what the waveform L1 can teach once phases are
      # note-relative.
      self.partial_phase = self.param("partial_phase", nn.initializers.zeros, (num_partials,))
      self.partial_detune = self.param("partial_detune", nn.initializers.zeros, (num_partials,))

  def _omega(self) -> np.ndarray:
    """Angular frequency per sample (M,)."""
    return 2 * np.pi * partial_frequencies(self.sample_rate, self.num_harmonics) / self.sample_rate

  def key_logits(self, frames: jax.Array) -> jax.Array:
    """uint8 (B, F, H, W) frames -> (B, F, 88) key logits (> 0 = pressed)."""
    return self.key_reader(frames)

  def control_amplitudes(self, frames: jax.Array, frame_index: jax.Array, frame_age: jax.Array,
                         key_states: jax.Array | None = None,
                         press_frames: jax.Array | bool = True,
                         ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Partial amplitudes at control points t = 0, hop, 2 hop, ... (B, ceil(T/hop) + 1, M)
    (`control_points`), the key logits (B, F, 88), and with `onset_grid` each key's note start
    in samples as of each frame (B, F, 88) for `note_phases` (else None). `key_states`
    (B, F, 88) in [0, 1] replace the reader's; `press_frames` (B,) or scalar: whether each
    clip's frames mark presses (see `__call__`)."""
    num_frames = frames.shape[1]
    points, inside = self.control_points(frame_index.shape[1])
    logits = self.key_logits(frames)
    pressed = jax.nn.sigmoid(logits) if key_states is None else key_states.astype(jnp.float32)
    previous = previous_frame_rows(pressed)
    held = held_over(pressed, previous, self.hard_held)                       # (B, F, 88)
    starts = frame_starts(frame_index, frame_age, num_frames)
    press = key_press_times(press_kept(pressed, previous, self.hard_held), starts)
    # Frames of sparse video are events: "held over from the previous frame" (pressed before
    # this press) and "no new key" (a re-strike) say something about the sound. A camera frame
    # is a clock tick: the instrument then hears only each key's press time (and pitch).
    events = jnp.broadcast_to(jnp.asarray(press_frames, jnp.float32), pressed.shape[:1])
    nothing_new = no_new_key(pressed, previous) * events[:, None]            # (B, F)
    at = frame_index[:, inside]                                               # (B, P)
    key_age = self.note_age(points[None], gather_frames(press, at))          # (B, P, 88)
    frame_age_at = frame_age[:, inside] + (points - inside)                  # (B, P)
    frame_sounding = sounding(pressed, self.hard_held)                       # (B, F, 88)
    voices = self._voices(frame_sounding)  # per frame: its points share its rows (30, not 1,251)
    amplitudes = self._instrument(key_age, gather_frames(held * events[:, None, None], at),
                                  gather_frames(nothing_new, at), frame_age_at,
                                  gather_frames(frame_sounding, at),
                                  None if voices is None else gather_frames(voices, at))
    note_start = None
    if self.onset_grid:
      # A phase needs one press time, not an expectation of two: the rounded key states' (as
      # `hard_held` generation uses), whatever the amplitudes use.
      note_press = (press if self.hard_held else
                    key_press_times(press_kept(pressed, previous, hard=True), starts))
      note_start = self.note_start(note_press)
    return amplitudes, logits, note_start

  def control_points(self, num_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """The control points of a clip of T samples: int (ceil(T/hop) + 1,) samples 0, hop, ...,
    and the sample (< T) whose frame each one plays (the last may lie past the clip's end)."""
    points = np.arange(-(-num_samples // self.hop) + 1) * self.hop
    return points, np.minimum(points, num_samples - 1)

  def clip_phases(self, note_start: jax.Array | None,
                  frame_index: jax.Array) -> tuple[jax.Array, jax.Array]:
    """sin and cos, (B, n, M) or (n, M), of the oscillators' phases at the starts of a clip's n
    control blocks: the notes' own (`note_phases`, from `control_amplitudes`' note starts
    (B, F, 88), each block in the notes of the frame current at its start) with `onset_grid`,
    else fixed by absolute time (`block_sin_cos`; `note_start` None)."""
    points, inside = self.control_points(frame_index.shape[1])
    if not self.onset_grid:
      return self.block_sin_cos(0, len(points) - 1)
    return self.note_phases(points[None, :-1], note_start, frame_index[:, inside[:-1]])

  def note_age(self, points: jax.Array, press: jax.Array) -> jax.Array:
    """Samples (B, P, 88) since each key's note started (`note_start` of its press time
    (B, P, 88)) at control points (B, P); 0 before it starts."""
    return jnp.maximum(points[..., None] - self.note_start(press), 0.0)

  def note_start(self, press: jax.Array) -> jax.Array:
    """When each key's note starts sounding, from its press time (..., 88) in samples: the next
    multiple of `onset_grid` (the press time itself when 0). Gradients pass straight through to
    the press time."""
    if not self.onset_grid:
      return press
    grid = float(self.onset_grid)
    return press + jax.lax.stop_gradient(jnp.ceil(press / grid) * grid - press)

  def note_phases(self, points: jax.Array, note_start: jax.Array,
                  rows: jax.Array) -> tuple[jax.Array, jax.Array]:
    """sin and cos (B, n, M) of the note-relative oscillator phases (`onset_grid` > 0) at n
    control points int (B, n) samples, from each key's note start (`note_start`) in samples
    (B, R, 88) in R rows and the row of each point int (B, n): every partial of a key starts
    each note at its learned `partial_phase` and advances at its detuned frequency, as a sampled
    piano's note does whenever it is struck (at a point before the start, the phase the note
    will have then). No gradient reaches the starts."""
    key_of = oscillator_bank(self.sample_rate, self.num_harmonics)[1]
    starts = per_partial(jax.lax.stop_gradient(note_start), key_of)          # (B, R, M)
    omega = jnp.asarray(self._omega(), jnp.float32) + DETUNE_SCALE * self.partial_detune
    turns = (partial_turns(omega / (2 * np.pi), points, starts, rows)
             + (PHASE_SCALE / (2 * np.pi)) * self.partial_phase)
    return sin_cos_turns(turns - jnp.round(turns))

  def _voices(self, pressed: jax.Array) -> jax.Array | None:
    """The `max_voices` keys (..., V) with the highest pressed probabilities (..., 88), or None
    when the instrument plays all 88 (`max_voices` 0 or 88).

    The MLP plays V voices instead of 88 keys: a released key is silent (times p ~ 0), and a
    piano score has a handful of keys down at once (at most 10 in the 20 songs)."""
    if not 0 < self.max_voices < NUM_KEYS:
      return None
    return jax.lax.top_k(pressed, self.max_voices)[1]

  def _instrument(self, key_age: jax.Array, held: jax.Array, no_new_key: jax.Array,
                  frame_age: jax.Array, pressed: jax.Array,
                  voices: jax.Array | None = None) -> jax.Array:
    """The learned instrument at control points: partial amplitudes (B, P, M) from each key's
    age, held-over and pressed probabilities (B, P, 88) and, per point, the probability that its
    frame shows no new key and that frame's age (B, P). With `max_voices` = V the MLP runs on
    the V keys with the highest pressed probability at each point only: `voices` int (B, P, V)
    when the caller has chosen them (`_voices` of `pressed`), else chosen here."""
    if voices is None:
      voices = self._voices(pressed)                                        # (B, P, V) or None
    if voices is not None:
      key_age, held, pressed = (jnp.take_along_axis(x, voices, axis=-1)
                                for x in (key_age, held, pressed))
    restrike = held * no_new_key[..., None]                                  # (B, P, V)
    # The MLP's input per key, side by side: its age's features (K), the restrike cue (its frame's
    # age features (K) if it is held over and the frame shows no new key), held over (1) and its
    # pitch's features (Fp); the frame-age and pitch parts are multiplied per point and per key.
    x = [(frame_age_features(key_age, self.sample_rate, self.num_age_features), None),
         (frame_age_features(frame_age, self.sample_rate, self.num_age_features),
          lambda y: restrike[..., None] * y[:, :, None]),
         (held[..., None], None),
         (jnp.asarray(pitch_features()), None if voices is None else lambda y: y[voices])]
    for layer in self.envelope:
      x = nn.relu(layer(x))
    # (B, P, V, H): a key the frame does not show pressed is silent.
    harmonics = nn.softplus(self.harmonics(x)) * pressed[..., None]
    key_of, number = oscillator_bank(self.sample_rate, self.num_harmonics)[1:]
    if voices is None:
      flat = harmonics.reshape((*harmonics.shape[:2], -1))
      return flat[..., key_of * self.num_harmonics + number - 1]
    # Each voice's H harmonics to its key's partials, the other keys silent: a key's partials are
    # side by side (`oscillator_bank`), so each voice is one window of H added into zeros
    # (B, P, M + H - 1) at its key's first partial (top_k's keys are distinct; the harmonics a
    # key lacks, above Nyquist, are zeroed and add nothing to the next key's). On one core 0.8 ms
    # a 5 s clip; the scatter into (B, P, 88, H) and gather of the partials it replaces, 1.1 ms;
    # the one-hot einsum before them, 4.5 ms (2 cores).
    counts = np.bincount(key_of, minlength=NUM_KEYS)                         # partials a key has
    first = jnp.asarray(np.cumsum(counts) - counts, jnp.int32)                # (88,)
    has = jnp.asarray(np.arange(self.num_harmonics) < counts[:, None], jnp.float32)  # (88, H)
    b, p, _ = voices.shape
    where = jnp.stack(jnp.broadcast_arrays(jnp.arange(b)[:, None, None],
                                           jnp.arange(p)[None, :, None], first[voices]), axis=-1)
    windows = jax.lax.ScatterDimensionNumbers(update_window_dims=(3,),
                                              inserted_window_dims=(0, 1),
                                              scatter_dims_to_operand_dims=(0, 1, 2))
    out = jax.lax.scatter_add(
        jnp.zeros((b, p, len(key_of) + self.num_harmonics - 1), harmonics.dtype), where,
        harmonics * has[voices], windows)
    return out[..., :len(key_of)]

  def __call__(self, frames: jax.Array, frame_index: jax.Array, frame_age: jax.Array,
               press_frames: jax.Array | bool = True, return_key_logits: bool = False,
               key_states: jax.Array | None = None) -> jax.Array | tuple[jax.Array, jax.Array]:
    """Generates the waveform.

    Args:
      frames: uint8 (B, F, H, W); frame_index, frame_age: int32 (B, T) as for the WaveNet.
      press_frames: bool (B,) or scalar: True where a clip's frames mark key presses (sparse
        video: a new frame showing no new key is a re-strike), False for camera video at a fixed
        frame rate (a frame is a clock tick; the re-strike cue is off).
      return_key_logits: also return the key reader's (B, F, 88) logits.
      key_states: play these (B, F, 88) key states in [0, 1] instead of the reader's (training
        with teacher-forced keys).

    Returns:
      float32 (B, T) audio (and the key logits).
    """
    t = frame_index.shape[1]
    amps, logits, note_start = self.control_amplitudes(frames, frame_index, frame_age,
                                                       key_states, press_frames)  # (B, P, M)
    amps = self.released(amps, jnp.zeros_like(amps[:, 0]))
    audio = self.synthesize_blocks(amps, *self.clip_phases(note_start, frame_index))[:, :t]
    return (audio, logits) if return_key_logits else audio

  # ---- block-wise synthesis (`__call__` and streaming) ----------------------------------------
  # A stream computes the per-frame key facts (`frame_key_facts`) once per frame and synthesizes
  # a few control blocks at a time; tests/test_streaming.py checks that blocks put end to end
  # equal the one-pass forward.

  def point_amplitudes(self, points: jax.Array, facts: dict[str, jax.Array]) -> jax.Array:
    """Partial amplitudes (B, P, M) at control points, as `control_amplitudes` computes them.

    Args:
      points: int32 (B, P) control-point samples (multiples of `hop`).
      facts: the `frame_key_facts` of the frame current at each point, gathered per point:
        "pressed", "held", "press", "note_press" float32 (B, P, 88); "no_new_key" float32 (B, P);
        and "start" int32 (B, P) the sample at which that frame became current.
    """
    return self._instrument(self.note_age(points, facts["press"]), facts["held"],
                            facts["no_new_key"], points - facts["start"],
                            sounding(facts["pressed"], self.hard_held))

  def point_audio(self, points: jax.Array, facts: dict[str, jax.Array],
                  absolute_phase: tuple[jax.Array, jax.Array],
                  previous: jax.Array) -> tuple[jax.Array, jax.Array]:
    """float32 (B, n hop) audio of the n blocks between n + 1 control points (`point_amplitudes`'
    arguments) and the amplitudes played at those points (B, n + 1, M). `absolute_phase`: the
    blocks' `block_sin_cos` (two float32 (n, M)), used when `onset_grid` is 0 (otherwise the
    phases are the notes' own, `note_phases`); `previous` (B, M): the amplitudes played at the
    control point before the first (`release_envelope`'s state; zeros at a stream's start)."""
    amps = self.released(self.point_amplitudes(points, facts), previous)
    if self.onset_grid:
      n = points.shape[1] - 1
      rows = jnp.broadcast_to(jnp.arange(n), (points.shape[0], n))  # each point its own row
      phase = self.note_phases(points[:, :-1], self.note_start(facts["note_press"][:, :-1]),
                               rows)
    else:
      phase = absolute_phase
    return self.synthesize_blocks(amps, *phase), amps

  def released(self, amplitudes: jax.Array, previous: jax.Array) -> jax.Array:
    """`release_envelope` of (B, P, M) amplitudes at `release_ms` (unchanged when 0)."""
    if self.release_ms <= 0:
      return amplitudes
    return release_envelope(amplitudes, previous,
                            float(np.exp(-self.hop * 1000.0 / (self.release_ms
                                                                * self.sample_rate))))

  def block_sin_cos(self, first_block: int, num_blocks: int) -> tuple[np.ndarray, np.ndarray]:
    """sin and cos, float32 (n, M), of the oscillators' absolute-time phases at the starts of
    control blocks first .. first + n - 1 (`onset_grid` 0), in float64 before going to float32."""
    starts = (first_block + np.arange(num_blocks)) * self.hop
    phase = np.mod(starts[:, None] * self._omega()[None], 2 * np.pi)
    return np.sin(phase).astype(np.float32), np.cos(phase).astype(np.float32)

  def synthesize_blocks(self, amps: jax.Array, sin0: jax.Array, cos0: jax.Array) -> jax.Array:
    """(B, n + 1, M) amplitudes at consecutive control points and the sin and cos (n, M) or
    (B, n, M) of the oscillators' phases at the starts of the n blocks between them
    (`block_sin_cos` or `note_phases`) -> float32 (B, n hop) audio: the amplitudes are
    interpolated linearly inside each block."""
    omega = self._omega()
    r = np.arange(self.hop)
    cos_table = jnp.asarray(np.cos(omega[:, None] * r), jnp.float32)     # (M, hop)
    sin_table = jnp.asarray(np.sin(omega[:, None] * r), jnp.float32)
    start, delta = amps[:, :-1], amps[:, 1:] - amps[:, :-1]

    def block(a):  # sum_m a_m(t_i) sin(omega_m (t_i + r)) for every block i and offset r
      # Two products rather than one of the terms side by side: their (B, n, 2M) concatenation
      # cost more than the second product (a sparse 5 s clip 1.05x as fast, 2026-12-02).
      return (a * sin0) @ cos_table + (a * cos0) @ sin_table             # (B, n, hop)

    ramp = jnp.asarray(r / self.hop, jnp.float32)
    out = block(start) + ramp * block(delta)
    return out.reshape(out.shape[0], -1)

  def bucket_logits(self, waveform: jax.Array, scheme: str = "mu_law") -> jax.Array:
    """(B, T) waveform -> (B, T, 256) logits of a discretized Gaussian around it (companded)."""
    centres = audio_lib.dequantize(jnp.arange(audio_lib.NUM_BUCKETS), scheme)
    compand = audio_lib.mu_law_compand if scheme == "mu_law" else (lambda x: x)
    y = compand(jnp.clip(waveform, -1.0, 1.0))[..., None]
    c = compand(centres)
    return -0.5 * ((c - y) / jnp.exp(self.log_scale)) ** 2


def multi_resolution_stft_loss(pred: jax.Array, target: jax.Array,
                               sizes: tuple[int, ...] = STFT_SIZES) -> jax.Array:
  """Mean over FFT sizes of spectral convergence + log-magnitude L1 (Hann window, hop n/4).

  Sizes longer than the clip are skipped and the mean is over the sizes used; a clip shorter
  than every size raises ValueError.
  """
  total, used = 0.0, 0
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
    used += 1
  if used == 0:
    raise ValueError(f"a clip of {pred.shape[-1]} samples is shorter than every STFT size "
                     f"{tuple(sizes)}; use longer crops (config.crop_samples)")
  return total / used


def check_crops_on_grid(config: ml_collections.ConfigDict, onset_grid: int) -> None:
  """Raises ValueError if `config`'s training crops (crop_samples, crop_align) can start off a
  KeySynth's onset grid of `onset_grid` samples (0: no grid, nothing to check)."""
  align = int(config.get("crop_align", 1))
  if onset_grid and config.get("crop_samples", 0) and align % onset_grid:
    raise ValueError(f"keysynth.onset_grid={onset_grid} needs training crops that start on the "
                     f"grid: set crop_align to a multiple of {onset_grid} (it is {align})")


def uses_key_labels(config: ml_collections.ConfigDict) -> bool:
  """Whether this config learns from the simulator's key states (`frame_keys`): as targets of
  the key reader (`key_weight` > 0) or as the keys the instrument plays in training."""
  c = config.keysynth
  return bool(c.key_weight > 0 or c.teacher_forced_keys)


def loss_fn(model: KeySynth, params: Any, batch: dict,
            config: ml_collections.ConfigDict, train: bool = True) -> tuple[jax.Array,
                                                                         dict[str, Any]]:
  """Weighted L1 + STFT + key cross-entropy (+ bucket CE) of KeySynth, and metrics.

  With key labels (`uses_key_labels`), the key cross-entropy is the key reader's binary
  cross-entropy against the batch's `frame_keys` (B, F, 88), summed over the 88 keys and averaged
  over the clip's real frames (`num_frames`); `key_accuracy` is the fraction of those frames whose
  88 states are all right. In training with `config.keysynth.teacher_forced_keys` the audio comes
  from the drawn key states; in evaluation (`train=False`) always from the reader's, as in
  generation. Without key labels `frame_keys` is never read (the batch need not have it) and
  neither key metric is reported.

  With `heard_weight` > 0 (training only), the reader's probability that a key is newly pressed
  at a frame, p[f] (1 - p[f - 1]), is trained (binary cross-entropy summed over keys, averaged
  over the frames whose previous frame is in the clip) towards `frame_heard` (B, F, 88): the keys
  the reference audio says were struck at that frame's start (`deepsynth_jax.audio_teacher`;
  audio and video timing only, no key labels).
  """
  variables = {"params": params}
  if train:  # soft key states in training: rounding them leaves the reader no gradient to grow p
    # and every key heard, voiced or not, cut at its release as the loss has always seen it, at
    # the training control rate
    model = model.clone(hard_held=False, max_voices=0, release_ms=0.0, hop=TRAINING_HOP)
  labelled = uses_key_labels(config)
  forced = batch["frame_keys"] if train and config.keysynth.teacher_forced_keys else None
  pred, logits = model.apply(variables, batch["frames"], batch["frame_index"],
                             batch["frame_age"], press_frames_of(batch), return_key_logits=True,
                             key_states=forced)
  target = batch["audio"]
  l1 = jnp.mean(jnp.abs(pred - target))
  stft = multi_resolution_stft_loss(pred, target,
                                    tuple(config.keysynth.get("stft_sizes", STFT_SIZES)))
  buckets = audio_lib.quantize(target, config.quantization)

  def bucket_ce(waveform):
    logits = model.apply(variables, waveform, config.quantization,
                         method=KeySynth.bucket_logits)
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, buckets))

  c = config.keysynth
  objective = c.l1_weight * l1 + c.stft_weight * stft
  metrics = {"l1": l1, "stft": stft}
  if labelled:
    labels = batch["frame_keys"].astype(jnp.float32)
    real = (jnp.arange(labels.shape[1])[None] < batch["num_frames"][:, None]).astype(jnp.float32)
    num_real = jnp.maximum(jnp.sum(real), 1.0)
    # Nats per frame (summed over the 88 keys): a mean over keys would leave the reader's
    # gradient far below the audio terms' and the reader stuck at the keys' base rates.
    key_ce = jnp.sum(optax.sigmoid_binary_cross_entropy(logits, labels).sum(-1) * real) / num_real
    frame_right = jnp.all((logits > 0) == (labels > 0.5), axis=-1).astype(jnp.float32)
    metrics.update(key_cross_entropy=key_ce, key_accuracy=jnp.sum(frame_right * real) / num_real)
    objective = objective + c.key_weight * key_ce
  if train and c.get("heard_weight", 0.0) > 0:
    heard = batch["frame_heard"].astype(jnp.float32)
    p = jax.nn.sigmoid(logits)
    new = jnp.clip(p * (1.0 - previous_frame_rows(p)), 1e-6, 1.0 - 1e-6)
    rows = jnp.arange(heard.shape[1])[None]
    counted = ((rows >= 1) & (rows < batch["num_frames"][:, None])).astype(jnp.float32)
    bce = -(heard * jnp.log(new) + (1.0 - heard) * jnp.log1p(-new)).sum(-1)
    heard_ce = jnp.sum(bce * counted) / jnp.maximum(jnp.sum(counted), 1.0)
    metrics["heard_cross_entropy"] = heard_ce
    objective = objective + c.heard_weight * heard_ce
  if c.ce_weight > 0:
    objective = objective + c.ce_weight * bucket_ce(pred)
  # The CE of the stopped prediction trains only the distribution's scale, so the reported CE is
  # meaningful even when ce_weight = 0; it is optimized but not part of the reported "loss".
  ce = bucket_ce(jax.lax.stop_gradient(pred))
  return objective + ce, {"loss": objective, "cross_entropy": ce, **metrics}


class KeySynthGenerator(Generator):
  """The key reader and learned instrument (`KeySynth`): a whole clip in one forward pass."""

  autoregressive = False

  def build_module(self) -> KeySynth:
    config = self.config
    if not config.conditioning.get("use_video", True):
      raise ValueError("the keysynth model has no input but the video; keep "
                       "conditioning.use_video=True")
    c = config.keysynth
    check_crops_on_grid(config, int(c.get("onset_grid", 0)))
    return KeySynth(envelope_hidden=c.envelope_hidden, envelope_layers=c.envelope_layers,
                    num_harmonics=c.num_harmonics, key_channels=tuple(c.key_channels),
                    key_hidden=c.key_hidden, num_age_features=config.conditioning.num_age_features,
                    sample_rate=self.sample_rate,
                    reader=c.get("reader", "columns"),  # runs made before the option: columns
                    reader_trunk=c.get("reader_trunk", "conv"),  # and VGG-like stages
                    hard_held=c.get("hard_held", False),
                    max_voices=c.get("max_voices", 0),  # runs made before the option: all 88
                    onset_grid=c.get("onset_grid", 0),  # and absolute-time phases
                    release_ms=c.get("release_ms", 0.0),  # and a cut at the release
                    hop=c.get("generation_hop", 0) or TRAINING_HOP)

  @property
  def uses_key_labels(self) -> bool:
    return uses_key_labels(self.config)

  @property
  def batch_fields(self) -> tuple[str, ...]:
    fields = ("audio", "frames", "frame_index", "frame_age", "example_id", "num_frames",
              "press_frames")
    if self.config.keysynth.get("heard_weight", 0.0) > 0:
      fields = (*fields, "frame_heard")  # what the audio says was struck: not a label
    return (*fields, "frame_keys") if self.uses_key_labels else fields

  def module_inputs(self, batch: dict) -> tuple[Any, ...]:
    return batch["frames"], batch["frame_index"], batch["frame_age"], press_frames_of(batch)

  def loss(self, params: Any, batch: dict, *, train: bool,
           keys: jax.Array | None = None) -> tuple[jax.Array, dict[str, jax.Array]]:
    del keys  # no training randomness
    return loss_fn(self.module, params, batch, self.config, train=train)

  def generate(self, params: Any, frames: Any, frame_index: Any, frame_age: Any, *,
               seed: int = 0, temperature: float = 1.0, greedy: bool = False,
               true_audio: Any = None, example_ids: Any = None,
               press_frames: Any = True) -> GeneratedAudio:
    """One forward pass; sampling controls do not apply. The cross-entropy is that of the
    discretized distribution around the waveform (`KeySynth.bucket_logits`): with no audio
    input, it is the same whether "free-running" or not. With several local devices the batch
    is split over them (`host_devices.map_over_devices`)."""
    del seed, temperature, greedy, example_ids
    frames = jnp.asarray(frames)
    press = jnp.broadcast_to(jnp.asarray(press_frames, jnp.bool_), frames.shape[:1])
    audio = host_devices.map_over_devices(
        _player(self.module), (frames, jnp.asarray(frame_index, jnp.int32),
                               jnp.asarray(frame_age, jnp.int32), press), (params,))
    ce = None
    if true_audio is not None:
      ce = _bucket_cross_entropy(self.module, params, audio, jnp.asarray(true_audio, jnp.float32),
                                 self.config.quantization)
    return GeneratedAudio(audio=jnp.clip(audio, -1.0, 1.0), cross_entropy=ce)


def clips_at_once(batch: int, backend: str | None = None) -> int:
  """How many of `batch` clips `KeySynthGenerator.generate` synthesizes in one pass: one at a
  time on a CPU, where a 5 s clip's intermediates stay in cache (the instrument MLP's hidden
  layer is 5 MB a clip, 82 MB for 16; `bench_sampler` at batch 16, 2026-12-01, 2 cores: 225x
  real time one by one, 164x all at once), the whole batch on an accelerator (`backend`: jax's
  default)."""
  return 1 if (backend or jax.default_backend()) == "cpu" else batch


@functools.cache
def _player(module: KeySynth):
  """The forward pass of `module` over a batch (or over its share of one: the batch is split over
  the local devices by `host_devices.map_over_devices`), `clips_at_once` clips at a time;
  one function object per module."""
  def play(frames, frame_index, frame_age, press_frames, params):
    return _forward(module, params, frames, frame_index, frame_age, press_frames,
                    clips_at_once(frames.shape[0]))
  return play


@functools.partial(jax.jit, static_argnames=("module", "chunk"))
def _forward(module: KeySynth, params: Any, frames: jax.Array, frame_index: jax.Array,
             frame_age: jax.Array, press_frames: jax.Array, chunk: int) -> jax.Array:
  """The forward pass over the batch, `chunk` clips (a divisor of the batch) at a time."""
  play = lambda x: module.apply({"params": params}, *x)
  inputs = (frames, frame_index, frame_age, press_frames)
  batch = frames.shape[0]
  if chunk == batch:
    return play(inputs)
  split = tuple(x.reshape(batch // chunk, chunk, *x.shape[1:]) for x in inputs)
  return jax.lax.map(play, split).reshape(batch, -1)


def press_frames_of(batch: dict) -> jax.Array | bool:
  """A batch's `press_frames` (B,) (True: its frames mark key presses, as sparse video does);
  True when the batch does not say (the method's sparse video)."""
  return batch["press_frames"] if "press_frames" in batch else True


@functools.partial(jax.jit, static_argnames=("module", "scheme"))
def _bucket_cross_entropy(module: KeySynth, params: Any, waveform: jax.Array, target: jax.Array,
                          scheme: str) -> jax.Array:
  """float32 (B,): mean over samples of -log p(true bucket) under `bucket_logits(waveform)`."""
  logits = module.apply({"params": params}, waveform, scheme, method=KeySynth.bucket_logits)
  buckets = audio_lib.quantize(target, scheme)
  return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, buckets), axis=-1)


def frame_key_facts(pressed: jax.Array, previous: jax.Array, previous_press: jax.Array,
                    previous_note_press: jax.Array, start: jax.Array,
                    hard_held: bool = False) -> dict[str, jax.Array]:
  """One frame's key facts, as `KeySynth.control_amplitudes` derives them for every frame.

  Args:
    pressed: float32 (B, 88) the frame's pressed probabilities (sigmoid of `key_logits`).
    previous: float32 (B, 88) the previous frame's (zeros for the first frame).
    previous_press: float32 (B, 88) the previous frame's press times (zeros for the first).
    previous_note_press: float32 (B, 88) the previous frame's "note_press" (zeros for the first).
    start: (B,) the sample at which the frame becomes current.
    hard_held: the module's `hard_held` (see `held_over`).

  Returns:
    {"pressed", "held" (= pressed x previous), "press" (`key_press_times`' recurrence),
    "note_press" (the same with rounded key states: the phases' press times) float32 (B, 88),
    "no_new_key" float32 (B,)}.
  """
  start = jnp.asarray(start, jnp.float32)
  held = held_over(pressed, previous, hard_held)
  press = next_press_time(press_kept(pressed, previous, hard_held), previous_press, start)
  note_press = press if hard_held else next_press_time(
      press_kept(pressed, previous, hard=True), previous_note_press, start)
  return {"pressed": pressed, "held": held, "press": press, "note_press": note_press,
          "no_new_key": no_new_key(pressed, previous)}

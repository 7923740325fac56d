"""Streaming generation: key-state changes in, audio blocks out, the model's state carried.

  stream = streaming.open_stream(runs.load_run("models/demo_keysynth"))
  stream.set_keys(keys)            # bool (88,), takes effect at `stream.earliest_change`
  block = stream.generate(256)     # float32 (256,) in [-1, 1] at 4 kHz

The model never sees key events: each change of the key state becomes a keyboard frame rendered
by the simulator (`data_gen.keyboard.render_frames`, at the run's frame size) that is current from
the sample of the change, exactly as `deepsynth_jax.sample(frames, frame_times)` takes sparse
video. A stream starts with all keys released at sample 0. Streamed equals offline: the samples a
stream emits equal `sample(stream.frames(), stream.frame_times(), seconds=...)` up to float32
rounding, for both model kinds (tests/test_streaming.py):

- the WaveNet (`WaveNetStream`) carries its decoder state (the dilation queues and the last
  sample) across blocks (`autoregressive.generate_block`), computes each frame's conditioning row
  once (from the frame and the one before it, as `FrameConditioning` does), and draws every
  step's uniform as the offline sampler does (`autoregressive.step_uniforms_range`: u[t] depends
  on (seed, example 0, t) only). It is causal: a change may take effect at the next sample not
  yet generated (`earliest_change == position`).
- KeySynth (`KeySynthStream`) is not causal by up to one control block: the samples of block
  [i hop, (i + 1) hop) (hop = 16 samples, 4 ms) interpolate towards the amplitudes at the next
  control point, which depend on the frame current there. The stream synthesizes whole blocks
  and tracks each frame's key facts (pressed probabilities, press times, the re-strike cue:
  `keysynth.frame_key_facts`) as the one-pass forward does through all frames, so a change may
  take effect just after the last control point used (`earliest_change = synthesized + 1`): a
  latency of at most one sample past the last synthesized block, and no recomputation. It also
  carries the amplitudes played at the last control point (the release envelope's state).

A change stamped before `earliest_change` is refused (`StreamInputError`); callers stamp changes
at `earliest_change` (the default). One edge differs from `sample()` by design: `sample()` of a
clip ending at sample T drops frames starting at or after T, while the stream's last (partial)
control block may already have used a change stamped at most one control block past T.
"""

from __future__ import annotations

import abc
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from data_gen import keyboard
from deepsynth_jax import audio as audio_lib
from deepsynth_jax.models import autoregressive, keysynth
from deepsynth_jax.runs import Run

NUM_KEYS = keyboard.NUM_KEYS


class StreamInputError(ValueError):
  """A key state or block request a stream cannot take; the message says what was expected."""


def _pow2(n: int) -> int:
  return 1 << max(0, n - 1).bit_length()


class Stream(abc.ABC):
  """Key states in, audio out, block by block (see the module docstring).

  Attributes:
    run: the model.
    sample_rate: samples per second of the audio and of the sample times (4000).
    frame_shape: (H, W) of the frames the model sees.
    position: samples generated so far (the next block starts there).
  """

  def __init__(self, run: Run, *, seed: int = 0, temperature: float = 1.0,
               greedy: bool = False):
    self.run = run
    self.sample_rate = int(run.sample_rate)
    self.frame_shape = run.frame_shape or (keyboard.DEFAULT_HEIGHT, keyboard.DEFAULT_WIDTH)
    self.seed, self.temperature, self.greedy = int(seed), float(temperature), bool(greedy)
    self.position = 0
    self._keys: list[np.ndarray] = []      # bool (88,) per frame
    self._times: list[int] = []            # start sample per frame
    self._frames: list[np.ndarray] = []    # uint8 (H, W) per frame
    self._audio: list[np.ndarray] = []     # emitted blocks
    self._add_frame(np.zeros(NUM_KEYS, bool), 0)

  # ---- what subclasses implement --------------------------------------------------------------

  @property
  @abc.abstractmethod
  def earliest_change(self) -> int:
    """The earliest sample at which a new key state may still take effect."""

  @abc.abstractmethod
  def _frame_changed(self, f: int) -> None:
    """Frame f was added (or replaced while unused): update the per-frame model inputs."""

  @abc.abstractmethod
  def _synthesize(self, num_samples: int) -> np.ndarray:
    """float32 (num_samples,) from `position` on (not clipped)."""

  # ---- the interface --------------------------------------------------------------------------

  def set_keys(self, keys: Any, at: int | None = None) -> int | None:
    """Records a change of the key state.

    Args:
      keys: bool (88,) (or 0/1): which keys are down; column k is MIDI pitch 21 + k.
      at: the sample at which it takes effect (>= `earliest_change`); default `earliest_change`.

    Returns:
      The sample at which it takes effect, or None if `keys` equals the current state (no new
      frame: an unchanged frame would read as a re-struck key).

    Raises:
      StreamInputError: keys of another shape or values, or `at` before `earliest_change`.
    """
    state = np.asarray(keys)
    if state.shape != (NUM_KEYS,) or not np.all((state == 0) | (state == 1)):
      raise StreamInputError(f"keys must be bool ({NUM_KEYS},) (key k = MIDI pitch 21 + k), got "
                             f"{state.dtype} {state.shape}")
    state = state.astype(bool)
    earliest = self.earliest_change
    at = earliest if at is None else at
    if isinstance(at, bool) or not isinstance(at, (int, np.integer)) or at < earliest:
      raise StreamInputError(f"a key change at sample {at!r} is too early: this stream has used "
                             f"the key state up to sample {earliest - 1}; pass at >= {earliest} "
                             "(or omit at)")
    if np.array_equal(state, self._keys[-1]):
      return None
    self._add_frame(state, int(at))
    return int(at)

  def generate(self, num_samples: int) -> np.ndarray:
    """The next `num_samples` samples: float32 (num_samples,) in [-1, 1] at `sample_rate`."""
    if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) \
        or num_samples < 1:
      raise StreamInputError(f"num_samples must be an int >= 1, got {num_samples!r}")
    block = np.clip(self._synthesize(int(num_samples)), -1.0, 1.0).astype(np.float32)
    self.position += int(num_samples)
    self._audio.append(block)
    return block

  def frames(self) -> np.ndarray:
    """uint8 (F, H, W): the frames the model saw (frame f current from `frame_times()[f]`)."""
    return np.stack(self._frames)

  def frame_times(self) -> np.ndarray:
    """int64 (F,): the sample at which each frame became current ([0] == 0, increasing)."""
    return np.asarray(self._times, np.int64)

  def key_states(self) -> np.ndarray:
    """bool (F, 88): the key state shown by each frame."""
    return np.stack(self._keys)

  def audio(self) -> np.ndarray:
    """float32 (position,): everything generated so far."""
    return np.concatenate(self._audio) if self._audio else np.zeros(0, np.float32)

  def notes(self, velocity: int = 100) -> np.ndarray:
    """int64 (M, 4) onset_sample, offset_sample, midi_pitch, velocity of the key presses in the
    generated audio (a key still down ends at `position`), sorted by onset (metrics' format)."""
    keys = self.key_states()
    times = np.append(self.frame_times(), max(self.position, self._times[-1] + 1))
    rows = []
    for k in range(NUM_KEYS):
      down = np.concatenate([[False], keys[:, k], [False]]).astype(np.int8)
      edges = np.diff(down)
      for on, off in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
        if times[on] < self.position:
          rows.append((times[on], min(times[off], self.position), k + keyboard.LOWEST_PITCH,
                       velocity))
    notes = np.asarray(rows, np.int64).reshape(-1, 4)
    return notes[np.lexsort((notes[:, 2], notes[:, 0]))]

  # ---- shared helpers -------------------------------------------------------------------------

  def _add_frame(self, state: np.ndarray, at: int) -> None:
    frame = keyboard.render_frames(state[None], *self.frame_shape)[0]
    if self._times and at == self._times[-1]:  # several changes at one sample: one frame
      self._keys[-1], self._frames[-1] = state, frame
    else:
      self._keys.append(state)
      self._times.append(at)
      self._frames.append(frame)
    self._frame_changed(len(self._times) - 1)

  def _frame_at(self, samples: np.ndarray) -> np.ndarray:
    """int64: the frame current at each sample."""
    return np.searchsorted(np.asarray(self._times), samples, side="right") - 1


# ---- the WaveNet -----------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnames=("module",))
def _frame_conditioning(module: Any, params: Any, frames: jax.Array) -> jax.Array:
  """uint8 (1, k, H, W) -> float32 (L, 2C): the conditioning row of the last frame."""
  return module.apply({"params": params}, frames, method="frame_conditioning")[0, -1]


class WaveNetStream(Stream):
  """The autoregressive WaveNet, one block at a time from its carried decoder state."""

  def __init__(self, run: Run, **kwargs):
    self._module = run.generator.module
    self._cond: list[jax.Array] = []
    super().__init__(run, **kwargs)
    self._carry = (self._module.init_state(1),
                   jnp.full((1,), audio_lib.NO_AUDIO, jnp.int32))

  @property
  def earliest_change(self) -> int:
    return self.position

  def _frame_changed(self, f: int) -> None:
    frames = np.stack(self._frames[max(0, f - 1):f + 1])[None]
    row = _frame_conditioning(self._module, self.run.params, jnp.asarray(frames))
    del self._cond[f:]
    self._cond.append(row)

  def _synthesize(self, num_samples: int) -> np.ndarray:
    t = self.position + np.arange(num_samples)
    index = self._frame_at(t)
    age = t - np.asarray(self._times)[index]
    first = int(index[0])
    rows = self._cond[first:int(index[-1]) + 1]
    rows += [rows[-1]] * (_pow2(len(rows)) - len(rows))  # padded: one compilation per size
    u = autoregressive.step_uniforms_range(self.seed, 0, self.position, num_samples)
    self._carry, _, audio = autoregressive.generate_block(
        self._module, self.run.params, self._carry, jnp.stack(rows)[None],
        (index - first)[None], age[None], u[None], temperature=self.temperature,
        greedy=self.greedy, quantization=self.run.config.quantization)
    return np.asarray(audio[0])


# ---- KeySynth --------------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnames=("module",))
def _keysynth_frame(module: Any, params: Any, frame: jax.Array, previous: jax.Array,
                    previous_press: jax.Array, previous_note_press: jax.Array,
                    start: jax.Array) -> dict[str, jax.Array]:
  """One frame's key facts (`keysynth.frame_key_facts`) from uint8 (1, 1, H, W)."""
  logits = module.apply({"params": params}, frame, method="key_logits")[:, 0]
  return keysynth.frame_key_facts(jax.nn.sigmoid(logits), previous, previous_press,
                                  previous_note_press, start, module.hard_held)


@functools.partial(jax.jit, static_argnames=("module",))
def _keysynth_blocks(module: Any, params: Any, points: jax.Array, facts: dict[str, jax.Array],
                     phase: jax.Array, previous: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Audio (1, n hop) of the n blocks between n + 1 control points and the amplitudes played
  there (1, n + 1, M) (`KeySynth.point_audio`)."""
  return module.apply({"params": params}, points, facts, phase, previous, method="point_audio")


class KeySynthStream(Stream):
  """KeySynth, whole control blocks at a time, with each frame's key facts tracked."""

  def __init__(self, run: Run, **kwargs):
    self._module = run.generator.module
    self._hop = int(self._module.hop)
    self._facts: list[dict[str, np.ndarray]] = []
    self._blocks_done = 0
    self._pending = np.zeros(0, np.float32)  # synthesized, not yet emitted
    # The amplitudes played at the control point before the next one to synthesize (the release
    # envelope's state, `KeySynth.release_envelope`).
    self._previous = np.zeros((1, len(self._module._omega())), np.float32)
    super().__init__(run, **kwargs)

  @property
  def earliest_change(self) -> int:
    # The control point at the end of the last synthesized block used the frame current there.
    return 0 if self._blocks_done == 0 else self._blocks_done * self._hop + 1

  def _frame_changed(self, f: int) -> None:
    if f == 0:
      previous = {k: np.zeros((1, NUM_KEYS), np.float32)
                  for k in ("pressed", "press", "note_press")}
    else:
      previous = self._facts[f - 1]
    facts = _keysynth_frame(self._module, self.run.params,
                            jnp.asarray(self._frames[f][None, None]), previous["pressed"],
                            previous["press"], previous["note_press"],
                            jnp.asarray([self._times[f]], jnp.int32))
    del self._facts[f:]
    self._facts.append({k: np.asarray(v) for k, v in facts.items()})

  def _synthesize(self, num_samples: int) -> np.ndarray:
    hop = self._hop
    done = self.position + len(self._pending)
    need = self.position + num_samples
    if need > done:
      first = self._blocks_done
      count = math.ceil(need / hop) - first
      padded = _pow2(count)  # one compilation per power of two
      points = (first + np.minimum(np.arange(padded + 1), count)) * hop
      at = self._frame_at(points)
      facts = {k: np.concatenate([self._facts[f][k] for f in at])[None]
               for k in ("pressed", "held", "press", "note_press", "no_new_key")}
      facts["start"] = np.asarray(self._times, np.int32)[at][None]
      phase = tuple(map(jnp.asarray, self._module.block_sin_cos(first, padded)))
      audio, played = _keysynth_blocks(self._module, self.run.params,
                                       jnp.asarray(points, jnp.int32)[None], facts,
                                       phase, jnp.asarray(self._previous))
      self._pending = np.concatenate([self._pending, np.asarray(audio[0, :count * hop])])
      self._previous = np.asarray(played[:, count - 1])
      self._blocks_done += count
    out, self._pending = self._pending[:num_samples], self._pending[num_samples:]
    return out


STREAMS: dict[str, type[Stream]] = {"wavenet": WaveNetStream, "keysynth": KeySynthStream}


def open_stream(run: Run, *, seed: int = 0, temperature: float = 1.0,
                greedy: bool = False) -> Stream:
  """A new stream of `run`'s model (all keys released at sample 0).

  seed, temperature, greedy: the WaveNet's sampling controls, as for `sample()`; KeySynth has
  none. Raises StreamInputError for a model kind without a stream.
  """
  kind = run.config.get("model")
  if kind not in STREAMS:
    raise StreamInputError(f"no stream for model {kind!r}; streams exist for "
                           f"{', '.join(sorted(STREAMS))}")
  return STREAMS[kind](run, seed=seed, temperature=temperature, greedy=greedy)

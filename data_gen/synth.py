"""Piano audio: FluidSynth renders notes offline, soxr resamples to the dataset rate.

FluidSynth (pyfluidsynth, libfluidsynth) plays bank 0 preset 0 of a SoundFont (the grand piano of
General MIDI; default FluidR3_GM from Debian's fluid-soundfont-gm) on one MIDI channel. No audio
driver is started: the synthesizer is stepped offline with `fluid_synth_write_float` in chunks
between events, so every note-on and note-off lands on its exact sample. FluidSynth cannot run below
8 kHz, so it renders at `render_rate(sample_rate)` (an integer multiple of the dataset rate, 16 kHz
for 4 kHz), the stereo output is averaged to mono and soxr (high quality, linear phase)
resamples it to the dataset rate with its anti-aliasing filter, not by dropping samples.

Reverb and chorus are off, the synthesizer runs single-threaded and loads only the samples of the
piano preset, float output avoids FluidSynth's 16-bit dither noise, and a fresh synthesizer renders
each song, so the same notes always give the same bytes. Release tails are kept: after the last
note-off rendering goes on in 0.1 s blocks until a block is silent (peak < 1e-4) or `tail_seconds`
have passed. The gain is fixed (no per-song normalisation) so that loudness follows MIDI velocity;
samples beyond [-1, 1] are clipped (and counted).
"""

from __future__ import annotations

import ctypes
import dataclasses
import os

import numpy as np

from data_gen import wav

DEFAULT_SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
BANK, PRESET = 0, 0
MIN_RENDER_RATE = 16000
DEFAULT_GAIN = 1.0
DEFAULT_TAIL_SECONDS = 2.0
SILENCE = 1e-4
POLYPHONY = 256
_CHUNK = 1 << 15  # frames rendered per FluidSynth call


class SynthError(ValueError):
  """FluidSynth or the SoundFont is missing or unusable; the message says how to fix it."""


@dataclasses.dataclass(frozen=True)
class SynthSettings:
  """How audio is rendered (recorded in the manifest)."""
  soundfont: str = DEFAULT_SOUNDFONT
  gain: float = DEFAULT_GAIN
  tail_seconds: float = DEFAULT_TAIL_SECONDS

  def describe(self, sample_rate: int) -> dict:
    return {"engine": "fluidsynth", "fluidsynth_version": fluidsynth_version(),
            "render_sample_rate": render_rate(sample_rate), "resampler": "soxr HQ",
            "gain": self.gain, "tail_seconds": self.tail_seconds, "reverb": False,
            "chorus": False, "polyphony": POLYPHONY, "channels": "mono (mean of L, R)"}


def render_rate(sample_rate: int) -> int:
  """The rate FluidSynth renders at: the smallest multiple of `sample_rate` >= 16 kHz."""
  sample_rate = int(sample_rate)
  if sample_rate <= 0:
    raise ValueError(f"sample_rate must be positive, got {sample_rate}")
  rate = sample_rate * max(1, -(-MIN_RENDER_RATE // sample_rate))
  if rate > 96000:
    raise ValueError(f"sample_rate {sample_rate} needs a render rate of {rate} Hz, above "
                     "FluidSynth's 96 kHz maximum")
  return rate


def _fluidsynth():
  """Imports pyfluidsynth, turning a missing libfluidsynth into one actionable SynthError."""
  try:
    import fluidsynth
  except (ImportError, OSError) as e:
    if "fluidsynth" in str(e).lower() and "no module named" not in str(e).lower():
      raise SynthError("libfluidsynth not found: apt-get install libfluidsynth3 (Debian/Ubuntu) "
                       "or brew install fluid-synth (macOS)") from None
    raise SynthError("pyfluidsynth not importable: pip install pyfluidsynth and apt-get install "
                     f"libfluidsynth3 ({e})") from None
  return fluidsynth


def fluidsynth_version() -> str:
  fs = _fluidsynth()
  v = [ctypes.c_int(), ctypes.c_int(), ctypes.c_int()]
  fs._fl.fluid_version(*[ctypes.byref(x) for x in v])
  return ".".join(str(x.value) for x in v)


def check_available(soundfont: str = DEFAULT_SOUNDFONT) -> None:
  """Raises SynthError (one line saying how to fix it) unless FluidSynth and the SoundFont work."""
  _fluidsynth()
  if not os.path.isfile(soundfont):
    hint = ("apt-get install fluid-soundfont-gm" if soundfont == DEFAULT_SOUNDFONT
            else "check the path")
    raise SynthError(f"SoundFont not found: {soundfont}; {hint}, or pass --soundfont=PATH.sf2")
  with open(soundfont, "rb") as f:
    head = f.read(12)
  if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"sfbk":
    raise SynthError(f"{soundfont} is not a SoundFont 2 (.sf2) file; pass --soundfont=PATH.sf2")


class _Synth:
  """One offline FluidSynth instance with the piano on channel 0, writing float stereo."""

  def __init__(self, soundfont: str, rate: int, gain: float):
    fs = _fluidsynth()
    check_available(soundfont)
    self._fs = fs
    self.synth = fs.Synth(gain=float(gain), samplerate=float(rate), channels=16, **{
        "synth.reverb.active": 0, "synth.chorus.active": 0, "synth.cpu-cores": 1,
        "synth.polyphony": POLYPHONY, "synth.lock-memory": 0, "synth.audio-channels": 1,
        "synth.dynamic-sample-loading": 1})
    sfid = self.synth.sfload(soundfont)
    if sfid < 0:
      self.synth.delete()
      raise SynthError(f"FluidSynth could not load the SoundFont {soundfont}; pass a valid "
                       "--soundfont=PATH.sf2")
    if self.synth.program_select(0, sfid, BANK, PRESET) != 0:
      self.synth.delete()
      raise SynthError(f"SoundFont {soundfont} has no bank {BANK} preset {PRESET} (grand piano); "
                       "pass a General MIDI --soundfont")
    write = fs._fl.fluid_synth_write_float
    write.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                      ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    write.restype = ctypes.c_int
    self._write = write

  def write(self, buf: np.ndarray, start: int, count: int) -> None:
    """Renders `count` frames into float32 stereo buf (N, 2) at frame `start`."""
    while count > 0:
      n = min(count, 1 << 20)
      ptr = buf.ctypes.data
      if self._write(self.synth.synth, n, ptr, 2 * start, 2, ptr, 2 * start + 1, 2) != 0:
        raise RuntimeError("fluid_synth_write_float failed")
      start += n
      count -= n

  def close(self) -> None:
    self.synth.delete()


def render_notes(notes: np.ndarray, sample_rate: int, settings: SynthSettings = SynthSettings(),
                 ) -> tuple[np.ndarray, dict[str, int]]:
  """Renders piano notes to mono audio.

  Args:
    notes: int64 (M, 4) onset_sample, offset_sample, midi_pitch, velocity at `sample_rate`, with
      offset > onset and at most one sounding note per pitch (see data_gen.midi).
    sample_rate: output rate in Hz (4000 for the dataset).
    settings: SoundFont, gain and tail length.

  Returns:
    (audio int16 (N,) at `sample_rate` with N > every offset, stats {clipped_samples}).
  """
  notes = np.asarray(notes, np.int64).reshape(-1, 4)
  rate = render_rate(sample_rate)
  factor = rate // sample_rate
  # Events at render-rate frames: note-offs (kind 0) before note-ons (kind 1) at the same frame.
  events = np.concatenate([
      np.stack([notes[:, 1] * factor, np.zeros(len(notes), np.int64), notes[:, 2],
                np.zeros(len(notes), np.int64)], 1),
      np.stack([notes[:, 0] * factor, np.ones(len(notes), np.int64), notes[:, 2], notes[:, 3]], 1),
  ])
  events = events[np.lexsort((events[:, 2], events[:, 1], events[:, 0]))]
  last = int(events[-1, 0]) if len(events) else 0
  block = rate // 10
  max_tail = max(1, int(round(settings.tail_seconds * rate / block))) * block

  # Rendered in chunks and resampled as a stream, so memory stays small for long songs.
  import soxr
  stream = soxr.ResampleStream(rate, sample_rate, 1, dtype="float64", quality="HQ") \
      if factor > 1 else None
  scratch = np.zeros((_CHUNK, 2), np.float32)
  pieces: list[np.ndarray] = []

  def render(synth: _Synth, count: int) -> float:
    """Renders `count` frames; returns their peak."""
    peak = 0.0
    while count > 0:
      n = min(count, _CHUNK)
      synth.write(scratch, 0, n)
      peak = max(peak, float(np.abs(scratch[:n]).max()))
      mono = scratch[:n].astype(np.float64).mean(axis=1)
      pieces.append(stream.resample_chunk(mono) if stream else mono)
      count -= n
    return peak

  synth = _Synth(settings.soundfont, rate, settings.gain)
  try:
    pos = 0
    s = synth.synth
    for t, kind, key, vel in events.tolist():
      if t > pos:
        render(synth, t - pos)
        pos = t
      if kind:
        s.noteon(0, key, vel)
      else:
        s.noteoff(0, key)
    while True:  # at least one block, so the audio outlasts the last note-off
      peak = render(synth, block)
      pos += block
      if pos >= last + max_tail or peak < SILENCE:
        break
    n_out = -(-pos // factor)  # ceil
    render(synth, n_out * factor - pos)
  finally:
    synth.close()
  if stream is not None:
    pieces.append(stream.resample_chunk(np.zeros(0), last=True))
  out = np.concatenate(pieces)
  out = np.pad(out, (0, max(0, n_out - len(out))))[:n_out]
  clipped = int(np.sum(np.abs(out) > 1.0))
  return wav.float_to_pcm16(out), {"clipped_samples": clipped}

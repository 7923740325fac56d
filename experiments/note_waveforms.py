r"""How the simulator's piano sounds a struck key: the facts behind `keysynth.onset_grid`.

  python -m experiments.note_waveforms [--keys=45,57,69] [--velocity=80]

Renders single notes with the dataset's synthesizer (`data_gen.synth.render_notes`, 4 kHz) and
prints, per key:
- the largest difference between the note struck at two onsets 2,000 samples apart on the same
  16-sample grid (the same waveform if FluidSynth plays a struck key the same way every time),
  and at an onset 5 samples off that grid;
- where the audio starts relative to the onset, for onsets 1000..1019 (FluidSynth applies a
  note-on at its next 64-frame block of the 16 kHz render: a lag that cycles with the onset
  modulo 16);
- the phase of each of the first 3 harmonics of the equal-tempered fundamental, every 0.1 s over
  0.7 s (complex demodulation over 50 ms windows), i.e. how far a partial with a fixed frequency
  and a phase fixed at the note's start drifts from the recording.
And for the last key: how well a note at another velocity is the same waveform scaled.
"""

from __future__ import annotations

import numpy as np
from absl import app, flags

from data_gen import synth

FLAGS = flags.FLAGS
RATE = 4000
LENGTH = 3000  # samples compared after each onset (0.75 s)
AUDIBLE = 1e-3  # full scale 1: the first sample above this is where the audio starts


def _define_flags() -> None:
  flags.DEFINE_list("keys", ["45", "57", "69"], "MIDI keys to render (A2, A3, A4).")
  flags.DEFINE_integer("velocity", 80, "MIDI velocity of the compared notes.")


def render_note(onset: int, key: int, velocity: int, duration: int = 4000) -> np.ndarray:
  """float64 audio (N,) in [-1, 1] of one note struck at sample `onset` for `duration` samples."""
  audio, _ = synth.render_notes(np.array([[onset, onset + duration, key, velocity]]), RATE)
  return audio.astype(np.float64) / 32768.0


def harmonic_phases(x: np.ndarray, f0: float, harmonic: int) -> tuple[np.ndarray, np.ndarray]:
  """Unwrapped phase (rad) and amplitude of harmonic `harmonic` of f0 (Hz) in x (T,) every 400
  samples, demodulated over 200-sample windows."""
  t = np.arange(len(x))
  base = x * np.exp(-2j * np.pi * harmonic * f0 * t / RATE)
  sums = np.array([base[i:i + 200].sum() for i in range(0, len(x) - 200, 400)])
  return np.unwrap(np.angle(sums)), 2 * np.abs(sums) / 200


def main(argv):
  del argv
  velocity = FLAGS.velocity
  for key in [int(k) for k in FLAGS.keys]:
    f0 = 440.0 * 2 ** ((key - 69) / 12)
    a = render_note(1008, key, velocity)[1008:1008 + LENGTH]
    b = render_note(3008, key, velocity)[3008:3008 + LENGTH]
    off = render_note(1013, key, velocity)[1013:1013 + LENGTH]
    print(f"key {key} ({f0:.1f} Hz): RMS {np.sqrt(np.mean(a ** 2)):.4f}; max difference between "
          f"onsets 1008 and 3008 (same grid) {np.abs(a - b).max():.6f}, 1008 and 1013 (off the "
          f"grid) {np.abs(a - off).max():.4f}")
    lags = []
    for onset in range(1000, 1020):
      x = render_note(onset, key, velocity)
      lags.append(int(np.argmax(np.abs(x[onset:]) > AUDIBLE)))
    print(f"  audio starts this many samples after onsets 1000..1019: {lags}")
    for h in (1, 2, 3):
      phase, amp = harmonic_phases(a, f0, h)
      print(f"  harmonic {h}: phase {np.round(phase, 2).tolist()} rad, amplitude "
            f"{np.round(amp, 3).tolist()}")
  base = render_note(1008, key, velocity)[1008:1008 + LENGTH]
  for other in (40, 110):
    x = render_note(1008, key, other)[1008:1008 + LENGTH]
    gain = x @ base / (base @ base)
    residual = np.linalg.norm(x - gain * base) / np.linalg.norm(x)
    print(f"key {key}, velocity {other} = velocity {velocity} x {gain:.3f}, relative residual "
          f"{residual:.4f}")


if __name__ == "__main__":
  _define_flags()
  app.run(main)

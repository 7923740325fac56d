"""Music-aware audio metrics: how close generated piano audio is to the reference and to the score.

All audio is mono float in [-1, 1] at `sample_rate` (4 kHz in the dataset); `notes` are int (M, 4)
arrays `onset_sample, offset_sample, midi_pitch, velocity` with sample indices relative to the
clip's first sample. Only notes struck inside the clip are evaluated, and the clip's first 50 ms
are not evaluated at all (true and detected onsets before 0.05 s are dropped): a clip that starts
while notes sound looks like an onset to a detector, and segment note lists may clip the onsets of
notes already sounding to 0 (`DeepSynthData.notes`), so neither can be told from a real key press.

Three views of the audio, each answering a different question:

* `stft_distance`: does it *sound like* the reference, spectrum by spectrum (lower is better)?
* `onset_scores`: are there attacks at the moments keys were struck (librosa onset detection tuned
  for 4 kHz, scored with `mir_eval.onset`)? Rhythm only: noise and clicks can score well here.
* `pitch_scores`: are the *right keys* heard at those moments? A simple blind transcription
  (harmonic templates fitted with non-negative least squares to the spectral change at each
  detected onset) scored note by note against the score with `mir_eval.transcription`. Noise,
  clicks, another piece and a one-semitone shift score near 0.

No single number is meaningful alone: tables should print the reference audio's and white noise's
rows beside a model's (`reference_and_noise_rows`), since even the reference audio does not reach
a pitch F1 of 1 on octave-heavy music (see `pitch_scores`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import librosa
import mir_eval
import numpy as np
from scipy.optimize import nnls

# Onset evaluation: a detected onset within +-50 ms of a true one is a hit (mir_eval's standard);
# notes struck within 30 ms of each other (chords, which a player never strikes perfectly together)
# are one onset.
ONSET_WINDOW_S = 0.05
ONSET_MERGE_S = 0.03
# Onsets (true and detected) earlier than this in a clip are not evaluated (see module docstring).
CLIP_EDGE_S = 0.05
# Multi-resolution STFT distance: FFT sizes at 4 kHz (16, 32, 64, 128 ms), hop = n_fft / 4.
STFT_FFT_SIZES_4KHZ = (64, 128, 256, 512)
# Log-magnitude floor (magnitudes are normalized so a full-scale sinusoid peaks at 0.5): -80 dB.
STFT_LOG_FLOOR = 1e-4
# Pitch transcription: keys whose fundamental is above this fraction of the Nyquist frequency are
# not heard in the audio (the resampler's anti-alias filter removes them) and are not evaluated.
AUDIBLE_FRACTION_OF_NYQUIST = 0.9
# Below -80 dBFS RMS a detected onset is treated as silence (not transcribed).
SILENCE_RMS = 1e-4

PIANO_LOWEST_MIDI = 21
PIANO_NUM_KEYS = 88


class MetricInputError(ValueError):
  """Audio or notes passed to a metric have the wrong shape, dtype or length."""


def _as_audio(audio: Any, name: str) -> np.ndarray:
  x = np.asarray(audio)
  if x.ndim != 1:
    raise MetricInputError(f"{name} must be mono audio of shape (T,), got shape {x.shape}; "
                           "pass one clip at a time")
  if not np.issubdtype(x.dtype, np.floating):
    raise MetricInputError(f"{name} must be float audio in [-1, 1], got dtype {x.dtype}; convert "
                           "int16 PCM with data_gen.wav.pcm16_to_float")
  x = x.astype(np.float32)
  if not np.all(np.isfinite(x)):
    raise MetricInputError(f"{name} contains NaN or infinite samples")
  return x


def _as_notes(notes: Any) -> np.ndarray:
  n = np.asarray(notes)
  if n.size == 0:
    return np.zeros((0, 4), np.int64)
  if n.ndim != 2 or n.shape[1] != 4 or not np.issubdtype(n.dtype, np.integer):
    raise MetricInputError(f"notes must be an int (M, 4) array of onset_sample, offset_sample, "
                           f"midi_pitch, velocity; got dtype {n.dtype}, shape {n.shape}")
  return n.astype(np.int64)


def _check_sample_rate(sample_rate: int) -> int:
  if not isinstance(sample_rate, (int, np.integer)) or sample_rate < 1000:
    raise MetricInputError(f"sample_rate must be an int number of Hz >= 1000, got {sample_rate!r}")
  return int(sample_rate)


def _struck_in_clip(notes: np.ndarray, num_samples: int, sample_rate: int) -> np.ndarray:
  """Notes struck inside the evaluated part of the clip: CLIP_EDGE_S <= onset < end."""
  first = int(np.ceil(CLIP_EDGE_S * sample_rate))
  return notes[(notes[:, 0] >= first) & (notes[:, 0] < num_samples)]


def clip_notes(notes: np.ndarray, length: int) -> np.ndarray:
  """Notes int (M, 4) (onset, offset in samples, pitch, velocity) struck before `length`
  samples, offsets clipped to it: the notes a clip of that length shows."""
  notes = np.asarray(notes, np.int64).reshape(-1, 4)
  notes = notes[notes[:, 0] < length].copy()
  notes[:, 1] = np.minimum(notes[:, 1], length)
  return notes


def midi_to_hz(midi: Any) -> np.ndarray:
  """MIDI pitch (any shape) -> fundamental frequency in Hz (A4 = 69 = 440 Hz)."""
  return 440.0 * 2.0 ** ((np.asarray(midi, np.float64) - 69.0) / 12.0)


def highest_audible_midi(sample_rate: int) -> int:
  """Highest piano key whose fundamental is <= 0.9 x Nyquist (A6 = 93 at 4 kHz)."""
  keys = np.arange(PIANO_LOWEST_MIDI, PIANO_LOWEST_MIDI + PIANO_NUM_KEYS)
  audible = keys[midi_to_hz(keys) <= AUDIBLE_FRACTION_OF_NYQUIST * sample_rate / 2]
  return int(audible[-1])


# ---------------------------------------------------------------------------------------------
# STFT distance


def stft_distance(generated: Any, reference: Any, sample_rate: int,
                  fft_sizes: Sequence[int] | None = None) -> float:
  """Multi-resolution STFT distance between two clips (0 for identical audio; lower is better).

  For each FFT size n (default 64, 128, 256, 512 samples at 4 kHz, i.e. 16-128 ms, scaled with the
  sample rate otherwise) with a Hann window, hop n/4 and centered frames, let G and R be the
  magnitude spectrograms of generated and reference divided by the window's sum (a full-scale
  sinusoid then peaks at 0.5). The distance at that resolution is

    spectral convergence ||R - G||_F / ||R||_F   +   mean |ln max(R, 1e-4) - ln max(G, 1e-4)|

  (the log term is a mean absolute difference of natural-log magnitudes with an -80 dB floor, so
  silence-vs-silence costs nothing). The result is the mean over resolutions. If the reference is
  all zeros, the convergence denominator is floored at 1e-8: any sound then costs a lot.

  Args:
    generated: (T,) float audio in [-1, 1].
    reference: (T,) float audio in [-1, 1], same length.
    sample_rate: Hz (4000 in the dataset).
    fft_sizes: optional FFT sizes in samples, overriding the default.

  Returns:
    A non-negative float.
  """
  sample_rate = _check_sample_rate(sample_rate)
  g = _as_audio(generated, "generated")
  r = _as_audio(reference, "reference")
  if g.shape != r.shape:
    raise MetricInputError(f"generated and reference must have the same length, got {g.shape[0]} "
                           f"and {r.shape[0]} samples; crop or pad to the clip length first")
  if fft_sizes is None:
    scale = sample_rate / 4000.0
    fft_sizes = tuple(max(16, int(2 ** round(np.log2(n * scale)))) for n in STFT_FFT_SIZES_4KHZ)
  total = 0.0
  for n_fft in fft_sizes:
    hop = max(1, n_fft // 4)
    window_sum = float(np.sum(np.hanning(n_fft + 1)[:-1]))

    def mag(x, n_fft=n_fft, hop=hop, window_sum=window_sum):
      spec = librosa.stft(x, n_fft=n_fft, hop_length=hop, window="hann", center=True,
                          pad_mode="constant")
      return np.abs(spec).astype(np.float64) / window_sum

    gm, rm = mag(g), mag(r)
    convergence = np.linalg.norm(rm - gm) / max(np.linalg.norm(rm), 1e-8)
    log_l1 = np.mean(np.abs(np.log(np.maximum(rm, STFT_LOG_FLOOR)) -
                            np.log(np.maximum(gm, STFT_LOG_FLOOR))))
    total += convergence + log_l1
  return float(total / len(fft_sizes))


def waveform_correlation(generated: Any, reference: Any) -> float:
  """Cosine similarity of two clips' waveforms (T,): 1 for the reference itself (at any gain),
  ~0 for noise or for the right partials at the wrong phases, 0 if either is silent.

  The STFT distance and the transcription metrics ignore phase; this does not, so it says
  whether generated audio lines up with the recording sample by sample (what a cross-entropy on
  the recording's samples rewards).
  """
  g = _as_audio(generated, "generated").astype(np.float64)
  r = _as_audio(reference, "reference").astype(np.float64)
  if g.shape != r.shape:
    raise MetricInputError(f"generated {g.shape} and reference {r.shape} differ in length")
  norm = float(np.linalg.norm(g) * np.linalg.norm(r))
  return float(g @ r / norm) if norm > 0 else 0.0


# ---------------------------------------------------------------------------------------------
# Onsets


def _onset_params(sample_rate: int) -> dict[str, Any]:
  """librosa onset parameters tuned at 4 kHz (n_fft 256 = 64 ms, hop 32 = 8 ms, 40 mel bands up
  to 2 kHz, peak-pick delta 0.03), durations kept constant at other rates."""
  n_fft = int(2 ** round(np.log2(0.064 * sample_rate)))
  return dict(n_fft=n_fft, hop_length=n_fft // 8, n_mels=40, fmax=min(2000.0, sample_rate / 2))


def detect_onsets(audio: Any, sample_rate: int) -> np.ndarray:
  """Onset times in seconds (K,) float64 detected in the audio with librosa, tuned for 4 kHz.

  librosa's defaults assume ~22 kHz and find almost nothing useful at 4 kHz; with a 64 ms FFT,
  8 ms hop, 40 mel bands up to 2 kHz and peak-picking delta 0.03, FluidSynth piano renderings score
  onset F1 0.96-1.0 against their MIDI. Exact digital silence yields no onsets.
  """
  sample_rate = _check_sample_rate(sample_rate)
  y = _as_audio(audio, "audio")
  p = _onset_params(sample_rate)
  if y.shape[0] < p["n_fft"] or not np.any(y):
    return np.zeros((0,), np.float64)
  envelope = librosa.onset.onset_strength(y=y, sr=sample_rate, n_fft=p["n_fft"],
                                          hop_length=p["hop_length"], n_mels=p["n_mels"],
                                          fmax=p["fmax"])
  onsets = librosa.onset.onset_detect(onset_envelope=envelope, sr=sample_rate,
                                      hop_length=p["hop_length"], units="time", delta=0.03)
  return np.asarray(onsets, np.float64)


def reference_onsets(notes: Any, sample_rate: int, num_samples: int,
                     merge_s: float = ONSET_MERGE_S) -> np.ndarray:
  """True onset times in seconds (K,) of the notes struck in the clip, chords merged.

  Only onsets in [CLIP_EDGE_S, num_samples / sample_rate) count. Onsets are sorted; each starts
  a group and every onset within `merge_s` seconds of the group's first one joins it; a group's
  time is its first onset.
  """
  sample_rate = _check_sample_rate(sample_rate)
  n = _struck_in_clip(_as_notes(notes), num_samples, sample_rate)
  times = np.unique(n[:, 0]) / sample_rate
  merged: list[float] = []
  for t in times:
    if not merged or t - merged[-1] > merge_s:
      merged.append(float(t))
  return np.asarray(merged, np.float64)


def _prf(precision: float, recall: float, f1: float) -> dict[str, float]:
  return dict(precision=float(precision), recall=float(recall), f1=float(f1))


def onset_scores(audio: Any, sample_rate: int, notes: Any,
                 window: float = ONSET_WINDOW_S) -> dict[str, float]:
  """Onset precision / recall / F1 of the audio against the notes' key-press times.

  Onsets detected in the audio (`detect_onsets`, those before CLIP_EDGE_S dropped) are matched
  one-to-one to the true onsets (`reference_onsets`: notes struck in the clip, chords within
  30 ms merged) by
  `mir_eval.onset.f_measure` with a +-`window` second tolerance (50 ms). Silence has recall 0;
  if the clip has no true onsets and none are detected, all three are 1 (nothing to find, nothing
  invented); if it has none but some are detected, precision and F1 are 0.

  Returns:
    dict(precision, recall, f1, num_reference, num_detected).
  """
  y = _as_audio(audio, "audio")
  ref = reference_onsets(notes, sample_rate, y.shape[0])
  est = detect_onsets(y, sample_rate)
  est = est[est >= CLIP_EDGE_S]
  counts = dict(num_reference=int(ref.shape[0]), num_detected=int(est.shape[0]))
  if ref.shape[0] == 0:
    score = 1.0 if est.shape[0] == 0 else 0.0
    return {**_prf(score, score, score), **counts}
  if est.shape[0] == 0:
    return {**_prf(0.0, 0.0, 0.0), **counts}
  f1, precision, recall = mir_eval.onset.f_measure(ref, est, window=window)
  return {**_prf(precision, recall, f1), **counts}


# ---------------------------------------------------------------------------------------------
# Pitch: blind note transcription + note-level scoring

# Transcription analysis window: 128 ms at 4 kHz (7.8 Hz bins), scaled with the sample rate.
_TRANSCRIBE_WINDOW_S = 0.128
# The "after" window starts this fraction of a window before the detected onset (onset detection
# jitter; an impulse exactly at a Hann window's edge would be invisible).
_TRANSCRIBE_LEAD = 0.125
# Spectral change = max(after - 0.7 * before, 0): 0.7 < 1 keeps re-struck, still-ringing keys.
_BEFORE_WEIGHT = 0.7
# A key is transcribed at an onset when its activation is >= 30% of the largest one there.
_RELATIVE_THRESHOLD = 0.3
# Partial-amplitude laws of the templates; each key gets all four and its activation is their sum,
# so one key can fit bright, dull, weak-fundamental and hollow (odd-partial) piano tones.
_TEMPLATE_LAWS = ("dull", "bright", "weak_fundamental", "odd")
_MAX_PARTIALS = 30


def _partial_amplitude(law: str, h: int) -> float:
  if law == "dull":
    return 0.5 ** (h - 1)
  if law == "bright":
    return 0.9 ** (h - 1)
  if law == "weak_fundamental":
    return 0.3 if h == 1 else 0.85 ** (h - 2)
  if law == "odd":
    return 1.0 if h % 2 else 0.3
  raise ValueError(f"unknown partial law {law!r}")


def _window_length(sample_rate: int) -> int:
  return int(2 ** round(np.log2(_TRANSCRIBE_WINDOW_S * sample_rate)))


@functools.lru_cache(maxsize=8)
def _key_templates(sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
  """(bins, laws x keys) unit-norm magnitude spectra of Hann-windowed harmonic tones, and the
  audible keys (K,) they belong to (MIDI 21 .. highest_audible_midi)."""
  n = _window_length(sample_rate)
  keys = np.arange(PIANO_LOWEST_MIDI, highest_audible_midi(sample_rate) + 1)
  t = np.arange(n) / sample_rate
  window = np.hanning(n + 1)[:-1]
  fmax = AUDIBLE_FRACTION_OF_NYQUIST * sample_rate / 2
  columns = []
  for law in _TEMPLATE_LAWS:
    for f0 in midi_to_hz(keys):
      x = np.zeros(n)
      for h in range(1, _MAX_PARTIALS + 1):
        if h * f0 > fmax:
          break
        x += _partial_amplitude(law, h) * np.cos(2 * np.pi * h * f0 * t)
      spectrum = np.abs(np.fft.rfft(x * window))
      columns.append(spectrum / np.linalg.norm(spectrum))
  return np.stack(columns, axis=1), keys


def _window_at(y: np.ndarray, start: int, n: int) -> np.ndarray:
  segment = np.zeros(n, np.float64)
  lo, hi = max(start, 0), min(start + n, y.shape[0])
  if hi > lo:
    segment[lo - start:hi - start] = y[lo:hi]
  return segment


def transcribe_audio(audio: Any, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
  """Blind note transcription: which keys were struck at which onsets.

  At each onset found by `detect_onsets`, the magnitude spectrum of the 128 ms window starting
  16 ms before the onset ("after") is compared with the 128 ms just before it ("before"); the
  spectral change max(after - 0.7 before, 0) is fitted by non-negative least squares
  (scipy.optimize.nnls) with harmonic templates of every audible key (4 partial-amplitude laws per
  key, activations summed per key). Keys with activation >= 30% of the onset's largest are
  transcribed. Onsets whose "after" window is quieter than -80 dBFS RMS are skipped.

  Returns:
    (onset_seconds (E,) float64, midi_pitch (E,) int64), sorted by onset then pitch.
  """
  sample_rate = _check_sample_rate(sample_rate)
  y = _as_audio(audio, "audio").astype(np.float64)
  onset_out, pitch_out = [], []
  for onset in detect_onsets(y.astype(np.float32), sample_rate):
    per_key = onset_key_activations(y, sample_rate, int(round(onset * sample_rate)))
    if per_key.max() <= 0:
      continue
    for k in np.flatnonzero(per_key >= _RELATIVE_THRESHOLD * per_key.max()):
      onset_out.append(onset)
      pitch_out.append(k + 21)
  return np.asarray(onset_out, np.float64), np.asarray(pitch_out, np.int64)


def onset_key_activations(audio: Any, sample_rate: int, onset_sample: int) -> np.ndarray:
  """How strongly each key's harmonics start at `onset_sample`: float64 (88,) (key k = MIDI
  21 + k; 0 for keys above the audible range), the per-key sum of the non-negative least-squares
  fit of the spectral change there (see `transcribe_audio`). All zero when the window after the
  onset is silent (< -80 dBFS RMS) or nothing grows."""
  sample_rate = _check_sample_rate(sample_rate)
  y = np.asarray(audio, np.float64)
  templates, keys = _key_templates(sample_rate)
  n = _window_length(sample_rate)
  window = np.hanning(n + 1)[:-1]
  start = int(onset_sample) - int(round(_TRANSCRIBE_LEAD * n))
  out = np.zeros(88)
  after = _window_at(y, start, n)
  if np.sqrt(np.mean(after ** 2)) < SILENCE_RMS:
    return out
  before = _window_at(y, start - n, n)
  change = np.maximum(np.abs(np.fft.rfft(after * window)) -
                      _BEFORE_WEIGHT * np.abs(np.fft.rfft(before * window)), 0.0)
  if not np.any(change > 0):
    return out
  activation, _ = nnls(templates, change)
  out[keys - 21] = activation.reshape(len(_TEMPLATE_LAWS), keys.shape[0]).sum(axis=0)
  return out


def _note_prf(ref_on: np.ndarray, ref_pitch: np.ndarray, est_on: np.ndarray,
              est_pitch: np.ndarray, window: float) -> tuple[float, float, float]:
  """Onset-only note P/R/F1 with mir_eval.transcription (pitch must match to 50 cents)."""
  if ref_on.shape[0] == 0 and est_on.shape[0] == 0:
    return 1.0, 1.0, 1.0
  if ref_on.shape[0] == 0 or est_on.shape[0] == 0:
    return 0.0, 0.0, 0.0
  # Offsets are ignored (offset_ratio=None); mir_eval still wants positive-length intervals.
  p, r, f, _ = mir_eval.transcription.precision_recall_f1_overlap(
      np.stack([ref_on, ref_on + 1.0], 1), midi_to_hz(ref_pitch),
      np.stack([est_on, est_on + 1.0], 1), midi_to_hz(est_pitch),
      onset_tolerance=window, offset_ratio=None)
  return float(p), float(r), float(f)


def _unique_pitch_classes(onsets: np.ndarray, pitches: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  if onsets.shape[0] == 0:
    return onsets, pitches
  pairs = np.unique(np.stack([np.round(onsets, 6), pitches % 12], axis=1), axis=0)
  return pairs[:, 0], 60 + pairs[:, 1].astype(np.int64)


def pitch_scores(audio: Any, sample_rate: int, notes: Any,
                 window: float = ONSET_WINDOW_S) -> dict[str, float]:
  """Note-level pitch accuracy of the audio against the score: were the right keys heard when?

  The audio is transcribed blind (`transcribe_audio`: onset detection, then harmonic templates
  fitted by non-negative least squares to the spectral change at each onset), and the transcribed
  (onset, key) pairs are matched one-to-one to the true notes by
  `mir_eval.transcription.precision_recall_f1_overlap` in onset-only mode: a match needs the same
  key (pitch within 50 cents, so a one-semitone error is a miss) and onsets within +-`window`
  seconds (50 ms). Offsets are ignored (a piano note's audible end is not its key release).

  Handled specially:
  * Keys whose fundamental is above 0.9 x Nyquist (above A6 = MIDI 93 at 4 kHz) are inaudible in
    the audio and cannot be transcribed: such true notes are dropped from the evaluation and
    counted in `num_inaudible`.
  * Notes whose onset is outside the clip are ignored (not struck in it), and so are true and
    transcribed notes in the clip's first CLIP_EDGE_S = 50 ms (see the module docstring).
  * No true notes and none transcribed -> 1; silence -> 0 recall.

  Also reported: `chroma_*`, the same scores on (onset, pitch class) pairs with duplicates merged,
  i.e. forgiving octave errors and octave doublings (a one-semitone error is still a miss).

  What to expect (measured with `python -m experiments.calibrate_metrics --num_examples=24` on
  5 s test segments of the default dataset): the reference audio scores F1 0.69 (precision 0.62,
  recall 0.81; 0.95 on a Bach prelude, 0.71 on the Maple Leaf Rag in 30 s excerpts), because a
  spectral transcription cannot tell an octave doubling from a brighter single note and misses
  re-struck ringing keys; the reference shifted one semitone scores 0.04, another piece 0.03,
  white noise 0.02, clicks at the true onsets 0.03. Always compare with the reference's score.

  Returns:
    dict(precision, recall, f1, chroma_precision, chroma_recall, chroma_f1, num_reference,
    num_transcribed, num_inaudible).
  """
  sample_rate = _check_sample_rate(sample_rate)
  y = _as_audio(audio, "audio")
  n = _struck_in_clip(_as_notes(notes), y.shape[0], sample_rate)
  audible = n[:, 2] <= highest_audible_midi(sample_rate)
  ref_on = n[audible, 0] / sample_rate
  ref_pitch = n[audible, 2]
  est_on, est_pitch = transcribe_audio(y, sample_rate)
  keep = est_on >= CLIP_EDGE_S
  est_on, est_pitch = est_on[keep], est_pitch[keep]
  p, r, f = _note_prf(ref_on, ref_pitch, est_on, est_pitch, window)
  cp, cr, cf = _note_prf(*_unique_pitch_classes(ref_on, ref_pitch),
                         *_unique_pitch_classes(est_on, est_pitch), window)
  return dict(precision=p, recall=r, f1=f, chroma_precision=cp, chroma_recall=cr, chroma_f1=cf,
              num_reference=int(ref_on.shape[0]), num_transcribed=int(est_on.shape[0]),
              num_inaudible=int(np.sum(~audible)))


# ---------------------------------------------------------------------------------------------
# Bundles and tables

# Columns printed by `markdown_table` by default, in order.
TABLE_COLUMNS = ("onset_f1", "pitch_precision", "pitch_recall", "pitch_f1", "pitch_chroma_f1",
                 "stft_distance", "waveform_correlation")


def audio_metrics(generated: Any, reference: Any, sample_rate: int,
                  notes: Any) -> dict[str, float]:
  """All metrics of one generated clip, flat: `onset_*`, `pitch_*`, `stft_distance` and
  `waveform_correlation`.

  Args:
    generated: (T,) float audio in [-1, 1] to score.
    reference: (T,) float audio in [-1, 1], the true recording of the same clip.
    sample_rate: Hz (4000 in the dataset).
    notes: int (M, 4) notes of the clip (onset/offset in samples relative to the clip start).
  """
  out = {f"onset_{k}": v for k, v in onset_scores(generated, sample_rate, notes).items()}
  out.update({f"pitch_{k}": v for k, v in pitch_scores(generated, sample_rate, notes).items()})
  out["stft_distance"] = stft_distance(generated, reference, sample_rate)
  out["waveform_correlation"] = waveform_correlation(generated, reference)
  return out


def white_noise_like(reference: Any, seed: int = 0) -> np.ndarray:
  """Gaussian white noise (T,) float32 with the reference's RMS, clipped to [-1, 1].

  Deterministic: numpy's default_rng(seed). An all-zero reference gives all-zero noise.
  """
  r = _as_audio(reference, "reference").astype(np.float64)
  rms = float(np.sqrt(np.mean(r ** 2))) if r.shape[0] else 0.0
  noise = np.random.default_rng(seed).standard_normal(r.shape[0]) * rms
  return np.clip(noise, -1.0, 1.0).astype(np.float32)


def mean_metrics(rows: Sequence[Mapping[str, float]]) -> dict[str, float]:
  """Mean of each metric over clips (keys of the first row; every row must have them)."""
  if not rows:
    raise MetricInputError("mean_metrics needs at least one row of metrics")
  return {k: float(np.mean([row[k] for row in rows])) for k in rows[0]}


def reference_and_noise_rows(references: Sequence[Any], sample_rate: int,
                             notes: Sequence[Any], seed: int = 0) -> dict[str, dict[str, float]]:
  """The two anchor rows every metrics table should print beside the models.

  Args:
    references: list of (T_i,) float reference clips.
    sample_rate: Hz.
    notes: list of int (M_i, 4) notes, one per clip.
    seed: noise seed; clip i uses seed + i.

  Returns:
    {"reference audio": mean metrics of each reference against itself,
     "white noise (matched RMS)": mean metrics of `white_noise_like(reference, seed + i)`}.
  """
  if len(references) != len(notes):
    raise MetricInputError(f"got {len(references)} reference clips but {len(notes)} note arrays")
  ref_rows, noise_rows = [], []
  for i, (r, n) in enumerate(zip(references, notes, strict=True)):
    ref_rows.append(audio_metrics(r, r, sample_rate, n))
    noise_rows.append(audio_metrics(white_noise_like(r, seed + i), r, sample_rate, n))
  return {"reference audio": mean_metrics(ref_rows),
          "white noise (matched RMS)": mean_metrics(noise_rows)}


def markdown_table(rows: Mapping[str, Mapping[str, float]],
                   columns: Sequence[str] = TABLE_COLUMNS, digits: int = 3) -> str:
  """A markdown table: one row per name, one column per metric (missing metrics print '-')."""
  lines = ["| audio | " + " | ".join(columns) + " |",
           "|---|" + "---:|" * len(columns)]
  for name, metrics in rows.items():
    cells = [f"{metrics[c]:.{digits}f}" if c in metrics else "-" for c in columns]
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
  return "\n".join(lines)

"""Evaluation of the transcribe-then-synthesize baseline on a dataset split.

Key precision / recall / F1 at frame level (`key_scores`: every (frame, key) pair of the split's
frames) and at note level (`note_scores`: transcribed notes against the score, mir_eval onset
matching), and the audio metrics of `deepsynth_jax.metrics` on the split's segments beside the
reference audio's and white noise's rows (`evaluate`). Audio is at the dataset's sample rate
(4 kHz); notes are int (M, 4) onset_sample, offset_sample, midi_pitch, velocity.
"""

from __future__ import annotations

from typing import Any

import mir_eval
import numpy as np

from deepsynth_jax import input_pipeline, metrics
from deepsynth_jax.transcription import (
    Baseline,
    predict_keys,
    split_frames,
    synthesize,
    transcribe,
)


def key_scores(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
  """Frame-level key precision / recall / F1 of bool (F, 88) key states over all (frame, key)
  pairs (micro-averaged), and the fraction of frames with every key right (exact_frames)."""
  p, t = np.asarray(predicted, bool), np.asarray(truth, bool)
  tp = int(np.sum(p & t))
  precision = tp / max(int(p.sum()), 1) if p.any() else float(not t.any())
  recall = tp / max(int(t.sum()), 1) if t.any() else 1.0
  f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
  return dict(precision=float(precision), recall=float(recall), f1=float(f1),
              exact_frames=float(np.mean(np.all(p == t, axis=1))) if p.shape[0] else 1.0)


def note_scores(estimated: np.ndarray, reference: np.ndarray, sample_rate: int,
                onset_tolerance: float = 0.05) -> dict[str, float]:
  """Note-level precision / recall / F1 of estimated vs reference notes (int (M, 4) each):
  mir_eval.transcription onset-only matching (exact key, onsets within `onset_tolerance` seconds,
  offsets ignored).

  Returns:
    dict(precision, recall, f1, matched, num_estimated, num_reference).
  """
  est, ref = np.asarray(estimated).reshape(-1, 4), np.asarray(reference).reshape(-1, 4)
  matched = 0
  if est.shape[0] and ref.shape[0]:
    def intervals(n):
      on = n[:, 0] / sample_rate
      return np.stack([on, np.maximum(n[:, 1] / sample_rate, on + 1e-3)], axis=1)

    matched = len(mir_eval.transcription.match_notes(
        intervals(ref), metrics.midi_to_hz(ref[:, 2]), intervals(est),
        metrics.midi_to_hz(est[:, 2]), onset_tolerance=onset_tolerance, offset_ratio=None))
  return {**_prf_from_counts(matched, est.shape[0], ref.shape[0]), "matched": matched,
          "num_estimated": int(est.shape[0]), "num_reference": int(ref.shape[0])}


def _prf_from_counts(matched: int, num_estimated: int, num_reference: int) -> dict[str, float]:
  precision = matched / num_estimated if num_estimated else float(num_reference == 0)
  recall = matched / num_reference if num_reference else float(num_estimated == 0)
  f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
  return dict(precision=float(precision), recall=float(recall), f1=float(f1))


def evaluate(baseline: Baseline, data: input_pipeline.DeepSynthData, split: str,
             num_segments: int = 0, seed: int = 0) -> dict[str, Any]:
  """Key and audio metrics of the baseline on `split` (see the module docstring).

  Args:
    baseline: the trained classifier.
    data: a loaded dataset.
    split: split to evaluate.
    num_segments: evaluate this many segments spread evenly over the split (0: all).
    seed: seed of the noise row.

  Returns:
    {"frame_keys": key_scores over all frames of the split (`split_frames`) and num_frames,
    "notes": pooled note_scores of the segments' transcriptions (notes struck after the first
    50 ms of each segment), "audio": {"baseline", "reference audio", "white noise (matched RMS)"}
    mean audio metrics, "num_segments"}.
  """
  frames, keys, _ = split_frames(data, split)
  frame_scores = key_scores(predict_keys(baseline, frames), keys)
  n = data.num_examples(split)
  count = n if num_segments <= 0 else min(num_segments, n)
  indices = np.unique(np.round(np.linspace(0, n - 1, count)).astype(int)).tolist()
  sr, t = data.sample_rate, data.segment_samples
  soundfont = data.manifest["soundfont"]["path"]
  edge = int(np.ceil(metrics.CLIP_EDGE_S * sr))
  matched = estimated = reference_count = 0
  audio_rows, references, notes_list = [], [], []
  for i in indices:
    example = data.example(split, i)
    f = int(example["num_frames"])
    notes = data.notes(split, i)
    predicted = transcribe(baseline, example["frames"][:f], example["frame_start"][:f], t)
    counted = note_scores(predicted[predicted[:, 0] >= edge], notes[notes[:, 0] >= edge], sr)
    matched += counted["matched"]
    estimated += counted["num_estimated"]
    reference_count += counted["num_reference"]
    generated = synthesize(predicted, t, sr, soundfont, baseline.config.get("synth_gain"))
    audio_rows.append(metrics.audio_metrics(generated, example["audio"], sr, notes))
    references.append(example["audio"])
    notes_list.append(notes)
  audio = {"baseline": metrics.mean_metrics(audio_rows)}
  audio.update(metrics.reference_and_noise_rows(references, sr, notes_list, seed))
  return {"frame_keys": {**frame_scores, "num_frames": int(frames.shape[0])},
          "notes": {**_prf_from_counts(matched, estimated, reference_count), "matched": matched,
                    "num_estimated": estimated, "num_reference": reference_count},
          "audio": audio, "num_segments": len(indices)}

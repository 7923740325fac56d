"""Several models side by side on the same examples: which examples, the baseline's row, the table.

`spread_indices` picks examples evenly over the songs of a split; `baseline_rows` scores the
transcribe-then-synthesize baseline (`deepsynth_jax.transcription`) on them; `comparison_table`
prints the reference audio, white noise, the baseline and each evaluated run as one Markdown
table. A new column is one entry of `COMPARISON_COLUMNS` and its cell in `comparison_table`.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from deepsynth_jax import metrics, transcription


def speed(times: list[float], length: int, rate: int) -> dict[str, Any]:
  """Generation speed of clips of `length` samples at `rate` Hz taking `times` seconds each; the
  first clip (which includes compilation) is left out if there are others."""
  timed = times[1:] if len(times) > 1 else times
  per_second = length * len(timed) / max(sum(timed), 1e-9)
  return {"samples_per_second": per_second, "real_time_factor": per_second / rate,
          "timed_examples": len(timed), "includes_compilation": len(times) == 1}


def spread_indices(data: Any, split: str, per_song: int) -> list[int]:
  """`per_song` evenly spaced examples of every song in `split` (split order is song by song)."""
  songs: dict[int, list[int]] = {}
  for i in range(data.num_examples(split)):
    songs.setdefault(data.segment(split, i)[0], []).append(i)
  picked: list[int] = []
  for rows in songs.values():
    take = np.linspace(0, len(rows) - 1, min(per_song, len(rows))).round().astype(int)
    picked += [rows[j] for j in take]
  return sorted(set(picked))


def baseline_rows(baseline_dir: str, data: Any, split: str, indices: list[int],
                  length: int) -> dict[str, Any]:
  """The transcribe-then-synthesize baseline's music metrics on the same examples."""
  model = transcription.load_baseline(baseline_dir)
  soundfont = data.manifest["soundfont"]["path"]
  rows, times = [], []
  for i in indices:
    ex = data.example(split, i)
    n = int(np.sum(ex["frame_start"][:int(ex["num_frames"])] < length))  # frames inside the clip
    t0 = time.perf_counter()
    audio = transcription.baseline_audio(model, ex["frames"][:n], ex["frame_start"][:n], length,
                                        data.sample_rate, soundfont)
    times.append(time.perf_counter() - t0)
    rows.append(metrics.audio_metrics(audio, ex["audio"][:length], data.sample_rate,
                                          metrics.clip_notes(data.notes(split, i), length)))
  return {"music": metrics.mean_metrics(rows), "speed": speed(times, length,
                                                                     data.sample_rate)}


COMPARISON_COLUMNS = ("key labels", "training video", "teacher-forced CE", "free-running CE",
                      "STFT distance", "waveform corr.", "onset F1", "pitch F1",
                      "generation (x real time)")


def learned_from_text(learned_from: dict) -> str:
  """"no key labels, sparse video" etc. for a run's `learned_from` facts."""
  uses = learned_from.get("uses_key_labels")
  labels = {True: "key labels", False: "no key labels"}.get(uses, "key labels unknown")
  return f"{labels}, {learned_from.get('frame_mode', 'unknown')} video"


def comparison_table(results: dict[str, dict[str, Any]],
                     baseline: dict[str, Any] | None = None) -> str:
  """Markdown: reference audio, noise, the baseline and each run on the same examples."""
  def cell(v, fmt=".3f"):
    return "-" if v is None else format(v, fmt)

  lines = ["| audio | " + " | ".join(COMPARISON_COLUMNS) + " |",
           "|---|" + "---:|" * len(COMPARISON_COLUMNS)]
  first = next(iter(results.values()))["mean"]

  def music_row(name, music, tf=None, fr=None, speed=None, learned=None):
    learned = learned or {}
    labels = {True: "yes", False: "no"}.get(learned.get("uses_key_labels"), "-")
    lines.append(f"| {name} | {labels} | {learned.get('frame_mode', '-')} | "
                 f"{cell(tf)} | {cell(fr)} | {cell(music.get('stft_distance'))} | "
                 f"{cell(music.get('waveform_correlation'))} | "
                 f"{cell(music.get('onset_f1'))} | {cell(music.get('pitch_f1'))} | "
                 f"{cell(speed, '.1f')} |")

  music_row("reference audio", first.get("reference_music", {}))
  music_row("white noise (matched RMS)", first.get("noise_music", {}))
  if baseline is not None:
    music_row("baseline: transcribe + FluidSynth", baseline["music"],
              speed=baseline["speed"]["real_time_factor"],
              learned={"uses_key_labels": True, "frame_mode": "-"})
  for name, r in results.items():
    m = r["mean"]
    music_row(name, m.get("music", {}), m["teacher_forced_cross_entropy"],
              m["free_running_cross_entropy"], r["speed"]["real_time_factor"],
              r.get("learned_from"))
  return "\n".join(lines)

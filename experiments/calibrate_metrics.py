"""Calibrates the audio metrics on real dataset segments: what do good and bad audio score?

  python -m experiments.calibrate_metrics [--data_dir=data/deepsynth] [--num_examples=16]
      [--split=test] [--out=calibration.json]

For `num_examples` segments spread evenly over the split, scores (deepsynth_jax.metrics) against
the segment's notes and reference audio:
  reference audio            the dataset's audio itself (the ceiling)
  reference re-rendered      the song's notes rendered again with data_gen.synth (checks that the
                             renders below are comparable: should equal the reference)
  shifted +1 semitone        the song's notes one key higher, rendered the same way
  another piece              the same-length segment of another song of the split
  white noise (matched RMS)  Gaussian noise with the reference's RMS (seeded)
  clicks at true onsets      a 10 ms decaying noise burst at every true onset, nothing else
  silence                    zeros
and prints a markdown table of the means over segments.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
from absl import app, flags

from data_gen import wav
from deepsynth_jax import metrics

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", "data/deepsynth", "Dataset directory (manifest.json inside).")
flags.DEFINE_integer("num_examples", 16, "Segments to score (spread evenly over the split).")
flags.DEFINE_string("split", "test", "Split to take segments from.")
flags.DEFINE_integer("seed", 0, "Seed of the noise rows.")
flags.DEFINE_string("out", None, "Optional JSON file for the per-row means.")

ROWS = ("reference audio", "reference re-rendered", "shifted +1 semitone", "another piece",
        "white noise (matched RMS)", "clicks at true onsets", "silence")


def clicks_at(notes: np.ndarray, num_samples: int, sample_rate: int, peak: float,
              seed: int) -> np.ndarray:
  """float32 (T,): a 10 ms exponentially decaying noise burst of peak `peak` at every onset."""
  rng = np.random.default_rng(seed)
  length = max(1, int(0.01 * sample_rate))
  burst = rng.standard_normal(length) * np.exp(-np.arange(length) / (length / 4))
  burst *= peak / max(np.abs(burst).max(), 1e-12)
  out = np.zeros(num_samples)
  for onset in np.unique(notes[:, 0]):
    if 0 < onset < num_samples:
      end = min(onset + length, num_samples)
      out[onset:end] += burst[:end - onset]
  return np.clip(out, -1, 1).astype(np.float32)


class SongRenderer:
  """Renders (and caches) whole songs of the dataset, optionally transposed, with data_gen.synth
  and the manifest's SoundFont and synth settings."""

  def __init__(self, data_dir: str, manifest: dict):
    from data_gen import synth

    self._synth = synth
    self._data_dir = data_dir
    self._manifest = manifest
    options = manifest.get("synth", {})
    self._settings = synth.SynthSettings(
        soundfont=manifest["soundfont"]["path"],
        gain=float(options.get("gain", synth.DEFAULT_GAIN)),
        tail_seconds=float(options.get("tail_seconds", synth.DEFAULT_TAIL_SECONDS)))
    self._cache: dict[tuple[int, int], np.ndarray] = {}

  def song_notes(self, song: int) -> np.ndarray:
    path = os.path.join(self._data_dir, self._manifest["songs"][song]["file"])
    with np.load(path, allow_pickle=False) as z:
      return np.asarray(z["notes"], np.int64)

  def render(self, song: int, transpose: int = 0) -> np.ndarray:
    """float32 audio of the whole song with every note moved by `transpose` keys (notes leaving
    the piano's 21..108 are dropped)."""
    key = (song, transpose)
    if key not in self._cache:
      notes = self.song_notes(song).copy()
      notes[:, 2] += transpose
      notes = notes[(notes[:, 2] >= 21) & (notes[:, 2] <= 108)]
      pcm, _ = self._synth.render_notes(notes, int(self._manifest["sample_rate"]), self._settings)
      self._cache[key] = wav.pcm16_to_float(pcm)
    return self._cache[key]


def window(audio: np.ndarray, start: int, length: int) -> np.ndarray:
  out = np.zeros(length, np.float32)
  piece = audio[start:start + length]
  out[:piece.shape[0]] = piece
  return out


def calibrate(data_dir: str, split: str, num_examples: int, seed: int) -> dict[str, dict]:
  """Mean metrics per row (see the module docstring) over `num_examples` segments of `split`."""
  from deepsynth_jax import input_pipeline

  data = input_pipeline.load_dataset(data_dir)
  n = data.num_examples(split)
  if n == 0:
    raise ValueError(f"split {split!r} of {data_dir} has no segments; pick another --split")
  sr, t = data.sample_rate, data.segment_samples
  indices = np.unique(np.round(np.linspace(0, n - 1, min(num_examples, n))).astype(int))
  songs = [data.segment(split, i)[0] for i in range(n)]
  if len(set(songs)) < 2:
    raise ValueError(f"split {split!r} holds one song only; 'another piece' needs two: pick "
                     "another --split")
  renderer = SongRenderer(data_dir, data.manifest)
  per_row: dict[str, list[dict]] = {name: [] for name in ROWS}
  for k, i in enumerate(indices.tolist()):
    song, start = data.segment(split, i)
    example = data.example(split, i)
    reference = example["audio"]
    notes = data.notes(split, i)
    # Another piece: the nearest later segment (cyclically) of a different song.
    j = next(j % n for j in range(i + 1, i + n) if songs[j % n] != song)
    clips = {
        "reference audio": reference,
        "reference re-rendered": window(renderer.render(song), start, t),
        "shifted +1 semitone": window(renderer.render(song, +1), start, t),
        "another piece": data.example(split, j)["audio"],
        "white noise (matched RMS)": metrics.white_noise_like(reference, seed + k),
        "clicks at true onsets": clicks_at(notes, t, sr, float(np.abs(reference).max()), seed + k),
        "silence": np.zeros(t, np.float32),
    }
    for name, clip in clips.items():
      per_row[name].append(metrics.audio_metrics(clip, reference, sr, notes))
  return {name: metrics.mean_metrics(rows) for name, rows in per_row.items()}


def main(argv):
  del argv
  began = time.perf_counter()
  rows = calibrate(FLAGS.data_dir, FLAGS.split, FLAGS.num_examples, FLAGS.seed)
  print(f"Mean over {FLAGS.num_examples} {FLAGS.split} segments of {FLAGS.data_dir} "
        f"({time.perf_counter() - began:.0f} s):\n")
  print(metrics.markdown_table(rows, columns=metrics.TABLE_COLUMNS + ("onset_precision",
                                                                     "onset_recall")))
  if FLAGS.out:
    tmp = f"{FLAGS.out}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
      json.dump(rows, f, indent=2, sort_keys=True)
    os.replace(tmp, FLAGS.out)


if __name__ == "__main__":
  app.run(main)

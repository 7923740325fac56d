r"""The ceiling on onsets and re-strikes a model can recover from each rendering of the video.

  python -m experiments.restrike_ceiling \
      --data_dirs=data/deepsynth,data/deepsynth_fps24,data/deepsynth_fps30,data/deepsynth_fps60 \
      --split=test [--per_song=2] [--json_out=ceiling.json]

For every dataset, the notes whose onset lies inside the chosen segments of the split (segments
overlap, so each note is counted once per song: the song's notes restricted to the union of the
chosen segments' windows, in song-absolute samples) are judged by `data_gen.visibility` against
the song's whole video (its own frame starts): sparse video by the press-frame rule, dense video
by the sampled-frame rule. Prints one markdown row per dataset: rendering (the manifest's
`frames`), onsets, onset ceiling, re-strikes (`RESTRIKE_GAP_SECONDS`), re-strike ceiling.

`--per_song=N` takes the same examples as `python -m deepsynth_jax.evaluate --per_song=N`
(`deepsynth_jax.comparison.spread_indices`: N evenly spaced segments of every song of the split,
first and last included); 0 takes every segment. Song files are read with numpy (only `notes` and
`frame_start`; no sha256 check, no audio or frames loaded).
"""

from __future__ import annotations

import json
import os

import numpy as np
from absl import app, flags

from data_gen import visibility
from deepsynth_jax.comparison import spread_indices

FLAGS = flags.FLAGS


def _define_flags() -> None:
  # Defined only when run as a program, so that importing `dataset_row` defines no flags.
  flags.DEFINE_list("data_dirs", ["data/deepsynth", "data/deepsynth_fps24",
                                  "data/deepsynth_fps30", "data/deepsynth_fps60"],
                    "Dataset directories, one row each.")
  flags.DEFINE_string("split", "test", "Split whose segments are judged.")
  flags.DEFINE_integer("per_song", 0, "Judge this many evenly spaced segments of every song "
                       "(evaluate.py --per_song's examples); 0 = every segment of the split.")
  flags.DEFINE_string("json_out", None, "Optional JSON file for the rows.")


class _SplitSegments:
  """The manifest's segment list, with the two methods `spread_indices` uses (the same
  (song, start) rows `DeepSynthData.segment` returns)."""

  def __init__(self, manifest: dict):
    self._splits = {k: np.asarray(v, np.int64).reshape(-1, 2)
                    for k, v in manifest["splits"].items()}

  def num_examples(self, split: str) -> int:
    return len(self._splits.get(split, ()))

  def segment(self, split: str, index: int) -> tuple[int, int]:
    song, start = self._splits[split][index]
    return int(song), int(start)


def rendering_name(manifest: dict) -> str:
  """'sparse' / 'fps:30', with the camera style when it is not the clean render and the key-up
  time before repeated notes when the songs were played with one (`--repeat_release_ms`)."""
  style = manifest.get("camera", {}).get("style", "clean")
  release = manifest.get("repeat_release_ms", 0)
  return (manifest["frames"] + ("" if style == "clean" else f", {style} camera")
          + (f", keys up {release:g} ms before repeats" if release else ""))


def dataset_row(data_dir: str, split: str, per_song: int) -> dict:
  """One dataset's ceiling: visibility_summary over the chosen segments' notes, plus facts."""
  path = os.path.join(data_dir, "manifest.json")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"no dataset in {data_dir} ({path} missing): build it first")
  with open(path) as f:
    manifest = json.load(f)
  segments = _SplitSegments(manifest)
  count = segments.num_examples(split)
  indices = spread_indices(segments, split, per_song) if per_song else list(range(count))
  length = int(manifest["segment_samples"])
  rate = int(manifest["sample_rate"])
  press = manifest["frames"] == "sparse"
  windows: dict[int, list[int]] = {}
  for i in indices:
    song, start = segments.segment(split, i)
    windows.setdefault(song, []).append(start)
  visible, restrike = [], []
  for song, starts in windows.items():
    with np.load(os.path.join(data_dir, manifest["songs"][song]["file"]), allow_pickle=False) as z:
      notes = z["notes"].astype(np.int64).reshape(-1, 4)
      frame_start = z["frame_start"].astype(np.int64)
    v = visibility.onset_visibility(notes, frame_start, press_frames=press, sample_rate=rate)
    onset = notes[:, 0]
    inside = np.zeros(len(notes), bool)
    for s in starts:
      inside |= (onset >= s) & (onset < s + length)
    visible.append(v["visible"][inside])
    restrike.append(v["restrike"][inside])
  visible_all = np.concatenate(visible) if visible else np.zeros(0, bool)
  restrike_all = np.concatenate(restrike) if restrike else np.zeros(0, bool)
  onsets, restrikes = len(visible_all), int(restrike_all.sum())
  seen, seen_re = int(visible_all.sum()), int((visible_all & restrike_all).sum())
  return {"data_dir": data_dir, "frames": manifest["frames"],
          "rendering": rendering_name(manifest), "split": split,
          "per_song": per_song, "segments": len(indices), "songs": len(windows),
          "onsets": onsets, "visible_onsets": seen,
          "onset_ceiling": seen / onsets if onsets else None,
          "restrikes": restrikes, "visible_restrikes": seen_re,
          "restrike_ceiling": seen_re / restrikes if restrikes else None,
          "restrike_gap_seconds": visibility.RESTRIKE_GAP_SECONDS}


def _pct(x: float | None) -> str:
  return "n/a" if x is None else f"{100 * x:.1f}%"


def table(rows: list[dict]) -> str:
  """The rows as a markdown table."""
  lines = ["| rendering | segments (songs) | onsets | onset ceiling | re-strikes "
           "| re-strike ceiling |", "|---|---|---|---|---|---|"]
  for r in rows:
    lines.append(f"| {r['rendering']} | {r['segments']} ({r['songs']}) | {r['onsets']} | "
                 f"{_pct(r['onset_ceiling'])} ({r['visible_onsets']}) | {r['restrikes']} | "
                 f"{_pct(r['restrike_ceiling'])} ({r['visible_restrikes']}) |")
  return "\n".join(lines)


def main(argv):
  del argv
  rows = [dataset_row(d, FLAGS.split, FLAGS.per_song) for d in FLAGS.data_dirs]
  which = f"{FLAGS.per_song} per song" if FLAGS.per_song else "all"
  print(f"{FLAGS.split} split, {which} segments; re-strike = same key released <= "
        f"{visibility.RESTRIKE_GAP_SECONDS} s before (or still held); ceiling = visible "
        "fraction (visible count)")
  print(table(rows))
  if FLAGS.json_out:
    with open(FLAGS.json_out, "w") as f:
      json.dump(rows, f, indent=2)


if __name__ == "__main__":
  _define_flags()
  app.run(main)

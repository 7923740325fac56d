r"""One model, every kind of video: the per-frame-rate table of the README.

  python -m experiments.frame_rates --workdir=models/demo_keysynth --per_song=2
  python -m experiments.frame_rates --workdir=models/demo_keysynth --per_song=0   # all 121

Evaluates the model on the same test segments of each rendering of the songs (`--data_dirs`:
sparse press frames, 24 / 30 / 60 fps camera video, and 30 fps video through the held-out camera
style, built as the README says) with `deepsynth_jax.evaluate.evaluate_run`, and prints one row per
rendering: the generated audio's onset F1 and recall and pitch F1 against the notes the video
shows, the reference audio's and white noise's, and the ceilings the video sets: the highest onset
recall it allows (the fraction of the true onset times at which some struck note is one the
frames can show, `onset_recall_ceiling`), and (`experiments.restrike_ceiling`) the fractions of
notes and of re-strikes the frames can show at all. Each evaluation's metrics.json goes to
<workdir>/eval_frame_rates/<dataset folder name>/ (or --out_dir), and --json_out writes the rows.
"""

from __future__ import annotations

import json
import os

import numpy as np
from absl import app, flags

from data_gen import visibility
from deepsynth_jax import comparison, console, evaluate, input_pipeline, metrics
from experiments import restrike_ceiling

DATA_DIRS = ["data/deepsynth", "data/deepsynth_fps24", "data/deepsynth_fps30",
             "data/deepsynth_fps60", "data/deepsynth_fps30_heldout"]

flags.DEFINE_string("workdir", "models/demo_keysynth", "The model (a run directory).")
flags.DEFINE_list("data_dirs", DATA_DIRS, "Renderings of the same songs, one row each.")
flags.DEFINE_integer("per_song", 2, "Evenly spaced test segments per song (0 = all).")
flags.DEFINE_string("out_dir", None, "Folder for each rendering's metrics.json (default: "
                    "<workdir>/eval_frame_rates).")
flags.DEFINE_string("json_out", None, "Optional JSON file for the rows.")
FLAGS = flags.FLAGS


def onset_recall_ceiling(data: input_pipeline.DeepSynthData, indices: list[int]) -> float:
  """The highest onset recall the video allows: per test example, the fraction of its true onset
  times (`metrics.reference_onsets`, chords merged) at which some note struck is one the frames
  can show (`data_gen.visibility`), averaged over examples as the onset recall is."""
  rate, length = data.sample_rate, data.segment_samples
  visible = {}
  fractions = []
  for i in indices:
    song, start = data.segment("test", i)
    if song not in visible:
      notes = data.song_notes()[song]
      shown = visibility.onset_visibility(notes, data.song_frame_starts()[song],
                                          press_frames=data.press_frames,
                                          sample_rate=rate)["visible"]
      visible[song] = (notes, shown)
    notes, shown = visible[song]
    clip = notes.copy()
    clip[:, :2] -= start
    inside = (clip[:, 0] >= 0) & (clip[:, 0] < length)
    true_onsets = metrics.reference_onsets(clip[inside], rate, length)
    if len(true_onsets) == 0:
      fractions.append(1.0)
      continue
    shown_onsets = clip[inside & shown, 0] / rate
    gap = shown_onsets[None, :] - true_onsets[:, None]
    covered = np.any((gap >= -1e-9) & (gap <= metrics.ONSET_MERGE_S + 1e-9), axis=1)
    fractions.append(float(np.mean(covered)))
  return float(np.mean(fractions))


def frame_rate_row(workdir: str, data_dir: str, per_song: int, out_dir: str) -> dict:
  """The model's scores on one rendering's test segments, beside the reference's, noise's and
  the video's ceiling."""
  data = input_pipeline.load_dataset(data_dir)
  indices = comparison.spread_indices(data, "test", per_song) if per_song else None
  num = None if per_song else data.num_examples("test")
  result = evaluate.evaluate_run(workdir, "test", num, data=data, data_dir=data_dir,
                                 out_dir=os.path.join(out_dir, os.path.basename(data_dir)),
                                 media=False, listening=False, indices=indices,
                                 show_progress=False)
  mean = result["mean"]
  ceiling = restrike_ceiling.dataset_row(data_dir, "test", per_song)
  chosen = [row["index"] for row in result["examples"]]
  return {"rendering": restrike_ceiling.rendering_name(data.manifest), "data_dir": data_dir,
          "examples": result["num_examples"], "model": mean["music"],
          "reference": mean["reference_music"], "noise": mean["noise_music"],
          "onset_recall_ceiling": onset_recall_ceiling(data, chosen),
          "note_ceiling": ceiling["onset_ceiling"],
          "restrike_ceiling": ceiling["restrike_ceiling"]}


def table(rows: list[dict]) -> str:
  """The rows as a markdown table."""
  lines = ["| video | onset F1 | onset recall (ceiling) | pitch F1 | STFT | reference onset / "
           "pitch F1 | noise onset / pitch F1 | notes the video shows | re-strikes it shows |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
  for r in rows:
    m, ref, noise = r["model"], r["reference"], r["noise"]
    lines.append(
        f"| {r['rendering']} | {m['onset_f1']:.3f} | {m['onset_recall']:.3f} "
        f"({r['onset_recall_ceiling']:.3f}) | {m['pitch_f1']:.3f} | {m['stft_distance']:.2f} | "
        f"{ref['onset_f1']:.3f} / {ref['pitch_f1']:.3f} | {noise['onset_f1']:.3f} / "
        f"{noise['pitch_f1']:.3f} | {100 * r['note_ceiling']:.1f}% | "
        f"{100 * r['restrike_ceiling']:.1f}% |")
  return "\n".join(lines)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  console.quiet_library_chatter()
  out_dir = FLAGS.out_dir or os.path.join(FLAGS.workdir, "eval_frame_rates")
  try:
    rows = [frame_rate_row(FLAGS.workdir, d, FLAGS.per_song, out_dir) for d in FLAGS.data_dirs]
  except (input_pipeline.DatasetError, evaluate.EvaluationError, FileNotFoundError) as e:
    raise SystemExit(f"error: {e}") from None
  which = f"{FLAGS.per_song} per test song" if FLAGS.per_song else "every test segment"
  print(f"{FLAGS.workdir} on {rows[0]['examples']} test segments ({which}), 5 s each:")
  print(table(rows))
  if FLAGS.json_out:
    with open(FLAGS.json_out, "w") as f:
      json.dump(rows, f, indent=2)


if __name__ == "__main__":
  app.run(main)

r"""Does audio-input dropout make the WaveNet listen to the video? The dropout ablation.

  python -m experiments.ablation --workdir_root=runs/ablation [--max_steps=200]
      [--num_examples=8] [--seconds=2]

Trains four WaveNets of the same size on the same budget (experiments/configs/cpu.py with
--max_steps steps): audio-input dropout 0, 0.5 and 0.75, and a model with no video at all. Then,
on the same test examples, it reports each one's teacher-forced and free-running cross-entropy,
follow-the-video onset and pitch F1 of its free-running audio against the notes the video shows,
the swap test (F1 against the shown video's notes vs the other segment's, and the teacher-forced
"video gain") and the silence test, as a markdown table (also written to <root>/ablation.md).
Re-running resumes unfinished runs.
"""

from __future__ import annotations

import json
import os
import time

from absl import app, flags

from deepsynth_jax import comparison, evaluate, input_pipeline, listening, runs, train
from experiments.configs import cpu

flags.DEFINE_string("workdir_root", "runs/ablation", "One workdir per variant below this.")
flags.DEFINE_string("data_dir", "data/deepsynth", "Dataset folder.")
flags.DEFINE_integer("max_steps", 200, "Training steps per variant (the same budget for all).")
flags.DEFINE_integer("crop_samples", 0, "Training crop (0 = the config's).")
flags.DEFINE_integer("num_examples", 8, "Test examples (spread over the test songs).")
flags.DEFINE_float("seconds", 2.0, "Seconds generated per example.")
flags.DEFINE_list("variants", ["drop0", "drop50", "drop75", "no_video"], "Variants to run.")
FLAGS = flags.FLAGS

VARIANTS = {"drop0": (0.0, True), "drop50": (0.5, True), "drop75": (0.75, True),
            "no_video": (0.5, False)}


def variant_config(name: str):
  dropout, use_video = VARIANTS[name]
  config = cpu.get_config()
  config.data_dir = FLAGS.data_dir
  config.wavenet.audio_dropout = dropout
  config.conditioning.use_video = use_video
  config.max_steps = FLAGS.max_steps
  if FLAGS.crop_samples:
    config.crop_samples = FLAGS.crop_samples
  config.eval.selection_metric = "teacher_forced"  # the same cheap selection for every variant
  return config


def run_variant(name: str, data) -> dict:
  workdir = os.path.join(FLAGS.workdir_root, name)
  start = time.perf_counter()
  train.train_and_evaluate(variant_config(name), workdir)
  indices = comparison.spread_indices(data, "test", max(1, FLAGS.num_examples // 4))
  indices = indices[:FLAGS.num_examples]
  result = evaluate.evaluate_run(workdir, "test", data=data, indices=indices,
                                 seconds=FLAGS.seconds, media=False, show_progress=False)
  run = runs.load_run(workdir)
  length = int(FLAGS.seconds * data.sample_rate)
  probes = listening.listening_report(run, data, "test", indices, length=length,
                                      teacher_forced_fn=evaluate.teacher_forced_fn(run))
  return {"variant": name, "dropout": VARIANTS[name][0], "video": VARIANTS[name][1],
          "mean": result["mean"], "probes": probes,
          "wall_seconds": time.perf_counter() - start, "steps": FLAGS.max_steps}


def table(rows: list[dict]) -> str:
  lines = ["| variant | audio dropout | video | teacher-forced CE | free-running CE | onset F1 | "
           "pitch F1 | swap: onset F1 vs shown / other | swap: pitch F1 vs shown / other | "
           "video gain (nats) | silence RMS (true audio RMS) |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    m, music = r["mean"], r["mean"].get("music", {})
    swap = r["probes"]["swap"]["mean"]
    silence = r["probes"]["silence"]
    lines.append(
        f"| {r['variant']} | {r['dropout']} | {'yes' if r['video'] else 'no'} | "
        f"{m['teacher_forced_cross_entropy']:.3f} | {m['free_running_cross_entropy']:.3f} | "
        f"{music.get('onset_f1', float('nan')):.3f} | {music.get('pitch_f1', float('nan')):.3f} | "
        f"{swap['vs_shown_onset_f1']:.3f} / {swap['vs_other_onset_f1']:.3f} | "
        f"{swap['vs_shown_pitch_f1']:.3f} / {swap['vs_other_pitch_f1']:.3f} | "
        f"{swap.get('video_gain', float('nan')):+.4f} | "
        f"{silence['silence_rms']:.4f} ({silence['reference_rms']:.4f}) |")
  ref = rows[0]["mean"].get("reference_music", {}) if rows else {}
  noise = rows[0]["mean"].get("noise_music", {}) if rows else {}
  if ref:
    lines.append(f"| reference audio | - | - | - | - | {ref['onset_f1']:.3f} | "
                 f"{ref['pitch_f1']:.3f} | - | - | - | - |")
    lines.append(f"| white noise | - | - | - | - | {noise['onset_f1']:.3f} | "
                 f"{noise['pitch_f1']:.3f} | - | - | - | - |")
  return "\n".join(lines)


def main(argv):
  del argv
  train.quiet_logs()
  data = input_pipeline.load_dataset(FLAGS.data_dir)
  rows = []
  for name in FLAGS.variants:
    if name not in VARIANTS:
      raise app.UsageError(f"unknown variant {name!r}; choose from {', '.join(VARIANTS)}")
    rows.append(run_variant(name, data))
    print(f"{name}: done in {rows[-1]['wall_seconds'] / 60:.1f} min", flush=True)
  crop = FLAGS.crop_samples or cpu.get_config().crop_samples
  text = (f"Dropout ablation: {FLAGS.max_steps} steps of batch 8 x {crop} samples each, "
          f"experiments/configs/cpu.py, {FLAGS.num_examples} test examples x {FLAGS.seconds} s."
          "\n\n" + table(rows))
  os.makedirs(FLAGS.workdir_root, exist_ok=True)
  with open(os.path.join(FLAGS.workdir_root, "ablation.md"), "w") as f:
    f.write(text + "\n")
  with open(os.path.join(FLAGS.workdir_root, "ablation.json"), "w") as f:
    json.dump(rows, f, indent=2, default=float)
  print(text)


if __name__ == "__main__":
  app.run(main)

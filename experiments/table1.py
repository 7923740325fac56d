r"""Runs the method's Table 1: each setting trained with its protocol, then its test loss measured.

  python -m experiments.table1 --workdir_root=runs/table1 [--only=drop75_l10_c512]
      [--grid=full] [--epochs=N] [--max_steps=N] [--crop_samples=N] [--test_examples=N]

Protocol (the method's): 100 epochs, validation loss on 100 validation examples after each, the
best epoch kept by validation loss; then the free-running (test) cross-entropy of the best
checkpoint on the test split. `--epochs`, `--max_steps`, `--crop_samples`, `--test_examples` and
`--test_seconds` shrink the protocol to fit a CPU; every run records what it used, and
`python -m experiments.report --workdir_root=...` prints the table with those facts.

Re-running the same command resumes unfinished settings and skips finished ones.
"""

from __future__ import annotations

import json
import os
import platform
import time

import jax
from absl import app, flags, logging

from deepsynth_jax import checkpointing, train
from experiments.configs import table1

RESULT = "table1_result.json"

FLAGS = flags.FLAGS


def setting_config(name: str):
  """The Table 1 config of `name` with this command's (CPU-fitting) overrides applied."""
  config = table1.get_config(name)
  config.data_dir = FLAGS.data_dir
  if FLAGS.epochs:
    config.num_epochs = FLAGS.epochs
  if FLAGS.max_steps:
    config.max_steps = FLAGS.max_steps
  if FLAGS.crop_samples:
    config.crop_samples = FLAGS.crop_samples
  if FLAGS.batch_size:
    config.batch_size = FLAGS.batch_size
  if FLAGS.val_examples:
    config.eval.num_examples = FLAGS.val_examples
    config.eval.batch_size = min(config.eval.batch_size, FLAGS.val_examples)
  if FLAGS.val_samples:
    config.eval.free_running_samples = FLAGS.val_samples
  return config


def hardware() -> str:
  devices = jax.devices()
  kind = devices[0].device_kind if devices[0].platform != "cpu" else (
      f"CPU ({os.cpu_count()} cores, {platform.processor() or platform.machine()})")
  return f"{len(devices)} x {kind}"


def run_setting(name: str, root: str) -> dict:
  from deepsynth_jax import evaluate

  workdir = os.path.join(root, name)
  result_path = os.path.join(workdir, RESULT)
  if os.path.exists(result_path):
    with open(result_path) as f:
      logging.info("%s: finished earlier, skipping", name)
      return json.load(f)
  config = setting_config(name)
  start = time.perf_counter()
  progress = train.train_and_evaluate(config, workdir)
  train_seconds = time.perf_counter() - start
  best = min(progress["history"], key=lambda r: r["selection_loss"])
  test = evaluate.evaluate_run(workdir, split="test", num_examples=FLAGS.test_examples,
                               seconds=FLAGS.test_seconds or None, media=False,
                               music_metrics=False)
  result = {
      "setting": name,
      "dropout": config.wavenet.audio_dropout,
      "layers": config.wavenet.num_layers,
      "features": config.wavenet.channels,
      "epochs_run": progress["history"][-1]["epoch"],
      "steps": progress["step"],
      "best_epoch": best["epoch"],
      "train_loss": best["train_loss"],
      "validation_loss": best["tf_loss"],
      "test_free_running_loss": test["mean"]["free_running_cross_entropy"],
      "test_teacher_forced_loss": test["mean"]["teacher_forced_cross_entropy"],
      "protocol": {"epochs": config.num_epochs, "max_steps": config.max_steps,
                   "crop_samples": config.crop_samples, "batch_size": config.batch_size,
                   "validation_examples": config.eval.num_examples,
                   "validation_free_running_samples": config.eval.free_running_samples or None,
                   "test_examples": FLAGS.test_examples,
                   "test_seconds": FLAGS.test_seconds or None},
      "hardware": hardware(),
      "train_wall_seconds": train_seconds,
      "total_wall_seconds": time.perf_counter() - start,
  }
  checkpointing.write_json_atomic(result_path, result)
  return result


def main(argv):
  del argv
  train.quiet_logs()
  names = FLAGS.only or (table1.GRID if FLAGS.grid == "full" else table1.SETTINGS)
  for name in names:
    try:
      table1.parse_setting(name)  # fail early on a typo
    except ValueError as e:
      raise app.UsageError(str(e)) from None
  os.makedirs(FLAGS.workdir_root, exist_ok=True)
  for name in names:
    r = run_setting(name, FLAGS.workdir_root)
    print(f"{name}: train {r['train_loss']:.3f}, validation {r['validation_loss']:.3f}, "
          f"free-running test {r['test_free_running_loss']:.3f} nats "
          f"({r['total_wall_seconds'] / 60:.1f} min on {r['hardware']})", flush=True)
  print(f"table: python -m experiments.report --workdir_root={FLAGS.workdir_root}")


def _define_flags() -> None:
  # Defined only when run as a program, so that `experiments.report` can import RESULT.
  flags.DEFINE_string("workdir_root", "runs/table1", "Folder with one workdir per setting.")
  flags.DEFINE_list("only", [], "Run only these settings (names from configs/table1.py).")
  flags.DEFINE_enum("grid", "six", ["six", "full"], "Six settings or 12-point grid.")
  flags.DEFINE_string("data_dir", "data/deepsynth", "Dataset folder.")
  flags.DEFINE_integer("epochs", 0, "Epochs per setting (0 = the protocol's 100).")
  flags.DEFINE_integer("max_steps", 0, "Stop each setting after this many steps (0 = no cap).")
  flags.DEFINE_integer("crop_samples", 0, "Training crop (0 = the config's 8,000).")
  flags.DEFINE_integer("batch_size", 0, "Global batch (0 = the config's 8).")
  flags.DEFINE_integer("val_examples", 0, "Validation examples per epoch (0 = the protocol's 100).")
  flags.DEFINE_integer("val_samples", 0, "Samples generated per validation example for the "
                       "free-running selection loss (0 = the whole 5 s segment).")
  flags.DEFINE_integer("test_examples", 20, "Test examples for the free-running loss.")
  flags.DEFINE_float("test_seconds", 0.0, "Seconds generated per test example (0 = whole 5 s).")


if __name__ == "__main__":
  _define_flags()
  app.run(main)

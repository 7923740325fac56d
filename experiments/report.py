r"""Prints the Table 1 analogue from the runs of `python -m experiments.table1`, as markdown.

  python -m experiments.report --workdir_root=runs/table1

One row per finished setting: dropout, layers, features, train loss (teacher-forced, with dropout,
at the best epoch), validation loss (teacher-forced, best epoch), free-running test loss, the
protocol actually run, hardware and wall time. The method's published row is printed beneath for
reference (a different dataset: compare the protocol, not the digits).
"""

from __future__ import annotations

import glob
import json
import os

from absl import app, flags

from experiments.table1 import RESULT

flags.DEFINE_string("workdir_root", "runs/table1", "Folder given to experiments.table1.")
FLAGS = flags.FLAGS

PUBLISHED = ("| published (method, its own dataset) | 0.75 | 10 | 512 | 1.45 | 2.41 | - | "
             "100 epochs, best by validation on 100 examples | - | - |")


def load_results(root: str) -> list[dict]:
  rows = []
  for path in sorted(glob.glob(os.path.join(root, "*", RESULT))):
    with open(path) as f:
      rows.append(json.load(f))
  return sorted(rows, key=lambda r: (r["dropout"], r["layers"], r["features"]))


def markdown(rows: list[dict]) -> str:
  lines = ["| setting | dropout | layers | features | train loss | validation loss | "
           "free-running test loss | protocol run | hardware | wall time |",
           "|---|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    p = r["protocol"]
    protocol = (f"{r['epochs_run']} epochs ({r['steps']} steps of {p['batch_size']} x "
                f"{p['crop_samples']} samples), best epoch {r['best_epoch']}, validation on "
                f"{p['validation_examples']}, test on {p['test_examples']}"
                + (f" x {p['test_seconds']} s" if p.get("test_seconds") else ""))
    lines.append(f"| {r['setting']} | {r['dropout']} | {r['layers']} | {r['features']} | "
                 f"{r['train_loss']:.3f} | {r['validation_loss']:.3f} | "
                 f"{r['test_free_running_loss']:.3f} | {protocol} | {r['hardware']} | "
                 f"{r['total_wall_seconds'] / 60:.1f} min |")
  lines.append(PUBLISHED)
  return "\n".join(lines)


def main(argv):
  del argv
  rows = load_results(FLAGS.workdir_root)
  if not rows:
    raise SystemExit(f"no finished Table 1 runs under {FLAGS.workdir_root}; run "
                     f"`python -m experiments.table1 --workdir_root={FLAGS.workdir_root}` first")
  print("Losses in nats per sample (256-way softmax cross-entropy; uniform = 5.545).")
  print(markdown(rows))


if __name__ == "__main__":
  app.run(main)

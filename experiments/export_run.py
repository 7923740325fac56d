r"""Exports a trained run's best checkpoint as a small, self-describing model folder.

  python -m experiments.export_run --workdir=runs/keysynth_cpu --out=models/demo_keysynth

The folder is itself a valid workdir for `sample()`, `python -m deepsynth_jax.evaluate` and
`python -m deepsynth_jax.play`: run.json, best/<step>/ (parameters only; no optimizer state), the
training metrics (metrics.jsonl) and, if given, the training log. This is how the checkpoints that
ship in models/ were made: each one's README.md names the command that trained it.
"""

from __future__ import annotations

import os
import shutil

import orbax.checkpoint as ocp
from absl import app, flags

from deepsynth_jax import checkpointing, console

flags.DEFINE_string("workdir", None, "Trained run directory.")
flags.DEFINE_string("out", None, "Output model folder (replaced).")
flags.DEFINE_string("log", None, "Training log file to ship beside the checkpoint.")
flags.DEFINE_string("command", None, "The command line that trained the run (for README.md).")
FLAGS = flags.FLAGS


def export_run(workdir: str, out: str, *, log: str | None = None,
               command: str | None = None) -> int:
  """Writes `out` from the best checkpoint of `workdir`; returns the exported step."""
  record = checkpointing.read_run_record(workdir)
  source = checkpointing.RunCheckpoints(workdir, read_only=True)
  params, progress = source.restore_best_params()
  step = int(progress["step"]) if progress.get("best_step") is None else int(progress["best_step"])
  source.close()
  tmp = f"{out.rstrip('/')}.tmp-{os.getpid()}"
  shutil.rmtree(tmp, ignore_errors=True)
  os.makedirs(tmp)
  checkpointing.write_json_atomic(os.path.join(tmp, checkpointing.RUN_RECORD), record)
  target = checkpointing.RunCheckpoints(tmp)
  progress = {**progress, "exported_from": os.path.abspath(workdir), "exported_step": step}
  target.best.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave({"params": params}),
                                                 progress=ocp.args.JsonSave(progress)),
                   metrics={"selection_loss": float(progress.get("best_selection_loss") or 0.0)})
  target.best.wait_until_finished()
  target.close()
  shutil.rmtree(os.path.join(tmp, "checkpoints"), ignore_errors=True)
  metrics = os.path.join(workdir, "metrics.jsonl")
  if os.path.exists(metrics):
    shutil.copy(metrics, os.path.join(tmp, "metrics.jsonl"))
  if log:
    shutil.copy(log, os.path.join(tmp, "train.log"))
  with open(os.path.join(tmp, "README.md"), "w") as f:
    f.write(f"# Exported DeepSynth model ({record['config']['model']})\n\n"
            f"Best checkpoint (step {step}) of a run trained with:\n\n"
            f"    {command or '(command not recorded)'}\n\n"
            f"exported with `python -m experiments.export_run --workdir={workdir} --out={out}`.\n"
            f"Validation history: see metrics.jsonl (rows with split=validation)"
            + (" and train.log" if log else "") + ".\n")
  if os.path.exists(out):
    shutil.rmtree(out)
  os.replace(tmp, out)
  return step


def main(argv):
  del argv
  console.quiet_library_chatter()
  if not FLAGS.workdir or not FLAGS.out:
    raise app.UsageError("give --workdir=RUN --out=FOLDER")
  step = export_run(FLAGS.workdir, FLAGS.out, log=FLAGS.log, command=FLAGS.command)
  print(f"exported step {step} of {FLAGS.workdir} to {FLAGS.out}")


if __name__ == "__main__":
  app.run(main)

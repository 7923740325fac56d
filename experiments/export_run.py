r"""Exports a trained run's best checkpoint as a small, self-describing model folder.

  python -m experiments.export_run --workdir=runs/keysynth_cpu --out=models/demo_keysynth

The folder is itself a valid workdir for `sample()`, `python -m deepsynth_jax.evaluate` and
`python -m deepsynth_jax.play`: run.json, best/<step>/ (parameters only; no optimizer state), the
training metrics (metrics.jsonl) and, if given, the training log. This is how the checkpoints that
ship in models/ were made: each one's README.md names the command that trained it.

--generation sets config fields that change only how the model generates, never what it learned
(GENERATION_SETTINGS, e.g. `--generation=keysynth.max_voices=16`); the README.md names them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence

import orbax.checkpoint as ocp
from absl import app, flags

from deepsynth_jax import checkpointing, console

# Config fields that only generation (and validation) read: training ignores them, so setting
# them at export changes how the exported model plays, not what it learned.
GENERATION_SETTINGS = {"keysynth.max_voices": int, "keysynth.release_ms": float,
                       "keysynth.generation_hop": int}


def parse_generation(items: list[str]) -> dict[str, object]:
  """'field=value' strings -> {field: value}, each field one of GENERATION_SETTINGS.

  Raises:
    ValueError: an item is not field=value, names another field, or has a bad value.
  """
  settings = {}
  for item in items:
    field, sep, value = item.partition("=")
    if not sep or field not in GENERATION_SETTINGS:
      raise ValueError(f"--generation={item}: give FIELD=VALUE with FIELD one of "
                       f"{', '.join(sorted(GENERATION_SETTINGS))}")
    try:
      settings[field] = GENERATION_SETTINGS[field](value)
    except ValueError:
      raise ValueError(f"--generation={item}: {value!r} is not a "
                       f"{GENERATION_SETTINGS[field].__name__}") from None
  return settings


def export_run(workdir: str, out: str, *, log: str | None = None,
               command: str | None = None, generation: dict[str, object] | None = None,
               checkpoint: str = "best", earlier_logs: Sequence[str] = ()) -> int:
  """Writes `out` from the best (or, with checkpoint="latest", the newest) checkpoint of
  `workdir`, with `generation` settings ({"section.field": value}, see `parse_generation`) set in
  its run.json; returns the exported step. `log` ships as train.log; `earlier_logs`, the logs of
  the runs this one started from (`init_from`), oldest first, as train_stage1.log, ...

  Raises:
    checkpointing.CheckpointError: `workdir` is not a run with a checkpoint.
    ValueError: a log file is missing (checked before anything is written).
  """
  missing = [path for path in ([log] if log else []) + list(earlier_logs)
             if not os.path.isfile(path)]
  if missing:
    raise ValueError(f"no log file at {', '.join(missing)}; pass the train.log of each run "
                     "(--log, --earlier_logs) or leave the flag out")
  record = checkpointing.read_run_record(workdir)
  for field, value in (generation or {}).items():
    section, name = field.split(".")
    record["config"][section][name] = value
  source = checkpointing.RunCheckpoints(workdir, read_only=True)
  if checkpoint == "latest":
    params, progress = source.restore_latest_params()
    step = int(progress["step"])
  else:
    params, progress = source.restore_best_params()
    step = (int(progress["step"]) if progress.get("best_step") is None
            else int(progress["best_step"]))
  source.close()
  tmp = f"{out.rstrip('/')}.tmp-{os.getpid()}"
  shutil.rmtree(tmp, ignore_errors=True)
  os.makedirs(tmp)
  checkpointing.write_json_atomic(os.path.join(tmp, checkpointing.RUN_RECORD), record)
  target = checkpointing.RunCheckpoints(tmp)
  # The exported checkpoint is the folder's "best" (what `runs.load_run` reports as its step).
  progress = {**progress, "exported_from": os.path.abspath(workdir), "exported_step": step,
              "best_step": step, "run_best_step": progress.get("best_step")}
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
  stage_logs = [f"train_stage{k}.log" for k in range(1, len(earlier_logs) + 1)]
  for path, name in zip(earlier_logs, stage_logs):
    shutil.copy(path, os.path.join(tmp, name))
  export_cmd = (f"python -m experiments.export_run --workdir={workdir} --out={out}"
                + (" --checkpoint=latest" if checkpoint == "latest" else "")
                + (f" --earlier_logs={','.join(earlier_logs)}" if earlier_logs else "")
                + "".join(f" --generation={k}={v}" for k, v in (generation or {}).items()))
  with open(os.path.join(tmp, "README.md"), "w") as f:
    f.write(f"# Exported DeepSynth model ({record['config']['model']})\n\n"
            f"{'Latest' if checkpoint == 'latest' else 'Best'} checkpoint (step {step}) of a run "
            "trained with:\n\n"
            f"    {command or '(command not recorded)'}\n\n"
            f"exported with `{export_cmd}`"
            + (" (generation-only settings: training never read them)" if generation else "")
            + ".\nValidation history: see metrics.jsonl (rows with split=validation)"
            + (" and train.log" if log else "") + ".\n"
            + (f"\nTrained in {len(stage_logs) + 1} stages, each started from the one before "
               f"(config.init_from); the earlier stages' logs: {', '.join(stage_logs)}.\n"
               if stage_logs else ""))
  if os.path.exists(out):
    shutil.rmtree(out)
  os.replace(tmp, out)
  return step


def main(argv):
  del argv
  f = flags.FLAGS
  console.quiet_library_chatter()
  if not f.workdir or not f.out:
    raise app.UsageError("give --workdir=RUN --out=FOLDER")
  try:
    generation = parse_generation(f.generation)
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  try:
    step = export_run(f.workdir, f.out, log=f.log, command=f.command,
                      generation=generation, checkpoint=f.checkpoint,
                      earlier_logs=f.earlier_logs)
  except (checkpointing.CheckpointError, ValueError) as e:
    raise SystemExit(f"error: {e}") from None
  print(f"exported step {step} of {f.workdir} to {f.out}")


def _define_flags() -> None:
  """Only the binary defines flags: tests import export_run beside other binaries' modules, and
  absl refuses a flag name defined twice in one process (tests/test_imports.py)."""
  flags.DEFINE_string("workdir", None, "Trained run directory.")
  flags.DEFINE_string("out", None, "Output model folder (replaced).")
  flags.DEFINE_string("log", None, "Training log file to ship beside the checkpoint.")
  flags.DEFINE_string("command", None, "The command line that trained the run (for README.md).")
  flags.DEFINE_list("earlier_logs", [], "Logs of the runs this one started from (init_from), "
                    "oldest first: shipped as train_stage1.log, ...")
  flags.DEFINE_enum("checkpoint", "best", ["best", "latest"],
                    "Export the best checkpoint (by the run's selection metric) or the latest one.")
  flags.DEFINE_list("generation", [], "FIELD=VALUE generation-only settings to set in the exported "
                    "run.json (one of GENERATION_SETTINGS).")


if __name__ == "__main__":
  _define_flags()
  app.run(main)

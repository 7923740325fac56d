"""Command line of the transcribe-then-synthesize baseline: train, save, evaluate.

  python -m deepsynth_jax.baseline --data_dir=data/deepsynth --workdir=runs/baseline [--steps=N]

trains the key classifier on the train split's distinct frames (`baseline_train`), writes
`workdir/checkpoint/<n>/` (orbax; `transcription.load_baseline` reads it) and
`workdir/metrics.json`: key precision / recall / F1 on the --eval_split at frame and note level,
and the audio metrics of `deepsynth_jax.metrics` on its segments beside the reference audio's and
noise's rows (`baseline_eval.evaluate`), with the config, frame counts and timings.

The baseline itself: `transcription` (inference), `baseline_train`, `baseline_eval`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

import numpy as np
from absl import app, flags

from deepsynth_jax import (
  baseline_eval,
  baseline_train,
  checkpointing,
  console,
  input_pipeline,
  metrics,
)
from deepsynth_jax.transcription import DEFAULT_VELOCITY, BaselineError

METRICS_FILE = "metrics.json"


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  console.quiet_library_chatter()
  try:
    _train_and_evaluate(flags.FLAGS)
  except (BaselineError, checkpointing.CheckpointError, input_pipeline.DatasetError) as e:
    raise SystemExit(f"error: {e}") from None


def _train_and_evaluate(flag: flags.FlagValues) -> None:
  began = time.perf_counter()
  data = input_pipeline.load_dataset(flag.data_dir)
  frames, keys, velocities = baseline_train.split_frames(data, "train")
  unique, unique_keys = baseline_train.unique_frames(frames, keys)
  velocity = int(np.median(velocities)) if velocities.size else DEFAULT_VELOCITY
  print(f"train: {frames.shape[0]} frames ({unique.shape[0]} distinct) of size "
        f"{frames.shape[1]}x{frames.shape[2]}; note velocity {velocity}", flush=True)
  loaded = time.perf_counter()
  model = baseline_train.train_classifier(
      unique, unique_keys, steps=flag.steps, batch_size=flag.batch_size,
      learning_rate=flag.learning_rate, seed=flag.seed, velocity=velocity,
      synth_gain=data.manifest.get("synth", {}).get("gain"), log_every=max(1, flag.steps // 10))
  trained = time.perf_counter()
  os.makedirs(flag.workdir, exist_ok=True)
  saved_to = baseline_train.save_baseline(model, flag.workdir)
  print(f"trained in {trained - loaded:.0f} s; checkpoint {saved_to}", flush=True)
  results = baseline_eval.evaluate(model, data, flag.eval_split, flag.num_eval_segments,
                                   flag.seed)
  evaluated = time.perf_counter()
  results.update(
      split=flag.eval_split, config=model.config, data_dir=os.path.abspath(flag.data_dir),
      train_frames=int(frames.shape[0]), train_distinct_frames=int(unique.shape[0]),
      seconds={"load": round(loaded - began, 1), "train": round(trained - loaded, 1),
               "evaluate": round(evaluated - trained, 1)})
  out = os.path.join(flag.workdir, METRICS_FILE)
  checkpointing.write_json_atomic(out, results)
  fk, nk = results["frame_keys"], results["notes"]
  print(f"\n{flag.eval_split}: frame-level keys P {fk['precision']:.4f} R {fk['recall']:.4f} "
        f"F1 {fk['f1']:.4f} ({fk['num_frames']} frames); note-level P {nk['precision']:.4f} "
        f"R {nk['recall']:.4f} F1 {nk['f1']:.4f} ({nk['num_reference']} notes)")
  print(f"audio metrics, mean over {results['num_segments']} {flag.eval_split} segments:\n")
  print(metrics.markdown_table(results["audio"]))
  print(f"\nwrote {out} ({evaluated - began:.0f} s in all)")


def _define_flags() -> None:
  flags.DEFINE_string("data_dir", "data/deepsynth", "Dataset directory (manifest.json inside).")
  flags.DEFINE_string("workdir", "runs/baseline", "Where the checkpoint and metrics.json go.")
  flags.DEFINE_integer("steps", 700, "Training steps.")
  flags.DEFINE_integer("batch_size", 32, "Frames per training step.")
  flags.DEFINE_float("learning_rate", 2e-3, "Adam learning rate.")
  flags.DEFINE_integer("seed", 0, "Seed of the initialization, batch order and noise row.")
  flags.DEFINE_enum("eval_split", "test", input_pipeline.SPLITS, "Split to evaluate on.")
  flags.DEFINE_integer("num_eval_segments", 0,
                       "Evaluate this many segments spread over the split (0: all).")


if __name__ == "__main__":
  _define_flags()
  app.run(main)

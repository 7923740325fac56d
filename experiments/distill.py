r"""A faster KeySynth taught by a trained one (distillation): a cheaper key reader or instrument.

  python -m experiments.distill --part=reader --teacher=models/demo_keysynth_phase \
      --workdir=runs/keysynth_fast [--reader_trunk=rows --key_channels=32,16] [--steps=2000]
  python -m experiments.distill --part=instrument --teacher=models/demo_keysynth_fast \
      --workdir=runs/keysynth_faster --envelope_hidden=32 --envelope_layers=1 [--steps=3000]

The student is the teacher's model with other sizes (--reader_trunk, --key_channels,
--envelope_hidden, --envelope_layers; unset: the teacher's). Every parameter at the same path and
shape is the teacher's (`train.copy_fitting`); the --part being distilled is trained, from its
copied values where they fit and from a fresh initialization (seeded by --seed) where they do
not, and everything else stays the teacher's, bit for bit (a student whose untrained parts do not
fit the teacher's is refused).

- `reader`: the key reader, on every frame of the training split's songs, towards the teacher
  reader's key probabilities (binary cross-entropy against the teacher's sigmoid, summed over the
  88 keys, --batch_frames frames a step). Validated on every frame of the validation split's
  songs: `reader_kl` (that cross-entropy minus the teacher's own entropy: 0 = the teacher's
  probabilities; nats per frame), `frames_agree` (the fraction of frames whose 88 rounded key
  states are the teacher's) and `keys_differ` (rounded states that differ, per frame).
- `instrument`: the instrument MLP (`envelope_*`, `harmonics`), on training crops of
  --crop_samples (--batch_clips a step), towards the teacher's partial amplitudes at every control
  point as generation plays them (`KeySynth.control_amplitudes` with the run's voices and rounded
  key states): `amp_error`, the squared error over the teacher's squared amplitudes. Validated on
  the first --validation_clips whole validation segments.

Adam on a warmup-cosine schedule. Every --eval_every steps the student is validated, and the
lowest selection loss (`reader_kl`, `amp_error`) is kept as the run's best checkpoint: the
workdir is a run as `deepsynth_jax.train` writes one (run.json with the distillation's settings
in `distill`, best/, metrics.jsonl), which `python -m deepsynth_jax.evaluate`, `sample()` and
`experiments.export_run` take. A workdir that already holds a run is refused.

Neither part reads the simulator's key labels (`frame_keys`): the teacher learned from (frames,
audio) pairs, the student learns from the teacher, the frames and the clips' timing.

Why: at batch 16 a sparse 5 s clip's generation on a CPU was mostly the reader's convolutions,
then the instrument MLP (README, "Speed"). Trained instead through the audio loss and the audio
teacher from the teacher's other parameters (`deepsynth_jax.train` with `init_from`), the row
trunk did not learn to read (validation loss 3.3-3.9 in 5 epochs, against the teacher's 2.1).
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import app, flags

from deepsynth_jax import checkpointing, console, input_pipeline, models, train

FLAGS = flags.FLAGS
PARTS = ("reader", "instrument")

CHUNK = 512  # frames per call when computing logits over a whole split


def student_config(teacher: ml_collections.ConfigDict, teacher_dir: str,
                   sizes: dict[str, Any], settings: dict) -> ml_collections.ConfigDict:
  """The teacher's config with the student's `sizes` (keysynth fields; None: the teacher's), and
  the distillation's settings (`distill`) and starting point (`init_from`) recorded."""
  config = ml_collections.ConfigDict(teacher.to_dict())
  reader = config.keysynth.get("reader", "columns")
  if config.model != "keysynth" or reader != "placed":
    what = f"a {config.model} model" if config.model != "keysynth" else f"the {reader!r} reader"
    raise ValueError(f"--teacher={teacher_dir} has {what}; distillation needs a KeySynth with "
                     "the placed reader (keysynth.reader='placed')")
  for field, value in sizes.items():
    if value is not None:
      config.keysynth[field] = tuple(value) if isinstance(value, (list, tuple)) else value
  config.init_from = teacher_dir
  config.distill = ml_collections.ConfigDict(settings)
  return config


def reader_logits(module: Any, params: Any, frames: jax.Array) -> jax.Array:
  """uint8 (N, H, W) frames -> float32 (N, 88) key logits of `module`'s reader."""
  return module.apply({"params": params}, frames[None], method="key_logits")[0]


def split_logits(module: Any, params: Any, frames: np.ndarray) -> np.ndarray:
  """`reader_logits` over many frames, CHUNK at a time (the last chunk padded: one program)."""
  fn = jax.jit(lambda p, f: reader_logits(module, p, f))
  out = []
  for start in range(0, len(frames), CHUNK):
    chunk = frames[start:start + CHUNK]
    padded = np.concatenate([chunk, np.zeros((CHUNK - len(chunk), *chunk.shape[1:]), np.uint8)])
    out.append(np.asarray(fn(params, padded))[:len(chunk)])
  return np.concatenate(out) if out else np.zeros((0, 88), np.float32)


def compare(student: np.ndarray, teacher: np.ndarray) -> dict[str, float]:
  """How close the student's (N, 88) logits are to the teacher's (see the module docstring)."""
  p = jax.nn.sigmoid(teacher)
  kl = (optax.sigmoid_binary_cross_entropy(student, p)
        - optax.sigmoid_binary_cross_entropy(teacher, p)).sum(-1)
  differ = (student > 0) != (teacher > 0)
  return {"reader_kl": float(jnp.mean(kl)), "frames_agree": float(np.mean(~differ.any(-1))),
          "keys_differ": float(np.mean(differ.sum(-1)))}


def amplitudes(module: Any, params: Any, clips: dict) -> jax.Array:
  """The partial amplitudes (B, P, M) that `module` plays at a batch of clips' control points."""
  amps, _, _ = module.apply({"params": params}, clips["frames"], clips["frame_index"],
                            clips["frame_age"], None, clips["press_frames"],
                            method="control_amplitudes")
  return amps


def amp_error(student: jax.Array, teacher: jax.Array) -> jax.Array:
  """sum (student - teacher)^2 / sum teacher^2 over (B, P, M) amplitudes."""
  return jnp.sum((student - teacher) ** 2) / jnp.maximum(jnp.sum(teacher ** 2), 1e-12)


# The top-level parameters each --part trains.
TRAINED = {"reader": lambda name: name == "key_reader",
           "instrument": lambda name: name.startswith("envelope") or name == "harmonics"}


@dataclasses.dataclass
class Part:
  """What one --part learns from: an endless stream of training batches, the loss of the
  student's parameters on one, and a validation (metrics with "selection_loss")."""

  batches: Iterator[Any]
  loss: Callable[[Any, Any], jax.Array]        # (full params, batch) -> scalar
  validate: Callable[[Any], dict[str, float]]  # full params -> metrics


def reader_part(teacher: Any, teacher_params: Any, student: Any,
                data: input_pipeline.DeepSynthData, batch_frames: int, seed: int) -> Part:
  frames = {split: data.split_frames(split) for split in ("train", "validation")}
  targets = {split: split_logits(teacher.module, teacher_params, f) for split, f in frames.items()}
  print(f"reader: {len(frames['train'])} training and {len(frames['validation'])} validation "
        "frames", flush=True)

  def batches():
    rng = np.random.default_rng(seed)
    while True:
      order = rng.permutation(len(frames["train"]))
      for start in range(0, len(order) - batch_frames + 1, batch_frames):
        rows = order[start:start + batch_frames]
        yield frames["train"][rows], targets["train"][rows]

  def loss(params, batch):
    logits = reader_logits(student.module, params, batch[0])
    return optax.sigmoid_binary_cross_entropy(logits, jax.nn.sigmoid(batch[1])).sum(-1).mean()

  def validate(params):
    row = compare(split_logits(student.module, params, frames["validation"]),
                  targets["validation"])
    return {**row, "selection_loss": row["reader_kl"]}

  return Part(batches(), loss, validate)


def instrument_part(teacher: Any, teacher_params: Any, student: Any,
                    data: input_pipeline.DeepSynthData, config: ml_collections.ConfigDict,
                    batch_clips: int, crop_samples: int, validation_clips: int,
                    seed: int) -> Part:
  fields = ("frames", "frame_index", "frame_age", "press_frames")
  pick = lambda batch: {k: jnp.asarray(v) for k, v in batch.items() if k in fields}
  teacher_amps = jax.jit(lambda clips: amplitudes(teacher.module, teacher_params, clips))

  def batches():
    for epoch in itertools.count():
      for batch in data.batches("train", batch_clips, seed=seed, epoch=epoch,
                                crop_samples=crop_samples,
                                crop_align=int(config.get("crop_align", 1))):
        clips = pick(batch)
        yield clips, teacher_amps(clips)

  def loss(params, batch):
    return amp_error(amplitudes(student.module, params, batch[0]), batch[1])

  validation = [pick(b) for b in data.batches("validation", min(4, validation_clips), seed=seed,
                                              epoch=0, shuffle=False,
                                              num_examples=validation_clips)]
  expected = [teacher_amps(clips) for clips in validation]
  student_amps = jax.jit(lambda params, clips: amplitudes(student.module, params, clips))

  def validate(params):
    squared = sum(float(jnp.sum((student_amps(params, c) - t) ** 2))
                  for c, t in zip(validation, expected, strict=True))
    error = squared / max(sum(float(jnp.sum(t ** 2)) for t in expected), 1e-12)
    return {"amp_error": error, "selection_loss": error}

  return Part(batches(), loss, validate)


def distill(teacher_dir: str, workdir: str, *, part: str, sizes: dict[str, Any], steps: int,
            learning_rate: float, warmup_steps: int, eval_every: int, seed: int,
            batch_frames: int = 128, batch_clips: int = 8, crop_samples: int = 4000,
            validation_clips: int = 16) -> dict[str, float]:
  """Trains and saves the student (see the module docstring); returns its best validation row
  (with its "step").

  Raises:
    checkpointing.CheckpointError: the teacher has no checkpoint, or `workdir` holds a run.
    ValueError: the teacher is not a KeySynth with the placed reader, `part` is unknown, or the
      student's untrained parameters do not fit the teacher's.
  """
  if part not in PARTS:
    raise ValueError(f"--part={part!r}; use one of {', '.join(PARTS)}")
  if os.path.exists(os.path.join(workdir, checkpointing.RUN_RECORD)):
    raise checkpointing.CheckpointError(
        f"{workdir} already holds a run; pass a new --workdir (a distillation takes minutes and "
        "is not resumed)")
  record = checkpointing.read_run_record(teacher_dir)
  teacher_config = checkpointing.config_from_record(record)
  settings = {"teacher": teacher_dir, "part": part, "steps": steps,
              "learning_rate": learning_rate, "warmup_steps": warmup_steps, "seed": seed,
              **({"batch_frames": batch_frames} if part == "reader" else
                 {"batch_clips": batch_clips, "crop_samples": crop_samples,
                  "validation_clips": validation_clips})}
  config = student_config(teacher_config, teacher_dir, sizes, settings)
  data = input_pipeline.load_dataset(config.data_dir)
  teacher = models.build_generator(teacher_config, data.sample_rate)
  student = models.build_generator(config, data.sample_rate)
  teacher_params = checkpointing.best_params(teacher_dir)
  h, w = data.frame_shape
  init_batch = {"audio": jnp.zeros((1, 64), jnp.float32),
                "frames": jnp.zeros((1, 2, h, w), jnp.uint8),
                "frame_index": jnp.zeros((1, 64), jnp.int32),
                "frame_age": jnp.zeros((1, 64), jnp.int32)}
  params, fresh = train.copy_fitting(student.init(jax.random.key(seed), init_batch),
                                     teacher_params)
  names = tuple(k for k in params if TRAINED[part](k))
  trained_paths = tuple(jax.tree_util.keystr((jax.tree_util.DictKey(k),)) for k in names)
  unfit = [name for name in fresh if not name.startswith(trained_paths)]
  if unfit:
    raise ValueError(f"the student's {', '.join(unfit)} do not fit the teacher's and --part="
                     f"{part} does not train them; change only the {part}'s sizes")
  if part == "reader":
    task = reader_part(teacher, teacher_params, student, data, batch_frames, seed)
  else:
    task = instrument_part(teacher, teacher_params, student, data, config, batch_clips,
                           crop_samples, validation_clips, seed)

  schedule = optax.warmup_cosine_decay_schedule(0.0, learning_rate, warmup_steps, steps)
  optimizer = optax.adam(schedule)
  trained = {k: params[k] for k in names}
  opt_state = optimizer.init(trained)

  @jax.jit
  def step(trained, opt_state, batch):
    loss, grads = jax.value_and_grad(lambda t: task.loss({**params, **t}, batch))(trained)
    updates, opt_state = optimizer.update(grads, opt_state, trained)
    return optax.apply_updates(trained, updates), opt_state, loss

  checkpointing.write_run_record(workdir, config, record["data"],
                                 learned_from=checkpointing.learned_from(record))
  ckpts = checkpointing.RunCheckpoints(workdir)
  writer = train.MetricsWriter(workdir, resume_step=0)
  best: dict[str, float] = {}
  start = time.perf_counter()
  try:
    for i in range(1, steps + 1):
      trained, opt_state, loss = step(trained, opt_state, next(task.batches))
      if not np.isfinite(float(loss)):
        raise FloatingPointError(
            f"the distillation loss is {float(loss)} at step {i}; the best checkpoint so far is "
            f"kept in {workdir}/best. Lower --learning_rate and distill into a new --workdir")
      if i % eval_every and i != steps:
        continue
      full = {**params, **trained}
      row = task.validate(full)
      writer.write(i, "train", {"loss": float(loss), "learning_rate": float(schedule(i))})
      writer.write(i, "validation", row)
      print(f"step {i}: train loss {float(loss):.4f}, validation "
            + ", ".join(f"{k} {v:.4f}" for k, v in row.items() if k != "selection_loss")
            + f" ({time.perf_counter() - start:.0f} s)", flush=True)
      if not best or row["selection_loss"] < best["selection_loss"]:
        best = {**row, "step": i}
        progress = {"step": i, "best_step": i, "best_selection_loss": row["selection_loss"]}
        ckpts.save_best(i, {"params": jax.tree.map(np.asarray, full)}, progress,
                        row["selection_loss"])
  finally:
    ckpts.close()
    writer.close()
  return best


def main(argv):
  del argv
  console.quiet_library_chatter()
  if not FLAGS.workdir:
    raise app.UsageError("give --workdir=NEW_FOLDER for the student run")
  sizes = {"reader_trunk": FLAGS.reader_trunk,
           "key_channels": FLAGS.key_channels and [int(c) for c in FLAGS.key_channels],
           "envelope_hidden": FLAGS.envelope_hidden, "envelope_layers": FLAGS.envelope_layers}
  try:
    best = distill(FLAGS.teacher, FLAGS.workdir, part=FLAGS.part, sizes=sizes, steps=FLAGS.steps,
                   learning_rate=FLAGS.learning_rate, warmup_steps=FLAGS.warmup_steps,
                   eval_every=FLAGS.eval_every, seed=FLAGS.seed, batch_frames=FLAGS.batch_frames,
                   batch_clips=FLAGS.batch_clips, crop_samples=FLAGS.crop_samples,
                   validation_clips=FLAGS.validation_clips)
  except (checkpointing.CheckpointError, input_pipeline.DatasetError, ValueError,
          FloatingPointError) as e:
    raise app.UsageError(str(e)) from None
  print(f"done: best step {best['step']}, validation "
        + ", ".join(f"{k} {v:.4f}" for k, v in best.items() if k not in ("step", "selection_loss")))


def _define_flags() -> None:
  """Only the binary defines flags: tests import this module beside other binaries' modules,
  and absl refuses a flag name defined twice in one process (tests/test_imports.py)."""
  flags.DEFINE_enum("part", "reader", list(PARTS), "What the student learns from the teacher.")
  flags.DEFINE_string("teacher", "models/demo_keysynth_phase", "A trained KeySynth run or model.")
  flags.DEFINE_string("workdir", None, "New folder for the student run.")
  flags.DEFINE_string("reader_trunk", None, "The student's keysynth.reader_trunk (rows, conv; "
                      "unset: the teacher's).")
  flags.DEFINE_list("key_channels", None, "The student's keysynth.key_channels.")
  flags.DEFINE_integer("envelope_hidden", None, "The student's keysynth.envelope_hidden.")
  flags.DEFINE_integer("envelope_layers", None, "The student's keysynth.envelope_layers.")
  flags.DEFINE_integer("steps", 2000, "Optimizer steps.")
  flags.DEFINE_float("learning_rate", 3e-3, "Peak learning rate (warmup-cosine).")
  flags.DEFINE_integer("warmup_steps", 100, "Linear warmup steps.")
  flags.DEFINE_integer("eval_every", 250, "Steps between validations.")
  flags.DEFINE_integer("seed", 0, "Seed of the fresh parameters and of the data order.")
  flags.DEFINE_integer("batch_frames", 128, "Frames per step (--part=reader).")
  flags.DEFINE_integer("batch_clips", 8, "Training crops per step (--part=instrument).")
  flags.DEFINE_integer("crop_samples", 4000, "Samples per training crop (--part=instrument).")
  flags.DEFINE_integer("validation_clips", 16, "Whole validation segments (--part=instrument).")


if __name__ == "__main__":
  _define_flags()
  app.run(main)

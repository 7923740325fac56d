r"""A faster key reader for a trained KeySynth, taught by the model's own reader (distillation).

  python -m experiments.distill_reader --teacher=models/demo_keysynth_phase \
      --workdir=runs/keysynth_fast [--trunk=rows] [--channels=32,16] [--steps=2000]

The student is the teacher's model with another key reader trunk (`keysynth.reader_trunk`,
`keysynth.key_channels`; models/key_reader.py): every parameter at the same path and shape is the
teacher's (`train.warm_start`: the instrument, its phases, and the placed reader's column layers,
placement and classifier), only the new trunk starts fresh (seeded by --seed). Its reader is
trained on every frame of the training split's songs towards the teacher reader's key
probabilities: binary cross-entropy against the teacher's sigmoid, summed over the 88 keys,
averaged over a batch of --batch_frames frames; Adam on a warmup-cosine schedule. Nothing outside
the reader changes. The teacher learned from (frames, audio) pairs alone, and the student learns
from the teacher and the frames: neither reads the simulator's key labels (`frame_keys`).

Every --eval_every steps it is compared with the teacher on every frame of the validation split's
songs: `reader_kl` (the cross-entropy above minus the teacher's own entropy: 0 = the teacher's
probabilities, nats per frame), `frames_agree` (the fraction of frames whose 88 rounded key states
are the teacher's) and `keys_differ` (rounded states that differ, per frame). The lowest
`reader_kl` is kept as the run's best checkpoint, so the workdir is a run as `deepsynth_jax.train`
writes one (run.json, best/, metrics.jsonl): `python -m deepsynth_jax.evaluate`, `sample()` and
`experiments.export_run` take it. A workdir that already holds a run is refused.

Why: the convolution stages of the shipped reader are most of a sparse 5 s clip's generation
time at batch 16 on a CPU (README, "Speed"); the row trunk needs ~15x fewer FLOPs, all of them in
plain products. Trained instead through the audio loss and the audio teacher from the teacher's
other parameters (`deepsynth_jax.train` with `init_from`), the same trunk did not learn to read
(validation loss 3.3-3.9 in 5 epochs, against the teacher's 2.1; README, "Speed").
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import app, flags

from deepsynth_jax import checkpointing, console, input_pipeline, models, train

FLAGS = flags.FLAGS
# The student reader of the shipped models/demo_keysynth_fast (the flags' defaults).
STUDENT_TRUNK = "rows"
STUDENT_CHANNELS = (32, 16)

CHUNK = 512  # frames per call when computing logits over a whole split


def student_config(teacher: ml_collections.ConfigDict, trunk: str, channels: Sequence[int],
                   teacher_dir: str, settings: dict) -> ml_collections.ConfigDict:
  """The teacher's config with the student's reader trunk, and the distillation's settings
  (`distill`) and starting point (`init_from`) recorded."""
  config = ml_collections.ConfigDict(teacher.to_dict())
  reader = config.keysynth.get("reader", "columns")
  if config.model != "keysynth" or reader != "placed":
    what = f"a {config.model} model" if config.model != "keysynth" else f"the {reader!r} reader"
    raise ValueError(f"--teacher={teacher_dir} has {what}; distillation needs a KeySynth with "
                     "the placed reader (keysynth.reader='placed')")
  config.keysynth.reader_trunk = trunk
  config.keysynth.key_channels = tuple(int(c) for c in channels)
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


def distill(teacher_dir: str, workdir: str, *, trunk: str, channels: Sequence[int], steps: int,
            batch_frames: int, learning_rate: float, warmup_steps: int, eval_every: int,
            seed: int) -> dict[str, float]:
  """Trains and saves the student (see the module docstring); returns its best validation row.

  Raises:
    checkpointing.CheckpointError: the teacher has no checkpoint, or `workdir` holds a run.
    ValueError: the teacher is not a KeySynth with the placed reader.
  """
  if os.path.exists(os.path.join(workdir, checkpointing.RUN_RECORD)):
    raise checkpointing.CheckpointError(
        f"{workdir} already holds a run; pass a new --workdir (a distillation takes minutes and "
        "is not resumed)")
  record = checkpointing.read_run_record(teacher_dir)
  teacher_config = checkpointing.config_from_record(record)
  settings = {"teacher": teacher_dir, "steps": steps, "batch_frames": batch_frames,
              "learning_rate": learning_rate, "warmup_steps": warmup_steps, "seed": seed}
  config = student_config(teacher_config, trunk, channels, teacher_dir, settings)
  data = input_pipeline.load_dataset(config.data_dir)
  sample_rate = data.sample_rate
  teacher = models.build_generator(teacher_config, sample_rate)
  student = models.build_generator(config, sample_rate)
  teacher_params = checkpointing.best_params(teacher_dir)
  h, w = data.frame_shape
  init_batch = {"audio": jnp.zeros((1, 64), jnp.float32),
                "frames": jnp.zeros((1, 2, h, w), jnp.uint8),
                "frame_index": jnp.zeros((1, 64), jnp.int32),
                "frame_age": jnp.zeros((1, 64), jnp.int32)}
  params = train.warm_start(student.init(jax.random.key(seed), init_batch), teacher_dir)

  frames = {split: data.split_frames(split) for split in ("train", "validation")}
  targets = {split: split_logits(teacher.module, teacher_params, f) for split, f in frames.items()}
  print(f"teacher {teacher_dir}: {len(frames['train'])} training and "
        f"{len(frames['validation'])} validation frames", flush=True)

  schedule = optax.warmup_cosine_decay_schedule(0.0, learning_rate, warmup_steps, steps)
  optimizer = optax.adam(schedule)
  reader = params["key_reader"]
  opt_state = optimizer.init(reader)

  @jax.jit
  def step(reader, opt_state, batch, target):
    def loss_fn(r):
      logits = reader_logits(student.module, {**params, "key_reader": r}, batch)
      return optax.sigmoid_binary_cross_entropy(logits, jax.nn.sigmoid(target)).sum(-1).mean()
    loss, grads = jax.value_and_grad(loss_fn)(reader)
    updates, opt_state = optimizer.update(grads, opt_state, reader)
    return optax.apply_updates(reader, updates), opt_state, loss

  checkpointing.write_run_record(workdir, config, record["data"],
                                 learned_from=checkpointing.learned_from(record))
  ckpts = checkpointing.RunCheckpoints(workdir)
  writer = train.MetricsWriter(workdir, resume_step=0)
  rng = np.random.default_rng(seed)
  order, cursor = rng.permutation(len(frames["train"])), 0
  best: dict[str, float] = {}
  start = time.perf_counter()
  try:
    for i in range(1, steps + 1):
      if cursor + batch_frames > len(order):
        order, cursor = rng.permutation(len(frames["train"])), 0
      rows = order[cursor:cursor + batch_frames]
      cursor += batch_frames
      reader, opt_state, loss = step(reader, opt_state, frames["train"][rows],
                                     targets["train"][rows])
      if not np.isfinite(float(loss)):
        raise FloatingPointError(
            f"the distillation loss is {float(loss)} at step {i}; the best checkpoint so far is "
            f"kept in {workdir}/best. Lower --learning_rate and distill into a new --workdir")
      if i % eval_every and i != steps:
        continue
      full = {**params, "key_reader": reader}
      row = compare(split_logits(student.module, full, frames["validation"]),
                    targets["validation"])
      writer.write(i, "train", {"loss": float(loss), "learning_rate": float(schedule(i))})
      writer.write(i, "validation", {**row, "selection_loss": row["reader_kl"]})
      print(f"step {i}: train loss {float(loss):.4f}, validation reader_kl "
            f"{row['reader_kl']:.4f}, frames_agree {row['frames_agree']:.4f}, keys_differ "
            f"{row['keys_differ']:.4f} ({time.perf_counter() - start:.0f} s)", flush=True)
      if not best or row["reader_kl"] < best["reader_kl"]:
        best = {**row, "step": i}
        progress = {"step": i, "best_step": i, "best_selection_loss": row["reader_kl"]}
        ckpts.save_best(i, {"params": jax.tree.map(np.asarray, full)}, progress,
                        row["reader_kl"])
  finally:
    ckpts.close()
    writer.close()
  return best


def main(argv):
  del argv
  console.quiet_library_chatter()
  if not FLAGS.workdir:
    raise app.UsageError("give --workdir=NEW_FOLDER for the student run")
  try:
    best = distill(FLAGS.teacher, FLAGS.workdir, trunk=FLAGS.trunk, channels=FLAGS.channels,
                   steps=FLAGS.steps, batch_frames=FLAGS.batch_frames,
                   learning_rate=FLAGS.learning_rate, warmup_steps=FLAGS.warmup_steps,
                   eval_every=FLAGS.eval_every, seed=FLAGS.seed)
  except (checkpointing.CheckpointError, input_pipeline.DatasetError, ValueError,
          FloatingPointError) as e:
    raise app.UsageError(str(e)) from None
  print(f"done: best step {best['step']}, validation reader_kl {best['reader_kl']:.4f}, "
        f"frames_agree {best['frames_agree']:.4f}")


def _define_flags() -> None:
  """Only the binary defines flags: tests import this module beside other binaries' modules,
  and absl refuses a flag name defined twice in one process (tests/test_imports.py)."""
  flags.DEFINE_string("teacher", "models/demo_keysynth_phase", "A trained KeySynth run or model.")
  flags.DEFINE_string("workdir", None, "New folder for the student run.")
  flags.DEFINE_enum("trunk", STUDENT_TRUNK, ["rows", "conv"], "The student reader's trunk.")
  flags.DEFINE_list("channels", [str(c) for c in STUDENT_CHANNELS],
                    "The student trunk's channels per stage.")
  flags.DEFINE_integer("steps", 2000, "Optimizer steps.")
  flags.DEFINE_integer("batch_frames", 128, "Frames per step.")
  flags.DEFINE_float("learning_rate", 3e-3, "Peak learning rate (warmup-cosine).")
  flags.DEFINE_integer("warmup_steps", 100, "Linear warmup steps.")
  flags.DEFINE_integer("eval_every", 250, "Steps between validations.")
  flags.DEFINE_integer("seed", 0, "Seed of the fresh trunk and of the frame order.")


if __name__ == "__main__":
  _define_flags()
  app.run(main)

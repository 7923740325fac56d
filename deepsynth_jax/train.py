r"""Training: pure functions around a TrainState, and the absl launcher.

  python -m deepsynth_jax.train --config=experiments/configs/cpu.py --workdir=runs/cpu
  python -m deepsynth_jax.train \
      --config=experiments/configs/table1.py:drop75_l10_c512 --workdir=runs/drop75_l10_c512

The train step is a per-device function that averages gradients with `lax.pmean` over the
"batch" axis and runs under `jax.pmap` over the local devices; the global batch is split on its
leading axis. Re-running the same command resumes from the workdir's latest checkpoint and
reaches the same parameters, bit for bit on CPU, as a run that was never stopped.
"""

from __future__ import annotations

import functools
import json
import math
import os
import time
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import tensorboardX
import tqdm
from absl import app, flags, logging
from flax.training import train_state
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from deepsynth_jax import (
  audio_teacher,
  checkpointing,
  console,
  host_devices,
  input_pipeline,
  models,
  renderings,
)

AXIS = "batch"


class TrainState(train_state.TrainState):
  """Params, optimizer state and step; the step also keys the RNG (`models.example_keys`)."""


Generator = models.Generator


class NonFiniteLossError(FloatingPointError):
  """The loss became NaN or Inf; the run stops keeping its last good checkpoint."""


def create_learning_rate_schedule(config: ml_collections.ConfigDict,
                                  total_steps: int) -> optax.Schedule:
  """Linear warm-up to the peak, then cosine or exponential annealing."""
  opt = config.optimizer
  warmup = max(0, min(opt.warmup_steps, total_steps - 1))
  peak, end = opt.learning_rate, opt.learning_rate * opt.end_factor
  if opt.schedule == "cosine":
    decay = optax.cosine_decay_schedule(peak, max(1, total_steps - warmup), alpha=opt.end_factor)
  elif opt.schedule == "exponential":
    decay = optax.exponential_decay(peak, opt.decay_steps, opt.decay_rate, end_value=end)
  else:
    raise ValueError(f"unknown schedule {opt.schedule!r}; use 'cosine' or 'exponential'")
  if warmup == 0:
    return decay
  return optax.join_schedules([optax.linear_schedule(0.0, peak, warmup), decay], [warmup])


def create_optimizer(config: ml_collections.ConfigDict,
                     total_steps: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
  opt = config.optimizer
  schedule = create_learning_rate_schedule(config, total_steps)
  if opt.name == "adamw":
    core = optax.adamw(schedule, weight_decay=opt.weight_decay)
  elif opt.name == "adam":
    core = optax.adam(schedule)
  else:
    raise ValueError(f"unknown optimizer {opt.name!r}; use 'adamw' or 'adam'")
  if opt.grad_clip_norm > 0:
    core = optax.chain(optax.clip_by_global_norm(opt.grad_clip_norm), core)
  return core, schedule


def create_train_state(config: ml_collections.ConfigDict, generator: Generator, batch: dict,
                       total_steps: int) -> TrainState:
  """Initial state from `config.seed`, shaped from one host batch."""
  init_key = jax.random.fold_in(jax.random.key(config.seed), 0)
  params = generator.init(init_key, batch)
  if config.get("init_from", ""):
    params = warm_start(params, os.path.expanduser(str(config.init_from)))
  tx, _ = create_optimizer(config, total_steps)
  state = TrainState.create(apply_fn=generator.module.apply, params=params, tx=tx)
  # A strongly typed step: otherwise the first update changes its type and recompiles the step.
  return state.replace(step=jnp.zeros((), jnp.int32))


def copy_fitting(params: Any, source: Any) -> tuple[Any, list[str]]:
  """`params` with every leaf that `source` (another model's parameters) has at the same path and
  shape replaced by it, in `params`' dtype; and the names (`jax.tree_util.keystr`) of the leaves
  left as they were."""
  trained = {jax.tree_util.keystr(path): leaf
             for path, leaf in jax.tree_util.tree_leaves_with_path(source)}
  fresh = []

  def take(path, leaf):
    name = jax.tree_util.keystr(path)
    old = trained.get(name)
    if old is None or np.shape(old) != np.shape(leaf):
      fresh.append(name)
      return leaf
    return jnp.asarray(old, leaf.dtype)

  return jax.tree_util.tree_map_with_path(take, params), fresh


def warm_start(params: Any, run_dir: str) -> Any:
  """`params` with every leaf that `run_dir`'s best parameters have at the same path and shape
  replaced by that run's (`copy_fitting`); the others keep their fresh values. Logs what was
  copied.

  Raises:
    checkpointing.CheckpointError: `run_dir` holds no checkpoint, or none of its parameters fit.
  """
  out, fresh = copy_fitting(params, checkpointing.best_params(run_dir))
  copied = len(jax.tree.leaves(params)) - len(fresh)
  if not copied:
    raise checkpointing.CheckpointError(
        f"config.init_from={run_dir}: none of its parameters fit this model (another model "
        "kind or size?); pass a run of the same model, or init_from=''")
  logging.info("init_from %s: %d parameter arrays copied, %d fresh: %s", run_dir, copied,
               len(fresh), ", ".join(fresh) or "none")
  return out


def train_step(state: TrainState, batch: dict, *, generator: Generator,
               config: ml_collections.ConfigDict,
               schedule: optax.Schedule) -> tuple[TrainState, dict]:
  """One optimizer step on this device's shard; gradients averaged over the `batch` axis."""
  # Key 1 for training randomness (key 0 initialised the parameters).
  base_key = jax.random.fold_in(jax.random.key(config.seed), 1)
  keys = models.example_keys(base_key, state.step, batch["example_id"])

  (_, metrics), grads = generator.loss_and_grad(state.params, batch, keys=keys)
  grads = jax.lax.pmean(grads, AXIS)
  metrics = jax.lax.pmean(metrics, AXIS)
  metrics["grad_norm"] = optax.tree.norm(grads)
  metrics["learning_rate"] = schedule(state.step)
  return state.apply_gradients(grads=grads), metrics


def eval_step(params: Any, batch: dict, *, generator: Generator) -> dict:
  """Weighted sums of the teacher-forced metrics over this shard (psum over devices)."""
  def one(example):
    example = jax.tree.map(lambda x: x[None], example)
    _, metrics = generator.loss(params, example, train=False)
    return metrics

  weight = batch.pop("weight")
  per_example = jax.vmap(one)(batch)
  sums = {k: jnp.sum(v * weight) for k, v in per_example.items()}
  sums["count"] = jnp.sum(weight)
  return jax.lax.psum(sums, AXIS)


def _device_sharding() -> NamedSharding:
  """Leading axis over the local devices, named like the pmapped step's axis.

  Inputs placed with the same mesh axis name as pmap's outputs keep the step's compilation cache
  warm (flax's `replicate` names its axis differently, which costs one extra compilation).
  """
  return NamedSharding(Mesh(np.array(jax.local_devices()), (AXIS,)), PartitionSpec(AXIS))


def replicate(tree: Any) -> Any:
  """Host pytree -> one copy per local device, stacked on a leading axis."""
  n = jax.local_device_count()
  stacked = jax.tree.map(lambda x: np.broadcast_to(np.asarray(x), (n, *np.shape(x))), tree)
  return jax.device_put(stacked, _device_sharding())


def unreplicate(tree: Any) -> Any:
  """Device-replicated pytree -> host copy of device 0's."""
  return jax.device_get(jax.tree.map(lambda x: x[0], tree))


def shard(batch: dict, num_devices: int) -> dict:
  """Host batch (B, ...) -> (devices, B / devices, ...), placed on the local devices."""
  return jax.device_put({k: v.reshape((num_devices, -1, *v.shape[1:])) for k, v in batch.items()},
                        _device_sharding())


def pad_batch(batch: dict, size: int) -> dict:
  """Pads a short final batch to `size` with copies of its last example, weight 0."""
  n = len(batch["example_id"])
  out = {k: np.concatenate([v, np.repeat(v[-1:], size - n, 0)]) if n < size else v
         for k, v in batch.items()}
  out["weight"] = (np.arange(size) < n).astype(np.float32)
  return out


def evaluate_teacher_forced(p_eval_step, params, data: renderings.TrainingData,
                            config: ml_collections.ConfigDict, split: str = "validation",
                            num_examples: int | None = None, *,
                            generator: Generator) -> dict[str, float]:
  """Mean teacher-forced metrics over the first `num_examples` examples of `split` (batches
  reduced to `generator.batch_fields`)."""
  devices = jax.local_device_count()
  batch_size = _per_process(config.eval.batch_size, devices, "eval.batch_size")
  num = min(num_examples or config.eval.num_examples, data.num_examples(split))
  totals: dict[str, float] = {}
  for batch in data.batches(split, batch_size, seed=config.seed, epoch=0, shuffle=False,
                            drop_remainder=False, num_examples=num):
    padded = pad_batch(generator.select_fields(batch), batch_size)
    sums = jax.device_get(p_eval_step(params, shard(padded, devices)))
    for k, v in sums.items():
      totals[k] = totals.get(k, 0.0) + float(v[0])
  count = totals.pop("count", 0.0)
  if count == 0:
    raise ValueError(f"split {split!r} has no examples to evaluate")
  return {k: v / count for k, v in totals.items()}


def _per_process(global_batch: int, devices: int, name: str) -> int:
  processes = jax.process_count()
  if global_batch % (processes * devices):
    raise ValueError(f"{name}={global_batch} must divide evenly over {processes} process(es) x "
                     f"{devices} local device(s); set --config.{name} to a multiple of "
                     f"{processes * devices}")
  return global_batch // processes


def _report(bar, line: str) -> None:
  """Prints a line above the progress bar (or plain when there is none), and logs it."""
  logging.info("%s", line)
  if jax.process_index() != 0:
    return
  if bar is not None:
    bar.write(line)
  else:
    print(line, flush=True)


class MetricsWriter:
  """metrics.jsonl (truncated to the resumed step on restart) and TensorBoard events.

  All processes of a multi-host run share the workdir, so only process 0 reads, truncates or
  writes these files; on the other processes the writer does nothing. Steps are optimizer steps.
  """

  def __init__(self, workdir: str, resume_step: int):
    self.path = os.path.join(workdir, "metrics.jsonl")
    self._file = None
    self._tb = None
    if jax.process_index() != 0:
      return
    kept = []
    if os.path.exists(self.path):
      with open(self.path) as f:
        for line in f:
          try:
            row = json.loads(line)
          except json.JSONDecodeError:
            continue  # a line cut by a kill
          if row.get("step", 0) <= resume_step:
            kept.append(line if line.endswith("\n") else line + "\n")
    tmp = f"{self.path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
      f.writelines(kept)
    os.replace(tmp, self.path)
    self._file = open(self.path, "a")  # noqa: SIM115 (closed in close())
    self._tb = tensorboardX.SummaryWriter(os.path.join(workdir, "tb"),
                                          purge_step=resume_step + 1)

  def write(self, step: int, split: str, metrics: dict[str, float]) -> None:
    """Appends one row at optimizer step `step` (a no-op on processes other than 0)."""
    if self._file is None:
      return
    row = {"step": int(step), "split": split, **{k: float(v) for k, v in metrics.items()}}
    self._file.write(json.dumps(row, sort_keys=True) + "\n")
    self._file.flush()
    if self._tb is not None:
      for k, v in metrics.items():
        self._tb.add_scalar(f"{split}/{k}", float(v), step)

  def close(self) -> None:
    if self._file is not None:
      self._file.close()
    if self._tb is not None:
      self._tb.close()


def _data_facts(data: renderings.TrainingData) -> dict:
  h, w = data.frame_shape
  return {"sample_rate": int(data.sample_rate), "segment_samples": int(data.segment_samples),
          "max_frames": int(data.max_frames), "frame_height": int(h), "frame_width": int(w)}


def free_running_validation(generator: Generator, params: Any,
                            data: renderings.TrainingData,
                            config: ml_collections.ConfigDict) -> dict[str, float]:
  """Free-running cross-entropy on the first validation examples (the method's test metric).

  Uses the first `config.eval.num_examples` validation examples in split order, the first
  `config.eval.free_running_samples` samples of each (0 = the whole segment), batches of
  `config.eval.batch_size`, sampling at `config.eval.free_running_temperature` (0 = greedy)
  keyed by (config.seed, example_id).

  Returns:
    {"cross_entropy": mean over examples of each example's mean free-running CE, in nats}.
  """
  num = min(int(config.eval.num_examples), data.num_examples("validation"))
  if num == 0:
    raise ValueError("the validation split has no examples for the free-running loss")
  length = int(config.eval.free_running_samples) or data.segment_samples
  if not 0 < length <= data.segment_samples:
    raise ValueError(f"config.eval.free_running_samples={config.eval.free_running_samples} must "
                     f"be in [0, {data.segment_samples}] (0 = whole segment)")
  batch_size = max(1, min(int(config.eval.batch_size), num))
  temperature = float(config.eval.get("free_running_temperature", 1.0))  # absent in older runs
  if temperature < 0:
    raise ValueError(f"config.eval.free_running_temperature={temperature} must be >= 0 "
                     "(0 = greedy)")
  per_example = []
  for batch in data.batches("validation", batch_size, seed=config.seed, epoch=0, shuffle=False,
                            drop_remainder=False, num_examples=num, process_index=0,
                            process_count=1):
    n = len(batch["example_id"])
    pad = functools.partial(_pad_rows, size=batch_size)
    out = generator.generate(params, pad(batch["frames"]),
                             pad(batch["frame_index"][:, :length]),
                             pad(batch["frame_age"][:, :length]),
                             temperature=temperature or 1.0, greedy=temperature == 0,
                             seed=config.seed, true_audio=pad(batch["audio"][:, :length]),
                             example_ids=pad(batch["example_id"]),
                             press_frames=pad(batch["press_frames"]) if "press_frames" in batch
                             else True)
    per_example.append(np.asarray(out.cross_entropy)[:n])
  return {"cross_entropy": float(np.mean(np.concatenate(per_example)))}


def _pad_rows(x: np.ndarray, size: int) -> np.ndarray:
  """Pads a short last batch with copies of its last row (one compilation for all batches)."""
  return x if len(x) >= size else np.concatenate([x, np.repeat(x[-1:], size - len(x), 0)])


def _selection_loss(config, generator, params, data, p_eval_step) -> dict[str, float]:
  """Validation metrics after an epoch; `selection_loss` picks the best epoch."""
  metrics = {f"tf_{k}": v for k, v in
             evaluate_teacher_forced(p_eval_step, params, data, config,
                                     generator=generator).items()}
  if config.eval.selection_metric == "free_running" and not generator.autoregressive:
    # Without audio input, generating is the teacher-forced forward pass: the same loss.
    metrics["selection_loss"] = metrics["tf_loss"]
  elif config.eval.selection_metric == "free_running":
    fr = free_running_validation(generator, unreplicate(params), data, config)
    metrics.update({f"fr_{k}": v for k, v in fr.items()})
    metrics["selection_loss"] = metrics["fr_cross_entropy"]
  elif config.eval.selection_metric == "teacher_forced":
    metrics["selection_loss"] = metrics["tf_loss"]
  else:
    raise ValueError(f"unknown eval.selection_metric {config.eval.selection_metric!r}; use "
                     "'teacher_forced' or 'free_running'")
  return metrics


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *,
                       stop_after_steps: int | None = None,
                       show_progress: bool = True) -> dict[str, Any]:
  """Trains (resuming from `workdir` if it holds a checkpoint) and validates after each epoch.

  The latest checkpoint is saved every `config.checkpoint_every_steps` optimizer steps and at
  the end of each epoch, after its validation, so that a resume from it holds the epoch's history
  row and best loss.

  A resume keeps the run's learning-rate schedule or fails: a config or dataset that would give
  another schedule (`max_steps`, `num_epochs`, `batch_size`, `optimizer`, or another number of
  train batches per epoch) raises CheckpointError; to train longer, start a new workdir.

  Args:
    config: see experiments/configs/default.py.
    workdir: run directory (created); holds run.json, checkpoints, metrics.
    stop_after_steps: run exactly this many optimizer steps in this call (fewer if training ends
      first), then save and return, as a preemption would (validating first if the last step
      ends an epoch); the same call again resumes. For tests and the resume soak.
    show_progress: show a tqdm bar.

  Returns:
    The final progress record: step, epoch, best selection loss and per-epoch history.

  Raises:
    checkpointing.CheckpointError: the workdir holds another run, or resuming would change the
      learning-rate schedule.
  """
  data = renderings.load_training_data(config.data_dir, config.get("extra_data_dirs", ()),
                                      config.get("camera_augment", 0.0))
  devices = jax.local_device_count()
  batch_size = _per_process(config.batch_size, devices, "batch_size")
  steps_per_epoch = data.num_batches("train", batch_size)
  if steps_per_epoch == 0:
    raise ValueError(f"the train split has {data.num_examples('train')} examples, fewer than one "
                     f"batch of {batch_size}; lower --config.batch_size")
  total_steps = (config.max_steps if config.max_steps > 0
                 else config.num_epochs * steps_per_epoch)
  crop = config.crop_samples or None
  crop_align = int(config.get("crop_align", 1))

  generator = models.build_generator(config, data.sample_rate)
  if audio_teacher.FIELD in generator.batch_fields:
    for rendering in renderings.renderings_of(data):
      audio_teacher.add_heard_keys(rendering)
  learned_from = {"uses_key_labels": generator.uses_key_labels, "frame_mode": data.frame_mode}
  if config.get("camera_augment", 0.0) > 0:
    learned_from["camera_augment"] = float(config.camera_augment)
  checkpointing.write_run_record(workdir, config, _data_facts(data), learned_from=learned_from)
  ckpts = checkpointing.RunCheckpoints(workdir)
  # Only the fields the model reads reach it: a model without key labels never sees them.
  init_batch = generator.select_fields(next(data.batches("train", batch_size, seed=config.seed,
                                                         epoch=0, crop_samples=crop,
                                                         crop_align=crop_align)))
  state = create_train_state(config, generator, init_batch, total_steps)
  progress = {"step": 0, "epoch": 0, "batch_in_epoch": 0, "best_selection_loss": None,
              "best_step": None, "history": [], "total_steps": total_steps}
  restored = ckpts.restore_latest(state)
  if restored is not None:
    state, progress = restored
    recorded_steps = progress.get("total_steps", total_steps)
    if recorded_steps != total_steps:
      ckpts.close()
      raise checkpointing.CheckpointError(
          f"{workdir} was trained on a {recorded_steps}-step learning-rate schedule, but this "
          f"config and dataset give {total_steps} steps ({steps_per_epoch} train batches per "
          f"epoch of {config.data_dir}); resume with the run's dataset and config, or pass a new "
          "--workdir")
    logging.info("resumed from %s at step %d", workdir, int(state.step))
  else:
    logging.info("no checkpoint in %s: starting at step 0", workdir)
  step = int(state.step)
  writer = MetricsWriter(workdir, step)

  _, schedule = create_optimizer(config, total_steps)
  p_train_step = jax.pmap(
      functools.partial(train_step, generator=generator, config=config, schedule=schedule),
      axis_name=AXIS, donate_argnums=(0,))
  p_eval_step = jax.pmap(functools.partial(eval_step, generator=generator), axis_name=AXIS)
  state = replicate(state)
  samples_per_step = config.batch_size * (crop or data.segment_samples)

  bar = None
  if show_progress and jax.process_index() == 0:
    bar = tqdm.tqdm(total=total_steps, initial=step, unit="step", dynamic_ncols=True)

  pending: list[tuple[int, dict]] = []
  last_flush = (time.perf_counter(), step)
  epoch_losses: list[float] = [] if not progress.get("epoch_losses") else progress["epoch_losses"]

  def flush() -> None:
    """Fetches pending step metrics, stops on a non-finite loss, and logs their mean."""
    nonlocal last_flush
    if not pending:
      return
    host = jax.device_get([m for _, m in pending])
    steps = [s for s, _ in pending]
    pending.clear()
    for s, m in zip(steps, host):
      loss = float(m["loss"][0])
      if not math.isfinite(loss):
        good = ckpts.latest.latest_step()
        raise NonFiniteLossError(
            f"non-finite training loss ({loss}) at step {s}; stopped. The last good checkpoint "
            f"(step {good}) is kept in {workdir}/checkpoints. Lower --config.optimizer."
            "learning_rate or check the data, then re-run to resume from it.")
      epoch_losses.append(loss)
    now = time.perf_counter()
    elapsed, done = now - last_flush[0], steps[-1] + 1 - last_flush[1]
    last_flush = (now, steps[-1] + 1)
    mean = {k: float(np.mean([m[k][0] for m in host])) for k in host[0]}
    mean["samples_per_second"] = done * samples_per_step / max(elapsed, 1e-9)
    mean["seconds_per_step"] = elapsed / max(done, 1)
    writer.write(steps[-1] + 1, "train", mean)
    if bar is not None:
      bar.set_postfix(loss=f"{mean['loss']:.3f}", sps=f"{mean['samples_per_second']:.0f}")

  def save_latest() -> None:
    flush()
    progress.update(step=step, epoch=step // steps_per_epoch,
                    batch_in_epoch=step % steps_per_epoch, epoch_losses=list(epoch_losses))
    ckpts.save_latest(step, unreplicate(state), progress)

  steps_this_call = 0

  def stop_requested() -> bool:
    return bool(stop_after_steps) and steps_this_call >= stop_after_steps

  try:
    while step < total_steps:
      epoch, start_batch = divmod(step, steps_per_epoch)
      batches: Iterator[dict] = data.batches("train", batch_size, seed=config.seed, epoch=epoch,
                                             start_batch=start_batch, crop_samples=crop,
                                             crop_align=crop_align)
      if config.prefetch_batches > 0:
        batches = input_pipeline.prefetch(batches, config.prefetch_batches)
      for batch in batches:
        state, metrics = p_train_step(state, shard(generator.select_fields(batch), devices))
        pending.append((step, metrics))
        step += 1
        steps_this_call += 1
        if bar is not None:
          bar.update(1)
        if step % config.log_every_steps == 0:
          flush()
        if step % steps_per_epoch == 0 or step >= total_steps:
          break  # saved after the epoch's validation, below
        if step % config.checkpoint_every_steps == 0 or stop_requested():
          save_latest()
        if stop_requested():
          return progress
        if ckpts.latest.reached_preemption(step):
          save_latest()
          logging.warning("preemption signal: saved step %d; re-run to resume", step)
          return progress
      if step % steps_per_epoch and step < total_steps:
        raise RuntimeError(f"epoch {epoch + 1} of the train split ended after step {step}, "
                           f"before its {steps_per_epoch} batches; check the dataset")
      flush()
      val = _selection_loss(config, generator, state.params, data, p_eval_step)
      epoch_row = {"epoch": (step - 1) // steps_per_epoch + 1, "step": step,
                   "train_loss": float(np.mean(epoch_losses)) if epoch_losses else None, **val}
      epoch_losses.clear()
      progress["history"].append(epoch_row)
      writer.write(step, "validation", {k: v for k, v in epoch_row.items()
                                        if isinstance(v, float)})
      _report(bar, f"epoch {epoch_row['epoch']} (step {step}): train loss "
              f"{epoch_row['train_loss']:.4f}, " + ", ".join(
                  f"{k} {v:.4f}" for k, v in val.items()))
      best = progress["best_selection_loss"]
      if best is None or val["selection_loss"] < best:
        progress.update(best_selection_loss=val["selection_loss"], best_step=step)
        ckpts.save_best(step, unreplicate(state), progress, val["selection_loss"])
      save_latest()
      if stop_requested():
        return progress
      if step < total_steps and ckpts.latest.reached_preemption(step):
        logging.warning("preemption signal: saved step %d; re-run to resume", step)
        return progress
  finally:
    if bar is not None:
      bar.close()
    writer.close()
    ckpts.close()
  return progress


FLAGS = flags.FLAGS


def quiet_logs() -> None:
  """Progress and results on the console, not library chatter (`console`)."""
  console.quiet_library_chatter()


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  quiet_logs()
  if FLAGS.cpu_devices is not None:
    host_devices.use_cpu_devices(FLAGS.cpu_devices)  # before JAX starts its CPU backend
  if FLAGS.multihost:
    # Unset flags (None) are auto-detected on GPU/TPU clusters (SLURM, Cloud TPU, ...).
    jax.distributed.initialize(coordinator_address=FLAGS.coordinator_address,
                               num_processes=FLAGS.num_processes, process_id=FLAGS.process_id)
  logging.info("JAX devices: %s (process %d of %d)", jax.devices(), jax.process_index(),
               jax.process_count())
  allocator_warning = console.cpu_allocator_warning(jax.default_backend())
  if allocator_warning:
    logging.warning(allocator_warning)
  try:
    config = FLAGS.config
    config.get("data_dir")  # a config file that failed to load raises OSError on first use
  except OSError as e:
    raise SystemExit(f"error: cannot load --config ({' '.join(str(e).split())}); pass an "
                     "existing config file, e.g. --config=experiments/configs/cpu.py") from None
  try:
    progress = train_and_evaluate(config, FLAGS.workdir)
  except (ValueError, NonFiniteLossError, OSError) as e:
    # Bad config, dataset or workdir (CheckpointError, DatasetError, ValueError), a non-finite
    # loss, or a full or read-only disk: one line naming the problem and the fix, no traceback.
    message = " ".join(str(e).split()) or type(e).__name__
    if isinstance(e, OSError):
      message += ("; free disk space or make --workdir writable (or pass another one), then "
                  "re-run the same command to resume")
    raise SystemExit(f"error: {message}") from None
  best = progress.get("best_selection_loss")
  print(f"done: step {progress['step']}, best selection loss "
        f"{best if best is None else round(best, 4)} at step {progress.get('best_step')}; "
        f"workdir {FLAGS.workdir}")


if __name__ == "__main__":
  from ml_collections import config_flags

  config_flags.DEFINE_config_file("config", None, "Path to a config file, e.g. "
                                  "experiments/configs/cpu.py or table1.py:drop75_l10_c512.",
                                  lock_config=True)
  flags.DEFINE_string("workdir", None, "Run directory (checkpoints, metrics); re-use to resume.")
  flags.DEFINE_bool("multihost", False, "Call jax.distributed.initialize() (multi-host GPU/TPU, "
                    "or several CPU processes with gloo collectives).")
  flags.DEFINE_string("coordinator_address", None, "With --multihost: host:port of process 0 "
                      "(default: auto-detected on GPU/TPU clusters).")
  flags.DEFINE_integer("num_processes", None, "With --multihost: number of processes "
                       "(default: auto-detected).")
  flags.DEFINE_integer("process_id", None, "With --multihost: this process's id in "
                       "[0, num_processes) (default: auto-detected).")
  flags.DEFINE_integer("cpu_devices", None,
                       "On a CPU: present it as this many JAX devices (0: one per core), over "
                       "which the train step splits each batch (deepsynth_jax/host_devices.py; "
                       "the batch must divide by them); default: as JAX starts.", lower_bound=0)
  flags.mark_flags_as_required(["config", "workdir"])
  app.run(main)

r"""Training throughput: audio samples per second and seconds per step of the pmapped train step.

  python -m experiments.bench_train [--configs=cpu,l7_c128,drop75_l10_c512] [--batch=8]
      [--samples=8000] [--steps=5]

Runs the real `train.train_step` (jit + pmap over the local devices, donated state) on synthetic
batches of the dataset's shapes (frames 32x208, 40 frames per clip), so it needs no dataset.
Reference (../shared/TARGETS.md, this machine kind, 2 cores): a public PyTorch WaveNet trains
7 x 128 at 26,000-33,800 samples/s and 10 x 512 at 1,553 samples/s (batch 8 x 8,000); our targets
are 50,000 and 2,500.
"""

from __future__ import annotations

import functools
import platform
import time

import jax
import numpy as np
from absl import app, flags
from flax import jax_utils

from deepsynth_jax import models, train
from experiments.configs import cpu, parallel_cpu, table1

flags.DEFINE_list("configs", ["cpu", "l7_c128", "drop75_l7_c256", "drop75_l10_c512"],
                  "cpu, lL_cC (a WaveNet of L layers x C channels, CPU encoder), parallel, or a "
                  "Table 1 setting name.")
flags.DEFINE_integer("batch", 8, "Global batch (examples).")
flags.DEFINE_integer("samples", 8000, "Audio samples per example.")
flags.DEFINE_integer("steps", 5, "Timed steps (after 2 warm-up steps).")
flags.DEFINE_integer("frames", 40, "Frames per clip.")
FLAGS = flags.FLAGS


def config_for(name: str):
  if name == "cpu":
    return cpu.get_config()
  if name == "parallel":
    return parallel_cpu.get_config()
  if name.startswith("l") and "_c" in name:
    config = cpu.get_config()
    layers, channels = name[1:].split("_c")
    config.wavenet.num_layers = config.wavenet.layers_per_stack = int(layers)
    config.wavenet.channels = config.wavenet.skip_channels = int(channels)
    return config
  return table1.get_config(name)


def synthetic_batch(batch: int, samples: int, frames: int, rng: np.random.Generator) -> dict:
  starts = np.sort(rng.choice(np.arange(1, samples), frames - 1, replace=False))
  starts = np.concatenate([[0], starts])
  index = np.searchsorted(starts, np.arange(samples), side="right") - 1
  age = np.arange(samples) - starts[index]
  return {
      "audio": rng.uniform(-0.5, 0.5, (batch, samples)).astype(np.float32),
      "frames": rng.integers(0, 256, (batch, frames, 32, 208)).astype(np.uint8),
      "frame_keys": (rng.random((batch, frames, 88)) < 0.04).astype(np.uint8),
      "num_frames": np.full((batch,), frames, np.int32),
      "frame_index": np.tile(index.astype(np.int32), (batch, 1)),
      "frame_age": np.tile(age.astype(np.int32), (batch, 1)),
      "example_id": np.arange(batch, dtype=np.int32),
  }


def bench(name: str) -> dict:
  config = config_for(name)
  config.batch_size = FLAGS.batch
  devices = jax.local_device_count()
  batch = synthetic_batch(FLAGS.batch, FLAGS.samples, FLAGS.frames, np.random.default_rng(0))
  model = models.build_model(config)
  state = train.create_train_state(config, model, batch, total_steps=1000)
  _, schedule = train.create_optimizer(config, 1000)
  step = jax.pmap(functools.partial(train.train_step, model=model, config=config,
                                    schedule=schedule), axis_name=train.AXIS, donate_argnums=(0,))
  state = jax_utils.replicate(state)
  sharded = jax.device_put(train.shard(batch, devices))
  for _ in range(2):
    state, metrics = step(state, sharded)
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  for _ in range(FLAGS.steps):
    state, metrics = step(state, sharded)
  jax.block_until_ready(metrics)
  seconds = (time.perf_counter() - start) / FLAGS.steps
  return {"config": name, "model": config.model,
          "layers x channels": (f"{config.wavenet.num_layers} x {config.wavenet.channels}"
                                if config.model == "wavenet" else
                                f"{config.parallel.envelope_layers} x "
                                f"{config.parallel.envelope_hidden} (envelope MLP)"),
          "s/step": seconds, "samples/s": FLAGS.batch * FLAGS.samples / seconds}


def main(argv):
  del argv
  print(f"# Training throughput: batch {FLAGS.batch} x {FLAGS.samples} samples, "
        f"{jax.local_device_count()} x {jax.devices()[0].platform}, {platform.processor() or ''} "
        f"jax {jax.__version__}")
  print("| config | model | layers x channels | s/step | samples/s |")
  print("|---|---|---|---|---|")
  for name in FLAGS.configs:
    r = bench(name)
    print(f"| {r['config']} | {r['model']} | {r['layers x channels']} | {r['s/step']:.3f} | "
          f"{r['samples/s']:,.0f} |", flush=True)


if __name__ == "__main__":
  app.run(main)

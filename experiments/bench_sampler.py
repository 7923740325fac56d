r"""Generation speed of the sampler: samples/s, real-time factor, and speed-up over the naive one.

  python -m experiments.bench_sampler [--configs=cpu,l7_c128,l7_c256,l10_c256,l10_c512]
      [--batch_sizes=1,16,64] [--naive_configs=cpu,l7_c128,l7_c256] [--repeats=2]

For each config and batch size, times `sampler.generate` (one jitted `lax.scan` over the cached
incremental forward; compilation excluded, best of --repeats runs) on random-init parameters
(speed does not depend on training), given the frame conditioning computed beforehand, so that
the figure is the autoregressive sampling itself, comparable with the PyTorch reference (which is
given its conditioning at audio rate). The frame encoder runs once per frame, not per sample; its
cost is printed separately (frames/s, batches of 64 frames): with sparse video at about 8 frames
per second of audio it adds 8 / (frames/s) seconds per second of audio.

samples/s is wall-clock; "per CPU-s" divides by the process's CPU time instead, which moves less
when other jobs share the 2 cores (XLA runs this loop on one thread, so on an idle machine the
two agree). The number of
generated samples per run is chosen so that a run is about --gflop_per_run of work (between 100
and 4,000 steps). The naive sampler (`sampler.naive_generate`: the parallel forward over the
receptive field at every step) is timed for a run as long as its receptive field, so that every
step does its steady-state work.

Configs: `cpu` (experiments/configs/cpu.py, 7 x 64), `lL_cC` (L layers x C channels with the
Table 1 encoder and conditioning, i.e. the Table 1 settings without their dropout).
Reference (../shared/TARGETS.md, this machine kind, 2 cores): a public PyTorch WaveNet generates
7 x 128 at 955-1,763 samples/s at batch 1 and 8,728-16,918 at batch 16, and 10 x 512 at 110-200;
our targets are 40,000, 150,000 and 1,500. The FLOP counts printed are the multiply-adds x 2 of
one sample's step; GFLOP/s relates the speed to what the 2 cores can do.
"""

from __future__ import annotations

import functools
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from deepsynth_jax import models, sampler, wavenet
from experiments.configs import cpu, table1

flags.DEFINE_list("configs", ["cpu", "l7_c128", "l7_c256", "l10_c256", "l10_c512"],
                  "cpu or lL_cC (L layers x C channels, Table 1 encoder).")
flags.DEFINE_list("batch_sizes", ["1", "16", "64"], "Batch sizes (clips generated at once).")
flags.DEFINE_list("naive_configs", ["cpu", "l7_c128", "l7_c256"],
                  "Configs whose naive sampler is timed (batch 1).")
flags.DEFINE_integer("repeats", 2, "Timed runs per measurement (the best is reported).")
flags.DEFINE_float("gflop_per_run", 30.0, "Work per timed run, which sets its length.")
flags.DEFINE_integer("unroll", sampler.DEFAULT_UNROLL, "Time steps per scan iteration.")
FLAGS = flags.FLAGS

HEIGHT, WIDTH = 32, 208
SAMPLE_RATE = 4000
TARGETS = {("l7_c128", 1): 40_000, ("l7_c128", 16): 150_000, ("l10_c512", 1): 1_500}
PYTORCH = {("l7_c128", 1): "955-1,763", ("l7_c128", 16): "8,728-16,918",
           ("l10_c512", 1): "110-200"}


def config_for(name: str):
  if name == "cpu":
    return cpu.get_config()
  try:
    layers, channels = (int(x) for x in name[1:].split("_c"))
    assert name.startswith("l")
  except (ValueError, AssertionError):
    raise app.UsageError(f"unknown config {name!r}; use cpu or lL_cC, e.g. l10_c512") from None
  return table1.get_config(f"drop75_l{layers}_c{channels}")


def step_flops(model: wavenet.WaveNet) -> float:
  """FLOPs (2 x multiply-adds) of one incremental step of one example."""
  c, s, g = model.channels, model.skip_channels, 2 * model.channels
  per_layer = 2 * c * g + c * (c + s)
  age = model.num_age_features * model.num_layers * g if model.use_frame_age else 0
  return 2.0 * (2 * c * c + model.num_layers * per_layer + s * c + c * 256 + age)


def random_params(model: wavenet.WaveNet, seed: int = 0):
  """Random parameters of the model's shapes (no init compilation; speed ignores the values)."""
  t = jnp.zeros((1, 4), jnp.int32)
  frames = jnp.zeros((1, 2, HEIGHT, WIDTH), jnp.uint8)
  shapes = jax.eval_shape(model.init, jax.random.key(0), t, frames, t, t)["params"]
  rng = np.random.default_rng(seed)
  fan_in = lambda x: x.shape[-2] if len(x.shape) > 1 else 16
  return jax.tree.map(lambda x: jnp.asarray(rng.normal(0, 1 / np.sqrt(fan_in(x)), x.shape),
                                            x.dtype), shapes)


def clips(batch: int, length: int, seed: int = 0):
  """One synthetic frame per clip (B, 1, H, W), and per-sample frame index/age (B, T)."""
  rng = np.random.default_rng(seed)
  frames = rng.integers(0, 256, (batch, 1, HEIGHT, WIDTH)).astype(np.uint8)
  index = jnp.zeros((batch, length), jnp.int32)
  age = jnp.asarray(np.tile(np.arange(length, dtype=np.int32), (batch, 1)))
  return jnp.asarray(frames), index, age


def bench_encoder(model, params, count: int = 64) -> float:
  """Frames per second of `frame_conditioning` (encoder + per-layer projections)."""
  frames = jnp.asarray(np.random.default_rng(0).integers(0, 256, (1, count, HEIGHT, WIDTH)),
                       jnp.uint8)
  _, best, _ = best_time(lambda: _conditioning(model, params, frames), FLAGS.repeats)
  return count / best


@functools.partial(jax.jit, static_argnums=0)
def _conditioning(model, params, frames):
  return model.apply({"params": params}, frames, method="frame_conditioning")


def best_time(fn, repeats: int) -> tuple[float, float, float]:
  """(seconds of the first call, best wall and best CPU seconds of `repeats` further calls)."""
  t0 = time.perf_counter()
  jax.block_until_ready(fn())
  first = time.perf_counter() - t0
  wall, cpu_s = [], []
  for _ in range(repeats):
    t0, c0 = time.perf_counter(), time.process_time()
    jax.block_until_ready(fn())
    wall.append(time.perf_counter() - t0)
    cpu_s.append(time.process_time() - c0)
  return first, min(wall), min(cpu_s)


def bench_fast(model, params, batch: int, flops: float) -> dict:
  steps = int(np.clip(FLAGS.gflop_per_run * 1e9 / (batch * flops), 100, 4000))
  frames, index, age = clips(batch, steps)
  cond = jax.block_until_ready(_conditioning(model, params, frames))
  fn = lambda: sampler.generate(model, params, cond, index, age, seed=0,
                                unroll=FLAGS.unroll).buckets
  first, best, cpu_s = best_time(fn, FLAGS.repeats)
  return {"steps": steps, "compile_s": first - best, "sps": batch * steps / best,
          "cpu_sps": batch * steps / cpu_s}


def bench_naive(model, params) -> dict:
  steps = model.receptive_field
  frames, index, age = clips(1, steps)
  fn = lambda: sampler.naive_generate(model, params, frames, index, age, seed=0).buckets
  _, best, cpu_s = best_time(fn, 1)
  return {"steps": steps, "sps": steps / best, "cpu_sps": steps / cpu_s}


def main(argv):
  del argv
  load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
  print(f"# sampler speed: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {load:.1f} at start; jax {jax.__version__} on {jax.devices()[0]}; "
        f"unroll {FLAGS.unroll}")
  print("| config | layers x channels | batch | samples/s | x real time (4 kHz) | per CPU-s "
        "| MFLOP/sample | GFLOP/s | steps timed | compile (s) | target | public PyTorch |")
  print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
  encoder = {}
  fast_b1 = {}
  for name in FLAGS.configs:
    config = config_for(name)
    model = models.build_model(config, SAMPLE_RATE)
    params = random_params(model)
    flops = step_flops(model)
    encoder[name] = bench_encoder(model, params)
    for batch in (int(b) for b in FLAGS.batch_sizes):
      r = bench_fast(model, params, batch, flops)
      if batch == 1:
        fast_b1[name] = r["sps"]
      target = TARGETS.get((name, batch))
      print(f"| {name} | {model.num_layers} x {model.channels} | {batch} | {r['sps']:,.0f} | "
            f"{r['sps'] / SAMPLE_RATE:.2f} | {r['cpu_sps']:,.0f} | {flops / 1e6:.2f} | "
            f"{r['sps'] * flops / 1e9:.1f} | "
            f"{r['steps']} | {r['compile_s']:.1f} | {f'>= {target:,}' if target else '-'} | "
            f"{PYTORCH.get((name, batch), '-')} |", flush=True)

  print("\n| config | frame encoder (frames/s) |\n|---|---:|")
  for name, fps in encoder.items():
    print(f"| {name} | {fps:,.0f} |")
  print("\n| config | naive samples/s (batch 1) | naive per CPU-s | steps timed (= receptive "
        "field) | fast batch 1 | speed-up (wall) |")
  print("|---|---:|---:|---:|---:|---:|")
  for name in FLAGS.naive_configs:
    model = models.build_model(config_for(name), SAMPLE_RATE)
    params = random_params(model)
    r = bench_naive(model, params)
    fast = fast_b1.get(name)
    if fast is None:
      fast = bench_fast(model, params, 1, step_flops(model))["sps"]
    print(f"| {name} | {r['sps']:,.1f} | {r['cpu_sps']:,.1f} | {r['steps']} | {fast:,.0f} | "
          f"{fast / r['sps']:,.0f}x |", flush=True)


if __name__ == "__main__":
  app.run(main)

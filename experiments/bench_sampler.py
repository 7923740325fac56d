r"""Generation speed of the sampler: samples/s, real-time factor, and speed-up over the naive one.

  python -m experiments.bench_sampler
      [--configs=cpu,l7_c128,l7_c128_bf16,l7_c256,l10_c256,l10_c512,parallel,parallel_fast,
                 parallel_faster,parallel_faster_hop32,vocoder]
      [--batch_sizes=1,16,64] [--naive_configs=cpu,l7_c128,l7_c256] [--repeats=2]
      [--clip_seconds=5] [--clip_frames=30,150] [--cpu_devices=N]

For each config and batch size, times its generator's `generate` (compilation excluded, best of
--repeats runs) on random-init parameters (speed does not depend on training). An autoregressive
generator (the WaveNet: one jitted `lax.scan` over the cached incremental forward) is given the
frame conditioning computed beforehand, so that the figure is the autoregressive sampling itself,
comparable with the PyTorch reference (which is given its conditioning at audio rate); a one-pass
generator (`parallel`: the default KeySynth) is timed from the frames, key reader included, on
whole clips of --clip_seconds with each of --clip_frames frames per clip (30: sparse press frames,
about 6 per second of audio in the 20 songs; 150: 30 fps camera video). The WaveNet's frame
encoder runs once per frame, not per sample; its cost is printed separately (frames/s, batches
of 64 frames): with sparse video at about 8 frames per second of audio it adds 8 / (frames/s)
seconds per second of audio. For a one-pass generator a second table says where a clip's time
goes (`profile_one_pass`: key reader, control amplitudes, phases, synthesis; ms at batch 1).

With --cpu_devices=N (0: one per core; `make bench` passes 0) the CPU is N JAX devices and a
batch is split over them (`host_devices.map_over_devices`), each core running its share as an
independent program; batch 1 cannot be split and runs as before.

samples/s is wall-clock; "per CPU-s" divides by the process's CPU time instead, which moves less
when other jobs share the 2 cores (XLA runs this loop on one thread, so on an idle machine the
two agree; split over N devices, N threads run it). The number of
generated samples per run is chosen so that a run is about --gflop_per_run of work (between 100
and 4,000 steps). The naive sampler (`autoregressive.naive_generate`: the parallel forward over the
receptive field at every step) is timed for a run as long as its receptive field, so that every
step does its steady-state work.

Configs: `cpu` (experiments/configs/cpu.py, 7 x 64), `lL_cC` (L layers x C channels with the
Table 1 encoder and conditioning, i.e. the Table 1 settings without their dropout), `parallel`
(experiments/configs/keysynth_phase_cpu.py, the shipped default: note-relative phases, the
instrument plays `keysynth.max_voices` = 16 voices), `parallel_fast` and `parallel_faster`
(the sizes of models/demo_keysynth_fast and models/demo_keysynth_faster, read from their run.json:
the default with the row trunk in its key reader, and that with a 1 x 32 instrument MLP;
`experiments.distill`), `parallel_faster_hop32` (models/demo_keysynth_faster_hop32: that model
generating at a 32-sample control hop, `keysynth.generation_hop`), `parallel_absolute_phases`
(experiments/configs/keysynth_cpu.py: phases fixed by absolute time, shared by every clip) and
`parallel_all_keys` (that, with all 88 keys through the instrument, as before voices), `vocoder`
(the size of models/demo_vocoder, configs/vocoder_gain512_level_cpu.py: a 10 x 48 WaveNet on the
shipped KeySynth, greedy, a block of its gain head's 512 samples per scan iteration, timed like
a one-pass generator from the frames on whole clips with the first of --clip_frames frames) and
`vocoder_per_sample` (that one sample per iteration; `autoregressive.generate`'s `by_blocks`;
neither row has a FLOP count: see `bench_vocoder`). A WaveNet
name + "_bf16" (e.g. `l7_c128_bf16`) samples with bfloat16 operands and float32 sums in every
WaveNet product (`wavenet.dtype`, models/precision.py; a model trained so generates so); its
"of peak" is of the fp32 peak, as for every row.
Reference (../shared/TARGETS.md, this machine kind, 2 cores): a public PyTorch WaveNet generates
7 x 128 at 955-1,763 samples/s at batch 1 and 8,728-16,918 at batch 16, and 10 x 512 at 110-200;
our targets are 40,000, 150,000 and 1,500.

FLOPs (multiply-adds x 2) by XLA's cost analysis (`experiments.peak.compiled_flops`): of one
incremental step of the batch for an autoregressive generator (XLA counts a scan's body once, so
the scan itself cannot be counted; sampling from the logits is left out; a "_bf16" row counts its
float32 twin's step, the same products: `products_twin`), of the whole `generate` call for a
one-pass generator. GFLOP/s is set against the fp32 matmul peak measured in the same
process (`experiments.peak.matmul_peak`), and so is the FLOP rate a row's target needs ("target
needs": target samples/s x FLOPs per sample; above 100%, not even every FLOP at the peak would
meet it; a "_bf16" row's products can run faster than the fp32 peak).
"""

from __future__ import annotations

import functools
import os
import platform
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import app, flags

from deepsynth_jax import checkpointing, console, host_devices, models
from deepsynth_jax.models import autoregressive
from experiments import peak
from experiments.configs import (
  cpu,
  keysynth_cpu,
  keysynth_phase_cpu,
  table1,
  vocoder_gain512_level_cpu,
)

flags.DEFINE_list("configs", ["cpu", "l7_c128", "l7_c128_bf16", "l7_c256", "l10_c256",
                             "l10_c512", "parallel", "parallel_fast", "parallel_faster",
                             "parallel_faster_hop32", "vocoder"],
                  "cpu, lL_cC (L layers x C channels, Table 1 encoder), parallel (the default "
                  "KeySynth; `keysynth` is another name for it), parallel_fast, "
                  "parallel_faster and parallel_faster_hop32 (the settings of "
                  "models/demo_keysynth_fast, _faster and _faster_hop32), "
                  "parallel_absolute_phases, parallel_all_keys, vocoder (models/demo_vocoder's "
                  "size, a block per iteration) or vocoder_per_sample; a WaveNet name + "
                  "'_bf16': with bfloat16 products (wavenet.dtype).")
flags.DEFINE_float("clip_seconds", 5.0, "Clip length of a one-pass (parallel) generator's run.")
flags.DEFINE_list("clip_frames", ["30", "150"],
                  "Frames per clip for a one-pass generator (30: sparse, 150: 30 fps).")
flags.DEFINE_list("batch_sizes", ["1", "16", "64"], "Batch sizes (clips generated at once).")
flags.DEFINE_list("naive_configs", ["cpu", "l7_c128", "l7_c256"],
                  "Configs whose naive sampler is timed (batch 1).")
flags.DEFINE_integer("repeats", 2, "Timed runs per measurement (the best is reported).")
flags.DEFINE_float("gflop_per_run", 30.0, "Work per timed run, which sets its length.")
flags.DEFINE_integer("cpu_devices", None,
                     "Present the CPU as this many JAX devices (0: one per core) and split each "
                     "batch over them (deepsynth_jax/host_devices.py); default: as JAX starts "
                     "(one, unless XLA_FLAGS says otherwise).")
flags.DEFINE_integer("unroll", autoregressive.DEFAULT_UNROLL,
                     "Time steps per scan iteration (autoregressive generators).")
FLAGS = flags.FLAGS

HEIGHT, WIDTH = 32, 208
SAMPLE_RATE = 4000
TARGETS = {("l7_c128", 1): 40_000, ("l7_c128", 16): 150_000, ("l10_c512", 1): 1_500,
           ("parallel", 1): 200 * SAMPLE_RATE, ("parallel", 16): 1000 * SAMPLE_RATE}
PYTORCH = {("l7_c128", 1): "955-1,763", ("l7_c128", 16): "8,728-16,918",
           ("l10_c512", 1): "110-200"}


# The shipped vocoder's size (models/demo_vocoder: 10 x 48 on models/demo_keysynth_phase),
# sampled a block of its gain head's `anchor_block` samples at a time (its default) or one sample
# at a time (`autoregressive.generate`'s `by_blocks`), greedily as the demo decodes it.
VOCODERS = {"vocoder": True, "vocoder_per_sample": False}


# The shipped one-pass models made from the default (distilled, `experiments.distill`, and
# exported with generation settings), by their model folders.
SHIPPED_STUDENTS = {"parallel_fast": "models/demo_keysynth_fast",
                    "parallel_faster": "models/demo_keysynth_faster",
                    "parallel_faster_hop32": "models/demo_keysynth_faster_hop32"}


def config_for(name: str) -> ml_collections.ConfigDict:
  """The config a --configs name stands for; a WaveNet name ending in "_bf16" is that config
  with bfloat16 products (`peak.bfloat16_config`)."""
  if (config := peak.bfloat16_config(name, config_for)) is not None:
    return config
  if name == "cpu":
    return cpu.get_config()
  if name in ("parallel", "keysynth"):
    return keysynth_phase_cpu.get_config()
  if name in VOCODERS:
    return vocoder_gain512_level_cpu.get_config()
  if name in SHIPPED_STUDENTS:  # their sizes, from the shipped run record
    record = checkpointing.read_run_record(SHIPPED_STUDENTS[name])
    return checkpointing.config_from_record(record)
  if name == "parallel_absolute_phases":
    return keysynth_cpu.get_config()
  if name == "parallel_all_keys":
    config = keysynth_cpu.get_config()
    config.keysynth.max_voices = 0
    return config
  try:
    layers, channels = (int(x) for x in name[1:].split("_c"))
    assert name.startswith("l")
  except (ValueError, AssertionError):
    raise app.UsageError(f"unknown config {name!r}; use cpu, parallel, parallel_fast, "
                         "parallel_faster, parallel_faster_hop32, parallel_absolute_phases, "
                         "parallel_all_keys, vocoder, vocoder_per_sample or lL_cC, e.g. "
                         "l10_c512") from None
  return table1.get_config(f"drop75_l{layers}_c{channels}")


def random_params(generator: models.Generator, seed: int = 0) -> Any:
  """Random parameters of the model's shapes (no init compilation; speed ignores the values)."""
  batch = {"audio": jnp.zeros((1, 4), jnp.float32),
           "frames": jnp.zeros((1, 2, HEIGHT, WIDTH), jnp.uint8),
           "frame_index": jnp.zeros((1, 4), jnp.int32), "frame_age": jnp.zeros((1, 4), jnp.int32)}
  shapes = jax.eval_shape(generator.init, jax.random.key(0), batch)
  rng = np.random.default_rng(seed)
  fan_in = lambda x: x.shape[-2] if len(x.shape) > 1 else 16
  return jax.tree.map(lambda x: jnp.asarray(rng.normal(0, 1 / np.sqrt(fan_in(x)), x.shape),
                                            x.dtype), shapes)


def step_cost(module: Any, params: Any, batch: int,
              count: Callable[..., float | None] = peak.compiled_flops) -> float | None:
  """FLOPs of one incremental step (`module.step`) of `batch` examples (XLA count), or what
  `count` counts instead (`peak.compiled_bytes`: bytes read and written)."""
  frames = jax.ShapeDtypeStruct((batch, 1, HEIGHT, WIDTH), jnp.uint8)
  cond = jax.eval_shape(functools.partial(_conditioning, module), params, frames)
  state = jax.eval_shape(lambda p: module.apply({"params": p}, batch, method="init_state"),
                         params)
  token = jax.ShapeDtypeStruct((batch,), jnp.int32)
  cond_t = jax.ShapeDtypeStruct((batch, *cond.shape[2:]), cond.dtype)
  return count(lambda p, s, t, c, a: module.apply({"params": p}, s, t, c, a, method="step"),
               params, state, token, cond_t, token)


def products_twin(module: Any) -> Any:
  """The module whose step's FLOPs a row counts: a bfloat16 WaveNet's float32 twin (the same
  products). XLA's cost analysis counts the bf16 step's rounding of its weights as FLOPs: 1.5
  MFLOP a step at 7 x 128, as many as its products at batch 1, which doubled that row's "of
  peak"."""
  if getattr(module, "dtype", jnp.float32) == jnp.float32:
    return module
  return module.clone(dtype=jnp.float32)


def clips(batch: int, length: int, num_frames: int = 1, seed: int = 0):
  """Synthetic frames uint8 (B, F, H, W), evenly spaced over the clip, and per-sample frame
  index / age int32 (B, T)."""
  rng = np.random.default_rng(seed)
  frames = rng.integers(0, 256, (batch, num_frames, HEIGHT, WIDTH)).astype(np.uint8)
  t = np.arange(length)
  index = t * num_frames // length
  age = t - np.ceil(index * length / num_frames).astype(np.int64)
  tile = lambda x: jnp.asarray(np.tile(x.astype(np.int32), (batch, 1)))
  return jnp.asarray(frames), tile(index), tile(age)


def bench_encoder(module: Any, params: Any, count: int = 64) -> float:
  """Frames per second of `frame_conditioning` (encoder + per-layer projections)."""
  frames = jnp.asarray(np.random.default_rng(0).integers(0, 256, (1, count, HEIGHT, WIDTH)),
                       jnp.uint8)
  _, best, _ = best_time(lambda: _conditioning(module, params, frames), FLAGS.repeats)
  return count / best


@functools.partial(jax.jit, static_argnums=0)
def _conditioning(module: Any, params: Any, frames: jax.Array) -> jax.Array:
  return module.apply({"params": params}, frames, method="frame_conditioning")


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


def bench_generate(generator: models.Generator, params: Any, batch: int,
                   num_frames: int = 1) -> dict:
  """Samples/s of `generator.generate` at `batch`, and its FLOPs per generated sample. An
  autoregressive generator runs as many steps as --gflop_per_run sets, a one-pass one a whole clip
  of --clip_seconds with `num_frames` frames."""
  if generator.autoregressive:
    flops = step_cost(products_twin(generator.module), params, batch)
    flops = None if flops is None else flops / batch
    steps = int(np.clip(FLAGS.gflop_per_run * 1e9 / (batch * (flops or 1e6)), 100, 4000))
  else:
    steps = round(FLAGS.clip_seconds * SAMPLE_RATE)
  frames, index, age = clips(batch, steps, num_frames)
  if generator.autoregressive:
    frames = jax.block_until_ready(_conditioning(generator.module, params, frames))
  else:
    # Counted on one clip: on a CPU `generate` loops over the clips, and XLA counts a loop's
    # body once. Every clip is the same work.
    total = peak.compiled_flops(lambda p, f, i, a: generator.generate(p, f, i, a).audio,
                                params, frames[:1], index[:1], age[:1])
    flops = None if total is None else total / steps
  if generator.autoregressive:
    fn: Callable[[], Any] = lambda: autoregressive.generate(
        generator.module, params, frames, index, age, seed=0, unroll=FLAGS.unroll,
        quantization=generator.config.quantization).buckets
  else:
    fn = lambda: generator.generate(params, frames, index, age, seed=0).audio
  first, best, cpu_s = best_time(fn, FLAGS.repeats)
  return {"steps": steps, "compile_s": first - best, "sps": batch * steps / best,
          "cpu_sps": batch * steps / cpu_s, "flops": flops}


def bench_vocoder(generator: models.Generator, params: Any, batch: int, num_frames: int,
                  by_blocks: bool, *, clip_seconds: float, repeats: int) -> dict:
  """Samples/s of the vocoder generating whole clips of `clip_seconds` with `num_frames` frames,
  from the frames (its KeySynth pass and conditioning stack included), greedily. No FLOP count:
  XLA counts a loop's body once, and the per-clip KeySynth work and the per-block or per-sample
  loop cannot be told apart in one compiled count."""
  def generate(p, frames, index, age):
    features = generator.conditioning(p, frames, index, age)
    return autoregressive.generate(generator.module.wavenet, p["wavenet"], frames, index, age,
                                   greedy=True, sample_cond=features, by_blocks=by_blocks,
                                   quantization=generator.config.quantization).buckets

  steps = round(clip_seconds * SAMPLE_RATE)
  frames, index, age = clips(batch, steps, num_frames)
  first, best, cpu_s = best_time(lambda: generate(params, frames, index, age), repeats)
  return {"steps": steps, "compile_s": first - best, "sps": batch * steps / best,
          "cpu_sps": batch * steps / cpu_s, "flops": None}


def profile_one_pass(generator: models.Generator, params: Any, num_frames: int,
                     repeats: int, clip_seconds: float) -> dict[str, float]:
  """Where one clip's time goes in a one-pass (KeySynth) generator: best wall ms of each piece
  jitted alone on one clip of `clip_seconds` with `num_frames` frames: the key reader, the
  control amplitudes (the reader again, key tracking, voices and the instrument MLP), the
  oscillator phases, the synthesis, and the whole `generate`. Pieces jitted apart do not fuse
  with one another, so they need not add up to the whole."""
  module = generator.module
  steps = round(clip_seconds * SAMPLE_RATE)
  frames, index, age = clips(1, steps, num_frames)
  apply = lambda method: jax.jit(lambda p, *a: module.apply({"params": p}, *a, method=method))
  control, clip_phases = apply("control_amplitudes"), apply("clip_phases")
  amplitudes, _, note_start = control(params, frames, index, age)
  phase = clip_phases(params, note_start, index)
  ms = lambda fn, *a: 1e3 * best_time(lambda: fn(params, *a), repeats)[1]
  return {"key reader": ms(apply("key_logits"), frames),
         "control amplitudes (reader included)": ms(control, frames, index, age),
         "phases": 0.0 if note_start is None else ms(clip_phases, note_start, index),
         "synthesis": ms(apply("synthesize_blocks"), amplitudes, *phase),
         "whole clip": ms(lambda p: generator.generate(p, frames, index, age).audio)}


def bench_naive(generator: models.Generator, params: Any) -> dict:
  module = generator.module
  steps = module.receptive_field
  frames, index, age = clips(1, steps)
  fn = lambda: autoregressive.naive_generate(module, params, frames, index, age, seed=0).buckets
  _, best, cpu_s = best_time(fn, 1)
  return {"steps": steps, "sps": steps / best, "cpu_sps": steps / cpu_s}


def _devices_note() -> str:
  n = jax.local_device_count()
  return f"{n} devices, each batch split over them" if n > 1 else "1 device"


def main(argv):
  del argv
  if FLAGS.cpu_devices is not None:
    host_devices.use_cpu_devices(FLAGS.cpu_devices)  # before JAX starts
  load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
  peak_flops = peak.matmul_peak()
  print(f"# sampler speed: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {load:.1f} at start; jax {jax.__version__} on {jax.devices()[0]} "
        f"({_devices_note()}); "
        f"unroll {FLAGS.unroll}; malloc: {console.memory_allocator()}")
  print(peak.peak_line(peak_flops))
  print("| config | layers x channels | frames per clip | batch | samples/s | x real time (4 kHz) "
        "| per CPU-s | MFLOP/sample | GFLOP/s | of peak | steps timed | compile (s) | target | "
        "target needs (of peak) | public PyTorch |")
  print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
  encoder = {}
  step_bytes = {}
  profiles = {}
  fast_b1 = {}
  for name in FLAGS.configs:
    generator = models.build_generator(config_for(name), SAMPLE_RATE)
    params = random_params(generator)
    vocoder = name in VOCODERS  # timed from the frames, KeySynth included (`bench_vocoder`)
    if generator.autoregressive and not vocoder:
      encoder[name] = bench_encoder(generator.module, params)
      # A bf16 step compiled alone counts rounding its float32 weights to bfloat16 among its bytes
      # (7 x 128: 9.5 MiB against 3.6), which is no chain of matrix-vector products (and casting
      # the weights once before the scan did not change the sampler's speed): the batch-1
      # bandwidth table below has float32 rows only.
      if not name.endswith(peak.BFLOAT16_SUFFIX):
        step_bytes[name] = step_cost(generator.module, params, 1, peak.compiled_bytes)
    frame_counts = ([int(FLAGS.clip_frames[0])] if vocoder else [1] if generator.autoregressive
                    else [int(f) for f in FLAGS.clip_frames])
    for num_frames in frame_counts:
      for batch in (int(b) for b in FLAGS.batch_sizes):
        if vocoder:
          r = bench_vocoder(generator, params, batch, num_frames, VOCODERS[name],
                            clip_seconds=FLAGS.clip_seconds, repeats=FLAGS.repeats)
        else:
          r = bench_generate(generator, params, batch, num_frames)
        if batch == 1:
          fast_b1.setdefault(name, r["sps"])
        base = name.removesuffix(peak.BFLOAT16_SUFFIX)
        parallel = base == "keysynth" or base.startswith("parallel")  # any one-pass generator
        target = TARGETS.get(("parallel" if parallel else base, batch))
        flop_s = None if r["flops"] is None else r["sps"] * r["flops"]
        mflop = "-" if r["flops"] is None else f"{r['flops'] / 1e6:.2f}"
        gflop_s = "-" if flop_s is None else f"{flop_s / 1e9:.1f}"
        frames = ("given" if generator.autoregressive and not vocoder
                  else num_frames)  # see the module docstring
        print(f"| {name} | {peak.model_size(generator.module)} | {frames} | {batch} | "
              f"{r['sps']:,.0f} | {r['sps'] / SAMPLE_RATE:.2f} | {r['cpu_sps']:,.0f} | "
              f"{mflop} | {gflop_s} | {peak.fraction(flop_s, peak_flops)} | "
              f"{r['steps']} | {r['compile_s']:.1f} | {f'>= {target:,}' if target else '-'} | "
              f"{peak.needed_fraction(target, r['flops'], peak_flops)} | "
              f"{PYTORCH.get((base, batch), '-')} |", flush=True)
      if not generator.autoregressive:  # after the rows, whose compile time is a first call's
        profiles[(name, num_frames)] = profile_one_pass(generator, params, num_frames,
                                                        FLAGS.repeats, FLAGS.clip_seconds)

  if profiles:
    pieces = ("key reader", "control amplitudes (reader included)", "phases", "synthesis",
              "whole clip")
    print("\nWhere a one-pass clip's time goes (ms, batch 1, each piece jitted alone):\n")
    print(f"| config | frames per clip | {' | '.join(pieces)} |")
    print("|---|---:|" + "---:|" * len(pieces))
    for (name, num_frames), row in profiles.items():
      print(f"| {name} | {num_frames} | " + " | ".join(f"{row[k]:.1f}" for k in pieces) + " |")
  roofline = [(name, fast_b1[name], read) for name, read in step_bytes.items()
              if read is not None and name in fast_b1]
  if roofline:
    print("\nThe sampler at batch 1 against this machine's matrix-vector bandwidth (each step "
          "reads its weights once and waits for the step before; `peak.matvec_bandwidth`: a "
          "chain of matrix-vector products over as many bytes of weights):\n")
    print("| config | bytes per step (XLA) | samples/s | GB/s | chained matvec GB/s | of it | "
          "samples/s at that bandwidth |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, sps, read in roofline:
      bandwidth = peak.matvec_bandwidth(read)
      print(f"| {name} | {read / 2**20:.2f} MiB | {sps:,.0f} | {sps * read / 1e9:.1f} "
            f"| {bandwidth / 1e9:.1f} | {100 * sps * read / bandwidth:.0f}% | "
            f"{bandwidth / read:,.0f} |", flush=True)
  print("\n| config | frame encoder (frames/s) |\n|---|---:|")
  for name, fps in encoder.items():
    print(f"| {name} | {fps:,.0f} |")
  print("\n| config | naive samples/s (batch 1) | naive per CPU-s | steps timed (= receptive "
        "field) | fast batch 1 | speed-up (wall) |")
  print("|---|---:|---:|---:|---:|---:|")
  for name in FLAGS.naive_configs:
    generator = models.build_generator(config_for(name), SAMPLE_RATE)
    if not generator.autoregressive:
      raise app.UsageError(f"--naive_configs: {name} is not autoregressive; it has no naive "
                           "sampler")
    params = random_params(generator)
    r = bench_naive(generator, params)
    fast = fast_b1.get(name)
    if fast is None:
      fast = bench_generate(generator, params, 1)["sps"]
    print(f"| {name} | {r['sps']:,.1f} | {r['cpu_sps']:,.1f} | {r['steps']} | {fast:,.0f} | "
          f"{fast / r['sps']:,.0f}x |", flush=True)


if __name__ == "__main__":
  app.run(main)

r"""Training throughput: audio samples per second and seconds per step of the pmapped train step.

  python -m experiments.bench_train [--configs=cpu,l7_c128,l7_c128_bf16_w1000,keysynth]
      [--batch=8] [--samples=8000] [--steps=5] [--profile_configs=l7_c128,l7_c128_bf16_w1000]
      [--cpu_devices=N] [--pytorch_python=/tmp/tv/bin/python]

Runs the real `train.train_step` (jit + pmap over the local devices, donated state) on synthetic
batches of the dataset's shapes (frames 32x208, 40 frames per clip), so it needs no dataset.
Each row's GFLOP/s is set against the fp32 matmul peak measured in the same process
(`experiments.peak`). FLOPs of a step: XLA's cost analysis of the loss's forward + backward pass
(`jax.value_and_grad`) on the whole global batch, multiply-adds x 2; the optimizer update
(a few FLOPs per parameter) is left out. A config name ending in "_bf16" runs the WaveNet's
products with bfloat16 operands and float32 sums (`wavenet.dtype`, models/precision.py); its
row is set against the fp32 peak (the issue's yardstick, so it can pass 100%) and against the
bf16 peak measured the same way. A WaveNet name ending in "_w<N>" (e.g. l7_c128_bf16_w1000)
trains window by window (`wavenet.train_window` = N, models/windowed_gradient.py); its FLOPs are
the whole-batch step's (the model's work; the windows' halos recomputed on top are not counted),
its memory estimate its own (it holds one window's activations at a time).
A step that XLA estimates at more than MEMORY_FRACTION of the memory available is reported, not
run (the OOM killer would end the whole benchmark).
For each WaveNet config in --profile_configs a second table says where a step's time goes
(`experiments.op_profile`: the loss's forward + backward traced op by op, grouped by the part of
the model each op came from, matrix products apart from the other ops).
Reference (../shared/TARGETS.md, this machine kind, 2 cores): a public PyTorch WaveNet trains
7 x 128 at 26,000-33,800 samples/s and 10 x 512 at 1,553 samples/s (batch 8 x 8,000); our targets
are 50,000 and 2,500. A later machine of the kind ran it at 12,773 samples/s, and issue 16 asks
for twice the PyTorch WaveNet's samples/s on the same machine. With --pytorch_python (an
interpreter with torch and wavenet_vocoder: scripts/bench_pytorch_wavenet.py's docstring) the
PyTorch WaveNet of each compared size (7 x 128 for the l7_c128 rows, 10 x 48 for the vocoder's;
experiments/pytorch_reference.py) is timed first, in this sitting, at this --batch, --samples and
--steps, in fp32; "x PyTorch" is a row's samples/s over it. Without it "x PyTorch" is left empty
(another day's figure is no yardstick) and 7 x 128 rows use the 12,773 above for "2x PyTorch
needs": the FLOP rate twice the PyTorch figure would take at the row's FLOPs per sample, as a
fraction of the fp32 peak (and, for a "_bf16" row, of the bf16 peak); above 100%, no step with
these FLOPs could reach it at that precision on this machine.
"""

from __future__ import annotations

import functools
import gc
import platform
import re
import time
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import app, flags

from deepsynth_jax import console, host_devices, models, train
from experiments import op_profile, peak, pytorch_reference
from experiments.configs import cpu, keysynth_cpu, table1, vocoder_gain512_level_cpu

FLAGS = flags.FLAGS
# The public PyTorch WaveNet's training samples/s on this machine kind (../shared/TARGETS.md, 7 x
# 128, batch 8 x 8,000); issue 16's target is twice it. Run beside ours it moved 11,610-15,289
# on 2026-12-01 and 23,651-31,933 on a faster day (README, Speed), so the same sitting decides;
# without --pytorch_python this only says how much of the peak twice this figure needs.
PYTORCH_SAMPLES_PER_S = {"l7_c128": 12_773}


def pytorch_figures(names: list[str], python: str | None, *, batch: int, samples: int,
                    steps: int) -> tuple[dict[str, float], str]:
  """The PyTorch WaveNet's samples/s for each of `names`' base names that has a PyTorch twin
  (batch x samples, median of `steps`; each size timed once), and a line saying where they come
  from: timed now by `python` (experiments/pytorch_reference.py), or, without it,
  PYTORCH_SAMPLES_PER_S."""
  if python is None:
    return dict(PYTORCH_SAMPLES_PER_S), (
        f"# PyTorch WaveNet: ../shared/TARGETS.md's {PYTORCH_SAMPLES_PER_S['l7_c128']:,} "
        "samples/s for 7 x 128 (another day's machine; --pytorch_python times it in this sitting)")
  compared = [b for b in dict.fromkeys(base_name(n) for n in names)
              if b in pytorch_reference.SIZE_OF]
  by_size = {}
  for size in dict.fromkeys(pytorch_reference.SIZE_OF[b] for b in compared):
    by_size[size] = pytorch_reference.samples_per_s(python, size, batch=batch, samples=samples,
                                                    steps=steps)
  timed = "; ".join(f"{size} {value:,.0f}" for size, value in by_size.items())
  return ({b: by_size[pytorch_reference.SIZE_OF[b]] for b in compared},
          f"# PyTorch WaveNet timed in this sitting (scripts/bench_pytorch_wavenet.py under "
          f"{python}, fp32, batch {batch} x {samples}), samples/s: "
          f"{timed or 'none (no 7 x 128 or vocoder row)'}")


def pytorch_cells(samples_per_s: float, flops_per_sample: float | None, pytorch: float | None,
                  bf16: bool, peak_flops: float, bf16_peak: float | None, *,
                  same_run: bool) -> tuple[str, str]:
  """A row's "x PyTorch" (its samples/s over the PyTorch WaveNet's, only for a figure timed in
  this run) and "2x PyTorch needs" cells ('-' where no PyTorch figure applies)."""
  if not pytorch:
    return "-", "-"
  needs = peak.needed_fraction(2 * pytorch, flops_per_sample, peak_flops)
  if bf16 and needs != "-":
    needs += f"; {peak.needed_fraction(2 * pytorch, flops_per_sample, bf16_peak)}"
  return (f"{samples_per_s / pytorch:.2f}x" if same_run else "-"), needs


# A --configs name ending in "_w<N>" trains window by window (`wavenet.train_window` = N).
_WINDOWED = re.compile(r"(.+)_w(\d+)$")


def config_for(name: str) -> ml_collections.ConfigDict:
  """The config a --configs name stands for; a WaveNet name ending in "_bf16" is that config
  with bfloat16 products (`peak.bfloat16_config`), one ending in "_w<N>" that config trained in
  windows of N samples (`wavenet.train_window`)."""
  if windowed := _WINDOWED.fullmatch(name):
    config = config_for(windowed.group(1))
    if config.model != "wavenet":
      raise ValueError(f"{name}: _w<N> applies to WaveNet configs only")
    config.wavenet.train_window = int(windowed.group(2))
    return config
  if (config := peak.bfloat16_config(name, config_for)) is not None:
    return config
  if name == "cpu":
    return cpu.get_config()
  if name == "keysynth":
    return keysynth_cpu.get_config()
  if name in ("vocoder", "vocoder_teacher_forced"):
    # The shipped models/demo_vocoder's second stage, from fresh parameters.
    config = vocoder_gain512_level_cpu.get_config()
    config.init_from = ""  # (its first stage's run; speed does not depend on the values)
    if name == "vocoder_teacher_forced":  # without scheduled sampling's autoregressive scan,
      config.vocoder.own_samples = 0.0  # i.e. a step as a plain WaveNet's (the PyTorch one's)
    return config
  if name.startswith("l") and "_c" in name:
    config = cpu.get_config()
    layers, channels = name[1:].split("_c")
    config.wavenet.num_layers = config.wavenet.layers_per_stack = int(layers)
    config.wavenet.channels = config.wavenet.skip_channels = int(channels)
    return config
  return table1.get_config(name)


def synthetic_batch(batch: int, samples: int, frames: int, rng: np.random.Generator) -> dict:
  """A batch of the dataset's keys and shapes: (B, T) audio and frame index/age, (B, F, H, W)
  frames, and the fields a KeySynth trains on too (key labels, the audio teacher's keys)."""
  starts = np.sort(rng.choice(np.arange(1, samples), frames - 1, replace=False))
  starts = np.concatenate([[0], starts])
  index = np.searchsorted(starts, np.arange(samples), side="right") - 1
  age = np.arange(samples) - starts[index]
  return {
      "audio": rng.uniform(-0.5, 0.5, (batch, samples)).astype(np.float32),
      "frames": rng.integers(0, 256, (batch, frames, 32, 208)).astype(np.uint8),
      "frame_keys": (rng.random((batch, frames, 88)) < 0.04).astype(np.uint8),
      # the KeySynth's audio teacher's keys (`audio_teacher`: float32 0/1 per frame and key)
      "frame_heard": (rng.random((batch, frames, 88)) < 0.04).astype(np.float32),
      "press_frames": np.ones((batch,), np.bool_),
      "num_frames": np.full((batch,), frames, np.int32),
      "frame_index": np.tile(index.astype(np.int32), (batch, 1)),
      "frame_age": np.tile(age.astype(np.int32), (batch, 1)),
      "example_id": np.arange(batch, dtype=np.int32),
  }


def bf16_rows(names: list[str]) -> bool:
  """Whether any of these --configs runs bfloat16 products (its row is set against the bf16
  peak too)."""
  return any(config_for(name).wavenet.dtype == "bfloat16" for name in names)


def _loss_and_grad(generator: models.Generator) -> Any:
  """(params, batch) -> ((loss, metrics), gradients): a training step's forward + backward."""
  base_key = jax.random.key(0)

  def loss_and_grad(params, batch):
    keys = models.example_keys(base_key, 0, batch["example_id"])
    return generator.loss_and_grad(params, generator.select_fields(batch), keys=keys)

  return loss_and_grad


def base_name(name: str) -> str:
  """A --configs name without its "_w<N>" and "_bf16" suffixes: the model size it measures."""
  if windowed := _WINDOWED.fullmatch(name):
    name = windowed.group(1)
  return name.removesuffix(peak.BFLOAT16_SUFFIX)


# The WaveNet's parts, by the module path in each op's source (first match wins).
WAVENET_PARTS = (
    ("frame encoder and conditioning", r"frame_conditioning"),
    ("dilated convolutions (with the frame and age conditioning)", r"layer_convs|input_conv"),
    ("gated units, residual and skip 1x1s", r"_gated_residual"),
    ("output head", r"_head|_hidden"),
    ("token embedding", r"embed"),
)


def _setup(name: str) -> tuple[ml_collections.ConfigDict, models.Generator, dict, Any]:
  """`name`'s config (at --batch), generator, synthetic global batch and initial train state."""
  config = config_for(name)
  config.batch_size = FLAGS.batch
  batch = synthetic_batch(FLAGS.batch, FLAGS.samples, FLAGS.frames, np.random.default_rng(0))
  generator = models.build_generator(config)
  return config, generator, batch, train.create_train_state(config, generator, batch,
                                                            total_steps=1000)


def _whole_batch(config: ml_collections.ConfigDict) -> models.Generator:
  """The generator of a windowed WaveNet config with the whole batch at once (train_window 0):
  the same model and parameters."""
  whole = config.copy_and_resolve_references()
  whole.wavenet.train_window = 0
  return models.build_generator(whole)


def window_shape(window: int, halo: int, samples: int, frames: int) -> tuple[int, int, int]:
  """A windowed step's unit of work, for its profile: (samples of one window with its halo,
  frames in proportion (at least 1), windows per clip of `samples`)."""
  return window + halo, max(1, round(frames * window / samples)), -(-samples // window)


def profile(name: str) -> tuple[op_profile.Profile, str]:
  """Where the forward + backward of `name`'s loss spends its time, on one device, and what was
  profiled. A windowed config's step is one loop to the profiler, so its profile is of one
  window (its halo included) as a batch of its own, with frames in proportion."""
  config, generator, batch, state = _setup(name)
  what = f"batch {FLAGS.batch} x {FLAGS.samples}"
  if config.model == "wavenet" and config.wavenet.train_window:
    length, frames, count = window_shape(config.wavenet.train_window,
                                         generator.module.receptive_field - 1, FLAGS.samples,
                                         FLAGS.frames)
    batch = synthetic_batch(1, length, frames, np.random.default_rng(0))
    generator = _whole_batch(config)
    what = (f"one window of {length} samples with its halo and {frames} frames, of the "
            f"{FLAGS.batch} x {count} the step runs")
  profiled = op_profile.profile_ops(_loss_and_grad(generator), (state.params, batch),
                                    WAVENET_PARTS)
  return profiled, what


# A config whose step XLA estimates at more than this fraction of the memory available is not
# run: the kernel's OOM killer would end the whole benchmark (10 x 512 at batch 8 x 8,000 needs
# ~16 GiB by the estimate and was killed on a 24 GiB machine after the smaller configs had run;
# the runtime's own buffers and the allocator's caches come on top of the estimate).
MEMORY_FRACTION = 0.6


def too_big(needed: float | None, available: float | None) -> str | None:
  """Why a step needing `needed` bytes is not run with `available` bytes free, or None (run it;
  also when either is unknown)."""
  if needed is None or available is None or needed <= MEMORY_FRACTION * available:
    return None
  return (f"not run: its step needs ~{needed / 2**30:.1f} GiB (XLA's estimate), "
          f"{available / 2**30:.1f} GiB available; use a smaller --batch or --samples")


def bench(name: str) -> dict:
  config, generator, batch, state = _setup(name)
  devices = jax.local_device_count()
  row = {"config": name, "model": config.model,
         "layers x channels": peak.model_size(generator.module),
         "products": (config.wavenet.get("dtype", "float32")
                      if config.model in ("wavenet", "vocoder") else "float32")}
  # One compilation gives the step's FLOPs and its memory estimate. A windowed step's FLOPs are
  # the whole-batch step's (a second compilation): XLA's cost analysis counts a loop's body once,
  # not once per window (and so the halos' recomputation is not counted as work done).
  flops, needed = peak.compiled_flops_and_memory(_loss_and_grad(generator), state.params, batch)
  if config.model == "wavenet" and config.wavenet.train_window:
    flops = peak.compiled_flops(_loss_and_grad(_whole_batch(config)), state.params, batch)
  why_not = too_big(needed, peak.available_memory())
  if why_not:
    return {**row, "skipped": why_not}
  _, schedule = train.create_optimizer(config, 1000)
  step = jax.pmap(functools.partial(train.train_step, generator=generator, config=config,
                                    schedule=schedule), axis_name=train.AXIS, donate_argnums=(0,))
  state = train.replicate(state)
  sharded = train.shard(batch, devices)
  for _ in range(2):
    state, metrics = step(state, sharded)
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  for _ in range(FLAGS.steps):
    state, metrics = step(state, sharded)
  jax.block_until_ready(metrics)
  seconds = (time.perf_counter() - start) / FLAGS.steps
  return {**row, "s/step": seconds, "samples/s": FLAGS.batch * FLAGS.samples / seconds,
          "flop/s": None if flops is None else flops / seconds}


def main(argv):
  del argv
  for name in FLAGS.profile_configs:  # before the table, not after minutes of it
    if config_for(name).model != "wavenet":
      raise app.UsageError(f"--profile_configs: {name} is not a WaveNet config")
  if FLAGS.cpu_devices is not None:
    host_devices.use_cpu_devices(FLAGS.cpu_devices)  # before JAX starts
  try:  # first: its own process, on idle cores
    pytorch, pytorch_line = pytorch_figures(FLAGS.configs, FLAGS.pytorch_python,
                                            batch=FLAGS.batch, samples=FLAGS.samples,
                                            steps=FLAGS.steps)
  except pytorch_reference.PyTorchUnavailable as error:
    raise SystemExit(f"error: --pytorch_python: {error}") from None
  peak_flops = peak.matmul_peak()
  bf16_peak = peak.matmul_peak(dtype=jax.numpy.bfloat16) if bf16_rows(FLAGS.configs) else None
  print(f"# Training throughput: batch {FLAGS.batch} x {FLAGS.samples} samples, "
        f"{jax.local_device_count()} x {jax.devices()[0].platform}, {platform.processor() or ''} "
        f"jax {jax.__version__}, malloc: {console.memory_allocator()}")
  print(peak.peak_line(peak_flops))
  if bf16_peak is not None:
    print(peak.peak_line(bf16_peak, dtype="bf16 (float32 sums)"))
  print(pytorch_line)
  print("# GFLOP/s: XLA cost analysis of the loss's forward + backward (optimizer update left "
        "out) / s per step (a _w<N> row: the whole-batch step's FLOPs); 'of peak' is of the fp32 "
        "peak for every row")
  print("| config | model | layers x channels | products | s/step | samples/s | GFLOP/s | "
        "of peak | of bf16 peak | x PyTorch | 2x PyTorch needs (of peak; of bf16 peak) |")
  print("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
  for name in FLAGS.configs:
    r = bench(name)
    gc.collect()
    console.release_free_memory()  # or the next config's step runs on top of this one's peak
    if "skipped" in r:
      print(f"| {r['config']} | {r['model']} | {r['layers x channels']} | {r['products']} | "
            f"{r['skipped']} | - | - | - | - | - | - |", flush=True)
      continue
    gflops = "-" if r["flop/s"] is None else f"{r['flop/s'] / 1e9:,.1f}"
    bf16 = r["products"] == "bfloat16"
    of_bf16 = peak.fraction(r["flop/s"], bf16_peak) if bf16 else "-"
    per_sample = None if r["flop/s"] is None else r["flop/s"] / r["samples/s"]
    ratio, needs = pytorch_cells(r["samples/s"], per_sample, pytorch.get(base_name(name)), bf16,
                                 peak_flops, bf16_peak, same_run=FLAGS.pytorch_python is not None)
    print(f"| {r['config']} | {r['model']} | {r['layers x channels']} | {r['products']} | "
          f"{r['s/step']:.3f} | {r['samples/s']:,.0f} | {gflops} | "
          f"{peak.fraction(r['flop/s'], peak_flops)} | {of_bf16} | {ratio} | {needs} |",
          flush=True)
  for name in FLAGS.profile_configs:
    profiled, what = profile(name)
    op_profile.print_profile(
        profiled, f"Where a {name} training step's time goes (loss forward + backward, {what}, "
        f"jitted on one device, one traced run):")


def _define_flags() -> None:
  """Only the binary defines flags: tests import this module beside other binaries' modules,
  and absl refuses a flag name defined twice in one process (tests/test_imports.py)."""
  flags.DEFINE_list("configs", ["cpu", "l7_c128", "l7_c128_bf16", "l7_c128_bf16_w1000",
                                "drop75_l7_c256", "drop75_l10_c512", "keysynth", "vocoder",
                                "vocoder_bf16", "vocoder_teacher_forced"],
                    "cpu, lL_cC (a WaveNet of L layers x C channels, CPU encoder), keysynth "
                    "(configs/keysynth_cpu.py), vocoder (configs/vocoder_gain512_level_cpu.py, "
                    "the shipped vocoder's), vocoder_teacher_forced (that without scheduled "
                    "sampling), or a Table 1 setting name; a WaveNet or vocoder name + '_bf16': "
                    "with bfloat16 products (wavenet.dtype); a WaveNet name + '_w<N>': trained "
                    "in windows of N samples (wavenet.train_window).")
  flags.DEFINE_integer("batch", 8, "Global batch (examples).")
  flags.DEFINE_integer("samples", 8000, "Audio samples per example.")
  flags.DEFINE_integer("steps", 5, "Timed steps (after 2 warm-up steps).")
  flags.DEFINE_integer("frames", 40, "Frames per clip.")
  flags.DEFINE_integer("cpu_devices", None,
                       "Present the CPU as this many JAX devices (0: one per core), over which "
                       "the pmapped step splits each batch (deepsynth_jax/host_devices.py; "
                       "`make bench` passes 0); default: as JAX starts.", lower_bound=0)
  flags.DEFINE_string("pytorch_python", None,
                      "An interpreter with torch and wavenet_vocoder (scripts/"
                      "bench_pytorch_wavenet.py's docstring): the PyTorch WaveNet of the 7 x 128 "
                      "and vocoder rows' sizes is timed with it first, in this sitting, and each "
                      "such row prints its samples/s as a multiple of it ('x PyTorch').")
  flags.DEFINE_list("profile_configs", ["l7_c128", "l7_c128_bf16", "l7_c128_bf16_w1000"],
                    "WaveNet configs (of --configs' names) whose training step is profiled op by "
                    "op after the table.")


if __name__ == "__main__":
  _define_flags()
  app.run(main)

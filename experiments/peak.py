"""This machine's fp32 matmul peak and matrix-vector bandwidth, FLOP and byte counts to set a
benchmark's throughput against them, the model-size label of the benchmark tables, and the
"_bf16" config names they share.

Every benchmark (bench_dataset, bench_train, bench_sampler) measures the peak in its own process,
so that a figure and its peak share one machine state (absolute speed drifts between machines and
with other jobs on the same cores; see ../shared/TARGETS.md).

FLOPs are multiply-adds x 2. `compiled_flops` reads XLA's cost analysis of the compiled program
(`jax.jit(f).lower(...).compile().cost_analysis()["flops"]`); XLA counts a loop's body once, not
once per iteration, so a caller with a `lax.scan` over time counts one step and multiplies.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

PEAK_SIZE = 2048
BFLOAT16_SUFFIX = "_bf16"


def matmul_peak(n: int = PEAK_SIZE, repeats: int = 7, dtype: Any = jnp.float32) -> float:
  """FLOP/s of a jitted n x n `jnp.dot`: median of `repeats` runs after 2 warm-up runs.

  dtype: the operands' (float32, or bfloat16 with float32 sums, as models/precision.py's
  products). FLOPs per run: 2 n^3 (n^3 multiply-adds).
  """
  rng = np.random.default_rng(0)
  a = jnp.asarray(rng.standard_normal((n, n), np.float32), dtype)
  b = jnp.asarray(rng.standard_normal((n, n), np.float32), dtype)
  dot = jax.jit(lambda a, b: jnp.dot(a, b, preferred_element_type=jnp.float32))
  return 2.0 * n ** 3 / statistics.median(_run_seconds(lambda: dot(a, b), repeats, warmup=2))


def matvec_bandwidth(num_bytes: float, iterations: int = 1000, repeats: int = 5) -> float:
  """Bytes/s of weights read by a chain of fp32 matrix-vector products over `num_bytes` of
  weights: v <- tanh(v @ W) with W (n, n), n^2 x 4 ~ `num_bytes`, `iterations` times in one
  jitted `fori_loop`, best of `repeats` runs after a warm-up.

  The roofline of an autoregressive sampler at batch 1: each step reads all its weights once
  and depends on the step before, so no two steps overlap; at a few MB the weights sit in cache
  and this is the cache's bandwidth, not the memory's.
  """
  n = max(8, int(np.sqrt(num_bytes / 4)))
  rng = np.random.default_rng(0)
  w = jnp.asarray(rng.standard_normal((n, n), np.float32) / np.sqrt(n))
  v = jnp.ones((1, n), jnp.float32)
  chain = jax.jit(lambda w, v: jax.lax.fori_loop(0, iterations, lambda _, v: jnp.tanh(v @ w), v))
  return 4.0 * n * n * iterations / min(_run_seconds(lambda: chain(w, v), repeats, warmup=1))


def _run_seconds(fn: Callable[[], jax.Array], repeats: int, warmup: int) -> list[float]:
  """Wall seconds of `repeats` calls of `fn` (waiting for its result), after `warmup` calls."""
  for _ in range(warmup):
    fn().block_until_ready()
  seconds = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn().block_until_ready()
    seconds.append(time.perf_counter() - start)
  return seconds


def peak_line(peak: float, n: int = PEAK_SIZE, dtype: str = "fp32") -> str:
  """One line stating the peak, for a benchmark's header."""
  return (f"# {dtype} matmul peak, measured in this process: {peak / 1e9:,.1f} GFLOP/s "
          f"(jitted {n} x {n} jnp.dot on {jax.devices()[0].platform}, median of 7 after warm-up, "
          f"2 n^3 FLOPs)")


def compiled_flops(fn: Callable[..., Any], *args: Any) -> float | None:
  """FLOPs of one call of `jax.jit(fn)(*args)` by XLA's cost analysis, or None if not reported.

  `args` may be arrays or `jax.ShapeDtypeStruct`s (nothing runs, but it compiles).
  """
  return _cost(fn, args, "flops")


def compiled_bytes(fn: Callable[..., Any], *args: Any) -> float | None:
  """Bytes one call of `jax.jit(fn)(*args)` reads and writes by XLA's cost analysis ("bytes
  accessed": parameters, here mostly weights, and outputs), or None if not reported."""
  return _cost(fn, args, "bytes accessed")


def compiled_flops_and_memory(fn: Callable[..., Any],
                              *args: Any) -> tuple[float | None, float | None]:
  """(`compiled_flops`, and the bytes one call holds at its peak by XLA's estimate: arguments,
  outputs and temporaries, `memory_analysis()`) of `jax.jit(fn)(*args)` from one compilation;
  None where XLA does not report one."""
  compiled = _compile(fn, args)
  return _analysis_value(compiled, "flops"), _memory(compiled)


def available_memory() -> float | None:
  """Bytes this process could allocate now: Linux's MemAvailable plus what the process already
  holds (its resident set: after a benchmark row, mostly buffers its allocator keeps for reuse),
  or None where /proc does not say."""
  def kib(path: str, key: str) -> float | None:
    try:
      with open(path) as f:
        for line in f:
          if line.startswith(key):
            return float(line.split()[1]) * 1024.0
    except OSError:
      return None
    return None

  free, held = kib("/proc/meminfo", "MemAvailable:"), kib("/proc/self/status", "VmRSS:")
  return None if free is None else free + (held or 0.0)


def _compile(fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
  return jax.jit(fn).lower(*args).compile()


def _memory(compiled: Any) -> float | None:
  stats = compiled.memory_analysis()
  if stats is None:
    return None
  return float(stats.argument_size_in_bytes + stats.output_size_in_bytes
               + stats.temp_size_in_bytes - stats.alias_size_in_bytes)


def _cost(fn: Callable[..., Any], args: tuple[Any, ...], key: str) -> float | None:
  return _analysis_value(_compile(fn, args), key)


def _analysis_value(compiled: Any, key: str) -> float | None:
  analysis = compiled.cost_analysis()
  if isinstance(analysis, (list, tuple)):  # older jax: one dict per program
    analysis = analysis[0] if analysis else None
  value = (analysis or {}).get(key)
  return float(value) if value and value > 0 else None


def fraction(flops_per_second: float | None, peak: float) -> str:
  """'12.3%' of the peak, or '-' when the FLOP count is unknown."""
  if flops_per_second is None:
    return "-"
  return f"{100.0 * flops_per_second / peak:.1f}%"


def needed_fraction(target: float | None, flops_per_sample: float | None, peak: float) -> str:
  """The FLOP rate that `target` samples/s need at `flops_per_sample`, as a fraction of `peak`
  ('-' without a target or a FLOP count). Above 100%, the model cannot meet the target even if
  every FLOP ran at that peak: only fewer FLOPs (a smaller model, a cheaper way to compute it) or
  faster products (e.g. bfloat16 on AMX, against its own peak) can."""
  if not target or flops_per_sample is None:
    return "-"
  return fraction(target * flops_per_sample, peak)


def model_size(module: Any) -> str:
  """'layers x channels' of a model's main stack, read from its Flax module's fields (a
  vocoder's: its WaveNet's)."""
  if hasattr(module, "wavenet") and hasattr(module, "keysynth"):
    return f"{model_size(module.wavenet)} (WaveNet on a KeySynth)"
  for layers, channels, what in (("num_layers", "channels", ""),
                                 ("envelope_layers", "envelope_hidden", " (envelope MLP)")):
    if hasattr(module, layers) and hasattr(module, channels):
      voices = getattr(module, "max_voices", None)
      if voices is not None:
        what += f", {voices or 'all 88'} voices"
      return f"{getattr(module, layers)} x {getattr(module, channels)}{what}"
  return "-"


def bfloat16_config(name: str, config_for: Callable[[str], ml_collections.ConfigDict],
                    ) -> ml_collections.ConfigDict | None:
  """For a benchmark config name ending in "_bf16": `config_for` of the name without it, with the
  WaveNet's products in bfloat16 and float32 sums (`wavenet.dtype`, models/precision.py); None
  for any other name. ValueError when the config has no WaveNet (wavenet, vocoder)."""
  if not name.endswith(BFLOAT16_SUFFIX):
    return None
  config = config_for(name[: -len(BFLOAT16_SUFFIX)])
  if config.model not in ("wavenet", "vocoder"):
    raise ValueError(f"{name}: {BFLOAT16_SUFFIX} applies to WaveNet configs only (wavenet, "
                     f"vocoder)")
  config.wavenet.dtype = "bfloat16"
  return config

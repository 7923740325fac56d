"""A batch split over this host's devices; on a CPU, its cores presented as devices.

XLA runs a CPU program on one pool of threads, op after op. An op on small tensors (a sampler's
step on a batch of 16, a KeySynth clip's control points) keeps one thread busy and leaves the
others waiting for the next op, so a bigger batch hardly runs faster. JAX can instead present the
CPU as several devices (`use_cpu_devices`, before JAX starts); a batch split over them runs as
that many independent programs at once, one per core, as the pmapped train step already does.
On 2 cores of an Intel Xeon (2026-12-01, `experiments/bench_sampler.py --cpu_devices=2`): the
WaveNet sampler 7 x 128 at batch 16 ran 1.2-1.4x as many samples a second, the KeySynth
1.1-1.4x.

`map_over_devices` runs a function on the batch's shards (`jax.shard_map`): each device runs the
function on its examples alone, so for a function whose examples do not interact the result is
the same whether the batch is split or not (to float rounding: products of other shapes).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, PartitionSpec

AXIS = "batch"


def use_cpu_devices(count: int) -> None:
  """Presents the CPU as `count` JAX devices (`jax_num_cpu_devices`); 0 = one per core.

  Must run before JAX starts its CPU backend (before the first array or device query); raises
  RuntimeError if it has started with another count. An accelerator's devices are unaffected."""
  if count < 0:
    raise ValueError(f"cpu_devices={count}: use 0 (one per core) or a positive count")
  count = count or _core_count()
  try:
    jax.config.update("jax_num_cpu_devices", count)
  except RuntimeError as error:  # the backend has started: fine if it has this many already
    started = len(jax.devices("cpu"))
    if started != count:
      raise RuntimeError(
          f"cannot present the CPU as {count} devices: JAX has already started with "
          f"{started}; call use_cpu_devices before anything else uses JAX") from error


def _core_count() -> int:
  """Cores this process may run on (its affinity where the OS has one)."""
  if hasattr(os, "sched_getaffinity"):
    return len(os.sched_getaffinity(0))
  return os.cpu_count() or 1


def shards(batch: int) -> int:
  """How many local devices a batch of `batch` examples is split over: the most that divide it
  evenly (1: not split)."""
  available = jax.local_device_count()
  return max(n for n in range(1, min(available, batch) + 1) if batch % n == 0)


def map_over_devices(fn: Callable[..., Any], batched: tuple[Any, ...],
                     shared: tuple[Any, ...] = ()) -> Any:
  """`fn(*batched, *shared)`, with `batched` (pytrees of arrays whose leading axis is the batch,
  all the same size; None allowed) split evenly over `shards(batch)` local devices and `shared`
  (arrays and pytrees) copied to each. `fn` must treat examples independently and return arrays
  whose leading axis is the batch. Called under a transformation (inside jit or pmap) it runs
  `fn` unsplit. It is compiled once per (fn, device count, shapes): pass the same `fn` object
  each call (a module-level function, or a cached one)."""
  leaves = jax.tree.leaves(batched)
  if not leaves:
    raise ValueError("map_over_devices needs at least one batched array")
  # Under a transformation (e.g. inside the pmapped train step) the caller owns the devices.
  traced = any(isinstance(x, jax.core.Tracer) for x in leaves + jax.tree.leaves(shared))
  n = 1 if traced else shards(leaves[0].shape[0])
  if n == 1:
    return fn(*batched, *shared)
  return _split(fn, n, len(batched), len(shared))(*batched, *shared)


@functools.lru_cache(maxsize=64)
def _split(fn: Callable[..., Any], n: int, num_batched: int, num_shared: int) -> Callable:
  mesh = Mesh(np.asarray(jax.local_devices()[:n]), (AXIS,))
  specs = (PartitionSpec(AXIS),) * num_batched + (PartitionSpec(),) * num_shared
  return jax.jit(jax.shard_map(fn, mesh=mesh, in_specs=specs, out_specs=PartitionSpec(AXIS),
                               check_vma=False))

"""Where a jitted function's time goes, op by op: a profiler trace joined with XLA's program.

`profile_ops(fn, args, groups)` compiles `fn`, runs it once under `jax.profiler` (a Perfetto
trace), and joins each traced op with its instruction in the compiled HLO: the source it came
from (the `op_name` metadata: the module path, e.g. ".../layer_convs_3/...") and, for a fusion
holding a dot or a convolution, its FLOPs (multiply-adds x 2, from the operand shapes). Ops are
summed into the caller's groups (the first regular expression matching the op's source),
separately for matrix products (dots, convolutions) and everything else (elementwise fusions,
copies, reductions). Ops without a source (XLA-made, e.g. a layout copy or a gradient's index
array) form their own group.

The op times of one run need not add up to its wall time, either way: XLA's CPU runtime runs
independent ops on two threads at once, and spends time outside the ops (allocation, page faults,
scheduling); `Profile.wall_ms` stands beside them. A product that XLA leaves as a bare `dot` or
`convolution` instruction (not inside a fusion: on a CPU, e.g. a weight gradient contracting the
rows of both operands) runs on Eigen's thread pool after its traced event has ended (measured: a
64,000 x 256 x 128 weight gradient traced as 0.26 ms of a 95 ms run), so its time is not in the
trace: such products form their own rows, with their FLOPs and no time ("untimed").
"""

from __future__ import annotations

import dataclasses
import glob
import gzip
import json
import logging
import math
import os
import re
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax

NO_SOURCE = "no source (XLA-made)"
OTHER = "other"

_INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%([\w.\-]+) = (\S+) ([\w\-]+)\(", re.M)
_COMPUTATION = re.compile(r"^(%[\w.\-]+) \(.*?\{\n(.*?)\n\}", re.M | re.S)
_SHAPE = re.compile(r"%([\w.\-]+) = \w+\[([\d,]*)\]")


PRODUCTS = "matrix products"
UNTIMED_PRODUCTS = "matrix products, untimed (bare dot: time not in the trace)"
OTHER_OPS = "other ops"


class Instruction(NamedTuple):
  """One instruction of a compiled program's entry computation."""

  source: str         # its `op_name` metadata, or "" (XLA-made)
  flops: float        # multiply-adds x 2 of the products it holds
  untimed: bool       # a bare dot or convolution: its trace event does not hold its work


@dataclasses.dataclass(frozen=True)
class Row:
  """One group's ops of one kind: `kind` is PRODUCTS, UNTIMED_PRODUCTS or OTHER_OPS (for
  UNTIMED_PRODUCTS `ms` is the traced time, not the work's)."""

  group: str
  kind: str
  ms: float
  gflop: float

  @property
  def gflop_per_s(self) -> float:
    return self.gflop / self.ms * 1e3 if self.ms > 0 else 0.0


@dataclasses.dataclass(frozen=True)
class Profile:
  rows: list[Row]
  op_ms: float    # the traced ops' time, summed
  wall_ms: float  # median wall time of a run of the whole function


def _dims(text: str) -> list[int]:
  return [int(d) for d in text.split(",") if d]


def _flops(body: str, shapes: dict[str, list[int]]) -> float:
  """Multiply-adds x 2 of the dots and convolutions in an HLO computation's text."""
  total = 0.0
  for line in body.split("\n"):
    m = re.match(r"\s*(?:ROOT )?%[\w.\-]+ = \w+\[([\d,]*)\]\S* (dot|convolution)"
                 r"\(%([\w.\-]+), %([\w.\-]+)\)", line)
    if not m:
      continue
    out, lhs, rhs = _dims(m.group(1)), shapes.get(m.group(3)), shapes.get(m.group(4))
    if m.group(2) == "dot":
      contracting = re.search(r"lhs_contracting_dims=\{([\d,]*)\}", line)
      if lhs is None or contracting is None:
        continue
      total += 2.0 * math.prod(out) * math.prod([lhs[d] for d in _dims(contracting.group(1))])
    elif rhs is not None and out:  # each output element: the kernel's elements per feature
      total += 2.0 * math.prod(out) * math.prod(rhs) / out[-1]
  return total


def instructions(hlo: str) -> dict[str, Instruction]:
  """The entry computation's instructions by name."""
  shapes = {m.group(1): _dims(m.group(2)) for m in _SHAPE.finditer(hlo)}
  bodies = {m.group(1): m.group(2) for m in _COMPUTATION.finditer(hlo)}
  entry = hlo[hlo.index("\nENTRY"):]
  out = {}
  for line in entry.split("\n"):
    m = _INSTRUCTION.match(line)
    if not m:
      continue
    source = re.search(r'op_name="([^"]+)"', line)
    called = re.search(r"calls=(%[\w.\-]+)", line)
    flops = _flops(bodies.get(called.group(1), "") if called else line, shapes)
    out[m.group(1)] = Instruction(source.group(1) if source else "", flops,
                                  m.group(3) in ("dot", "convolution"))
  return out


def _traced_op_us(trace_dir: str) -> dict[str, float]:
  """Microseconds per traced event name in the Perfetto trace written to `trace_dir`."""
  files = glob.glob(os.path.join(trace_dir, "**", "*.trace.json.gz"), recursive=True)
  if not files:
    raise RuntimeError(f"jax.profiler wrote no Perfetto trace under {trace_dir}")
  with gzip.open(max(files, key=os.path.getmtime)) as f:
    events = json.load(f)["traceEvents"]
  us: dict[str, float] = {}
  for e in events:
    if e.get("ph") == "X":
      us[e["name"]] = us.get(e["name"], 0.0) + float(e.get("dur", 0.0))
  return us


def profile_ops(fn: Callable[..., Any], args: Sequence[Any],
                groups: Sequence[tuple[str, str]], repeats: int = 3) -> Profile:
  """Profiles `jax.jit(fn)(*args)` on this machine.

  Args:
    fn: the function (jitted here).
    args: its arguments.
    groups: (label, regular expression) pairs; an op belongs to the first whose expression
      matches its source (`op_name`); ops with a source that none matches go to "other".
    repeats: wall-time runs (after a warm-up) for `Profile.wall_ms`.

  Returns:
    a `Profile`: rows in the order of `groups` (then "other", then the ops without a source),
    matrix products before other ops, empty rows left out.
  """
  jitted = jax.jit(fn)
  table = instructions(jitted.lower(*args).compile().as_text())
  jax.block_until_ready(jitted(*args))
  walls = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(jitted(*args))
    walls.append(time.perf_counter() - start)
  profiler_log = logging.getLogger("jax._src.profiler")  # its INFO lines name temporary files
  level = profiler_log.level
  profiler_log.setLevel(logging.WARNING)
  with tempfile.TemporaryDirectory() as trace_dir:
    jax.profiler.start_trace(trace_dir, create_perfetto_trace=True)
    try:
      jax.block_until_ready(jitted(*args))
    finally:
      jax.profiler.stop_trace()
      profiler_log.setLevel(level)
    traced = _traced_op_us(trace_dir)
  labels = [label for label, _ in groups] + [OTHER, NO_SOURCE]
  sums = {(label, kind): [0.0, 0.0, 0] for label in labels
          for kind in (PRODUCTS, UNTIMED_PRODUCTS, OTHER_OPS)}
  for name, us in traced.items():
    if name not in table:  # runtime events (executor, waits), not ops of the program
      continue
    op = table[name]
    label = next((g for g, pattern in groups if re.search(pattern, op.source)),
                 OTHER if op.source else NO_SOURCE)
    kind = ((UNTIMED_PRODUCTS if op.untimed else PRODUCTS) if op.flops > 0 else OTHER_OPS)
    entry = sums[(label, kind)]
    entry[0] += us / 1e3
    entry[1] += op.flops / 1e9
    entry[2] += 1
  rows = [Row(label, kind, ms, gflop) for (label, kind), (ms, gflop, count) in sums.items()
          if count]
  return Profile(rows=rows, op_ms=sum(r.ms for r in rows if r.kind != UNTIMED_PRODUCTS),
                 wall_ms=1e3 * statistics.median(walls))


def print_profile(profile: Profile, title: str) -> None:
  """The profile as a Markdown table: ms, share of the op time, GFLOP and GFLOP/s per row."""
  print(f"\n{title}\n")
  print("| part | ops | ms | of op time | GFLOP | GFLOP/s |")
  print("|---|---|---:|---:|---:|---:|")
  for r in profile.rows:
    gflop = f"{r.gflop:.1f}" if r.gflop else "-"
    if r.kind == UNTIMED_PRODUCTS:
      print(f"| {r.group} | {r.kind} | - | - | {gflop} | - |")
      continue
    rate = f"{r.gflop_per_s:.1f}" if r.gflop else "-"
    print(f"| {r.group} | {r.kind} | {r.ms:.0f} | {r.ms / profile.op_ms:.1%} | {gflop} | "
          f"{rate} |")
  print(f"| all timed ops | | {profile.op_ms:.0f} | 100% | "
        f"{sum(r.gflop for r in profile.rows if r.kind != UNTIMED_PRODUCTS):.1f} | |")
  print(f"| wall time of a run (median) | | {profile.wall_ms:.0f} | | | |")

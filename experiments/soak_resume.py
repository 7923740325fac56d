r"""Kill-anywhere resume soak: SIGKILL training at random moments, restart it, compare bit for bit.

  python -m experiments.soak_resume [--kills=10] [--seed=0] [--max_steps=12] [--out_dir=DIR]

Builds a tiny dataset (6 random songs, ~2 min of audio) and trains the test config
(experiments/configs/test.py) twice without interruption with the CLI
(`python -m deepsynth_jax.train ...`; the second run, with a warm compilation cache, also times a
run). Then it runs the same command again and again in another workdir, killing it with SIGKILL at
--kills seeded-random moments: half while a checkpoint is being written (seen as orbax's temporary
directory), half at a random time over the run (start-up, steps, validation, saving). Each
attempt that gets as far as loading must resume from the newest committed checkpoint (checked
against its "resumed from ... at step N" or "starting at step 0" log line), so no run ever loads a
partial checkpoint. When the run finishes before all kills are spent, another round starts in a
fresh workdir. Prints the kills survived and whether the final parameters, optimizer state,
progress record, best checkpoint and metrics.jsonl (less its timing columns) of every round (and
of the second uninterrupted run) equal the first uninterrupted run's; exit status 1 if not. All
processes run on CPU and share a persistent JAX compilation cache, so restarts do not recompile.

tests/test_faults.py uses the same helpers for a short version (one kill) in CI.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TMP_SUFFIX = ".orbax-checkpoint-tmp"  # orbax writes <step>.orbax-checkpoint-tmp*, then renames it
CHECKPOINT_DIRS = ("checkpoints", "best")
TIMING_KEYS = ("samples_per_second", "seconds_per_step")  # the only columns allowed to differ
RESUMED = re.compile(r"resumed from .* at step (\d+)|no checkpoint in .*: starting at step 0")


# ---- processes -------------------------------------------------------------------------------


def subprocess_env(cache_dir: str | None) -> dict[str, str]:
  """Environment of the training processes: CPU, and a shared persistent compilation cache."""
  env = dict(os.environ)
  env["JAX_PLATFORMS"] = "cpu"
  if cache_dir:
    env["JAX_COMPILATION_CACHE_DIR"] = cache_dir
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    env["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
  return env


def train_command(data_dir: str, workdir: str, max_steps: int,
                  config: str = "experiments/configs/test.py") -> list[str]:
  """The CLI command, the same for every attempt (-v=0 logs the step it resumed from)."""
  return [sys.executable, "-m", "deepsynth_jax.train", f"--config={config}",
          f"--config.data_dir={data_dir}", f"--config.max_steps={max_steps}",
          f"--workdir={workdir}", "--verbosity=0"]


def committed_steps(workdir: str, sub: str = "checkpoints") -> list[int]:
  """Steps of the committed (renamed, complete) checkpoints in workdir/sub."""
  try:
    return sorted(int(n) for n in os.listdir(os.path.join(workdir, sub)) if n.isdigit())
  except FileNotFoundError:
    return []


def temp_dirs(workdir: str) -> set[str]:
  """Paths of the checkpoints being written (orbax's temporary directories)."""
  out = set()
  for sub in CHECKPOINT_DIRS:
    folder = os.path.join(workdir, sub)
    try:
      with os.scandir(folder) as entries:
        for e in entries:
          if TMP_SUFFIX in e.name:
            out.add(e.path)
    except FileNotFoundError:
      pass
  return out


@dataclasses.dataclass(frozen=True)
class KillPlan:
  """When to SIGKILL an attempt: at the `nth` checkpoint write it starts (`mode="write"`, `delay`
  seconds after its temporary directory appears) or `at` seconds after start (`mode="time"`)."""
  mode: str
  nth: int = 1
  delay: float = 0.0
  at: float = 0.0


@dataclasses.dataclass
class Attempt:
  returncode: int
  killed: bool
  cut_write: str | None  # the temporary directory of the checkpoint write the kill cut short
  committed_before: int | None  # the newest committed step when the attempt started
  reached_restore: bool  # it got as far as looking for a checkpoint (killed later, or finished)
  resumed_from: int | None  # the step its log says it resumed from (None: a fresh start)
  seconds: float
  log_path: str
  plan: KillPlan | None = None

  @property
  def during_write(self) -> bool:
    return self.cut_write is not None

  @property
  def loaded_committed(self) -> bool:
    """It resumed from exactly the newest committed checkpoint (never a partial one), or it was
    killed before it loaded anything."""
    return not self.reached_restore or self.resumed_from == self.committed_before


def _wait_and_kill(proc: subprocess.Popen, workdir: str, plan: KillPlan, t0: float,
                   starting: set[str]) -> str | None:
  """Kills `proc` per `plan` unless it exits first; returns the checkpoint write it cut short.

  A write is counted when its temporary directory appears (it was absent at the previous poll).
  """
  previous = set(starting)
  writes = 0
  trigger: set[str] = set()
  while proc.poll() is None:
    if plan.mode == "time":
      if time.monotonic() - t0 >= plan.at:
        break
    else:
      now = temp_dirs(workdir)
      new, previous = now - previous, now
      if new:
        writes += 1
        if writes >= plan.nth:
          trigger = new
          if plan.delay:
            time.sleep(plan.delay)
          break
    time.sleep(0.002)
  if proc.poll() is None:
    proc.send_signal(signal.SIGKILL)
  proc.wait()
  if plan.mode == "time":
    trigger = temp_dirs(workdir) - starting
  return next((path for path in sorted(trigger) if os.path.exists(path)), None)


def run_attempt(cmd: list[str], env: dict[str, str], workdir: str, log_path: str,
                plan: KillPlan | None = None, timeout: float = 900.0) -> Attempt:
  """Runs the command once (killing it per `plan`); its output goes to `log_path`."""
  before = committed_steps(workdir)
  starting = temp_dirs(workdir)
  t0 = time.monotonic()
  with open(log_path, "w") as log:
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
  cut = None
  try:
    if plan is not None:
      cut = _wait_and_kill(proc, workdir, plan, t0, starting)
    proc.wait(timeout=timeout)
  finally:
    if proc.poll() is None:  # a hung attempt: do not leave it behind
      proc.kill()
      proc.wait()
  with open(log_path, errors="replace") as f:
    found = [m.group(1) for m in RESUMED.finditer(f.read())]
  return Attempt(returncode=proc.returncode, killed=proc.returncode == -signal.SIGKILL,
                 cut_write=cut if proc.returncode == -signal.SIGKILL else None,
                 committed_before=before[-1] if before else None,
                 reached_restore=bool(found),
                 resumed_from=int(found[-1]) if found and found[-1] else None,
                 seconds=time.monotonic() - t0, log_path=log_path, plan=plan)


def log_tail(path: str, lines: int = 15) -> str:
  with open(path, errors="replace") as f:
    return "".join(f.readlines()[-lines:])


def train_with_kills(cmd: list[str], env: dict[str, str], workdir: str, plans: list[KillPlan],
                     log_dir: str, max_clean_attempts: int = 2) -> list[Attempt]:
  """Runs `cmd` with one kill plan per attempt, then without kills until it succeeds.

  Stops early when an attempt finishes (exit 0) before the plans are spent.

  Raises:
    RuntimeError: an attempt failed other than by our SIGKILL (e.g. it could not resume).
  """
  attempts: list[Attempt] = []
  queue = list(plans) + [None] * max_clean_attempts
  for i, plan in enumerate(queue):
    attempt = run_attempt(cmd, env, workdir, os.path.join(log_dir, f"attempt_{i:02d}.log"), plan)
    attempts.append(attempt)
    if attempt.returncode == 0:
      return attempts
    if not attempt.killed:
      raise RuntimeError(f"attempt {i} exited with status {attempt.returncode} (not killed):\n"
                         f"{log_tail(attempt.log_path)}")
  raise RuntimeError(f"no attempt finished; see {log_dir}")


# ---- comparison ------------------------------------------------------------------------------


def _restore(workdir: str) -> dict:
  from deepsynth_jax import checkpointing

  ckpts = checkpointing.RunCheckpoints(workdir, read_only=True)
  try:
    step = ckpts.latest.latest_step()
    best_step = ckpts.best.best_step()
    latest = ckpts.latest.restore(step)
    best = ckpts.best.restore(best_step) if best_step is not None else None
  finally:
    ckpts.close()
  return {"step": step, "state": latest["state"], "progress": latest["progress"],
          "best_step": best_step, "best_params": None if best is None else best["state"]["params"]}


def _tree_differences(name: str, a, b) -> list[str]:
  import jax

  leaves_a, tree_a = jax.tree.flatten_with_path(a)[0], jax.tree.structure(a)
  leaves_b, tree_b = jax.tree.flatten_with_path(b)[0], jax.tree.structure(b)
  if tree_a != tree_b:
    return [f"{name}: different tree structure"]
  out = []
  for (path, x), (_, y) in zip(leaves_a, leaves_b, strict=True):
    x, y = np.asarray(x), np.asarray(y)
    if x.dtype != y.dtype or x.shape != y.shape or not np.array_equal(x, y, equal_nan=True):
      out.append(f"{name}{jax.tree_util.keystr(path)} differs")
  return out


def _metric_rows(workdir: str) -> list[dict]:
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in rows]


def compare_runs(reference: str, workdir: str) -> list[str]:
  """Differences between two finished workdirs (empty: identical, bit for bit)."""
  a, b = _restore(reference), _restore(workdir)
  out = []
  if a["step"] != b["step"]:
    out.append(f"latest step {a['step']} != {b['step']}")
  for key in ("params", "opt_state", "step"):
    out += _tree_differences(f"state.{key}", a["state"][key], b["state"][key])
  if a["progress"] != b["progress"]:
    out.append("progress records differ")
  if a["best_step"] != b["best_step"]:
    out.append(f"best step {a['best_step']} != {b['best_step']}")
  elif a["best_params"] is not None:
    out += _tree_differences("best.params", a["best_params"], b["best_params"])
  if _metric_rows(reference) != _metric_rows(workdir):
    out.append("metrics.jsonl rows differ")
  return out


# ---- the soak --------------------------------------------------------------------------------


def tiny_song(seed: int, seconds: float) -> bytes:
  """A random piano piece of about `seconds` s: 1-3 note chords, as MIDI bytes."""
  from experiments import fuzz_midi

  rng = np.random.default_rng(seed)
  notes, t = [], 0.3
  while t < seconds:
    for pitch in rng.choice(np.arange(30, 100), size=rng.integers(1, 4), replace=False):
      notes.append((round(t * 960), round(float(rng.choice([0.1, 0.3, 0.6])) * 960), int(pitch),
                    90, 0))
    t += float(rng.choice([0.2, 0.4, 0.7]))
  return fuzz_midi.song_from_notes(notes, division=480)


def build_tiny_dataset(folder: str) -> str:
  from data_gen import make_dataset

  midis = os.path.join(folder, "midis")
  os.makedirs(midis, exist_ok=True)
  for i in range(6):
    with open(os.path.join(midis, f"s{i}.mid"), "wb") as f:
      f.write(tiny_song(i, 14.0 + 4 * i))
  out = os.path.join(folder, "dataset")
  make_dataset.build_dataset(out, midi_dir=midis, num_songs=0, workers=1, progress=False)
  return out


def kill_plans(rng: np.random.Generator, count: int, run_seconds: float) -> list[KillPlan]:
  """Alternately: a kill during a checkpoint write (the 1st-4th write of the attempt, at once or
  up to 0.3 s later), and one at a uniform time over the last 70% of a whole run's duration
  (the first ~30% is Python start-up, where a kill is least interesting)."""
  plans = []
  for i in range(count):
    if i % 2 == 0:
      plans.append(KillPlan("write", nth=int(rng.integers(1, 5)),
                            delay=float(rng.choice([0.0, rng.uniform(0.0, 0.3)]))))
    else:
      plans.append(KillPlan("time", at=float(rng.uniform(0.3, 1.0) * run_seconds)))
  return plans


def soak(kills: int, seed: int, max_steps: int, out_dir: str) -> dict:
  """Runs the soak; returns a summary (see the module docstring)."""
  rng = np.random.default_rng(seed)
  data_dir = build_tiny_dataset(out_dir)
  env = subprocess_env(os.path.join(out_dir, "jax_cache"))
  reference = os.path.join(out_dir, "reference")
  logs = os.path.join(out_dir, "logs")
  os.makedirs(logs, exist_ok=True)
  ref = run_attempt(train_command(data_dir, reference, max_steps), env, reference,
                    os.path.join(logs, "reference.log"))
  if ref.returncode != 0:
    raise RuntimeError(f"the uninterrupted run failed:\n{log_tail(ref.log_path)}")
  # The first run compiled into the cache; time a warm one, which is what the attempts take.
  warm_dir = os.path.join(out_dir, "warm")
  warm = run_attempt(train_command(data_dir, warm_dir, max_steps), env, warm_dir,
                     os.path.join(logs, "warm.log"))
  summary = {"reference_seconds": ref.seconds, "warm_seconds": warm.seconds, "rounds": [],
             "attempts": [], "differences": compare_runs(reference, warm_dir)}
  delivered = 0
  while delivered < kills:
    r = len(summary["rounds"])
    workdir = os.path.join(out_dir, f"round_{r}")
    round_logs = os.path.join(logs, f"round_{r}")
    os.makedirs(round_logs, exist_ok=True)
    plans = kill_plans(rng, kills - delivered, warm.seconds)
    attempts = train_with_kills(train_command(data_dir, workdir, max_steps), env, workdir, plans,
                                round_logs)
    delivered += sum(a.killed for a in attempts)
    summary["attempts"] += attempts
    summary["rounds"].append(workdir)
    summary["differences"] += [f"round {r}: {d}" for d in compare_runs(reference, workdir)]
  return summary


def main(argv: list[str]) -> None:
  del argv
  from absl import flags

  f = flags.FLAGS
  out_dir = f.out_dir or tempfile.mkdtemp(prefix="deepsynth_soak_")
  t0 = time.monotonic()
  s = soak(f.kills, f.seed, f.max_steps, out_dir)
  attempts = s["attempts"]
  killed = [a for a in attempts if a.killed]
  partial = [a for a in attempts if not a.loaded_committed]
  print(f"uninterrupted run: {s['reference_seconds']:.0f} s cold, {s['warm_seconds']:.0f} s warm "
        f"({f.max_steps} steps)")
  for i, a in enumerate(attempts):
    if a.plan is None:
      planned = "no kill planned"
    elif a.plan.mode == "write":
      planned = f"planned: kill at checkpoint write #{a.plan.nth} + {a.plan.delay:.2f} s"
    else:
      planned = f"planned: kill at {a.plan.at:.1f} s"
    what = ("killed during a checkpoint write" if a.during_write else "killed") if a.killed \
        else f"exit {a.returncode}"
    loaded = (f"resumed from step {a.resumed_from}" if a.resumed_from is not None else
              "started at step 0" if a.reached_restore else "killed before loading")
    print(f"  attempt {i:2d}: {loaded} (newest committed: {a.committed_before}), {what} after "
          f"{a.seconds:.1f} s ({planned})")
  ok = not s["differences"] and not partial and len(killed) >= f.kills
  print(f"survived {len(killed)} SIGKILLs ({sum(a.during_write for a in killed)} during a "
        f"checkpoint write) in {len(attempts)} attempts over {len(s['rounds'])} round(s); "
        f"attempts that loaded other than the newest committed checkpoint: {len(partial)}; "
        f"final params, opt_state, progress, best checkpoint and metrics match the "
        f"uninterrupted run: {not s['differences']}; {time.monotonic() - t0:.0f} s in all "
        f"(seed {f.seed}, files in {out_dir})")
  for d in s["differences"][:20]:
    print(f"  difference: {d}")
  if not ok:
    sys.exit(1)


if __name__ == "__main__":
  from absl import app, flags

  flags.DEFINE_integer("kills", 10, "SIGKILLs to deliver (at least).")
  flags.DEFINE_integer("seed", 0, "Seed of the kill moments.")
  flags.DEFINE_integer("max_steps", 12, "Training steps of each run (checkpoints every 2).")
  flags.DEFINE_string("out_dir", None, "Work folder (default: a new temporary folder).")
  app.run(main)

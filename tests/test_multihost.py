"""Multi-host training for real: 2 processes on localhost == 1 process with 2 devices.

Two `python -m deepsynth_jax.train --multihost` processes join one JAX distributed system through
a coordinator on 127.0.0.1 (a free port), with gloo CPU collectives (JAX's default CPU
implementation) and one CPU device each; each reads its own half of every global batch
(`input_pipeline` shards by `jax.process_index()`), and both write one shared workdir (orbax:
process 0 writes the replicated state; all processes synchronise on each save). Their parameters
must equal those of this process (2 simulated devices) trained on the same config.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import chex
import jax
import pytest

from deepsynth_jax import checkpointing, train
from experiments.configs import test as test_config

pytestmark = pytest.mark.serial  # two processes with a hang guard: not beside other tests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 3
# Hang guard. The test takes ~100 CPU-s (mostly compiling): ~60 s on 2 idle cores, ~110 s under
# load. Then the processes are killed with SIGKILL (JAX's preemption notifier catches SIGTERM).
TIMEOUT_S = 240


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _final_state(workdir: str) -> tuple[int, dict]:
  ckpts = checkpointing.RunCheckpoints(workdir, read_only=True)
  try:
    step = ckpts.latest.latest_step()
    return step, ckpts.latest.restore(step)["state"]
  finally:
    ckpts.close()


def _start_two_processes(data_dir: str, workdir: str) -> list[subprocess.Popen]:
  """Launches the 2 training processes of one distributed run (one CPU device each)."""
  port = _free_port()
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1",
         "JAX_PLATFORMS": "cpu"}
  return [subprocess.Popen(
      [sys.executable, "-m", "deepsynth_jax.train", "--multihost",
       f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2", f"--process_id={i}",
       "--config=experiments/configs/test.py", f"--config.data_dir={data_dir}",
       f"--config.max_steps={STEPS}", f"--workdir={workdir}"],
      cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
      for i in range(2)]


def _wait(procs: list[subprocess.Popen], deadline: float) -> None:
  """Waits for both processes; fails with their logs if one fails or runs past `deadline`."""
  logs = []
  try:
    for p in procs:
      logs.append(p.communicate(timeout=max(deadline - time.monotonic(), 1.0))[0])
  except subprocess.TimeoutExpired:
    for p in procs:
      p.kill()
    logs = [p.communicate()[0] for p in procs]
    pytest.fail(f"the 2-process run did not finish in {TIMEOUT_S} s:\n" + "\n".join(
        f"--- process {i} ---\n{log[-3000:]}" for i, log in enumerate(logs)))
  for i, (p, log) in enumerate(zip(procs, logs)):
    assert p.returncode == 0, f"process {i} exited {p.returncode}:\n{log[-3000:]}"
    assert f"done: step {STEPS}" in log, log[-3000:]


def test_two_processes_train_like_one_process_with_two_devices(tiny_data_dir, tmp_path):
  if jax.local_device_count() < 2:
    pytest.skip("needs 2 local devices: XLA_FLAGS=--xla_force_host_platform_device_count=2")
  multi, single = str(tmp_path / "two_processes"), str(tmp_path / "one_process")
  deadline = time.monotonic() + TIMEOUT_S
  procs = _start_two_processes(tiny_data_dir, multi)
  try:
    # The reference run shares the 2 cores with the other two (less wall time than in turn).
    config = test_config.get_config()
    config.data_dir = tiny_data_dir
    config.max_steps = STEPS
    train.train_and_evaluate(config, single, show_progress=False)
  finally:
    _wait(procs, deadline)

  step_multi, state_multi = _final_state(multi)
  step_single, state_single = _final_state(single)
  assert step_multi == step_single == STEPS
  # Same examples, keys and initial parameters. With 2 devices the mean of 2 gradients is exact
  # in any order (bit-identical today); 1e-6 relative (~8 float32 ulp, 1e-8 floor near zero)
  # allows another all-reduce order, and still catches a wrong shard or a missed average.
  chex.assert_trees_all_close(state_multi["params"], state_single["params"], rtol=1e-6,
                              atol=1e-8)
  chex.assert_trees_all_close(state_multi["opt_state"], state_single["opt_state"], rtol=1e-6,
                              atol=1e-8)


@pytest.mark.parametrize("same_config", [True, False])
def test_run_record_written_by_the_other_process_meanwhile(tmp_path, monkeypatch, same_config):
  """Both processes of a job write run.json into one new workdir. The one that finds it written
  between its own look and its folder check (the race a make test run met: "holds no DeepSynth
  run (... it has run.json)") compares it as a resume instead of calling it a foreign file."""
  workdir = str(tmp_path / "run")
  os.makedirs(workdir)
  config, other = test_config.get_config(), test_config.get_config()
  if not same_config:
    other.seed = config.seed + 1
  facts = {"sample_rate": 4000}
  real_check = checkpointing._check_no_foreign_files

  def the_other_process_writes_first(folder):
    monkeypatch.setattr(checkpointing, "_check_no_foreign_files", real_check)
    checkpointing.write_run_record(workdir, other, facts)  # after this one looked, before its check
    real_check(folder)

  monkeypatch.setattr(checkpointing, "_check_no_foreign_files", the_other_process_writes_first)
  if same_config:
    record = checkpointing.write_run_record(workdir, config, facts)
    assert record["config"]["seed"] == config.seed
  else:  # another job's run: refused as a different configuration, not as foreign files
    with pytest.raises(checkpointing.CheckpointError, match="seed"):
      checkpointing.write_run_record(workdir, config, facts)
  assert sorted(os.listdir(workdir)) == [checkpointing.RUN_RECORD]  # no temporary file left


def test_run_record_is_created_once(tmp_path):
  path = str(tmp_path / "record.json")
  assert checkpointing.create_json_exclusive(path, {"a": 1})
  assert not checkpointing.create_json_exclusive(path, {"a": 2})
  with open(path) as f:
    assert json.load(f) == {"a": 1}
  assert sorted(os.listdir(tmp_path)) == ["record.json"]

"""Faults: SIGKILL during training and during a dataset build, damaged dataset files, and a full or
read-only disk while a checkpoint is written. Nothing finished is lost, nothing partial is loaded,
and a restarted run ends bit for bit where an uninterrupted one does.

The training kill runs the real CLI in subprocesses that share the session's persistent JAX
compilation cache; `python -m experiments.soak_resume` is the long version (>= 10 kills)."""

from __future__ import annotations

import builtins
import errno
import logging
import os
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from conftest import make_song_midi

from data_gen import make_dataset
from deepsynth_jax import checkpointing, train
from experiments import soak_resume as soak
from experiments.configs import test as test_config

SEED = 0
MAX_STEPS = 6  # checkpoints at steps 2, 4, 6 (test config) and the best one after validation
pytestmark = pytest.mark.filterwarnings("ignore:os.fork")  # the CLIs run as subprocesses


def _cache_dir(tmp_path_factory) -> str:
  """The session's compilation cache (tests/conftest.py), shared with the subprocesses."""
  return jax.config.jax_compilation_cache_dir or str(tmp_path_factory.mktemp("jax_cache"))


def _config(data_dir: str):
  config = test_config.get_config()
  config.data_dir = data_dir
  config.max_steps = MAX_STEPS
  return config


# ---- training ----------------------------------------------------------------------------------


def test_sigkill_during_a_checkpoint_write_then_resume_is_bit_identical(
    tiny_data_dir, tmp_path, tmp_path_factory):
  rng = np.random.default_rng(SEED)
  env = soak.subprocess_env(_cache_dir(tmp_path_factory))
  ref_dir, run_dir = str(tmp_path / "uninterrupted"), str(tmp_path / "killed")
  command = soak.train_command(tiny_data_dir, run_dir, MAX_STEPS)
  # Killed at once when the 2nd or 3rd checkpoint write of the run starts (latest/4 or best/6).
  plan = soak.KillPlan("write", nth=int(rng.integers(2, 4)))
  killed = soak.run_attempt(command, env, run_dir, str(tmp_path / "killed.log"), plan)
  # The first attempt filled the compilation cache: the uninterrupted run (the same command in
  # another workdir) goes alongside the restarts.
  with open(tmp_path / "uninterrupted.log", "w") as log:
    reference = subprocess.Popen(soak.train_command(tiny_data_dir, ref_dir, MAX_STEPS),
                                 stdout=log, stderr=subprocess.STDOUT, env=env, cwd=soak.ROOT)
  try:
    attempts = soak.train_with_kills(command, env, run_dir, [], str(tmp_path))
  finally:
    try:
      reference.wait(timeout=600)
    finally:
      if reference.poll() is None:
        reference.kill()
        reference.wait()
  assert reference.returncode == 0, soak.log_tail(str(tmp_path / "uninterrupted.log"))

  assert len(attempts) == 1
  resumed = attempts[0]
  assert killed.killed and killed.during_write, "the kill did not land inside a checkpoint write"
  assert killed.cut_write is not None and os.path.basename(killed.cut_write).split(".")[0].isdigit()
  cut_step = int(os.path.basename(killed.cut_write).split(".")[0])
  assert resumed.returncode == 0
  # The restart loaded the newest committed checkpoint, older than the write that was cut.
  assert resumed.reached_restore and resumed.committed_before is not None
  assert resumed.resumed_from == resumed.committed_before
  assert resumed.resumed_from < cut_step
  assert soak.compare_runs(ref_dir, run_dir) == []
  assert not soak.temp_dirs(run_dir), "a partial checkpoint was left behind"


def _under(path, folder: str) -> bool:
  """Whether `path` (a str or os.PathLike; not a file descriptor) lies inside `folder`."""
  if not isinstance(path, (str, os.PathLike)):
    return False
  return os.path.abspath(os.fspath(path)).startswith(os.path.abspath(folder) + os.sep)


def test_disk_full_during_a_checkpoint_is_one_clear_error(tiny_data_dir, tmp_path, monkeypatch):
  """The disk fills up in the middle of the second checkpoint write: the write's first file is
  on disk, every later file write in it fails with ENOSPC (injected at Python's `open`)."""
  workdir = str(tmp_path / "run")
  real_open = builtins.open
  checkpoints = []  # the step directories (orbax's temporary ones) written to, in order
  failed = []

  def disk_fills_up_in_the_second_checkpoint(file, mode="r", *args, **kwargs):
    if any(c in mode for c in "wax+") and any(
        _under(file, os.path.join(workdir, d)) for d in ("checkpoints", "best")):
      step_dir = os.path.relpath(os.fspath(file), workdir).split(os.sep)[:2]
      if step_dir not in checkpoints:
        checkpoints.append(step_dir)  # the write's first file gets onto the disk
      elif checkpoints.index(step_dir) == 1:
        failed.append(os.fspath(file))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(file))
    return real_open(file, mode, *args, **kwargs)

  monkeypatch.setattr(builtins, "open", disk_fills_up_in_the_second_checkpoint)
  with pytest.raises(checkpointing.CheckpointError) as info:
    train.train_and_evaluate(_config(tiny_data_dir), workdir, show_progress=False)
  monkeypatch.undo()
  assert failed, "no write of the second checkpoint failed"
  assert checkpoints[1][0] == "checkpoints" and checkpoints[1][1].split(".")[0] == "4"
  message = str(info.value)
  assert "\n" not in message
  assert "step 4 checkpoint" in message and "No space left on device (ENOSPC)" in message
  assert "previous checkpoint (step 2) is kept" in message and workdir in message
  assert "Free disk space" in message and "re-run the same command to resume" in message
  # The earlier checkpoint is intact and is the one a resume loads.
  assert soak.committed_steps(workdir) == [2]
  ckpts = checkpointing.RunCheckpoints(workdir, read_only=True)
  restored = ckpts.latest.restore(ckpts.latest.latest_step())
  ckpts.close()
  assert restored["progress"]["step"] == 2 and int(restored["state"]["step"]) == 2
  assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(restored["state"]["params"]))


def test_read_only_disk_at_commit_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
  """The rename that commits a checkpoint fails: nothing half-made is ever loaded."""
  workdir = str(tmp_path / "run")
  checkpoints = os.path.join(workdir, "checkpoints")
  state = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "step": np.asarray(1, np.int32)}
  ckpts = checkpointing.RunCheckpoints(workdir)
  ckpts.save_latest(1, state, {"step": 1})
  commits = []

  def read_only_at_commit(real):
    def rename(src, dst, *args, **kwargs):
      # A finished step directory moved into checkpoints/ is the commit.
      if os.path.dirname(os.path.abspath(os.fspath(dst))) == checkpoints:
        commits.append(os.fspath(dst))
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fspath(dst))
      return real(src, dst, *args, **kwargs)
    return rename

  monkeypatch.setattr(os, "rename", read_only_at_commit(os.rename))
  monkeypatch.setattr(os, "replace", read_only_at_commit(os.replace))
  with pytest.raises(checkpointing.CheckpointError,
                     match=r"cannot save the step 2 checkpoint .*Read-only file system "
                           r"\(EROFS\)\); the previous checkpoint \(step 1\) is kept\. .*writable"):
    ckpts.save_latest(2, {"w": state["w"] + 1, "step": np.asarray(2, np.int32)}, {"step": 2})
  monkeypatch.undo()
  assert commits == [os.path.join(checkpoints, "2")], "the fault did not hit the commit"
  ckpts.close()
  again = checkpointing.RunCheckpoints(workdir)
  assert again.latest.all_steps() == [1]
  restored, progress = again.restore_latest(state)
  again.close()
  np.testing.assert_array_equal(restored["w"], state["w"])
  assert progress == {"step": 1}


# ---- dataset -----------------------------------------------------------------------------------


def _read_all(folder) -> dict[str, bytes]:
  out = {}
  for root, _, names in os.walk(folder):
    for name in names:
      path = os.path.join(root, name)
      with open(path, "rb") as f:
        out[os.path.relpath(path, folder)] = f.read()
  return out


def _build(out_dir, midi_dir) -> dict:
  return make_dataset.build_dataset(str(out_dir), midi_dir=str(midi_dir), num_songs=0, workers=1,
                                    progress=False)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
  """Five songs of 12-24 s and their uninterrupted build."""
  midis = tmp_path_factory.mktemp("fault_midis")
  for i in range(5):
    (midis / f"song_{i}.mid").write_bytes(make_song_midi(100 + i, 12.0 + 3 * i))
  reference = tmp_path_factory.mktemp("fault_dataset")
  _build(reference, midis)
  return str(midis), str(reference)


def _songs_written(out_dir) -> list[str]:
  try:
    return sorted(n for n in os.listdir(os.path.join(out_dir, "songs")) if n.endswith(".json"))
  except FileNotFoundError:
    return []


def _temp_files(out_dir) -> list[str]:
  found = []
  for sub in ("", "songs", "midi"):
    try:
      found += [os.path.join(sub, n) for n in os.listdir(os.path.join(out_dir, sub))
                if n.endswith(".tmp")]
    except FileNotFoundError:
      pass
  return found


def test_dataset_build_killed_midway_then_rerun_is_byte_identical(dataset, tmp_path):
  midis, reference = dataset
  out = str(tmp_path / "ds")
  cmd = [sys.executable, "-m", "data_gen.make_dataset", f"--out_dir={out}", f"--midi_dir={midis}",
         "--num_songs=0", "--workers=1"]
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  with open(tmp_path / "build.log", "w") as log:
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=soak.ROOT)
  # Kill once a song is finished and the next file is being written (or two are finished).
  caught_temp = []
  try:
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
      done = _songs_written(out)
      caught_temp = _temp_files(out) if done else []
      if caught_temp or len(done) >= 2:
        break
      time.sleep(0.001)
    proc.send_signal(signal.SIGKILL)
  finally:
    proc.wait()
  assert proc.returncode == -signal.SIGKILL, "the build finished before it could be killed"
  kept = _songs_written(out)
  assert 1 <= len(kept) < 5 and not os.path.exists(os.path.join(out, "manifest.json"))
  # A temporary file as a kill inside a write leaves it (planted too, in case the kill was between
  # writes): the re-run removes it.
  with open(os.path.join(out, "songs", f".{kept[-1][:-5]}.npz.k1ll3d.tmp"), "wb") as f:
    f.write(b"partial")
  mtimes = {n: os.stat(os.path.join(out, "songs", n)).st_mtime_ns for n in kept}

  rerun = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=soak.ROOT, timeout=300)
  assert rerun.returncode == 0, rerun.stderr[-2000:]
  assert _read_all(out) == _read_all(reference)  # byte-identical, no temporary file left
  assert {n: os.stat(os.path.join(out, "songs", n)).st_mtime_ns for n in kept} == mtimes, \
      "finished songs were rendered again"


def test_damaged_dataset_files_are_detected_and_rebuilt(dataset, tmp_path, caplog):
  """What tests/test_data_build.py does not damage: a truncated song file, a garbage sidecar,
  an edited MIDI copy, a garbage manifest and stale temporary files."""
  midis, reference = dataset
  out = tmp_path / "ds"
  shutil.copytree(reference, out)
  songs = out / "songs"
  npz = songs / "song_1.npz"
  npz.write_bytes(npz.read_bytes()[: npz.stat().st_size // 2])
  (songs / "song_2.json").write_bytes(b"\x00garbage{")
  midi_copy = out / "midi" / "song_3.mid"
  midi_copy.write_bytes(midi_copy.read_bytes()[:-10])
  (out / "manifest.json").write_text("{")
  (out / ".manifest.json.x1y2.tmp").write_text("{")
  (songs / ".song_4.json.abcd.tmp").write_text("{")
  with caplog.at_level(logging.WARNING):
    _build(out, midis)
  assert "songs/song_1.npz fails its checksum" in caplog.text
  assert _read_all(out) == _read_all(reference)

"""Resume edge cases: checkpoints at epoch ends, `stop_after_steps` at epoch ends, a changed
learning-rate schedule on resume, and metrics.jsonl written by process 0 only."""

from __future__ import annotations

import json
import os
import shutil

import chex
import jax
import pytest

from deepsynth_jax import checkpointing, input_pipeline, train
from experiments.configs import test as test_config

# batch_size 8 over the tiny dataset's 36 train examples: 4 steps per epoch, checkpoints every 2.
BATCH_4_STEPS = 8
# batch_size 20: one step per epoch.
BATCH_1_STEP = 20


def _config(data_dir: str, batch_size: int, **overrides):
  config = test_config.get_config()
  config.data_dir = data_dir
  config.batch_size = batch_size
  for key, value in overrides.items():
    setattr(config, key, value)
  return config


def _steps_per_epoch(data_dir: str, batch_size: int) -> int:
  return input_pipeline.load_dataset(data_dir).num_batches("train", batch_size)


def _latest(workdir: str) -> tuple[int, dict]:
  """(step, {"state", "progress"}) of the workdir's latest checkpoint."""
  ckpts = checkpointing.RunCheckpoints(workdir, read_only=True)
  try:
    step = ckpts.latest.latest_step()
    return step, ckpts.latest.restore(step)
  finally:
    ckpts.close()


def _assert_same_run(full_dir: str, full: dict, workdir: str, resumed: dict) -> None:
  """Same history (train_loss means, validation), best loss and state as the uninterrupted run."""
  assert resumed["history"] == full["history"]
  assert (resumed["best_selection_loss"], resumed["best_step"]) == (
      full["best_selection_loss"], full["best_step"])
  step_a, a = _latest(full_dir)
  step_b, b = _latest(workdir)
  assert step_a == step_b == full["step"]
  chex.assert_trees_all_equal(a["state"]["params"], b["state"]["params"])
  chex.assert_trees_all_equal(a["state"]["opt_state"], b["state"]["opt_state"])
  assert a["progress"] == b["progress"]


@pytest.fixture(scope="module")
def two_epochs(tiny_data_dir, tmp_path_factory):
  """An uninterrupted 2-epoch run of 4 steps per epoch, checkpointing every 2 steps."""
  assert _steps_per_epoch(tiny_data_dir, BATCH_4_STEPS // jax.process_count()) == 4
  config = _config(tiny_data_dir, BATCH_4_STEPS, num_epochs=2)
  assert 4 % config.checkpoint_every_steps == 0
  workdir = str(tmp_path_factory.mktemp("two_epochs"))
  progress = train.train_and_evaluate(config, workdir, show_progress=False)
  assert progress["step"] == 8 and len(progress["history"]) == 2
  return config, workdir, progress


# ---- bug 1: a checkpoint at an epoch end holds the validated progress -------------------------


def test_checkpoint_at_an_epoch_end_holds_the_validated_progress(two_epochs):
  _, workdir, progress = two_epochs
  step, restored = _latest(workdir)
  assert step == 8
  saved = restored["progress"]
  assert saved["history"] == progress["history"], "the last epoch's row is missing"
  assert saved["best_selection_loss"] == progress["best_selection_loss"]
  assert saved["epoch_losses"] == [], "the finished epoch's losses would leak into the next"


class _Killed(Exception):
  """Stands in for a SIGKILL."""


def test_kill_after_an_epoch_end_then_resume_matches_uninterrupted(two_epochs, tmp_path,
                                                                   monkeypatch):
  config, full_dir, full = two_epochs
  workdir = str(tmp_path / "run")
  real_batches = input_pipeline.DeepSynthData.batches

  def batches(self, split, *args, epoch, **kwargs):
    if split == "train" and epoch == 1:  # killed as epoch 2 starts: after epoch 1's validation
      raise _Killed
    yield from real_batches(self, split, *args, epoch=epoch, **kwargs)

  monkeypatch.setattr(input_pipeline.DeepSynthData, "batches", batches)
  with pytest.raises(_Killed):
    train.train_and_evaluate(config, workdir, show_progress=False)
  monkeypatch.undo()
  assert _latest(workdir)[0] == 4
  resumed = train.train_and_evaluate(config, workdir, show_progress=False)
  _assert_same_run(full_dir, full, workdir, resumed)


# ---- bug 2: stop_after_steps runs exactly that many steps -------------------------------------


def test_stop_at_an_epoch_end_validates_saves_and_resumes_exactly(two_epochs, tmp_path):
  config, full_dir, full = two_epochs
  workdir = str(tmp_path / "run")
  first = train.train_and_evaluate(config, workdir, stop_after_steps=4, show_progress=False)
  assert first["step"] == 4
  assert [row["step"] for row in first["history"]] == [4]
  step, restored = _latest(workdir)
  assert step == 4 and restored["progress"]["history"] == first["history"]
  resumed = train.train_and_evaluate(config, workdir, show_progress=False)
  _assert_same_run(full_dir, full, workdir, resumed)


def test_stop_after_steps_with_one_step_per_epoch(tiny_data_dir, tmp_path):
  assert _steps_per_epoch(tiny_data_dir, BATCH_1_STEP // jax.process_count()) == 1
  config = _config(tiny_data_dir, BATCH_1_STEP, num_epochs=3)
  workdir = str(tmp_path / "run")
  progress = train.train_and_evaluate(config, workdir, stop_after_steps=1, show_progress=False)
  assert progress["step"] == 1
  assert [row["step"] for row in progress["history"]] == [1]
  assert _latest(workdir)[0] == 1


# ---- bug 3: a resume never changes the learning-rate schedule silently -------------------------


def test_resume_with_another_max_steps_fails_naming_it(two_epochs, tmp_path):
  config, full_dir, _ = two_epochs
  workdir = str(tmp_path / "copy")
  shutil.copytree(full_dir, workdir)
  longer = _config(config.data_dir, BATCH_4_STEPS, num_epochs=2, max_steps=12)
  with pytest.raises(checkpointing.CheckpointError, match=r"max_steps.*schedule.*--workdir"):
    train.train_and_evaluate(longer, workdir, stop_after_steps=1, show_progress=False)
  assert _latest(workdir)[0] == 8


def test_resume_with_another_number_of_steps_per_epoch_fails(two_epochs, tmp_path, monkeypatch):
  """A dataset folder (data_dir may move) whose train split gives other epochs: another schedule."""
  config, full_dir, _ = two_epochs
  workdir = str(tmp_path / "copy")
  shutil.copytree(full_dir, workdir)
  monkeypatch.setattr(input_pipeline.DeepSynthData, "num_batches", lambda self, *a, **k: 5)
  with pytest.raises(checkpointing.CheckpointError, match=r"8-step.*10 steps.*--workdir"):
    train.train_and_evaluate(config, workdir, stop_after_steps=1, show_progress=False)


# ---- bug 4: only process 0 writes metrics.jsonl -----------------------------------------------


def test_metrics_writer_of_other_processes_writes_nothing(tmp_path, monkeypatch):
  path = tmp_path / "metrics.jsonl"
  rows = "".join(json.dumps({"step": s, "split": "train", "loss": 1.0}) + "\n" for s in (1, 2, 3))
  path.write_text(rows)
  monkeypatch.setattr(jax, "process_index", lambda: 1)
  writer = train.MetricsWriter(str(tmp_path), resume_step=1)  # would truncate to step 1
  writer.write(2, "train", {"loss": 2.0})
  writer.close()
  assert path.read_text() == rows
  assert sorted(os.listdir(tmp_path)) == ["metrics.jsonl"], "no tb/ and no temporary files"

  empty = tmp_path / "fresh"
  empty.mkdir()
  writer = train.MetricsWriter(str(empty), resume_step=0)
  writer.write(1, "train", {"loss": 1.0})
  writer.close()
  assert os.listdir(empty) == []

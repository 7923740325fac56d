"""The eval binary: outputs of evaluate_run, their determinism, and its one-line errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from scipy.io import wavfile

from deepsynth_jax import api, checkpointing, evaluate
from deepsynth_jax.models import autoregressive
from experiments.configs import test as test_config

sys.path.insert(0, os.path.dirname(__file__))
from test_api import make_run_dir  # noqa: E402  (the same fake trained run)

pytestmark = pytest.mark.filterwarnings("ignore:os.fork")  # ffmpeg and the CLI run as subprocesses

SECONDS = 0.5  # 2000 samples per example: the first note of each tiny song starts at 0.3 s


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_data_dir):
  return make_run_dir(str(tmp_path_factory.mktemp("eval_run")), tiny_data_dir)


@pytest.fixture(scope="module")
def result(run_dir, data):
  return evaluate.evaluate_run(run_dir, "validation", 2, data=data, seconds=SECONDS,
                               show_progress=False)


def test_metrics_json_and_media(run_dir, data, result):
  out = os.path.join(run_dir, "eval_validation")
  with open(os.path.join(out, "metrics.json")) as f:
    on_disk = json.load(f)
  assert on_disk == json.loads(json.dumps(result))
  assert result["format"] == evaluate.FORMAT and result["checkpoint_step"] == 3
  assert result["num_examples"] == 2 and result["num_samples"] == 2000
  rows = result["examples"]
  assert [r["index"] for r in rows] == [0, 1]
  for key in ("teacher_forced_cross_entropy", "free_running_cross_entropy"):
    values = [r[key] for r in rows]
    assert all(np.isfinite(values)) and min(values) > 0
    assert result["mean"][key] == pytest.approx(np.mean(values))
  assert result["speed"]["samples_per_second"] > 0 and result["speed"]["timed_examples"] == 1
  # Music metrics of the generated audio, the reference (vs itself) and noise, per example.
  for key in ("music", "reference_music", "noise_music"):
    assert set(result["mean"][key]) >= {"onset_f1", "pitch_f1", "stft_distance",
                                        "waveform_correlation"}
  assert rows[0]["reference_music"]["stft_distance"] == pytest.approx(0.0, abs=1e-6)
  assert rows[0]["reference_music"]["waveform_correlation"] == pytest.approx(1.0)
  assert rows[0]["noise_music"]["stft_distance"] > 0.1
  assert rows[0]["music"]["stft_distance"] > 0.1

  # The WAVs hold the sampler's audio for (seed 0, example id 0) and the true audio.
  run = api.load_run(run_dir)
  ex = data.example("validation", 0)
  expected = autoregressive.generate(run.generator.module, run.params, ex["frames"][None],
                                     ex["frame_index"][None, :2000], ex["frame_age"][None, :2000],
                                     seed=0, example_ids=[0], true_audio=ex["audio"][None, :2000])
  assert rows[0]["free_running_cross_entropy"] == pytest.approx(float(expected.cross_entropy[0]),
                                                                rel=1e-6)
  files = rows[0]["files"]
  rate, generated = wavfile.read(os.path.join(out, files["generated_wav"]))
  assert rate == 4000 and generated.dtype == np.int16 and generated.shape == (2000,)
  np.testing.assert_allclose(generated / 32768, np.asarray(expected.audio[0]), atol=1e-4)
  _, reference = wavfile.read(os.path.join(out, files["reference_wav"]))
  np.testing.assert_allclose(reference / 32768, ex["audio"][:2000], atol=1e-4)
  with open(os.path.join(out, files["figure"]), "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  with open(os.path.join(out, files["video"]), "rb") as f:
    assert f.read(12)[4:8] == b"ftyp"


def test_outputs_are_deterministic(run_dir, data, result, tmp_path):
  again = evaluate.evaluate_run(run_dir, "validation", 2, data=data, seconds=SECONDS,
                                out_dir=str(tmp_path / "again"), show_progress=False,
                                music_metrics=False)
  first = os.path.join(run_dir, "eval_validation")
  for a, b in zip(result["examples"], again["examples"], strict=True):
    assert a["free_running_cross_entropy"] == b["free_running_cross_entropy"]
    assert a["teacher_forced_cross_entropy"] == b["teacher_forced_cross_entropy"]
    for key in ("generated_wav", "reference_wav", "figure"):
      with open(os.path.join(first, a["files"][key]), "rb") as f1, \
          open(tmp_path / "again" / b["files"][key], "rb") as f2:
        assert f1.read() == f2.read(), key
  # Re-running into the same folder replaces it; files of the examples left out are removed.
  evaluate.evaluate_run(run_dir, "validation", 1, data=data, seconds=SECONDS,
                        out_dir=str(tmp_path / "again"), show_progress=False, music_metrics=False)
  left = sorted(os.listdir(tmp_path / "again"))
  assert [n for n in left if n.startswith("example_0001")] == []
  assert "example_0000_video.mp4" in left and "metrics.json" in left


def test_errors_name_the_problem(run_dir, data, tmp_path):
  with pytest.raises(checkpointing.CheckpointError, match="not a DeepSynth run"):
    evaluate.evaluate_run(str(tmp_path), "test", 1, data=data)
  empty_run = tmp_path / "untrained"
  checkpointing.write_run_record(str(empty_run), test_config.get_config(), {"sample_rate": 4000})
  with pytest.raises(checkpointing.CheckpointError, match="no committed checkpoint"):
    evaluate.evaluate_run(str(empty_run), "test", 1, data=data)
  with pytest.raises(evaluate.EvaluationError, match="unknown split 'dev'"):
    evaluate.evaluate_run(run_dir, "dev", 1, data=data)
  with pytest.raises(evaluate.EvaluationError, match="seconds"):
    evaluate.evaluate_run(run_dir, "test", 1, data=data, seconds=60)
  for seconds in (float("inf"), float("nan"), -1.0):  # inf used to raise OverflowError
    with pytest.raises(evaluate.EvaluationError, match="seconds"):
      evaluate.evaluate_run(run_dir, "test", 1, data=data, seconds=seconds)
  foreign = tmp_path / "foreign"
  foreign.mkdir()
  (foreign / "notes.txt").write_text("someone else's")
  with pytest.raises(evaluate.EvaluationError, match="not from a DeepSynth evaluation"):
    evaluate.evaluate_run(run_dir, "test", 1, data=data, out_dir=str(foreign))
  assert (foreign / "notes.txt").read_text() == "someone else's"


def test_cli_prints_one_line_errors(tmp_path):
  cmd = [sys.executable, "-m", "deepsynth_jax.evaluate", f"--workdir={tmp_path / 'missing'}"]
  proc = subprocess.run(cmd, capture_output=True, text=True, cwd=os.path.dirname(
      os.path.dirname(os.path.abspath(__file__))), timeout=120)
  assert proc.returncode == 1
  lines = [line for line in proc.stderr.splitlines() if line.strip()]
  assert lines[-1].startswith("error: ") and "does not exist" in lines[-1]
  assert "Traceback" not in proc.stderr


def test_cli_console_shows_results_not_library_chatter(run_dir, tmp_path):
  """orbax's read-only notes, absl INFO lines and the fork warning stay off the console."""
  cmd = [sys.executable, "-m", "deepsynth_jax.evaluate", f"--workdir={run_dir}",
         "--split=validation", "--num_examples=1", "--seconds=0.1", "--nomedia", "--nolistening",
         f"--out_dir={tmp_path / 'out'}"]
  proc = subprocess.run(cmd, capture_output=True, text=True, cwd=os.path.dirname(
      os.path.dirname(os.path.abspath(__file__))), timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "free-running CE" in proc.stdout and "wrote" in proc.stdout
  for chatter in ("read_only=True", "Given directory is read only", "os.fork()",
                  "checkpoint_manager.py"):
    assert chatter not in proc.stderr, f"{chatter!r} on the console:\n{proc.stderr[-1500:]}"
  assert not re.search(r"^I\d{4} ", proc.stderr, re.MULTILINE), "absl INFO lines on the console"

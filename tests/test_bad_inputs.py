"""Bad input to `sample()` and to the binaries (train, evaluate, make_dataset): one line naming the
problem and the fix, never a traceback; no pickle anywhere; only committed checkpoints load.

tests/test_api.py already covers sample()'s rank, dtype, empty-array, count, NaN, equal-time,
first-time, seconds-like and argument errors; here are the others."""

from __future__ import annotations

import ast
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

import deepsynth_jax
from deepsynth_jax import api, checkpointing, input_pipeline, train
from experiments.configs import test as test_config

sys.path.insert(0, os.path.dirname(__file__))
from test_api import make_run_dir  # noqa: E402  (a run directory with random parameters)

ROOT = pathlib.Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.filterwarnings("ignore:os.fork")  # the CLIs run as subprocesses


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_data_dir):
  return make_run_dir(str(tmp_path_factory.mktemp("bad_inputs_run")), tiny_data_dir)


@pytest.fixture(scope="module")
def mixed_up_run(run_dir, tmp_path_factory):
  """A run whose run.json was edited after training (another layer count)."""
  out = tmp_path_factory.mktemp("mixed_up") / "run"
  shutil.copytree(run_dir, out)
  record = json.loads((out / "run.json").read_text())
  record["config"]["wavenet"]["num_layers"] += 2
  (out / "run.json").write_text(json.dumps(record))
  return str(out)


@pytest.fixture(scope="module")
def junk_checkpoint_run(run_dir, tmp_path_factory):
  """A run whose best checkpoint holds someone else's files instead of its arrays."""
  out = tmp_path_factory.mktemp("junk") / "run"
  shutil.copytree(run_dir, out)
  state = out / "best" / "3" / "state"
  shutil.rmtree(state)
  state.mkdir()
  (state / "notes.txt").write_text("not a checkpoint")
  return str(out)


def _one_line_error(call, error=ValueError) -> str:
  with pytest.raises(error) as info:
    call()
  message = str(info.value)
  assert message and "\n" not in message
  return message


# ---- sample() ----------------------------------------------------------------------------------


def test_sample_bad_frames_and_times(run_dir, clip):
  frames, starts = clip
  run = dict(checkpoint=run_dir, seconds=0.1)
  sample = deepsynth_jax.sample
  cases = [
      ("ragged list", lambda: sample([frames[0], frames[1][:, :-1]], [0, 10], **run),
       "images of one size"),
      ("empty list", lambda: sample([], [], **run), "empty"),
      ("empty list of video", lambda: sample([], fps=30, **run), "empty"),
      ("not images", lambda: sample("clip.mp4", fps=30, **run), "uint8"),
      ("float frames with NaN", lambda: sample(np.full(frames.shape, np.nan), starts, **run),
       "uint8"),
      ("RGBA video", lambda: sample(np.repeat(frames[..., None], 4, -1), fps=30, **run),
       r"\(F, H, W, 3\) RGB"),
      ("inf time", lambda: sample(frames[:2], np.array([0.0, np.inf]), **run), "infinity"),
      ("times out of order", lambda: sample(frames[:3], np.array([0, 10, 5]), **run),
       "strictly increase"),
      ("negative time", lambda: sample(frames[:2], np.array([-5, 10]), **run), "sample 0"),
      ("2-D times", lambda: sample(frames[:2], np.array([[0, 10]]), **run), r"shape \(2,\)"),
      ("text times", lambda: sample(frames[:2], ["0", "10"], **run), "numbers"),
      ("None in times", lambda: sample(frames[:2], [0, None], **run), "numbers"),
      ("huge times", lambda: sample(frames[:2], np.array([0.0, 1e30]), **run), "too large"),
      ("NaN fps", lambda: sample(frames, fps=float("nan"), **run), "fps"),
      ("inf seconds", lambda: sample(frames, starts, checkpoint=run_dir, seconds=np.inf),
       "seconds"),
      ("NaN temperature", lambda: sample(frames, starts, temperature=np.nan, **run),
       "temperature"),
      ("negative seed", lambda: sample(frames, starts, seed=-1, **run), "seed"),
      ("float seed", lambda: sample(frames, starts, seed=1.5, **run), "seed"),
  ]
  for name, call, match in cases:
    message = _one_line_error(call, api.SampleInputError)
    assert re.search(match, message), f"{name}: {message}"


def test_sample_checkpoint_and_config_mismatches(run_dir, clip, mixed_up_run,
                                                 junk_checkpoint_run, tmp_path):
  frames, starts = clip
  run = api.load_run(run_dir)
  message = _one_line_error(
      lambda: deepsynth_jax.sample(frames, starts, checkpoint=os.path.join(run_dir, "run.json")),
      checkpointing.CheckpointError)
  assert "is a file" in message and "run directory" in message
  wider = test_config.get_config()
  wider.wavenet.channels = 16
  message = _one_line_error(lambda: deepsynth_jax.sample(frames, starts, params=run.params,
                                                         config=wider, seconds=0.1),
                            api.SampleInputError)
  assert "params do not fit config" in message and "trained with" in message
  other_model = test_config.get_config()
  other_model.model = "keysynth"  # WaveNet params with KeySynth's config
  message = _one_line_error(lambda: deepsynth_jax.sample(frames, starts, params=run.params,
                                                         config=other_model, seconds=0.1),
                            api.SampleInputError)
  assert "params do not fit config" in message and "trained with" in message
  unknown = test_config.get_config()
  unknown.model = "parallel"  # a name no longer registered
  message = _one_line_error(lambda: deepsynth_jax.sample(frames, starts, params=run.params,
                                                         config=unknown, seconds=0.1),
                            api.SampleInputError)
  assert "'parallel'" in message and "keysynth" in message and "wavenet" in message
  message = _one_line_error(lambda: deepsynth_jax.sample(frames, starts, checkpoint=mixed_up_run),
                            checkpointing.CheckpointError)
  assert "does not fit the config in its run.json" in message and "re-train" in message
  message = _one_line_error(
      lambda: deepsynth_jax.sample(frames, starts, checkpoint=junk_checkpoint_run),
      checkpointing.CheckpointError)
  assert "best/3 cannot be restored" in message and "move it out of the way" in message
  foreign = tmp_path / "someone_else"
  foreign.mkdir()
  (foreign / "checkpoints").mkdir()
  message = _one_line_error(lambda: deepsynth_jax.sample(frames, starts, checkpoint=str(foreign)),
                            checkpointing.CheckpointError)
  assert "not a DeepSynth run" in message


# ---- committed checkpoints only ----------------------------------------------------------------


def test_uncommitted_checkpoint_directories_are_never_loaded(run_dir, tmp_path):
  workdir = tmp_path / "run"
  shutil.copytree(run_dir, workdir)
  ckpts = checkpointing.RunCheckpoints(str(workdir))
  state = {"w": np.zeros((2, 2), np.float32)}
  ckpts.save_latest(5, state, {"step": 5})
  ckpts.close()
  # Complete-looking copies under orbax's temporary names (a write cut by a kill), newer steps,
  # holding other values: they must be ignored.
  for sub, step, new in (("checkpoints", "5", "9.orbax-checkpoint-tmp"),
                         ("checkpoints", "5", "11.orbax-checkpoint-tmp-1764000000"),
                         ("best", "3", "7.orbax-checkpoint-tmp")):
    shutil.copytree(workdir / sub / step, workdir / sub / new)
  ckpts = checkpointing.RunCheckpoints(str(workdir), read_only=True)
  assert ckpts.latest.all_steps() == [5] and ckpts.latest.latest_step() == 5
  assert ckpts.best.all_steps() == [3]
  restored, progress = ckpts.restore_latest(state)
  _, best_progress = ckpts.restore_best_params()
  ckpts.close()
  assert progress == {"step": 5} and best_progress["best_step"] == 3
  np.testing.assert_array_equal(restored["w"], state["w"])
  # The same through the public loader.
  api.clear_cache()
  assert api.load_run(str(workdir)).step == 3


# ---- no pickle ---------------------------------------------------------------------------------


def _python_files():
  for folder in ("deepsynth_jax", "data_gen", "experiments", "scripts"):
    yield from sorted((ROOT / folder).rglob("*.py"))


def test_nothing_uses_pickle():
  """No pickle, dill or joblib import; every np.load passes allow_pickle=False."""
  problems = []
  files = list(_python_files())
  assert len(files) > 20
  for path in files:
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
      names = []
      if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
      elif isinstance(node, ast.ImportFrom):
        names = [node.module or ""]
      for name in names:
        if name.split(".")[0] in ("pickle", "cPickle", "_pickle", "dill", "cloudpickle",
                                  "joblib", "shelve", "marshal"):
          problems.append(f"{path}:{node.lineno} imports {name}")
      if isinstance(node, ast.Call):
        func = ast.unparse(node.func)
        allow = {k.arg: k.value for k in node.keywords}
        if func.endswith(".load") and func.split(".")[0] in ("np", "numpy", "jnp"):
          if not (isinstance(allow.get("allow_pickle"), ast.Constant)
                  and allow["allow_pickle"].value is False):
            problems.append(f"{path}:{node.lineno} {func}(...) without allow_pickle=False")
        if func.endswith(("read_pickle", "to_pickle", ".loads")) and "json" not in func:
          problems.append(f"{path}:{node.lineno} calls {func}")
        if isinstance(allow.get("allow_pickle"), ast.Constant) and allow["allow_pickle"].value:
          problems.append(f"{path}:{node.lineno} passes a true allow_pickle")
  assert not problems, "\n".join(problems)


# ---- binaries ----------------------------------------------------------------------------------


def _cli_cases(tiny_data_dir, run_dir, mixed_up_run, junk_checkpoint_run, tmp: pathlib.Path):
  foreign = tmp / "someone_else"
  foreign.mkdir()
  (foreign / "thesis.tex").write_text("not a run")
  other_config = tmp / "other_config_run"
  config = test_config.get_config()
  config.data_dir = tiny_data_dir
  config.wavenet.channels = 16
  checkpointing.write_run_record(str(other_config), config, train._data_facts(
      input_pipeline.load_dataset(tiny_data_dir)))
  a_file = tmp / "a_file"
  a_file.write_text("x")
  bad_midis = tmp / "bad_midis"
  bad_midis.mkdir()
  (bad_midis / "empty.mid").write_bytes(b"")
  (bad_midis / "garbage.mid").write_bytes(b"MThd\x00\x00\x00\x06garbage")
  trainer = [sys.executable, "-m", "deepsynth_jax.train", "--config=experiments/configs/test.py",
             f"--config.data_dir={tiny_data_dir}"]
  evaluator = [sys.executable, "-m", "deepsynth_jax.evaluate", f"--data_dir={tiny_data_dir}"]
  builder = [sys.executable, "-m", "data_gen.make_dataset", "--workers=1"]
  return [
      ("train: no dataset", trainer + [f"--config.data_dir={tmp / 'nope'}",
                                       f"--workdir={tmp / 'w1'}"],
       ["no dataset in", "run python -m data_gen.make_dataset"]),
      ("train: someone else's folder", trainer + [f"--workdir={foreign}"],
       ["holds no DeepSynth run", "thesis.tex", "pass a new or empty --workdir"]),
      ("train: config does not match the run", trainer + [f"--workdir={other_config}"],
       ["different config (fields: wavenet)", "resume with the same --config"]),
      ("train: a batch the CPU devices do not divide", trainer + [
          "--cpu_devices=3", f"--workdir={tmp / 'w3'}"],
       ["batch_size=4 must divide evenly over 1 process(es) x 3"]),
      ("train: missing config file", [sys.executable, "-m", "deepsynth_jax.train",
                                      "--config=experiments/configs/nope.py",
                                      f"--workdir={tmp / 'w2'}"],
       ["cannot load --config", "nope.py", "pass an existing config file"]),
      ("evaluate: someone else's folder", evaluator + [f"--workdir={foreign}"],
       ["not a DeepSynth run", "pass the right --workdir"]),
      ("evaluate: run.json does not match the checkpoint", evaluator + [
          f"--workdir={mixed_up_run}"], ["does not fit the config in its run.json"]),
      ("evaluate: foreign files as a checkpoint", evaluator + [
          f"--workdir={junk_checkpoint_run}"], ["best/3 cannot be restored", "move it out"]),
      ("make_dataset: no MIDI folder", builder + [f"--out_dir={tmp / 'd1'}",
                                                 f"--midi_dir={tmp / 'nope'}"],
       ["--midi_dir", "is not a folder"]),
      ("make_dataset: output is a file", builder + [f"--out_dir={a_file}",
                                                   f"--midi_dir={bad_midis}"],
       ["cannot write the dataset", "Not a directory", "--out_dir you can write to"]),
      ("make_dataset: only bad MIDI files", builder + [f"--out_dir={tmp / 'd2'}",
                                                      f"--midi_dir={bad_midis}",
                                                      "--num_songs=0"],
       ["only 0 of the 2 requested songs are usable", "add MIDI files"]),
      ("export_run: someone else's folder", [
          sys.executable, "-m", "experiments.export_run", f"--workdir={foreign}",
          f"--out={tmp / 'exported'}"], ["not a DeepSynth run", "pass the right --workdir"]),
      ("bench_train: an interpreter without torch", [
          sys.executable, "-m", "experiments.bench_train", "--configs=l7_c128",
          f"--pytorch_python={sys.executable}"], ["No module named 'torch'",
                                                  "needs torch and wavenet_vocoder"]),
      ("vocoder_gain_blocks: not a vocoder", [
          sys.executable, "-m", "experiments.vocoder_gain_blocks", f"--workdir={run_dir}",
          f"--data_dir={tiny_data_dir}", "--blocks=16"], ["not a gain-anchored vocoder"]),
  ]


def test_binaries_fail_with_one_line_and_no_traceback(tiny_data_dir, run_dir, mixed_up_run,
                                                     junk_checkpoint_run, tmp_path):
  cases = _cli_cases(tiny_data_dir, run_dir, mixed_up_run, junk_checkpoint_run, tmp_path)
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  failures = []
  # Three at a time: most of each run is Python start-up and imports.
  for i in range(0, len(cases), 3):
    procs = [(name, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, cwd=ROOT, env=env), expected)
             for name, cmd, expected in cases[i:i + 3]]
    for name, proc, expected in procs:
      try:
        out, err = proc.communicate(timeout=300)
      finally:
        if proc.poll() is None:
          proc.kill()
          proc.communicate()
      lines = [line for line in err.splitlines() if line.strip()]
      errors = [line for line in lines if line.startswith("error: ")]
      if proc.returncode != 1:
        failures.append(f"{name}: exit status {proc.returncode}")
      if "Traceback" in err:
        failures.append(f"{name}: a traceback in stderr:\n{err[-3000:]}")
      if len(errors) != 1 or not lines or lines[-1] != errors[0]:
        failures.append(f"{name}: not one final 'error: ' line:\n{err[-2000:]}")
      elif not all(e in errors[0] for e in expected):
        failures.append(f"{name}: {errors[0]!r} lacks {expected}")
  assert not failures, "\n\n".join(failures)
  # Nothing of someone else's was touched, and no run was started in it.
  assert sorted(os.listdir(tmp_path / "someone_else")) == ["thesis.tex"]

"""`make demo ARGS=--train` trains each shipped model by its committed configs, in order."""

from __future__ import annotations

import os

import pytest

from experiments import demo


def test_train_here_runs_every_stage_from_the_one_before(tmp_path, monkeypatch):
  trained = []

  def record(config, workdir):
    plays = config.vocoder.keysynth_run if config.model == "vocoder" else None
    trained.append((os.path.basename(workdir), config.init_from, plays,
                    config.vocoder.level_loss))

  monkeypatch.setattr(demo.train, "train_and_evaluate", record)
  runs = str(tmp_path / "runs")
  workdir = demo.model_workdir("vocoder", train_here=True, data_dir="data/x", runs_dir=runs)
  assert workdir == os.path.join(runs, "demo_vocoder")
  phase = os.path.join(runs, "demo_keysynth_phase")
  # The KeySynth it plays first (itself fine-tuned from the label-free KeySynth), each once; then
  # the vocoder's two stages, the second starting from the first.
  assert trained == [
      ("demo_keysynth", "", None, 0.0),
      ("demo_keysynth_phase", os.path.join(runs, "demo_keysynth"), None, 0.0),
      ("demo_vocoder_stage1", "", phase, 0.0),
      ("demo_vocoder", os.path.join(runs, "demo_vocoder_stage1"), phase, 1.0),
  ]


def test_shipped_models_are_used_as_they_are(tmp_path):
  (tmp_path / "demo_vocoder").mkdir()
  (tmp_path / "demo_vocoder" / "run.json").write_text("{}")
  assert demo.model_workdir("vocoder", train_here=False, data_dir="d",
                            models_dir=str(tmp_path)) == str(tmp_path / "demo_vocoder")
  with pytest.raises(SystemExit, match="make demo ARGS=--train"):
    demo.model_workdir("wavenet", train_here=False, data_dir="d", models_dir=str(tmp_path))

"""Table 1: the six published settings, and the report over their results."""

from __future__ import annotations

import json

from experiments import report
from experiments.configs import table1

# The method's Table 1, row by row: (audio-input dropout, layers, features).
PUBLISHED = ((0.5, 7, 128), (0.5, 7, 256), (0.5, 10, 512),
             (0.75, 7, 128), (0.75, 7, 256), (0.75, 10, 512))


def test_settings_are_exactly_the_published_table():
  assert table1.SETTINGS == ("drop50_l7_c128", "drop50_l7_c256", "drop50_l10_c512",
                             "drop75_l7_c128", "drop75_l7_c256", "drop75_l10_c512")
  assert tuple(table1.parse_setting(name) for name in table1.SETTINGS) == PUBLISHED
  for name, (dropout, layers, features) in zip(table1.SETTINGS, PUBLISHED):
    c = table1.get_config(name).wavenet
    assert (c.audio_dropout, c.num_layers, c.layers_per_stack, c.channels,
            c.skip_channels) == (dropout, layers, layers, features, features), name


def _result(name: str) -> dict:
  dropout, layers, features = table1.parse_setting(name)
  return {"setting": name, "dropout": dropout, "layers": layers, "features": features,
          "epochs_run": 1, "steps": 4, "best_epoch": 1, "train_loss": 5.5,
          "validation_loss": 5.4, "test_free_running_loss": 5.3,
          "protocol": {"batch_size": 8, "crop_samples": 2000, "validation_examples": 4,
                       "test_examples": 2, "test_seconds": 0.5},
          "hardware": "1 x CPU", "total_wall_seconds": 60.0}


def test_report_prints_one_row_per_setting_in_table_order(tmp_path):
  for name in reversed(table1.SETTINGS):
    (tmp_path / name).mkdir()
    (tmp_path / name / report.RESULT).write_text(json.dumps(_result(name)))
  lines = report.markdown(report.load_results(str(tmp_path))).splitlines()
  assert [line.split(" | ")[0].lstrip("| ") for line in lines[2:-1]] == list(table1.SETTINGS)
  assert lines[-1] == report.PUBLISHED

"""The row trunk of the key reader, and students distilled from a trained KeySynth."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from data_gen import keyboard
from deepsynth_jax import checkpointing, models, runs
from deepsynth_jax.models import key_reader
from experiments import distill
from experiments.configs import test as test_config
from tests.conftest import write_keysynth_run


def test_column_conv_is_a_dense_layer_on_each_column_and_its_neighbours():
  x = jax.random.normal(jax.random.key(0), (3, 11, 5))
  conv = key_reader.ColumnConv(4)
  params = jax.tree.map(lambda p: p + 0.1, conv.init(jax.random.key(1), x))  # a nonzero bias
  padded = jnp.pad(x, ((0, 0), (1, 1), (0, 0)))
  beside = jnp.concatenate([padded[:, :-2], x, padded[:, 2:]], axis=-1)       # (3, 11, 15)
  dense = beside @ params["params"]["kernel"] + params["params"]["bias"]
  np.testing.assert_allclose(conv.apply(params, x), dense, atol=1e-5)


def test_row_trunk_reader_reads_a_pressed_key_at_its_place():
  """The placed reader on the row trunk: key k's output depends on the columns at k's place."""
  reader = key_reader.PlacedKeyReader(channels=(4, 4), hidden=4, trunk="rows")
  released = keyboard.render_frames(np.zeros((1, 88), bool))
  params = reader.init(jax.random.PRNGKey(0), released)["params"]
  assert set(params["RowTrunk_0"]) == {"Rows_0", "Rows_1"}
  assert params["RowTrunk_0"]["Rows_0"]["kernel"].shape == (3 * 32, 4)  # a column's 32 pixels
  for key in (0, 40, 87):
    pressed = np.zeros((1, 88), bool)
    pressed[0, key] = True
    grads = jax.grad(lambda f, k=key: reader.apply({"params": params}, f)[0, k].sum())(
        keyboard.render_frames(pressed).astype(np.float32))
    touched = np.flatnonzero(np.abs(np.asarray(grads[0])).sum(0) > 0)
    place = key_reader.key_positions()[key] * 208 / key_reader.NUM_WHITE_KEYS
    # Two width-3 stages (+-2 columns), interpolation and the +-1 column window.
    assert touched.min() >= place - 4 and touched.max() <= place + 4, (key, touched, place)


def test_unknown_or_misplaced_trunks_are_refused():
  frames = np.zeros((1, 32, 208), np.uint8)
  with pytest.raises(ValueError, match="trunk 'pixels'"):
    key_reader.PlacedKeyReader(trunk="pixels").init(jax.random.key(0), frames)
  config = test_config.get_config()
  config.model = "keysynth"
  config.keysynth.reader = "columns"
  config.keysynth.reader_trunk = "rows"
  with pytest.raises(ValueError, match="needs reader='placed'"):
    models.build_generator(config).module.init(
        jax.random.key(0), frames[None].repeat(2, 1), np.zeros((1, 64), np.int32),
        np.zeros((1, 64), np.int32))


def test_split_frames_are_the_frames_of_the_splits_songs_each_once(data):
  seen = []
  for split in ("train", "validation", "test"):
    frames = data.split_frames(split)
    songs = sorted({data.segment(split, i)[0] for i in range(data.num_examples(split))})
    assert frames.dtype == np.uint8 and frames.shape[1:] == data.frame_shape
    assert len(frames) == sum(len(data._frames[s]) for s in songs)
    seen += songs
  assert len(seen) == len(set(seen))  # the splits share no song


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory, tiny_data_dir) -> str:
  """A trained-looking KeySynth run (the test config's, placed reader) with a best checkpoint."""
  return write_keysynth_run(str(tmp_path_factory.mktemp("teacher")), tiny_data_dir, 0.3)


def _leaves(params):
  return {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_leaves_with_path(params)}


def _assert_only_trained_parts_differ(student, teacher, trained):
  ours, theirs = _leaves(student), _leaves(teacher)
  for name, value in theirs.items():
    if not any(part in name for part in trained):
      np.testing.assert_array_equal(ours[name], value, err_msg=name)


def test_distilled_reader_learns_the_teachers_keys_and_keeps_the_rest(teacher_run, tmp_path):
  workdir = str(tmp_path / "student")
  kwargs = dict(part="reader", sizes={"reader_trunk": "rows", "key_channels": (8, 4)}, steps=40,
                batch_frames=16, learning_rate=1e-2, warmup_steps=2, eval_every=10, seed=0)
  best = distill.distill(teacher_run, workdir, **kwargs)
  rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
  validation = [r for r in rows if r["split"] == "validation"]
  assert [r["step"] for r in validation] == [10, 20, 30, 40]
  assert best["reader_kl"] == min(r["reader_kl"] for r in validation)
  assert best["reader_kl"] < validation[0]["reader_kl"]  # it learns
  assert all(0.0 <= r["frames_agree"] <= 1.0 for r in validation)

  record = checkpointing.read_run_record(workdir)
  assert record["config"]["keysynth"]["reader_trunk"] == "rows"
  assert record["config"]["distill"]["teacher"] == teacher_run
  assert record["config"]["distill"]["part"] == "reader"
  assert record["learned_from"] == {"uses_key_labels": False, "frame_mode": "sparse"}
  student = runs.load_run(workdir)
  assert student.step == best["step"]
  # Everything but the reader is the teacher's, bit for bit; the reader's trunk is new.
  _assert_only_trained_parts_differ(student.params, checkpointing.best_params(teacher_run),
                                    ["key_reader"])
  assert any("RowTrunk_0" in name for name in _leaves(student.params))
  assert not any("Conv_0" in name for name in _leaves(student.params))

  with pytest.raises(checkpointing.CheckpointError, match="already holds a run"):
    distill.distill(teacher_run, workdir, **kwargs)


def test_distilled_instrument_learns_the_teachers_amplitudes(teacher_run, tmp_path):
  workdir = str(tmp_path / "student")
  best = distill.distill(teacher_run, workdir, part="instrument",
                         sizes={"envelope_hidden": 4, "envelope_layers": 2}, steps=30,
                         learning_rate=1e-2, warmup_steps=2, eval_every=10, seed=0,
                         batch_clips=2, crop_samples=512, validation_clips=2)
  validation = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
  errors = [r["amp_error"] for r in validation if r["split"] == "validation"]
  assert len(errors) == 3 and best["amp_error"] == min(errors) < errors[0]
  student = runs.load_run(workdir)
  assert student.generator.module.envelope_hidden == 4
  _assert_only_trained_parts_differ(student.params, checkpointing.best_params(teacher_run),
                                    ["envelope", "harmonics"])


def test_a_student_whose_untrained_parts_do_not_fit_is_refused(teacher_run, tmp_path):
  with pytest.raises(ValueError, match="does not train them"):
    distill.distill(teacher_run, str(tmp_path / "student"), part="reader",
                    sizes={"envelope_hidden": 4}, steps=1, learning_rate=1e-2, warmup_steps=1,
                    eval_every=1, seed=0)
  with pytest.raises(ValueError, match="--part='voice'"):
    distill.distill(teacher_run, str(tmp_path / "student"), part="voice", sizes={}, steps=1,
                    learning_rate=1e-2, warmup_steps=1, eval_every=1, seed=0)
  assert not (tmp_path / "student").exists()  # refused before anything is written


def test_distillation_needs_a_keysynth_with_the_placed_reader():
  config = test_config.get_config()
  config.model = "keysynth"
  config.keysynth.reader = "columns"
  with pytest.raises(ValueError, match="placed reader"):
    distill.student_config(config, "some/run", {"reader_trunk": "rows"}, {})

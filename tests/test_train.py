"""Training: configs, end-to-end run, exact resume, 1 vs 2 devices, overfitting, NaN guard."""

from __future__ import annotations

import functools
import json
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_api import make_run_dir  # a run directory with random parameters

from deepsynth_jax import checkpointing, input_pipeline, models, train
from experiments.configs import cpu, default, table1
from experiments.configs import test as test_config


def _structure(config) -> dict:
  """Field names and types of a config (values ignored)."""
  return jax.tree.map(lambda v: type(v).__name__, config.to_dict(),
                      is_leaf=lambda v: isinstance(v, tuple))


@pytest.mark.parametrize("variant", [cpu.get_config, test_config.get_config,
                                     lambda: table1.get_config("drop50_l7_c128")])
def test_config_variants_share_the_default_structure(variant):
  assert _structure(variant()) == _structure(default.get_config())


def test_table1_names():
  assert len(table1.SETTINGS) == 6 and len(table1.GRID) == 12
  assert set(table1.SETTINGS) <= set(table1.GRID)
  c = table1.get_config("drop75_l10_c512")
  assert (c.wavenet.audio_dropout, c.wavenet.num_layers, c.wavenet.channels) == (0.75, 10, 512)
  assert c.num_epochs == 100
  with pytest.raises(ValueError, match="unknown Table 1 setting"):
    table1.get_config("l10")


def test_schedule_warms_up_then_anneals():
  config = test_config.get_config()
  config.optimizer.warmup_steps = 10
  for name in ("cosine", "exponential"):
    config.optimizer.schedule = name
    lr = train.create_learning_rate_schedule(config, 100)
    assert float(lr(0)) == 0.0
    assert float(lr(10)) == pytest.approx(config.optimizer.learning_rate)
    assert float(lr(99)) < float(lr(10))


def _config(data_dir: str, **overrides):
  config = test_config.get_config()
  config.data_dir = data_dir
  for key, value in overrides.items():
    node = config
    *path, leaf = key.split(".")
    for p in path:
      node = node[p]
    node[leaf] = value
  return config


def _params(workdir: str):
  ckpts = checkpointing.RunCheckpoints(workdir, read_only=True)
  step = ckpts.latest.latest_step()
  restored = ckpts.latest.restore(step)
  ckpts.close()
  return step, restored


@pytest.fixture(scope="module")
def uninterrupted(tiny_data_dir, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("run_full"))
  config = _config(tiny_data_dir, max_steps=6)
  progress = train.train_and_evaluate(config, workdir, show_progress=False)
  return config, workdir, progress


def test_end_to_end_run_writes_metrics_and_checkpoints(uninterrupted):
  config, workdir, progress = uninterrupted
  assert progress["step"] == 6
  assert progress["history"], "validation runs at the end of each epoch and of the run"
  assert progress["best_step"] is not None
  rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
  train_rows = [r for r in rows if r["split"] == "train"]
  assert [r["step"] for r in train_rows] == list(range(1, 7))
  assert all(np.isfinite(r["loss"]) and r["samples_per_second"] > 0 for r in train_rows)
  assert any(r["split"] == "validation" for r in rows)
  record = checkpointing.read_run_record(workdir)
  assert record["data"]["sample_rate"] == 4000
  params, _ = checkpointing.RunCheckpoints(workdir, read_only=True).restore_best_params()
  assert jax.tree.leaves(params)


def test_kill_and_resume_gives_identical_parameters(uninterrupted, tmp_path):
  config, full_dir, _ = uninterrupted
  workdir = str(tmp_path / "run")
  first = train.train_and_evaluate(config, workdir, stop_after_steps=3, show_progress=False)
  assert first["step"] == 3
  second = train.train_and_evaluate(config, workdir, show_progress=False)
  assert second["step"] == 6
  step_a, a = _params(full_dir)
  step_b, b = _params(workdir)
  assert step_a == step_b == 6
  chex.assert_trees_all_equal(a["state"]["params"], b["state"]["params"])
  chex.assert_trees_all_equal(a["state"]["opt_state"], b["state"]["opt_state"])
  assert a["progress"]["history"] == b["progress"]["history"]


def test_resume_refuses_a_different_config(uninterrupted, tiny_data_dir):
  _, workdir, _ = uninterrupted
  other = _config(tiny_data_dir, max_steps=6)
  other.wavenet.channels = 16
  with pytest.raises(checkpointing.CheckpointError, match="different config"):
    train.train_and_evaluate(other, workdir, show_progress=False)


def test_nan_loss_stops_with_step_and_keeps_last_good_checkpoint(uninterrupted, tiny_data_dir,
                                                                 tmp_path, monkeypatch):
  config, _, _ = uninterrupted
  workdir = str(tmp_path / "nan_run")
  train.train_and_evaluate(config, workdir, stop_after_steps=2, show_progress=False)
  generator_class = models.REGISTRY[config.model]
  real_loss = generator_class.loss

  def nan_loss(self, *args, **kwargs):
    loss, metrics = real_loss(self, *args, **kwargs)
    return loss * jnp.nan, {**metrics, "loss": loss * jnp.nan}

  monkeypatch.setattr(generator_class, "loss", nan_loss)
  with pytest.raises(train.NonFiniteLossError, match="at step 2.*step 2"):
    train.train_and_evaluate(config, workdir, show_progress=False)
  step, restored = _params(workdir)
  assert step == 2
  assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(restored["state"]["params"]))


def _synthetic_batch(batch=4, samples=256, seed=0):
  """A batch with learnable structure: a sine at a frequency set by the example's frame."""
  rng = np.random.default_rng(seed)
  t = np.arange(samples)
  freqs = rng.choice([110.0, 220.0, 330.0, 440.0], batch)
  audio = 0.5 * np.sin(2 * np.pi * freqs[:, None] * t / 4000.0)
  frames = np.zeros((batch, 2, 16, 32), np.uint8)
  for i, f in enumerate(freqs):
    frames[i, :, :, int(f // 110) * 4:(int(f // 110) + 1) * 4] = 255
  return {"audio": audio.astype(np.float32), "frames": frames,
          "frame_index": np.zeros((batch, samples), np.int32),
          "frame_age": np.tile(t.astype(np.int32), (batch, 1)),
          "example_id": np.arange(batch, dtype=np.int32)}


def _step_fn(config, generator, total_steps, devices):
  _, schedule = train.create_optimizer(config, total_steps)
  return jax.pmap(functools.partial(train.train_step, generator=generator, config=config,
                                    schedule=schedule),
                  axis_name=train.AXIS, devices=devices)


def _one_step(config, state, batch, devices: int):
  """One pmapped train step of `state` on `batch` split over the first `devices` devices:
  (device 0's new parameters, its metrics), on the host."""
  step = _step_fn(config, models.build_generator(config), 10, jax.local_devices()[:devices])
  replicated = jax.tree.map(lambda x: np.broadcast_to(np.asarray(x), (devices, *np.shape(x))),
                            state)
  sharded = {k: v.reshape((devices, -1, *v.shape[1:])) for k, v in batch.items()}
  new_state, metrics = step(replicated, sharded)
  return jax.device_get(jax.tree.map(lambda x: x[0], (new_state.params, metrics)))


def _two_device_setup():
  """(the test config, its initial train state, a batch); skips without 2 devices."""
  if jax.local_device_count() < 2:
    pytest.skip("needs XLA_FLAGS=--xla_force_host_platform_device_count=2 (set by `make test`)")
  config = test_config.get_config()
  batch = _synthetic_batch()
  state = train.create_train_state(config, models.build_generator(config), batch, total_steps=10)
  return config, state, batch


def test_one_and_two_devices_give_the_same_update():
  config, state, batch = _two_device_setup()
  params_1, metrics_1 = _one_step(config, state, batch, 1)
  params_2, metrics_2 = _one_step(config, state, batch, 2)
  assert metrics_1["loss"] == pytest.approx(metrics_2["loss"], rel=1e-6)
  chex.assert_trees_all_close(params_1, params_2, rtol=1e-5, atol=1e-7)


def test_a_windowed_step_gives_the_whole_batchs_update():
  """`wavenet.train_window`: the same loss, metrics and update to float rounding, also split
  over two devices, audio-input dropout included."""
  config, state, batch = _two_device_setup()
  params_whole, metrics_whole = _one_step(config, state, batch, 1)
  config.wavenet.train_window = 100
  params_windowed, metrics_windowed = _one_step(config, state, batch, 2)
  for name in ("loss", "accuracy", "grad_norm"):
    assert metrics_windowed[name] == pytest.approx(metrics_whole[name], rel=1e-5), name
  chex.assert_trees_all_close(params_windowed, params_whole, rtol=1e-5, atol=1e-7)
  config.wavenet.train_window = -1
  with pytest.raises(ValueError, match="train_window=-1"):
    models.build_generator(config)


def test_tiny_model_overfits_a_tiny_batch():
  config = test_config.get_config()
  config.wavenet.audio_dropout = 0.0
  config.wavenet.channels = config.wavenet.skip_channels = 16
  config.optimizer.learning_rate = 1e-2
  config.optimizer.warmup_steps = 5
  batch = _synthetic_batch()
  generator = models.build_generator(config)
  state = train.create_train_state(config, generator, batch, total_steps=150)
  step = _step_fn(config, generator, 150, jax.local_devices()[:1])
  state = jax.tree.map(lambda x: np.asarray(x)[None], state)
  sharded = {k: v[None] for k, v in batch.items()}
  losses = []
  for _ in range(150):
    state, metrics = step(state, sharded)
    losses.append(float(metrics["loss"][0]))
  uniform = np.log(256)
  assert losses[0] > 0.9 * uniform
  assert losses[-1] < 0.5 * uniform, f"loss only fell from {losses[0]:.2f} to {losses[-1]:.2f}"


def test_evaluation_has_no_dropout():
  config = test_config.get_config()
  config.wavenet.audio_dropout = 0.75
  batch = jax.tree.map(jnp.asarray, _synthetic_batch())
  generator = models.build_generator(config)
  params = generator.init(jax.random.key(0), batch)
  keys = models.example_keys(jax.random.key(1), 0, batch["example_id"])
  loss = jax.jit(lambda p, keys, train: generator.loss(p, batch, train=train, keys=keys)[0],
                 static_argnames="train")
  eval_a = loss(params, None, train=False)
  eval_b = loss(params, keys, train=False)
  train_loss = loss(params, keys, train=True)
  assert float(eval_a) == float(eval_b)
  assert float(train_loss) != float(eval_a)


def test_batch_must_divide_over_devices(tiny_data_dir, tmp_path):
  config = _config(tiny_data_dir, batch_size=3)
  if jax.local_device_count() < 2:
    pytest.skip("needs 2 devices")
  with pytest.raises(ValueError, match="must divide evenly"):
    train.train_and_evaluate(config, str(tmp_path / "r"), show_progress=False)


def test_init_from_copies_every_fitting_parameter_and_leaves_the_rest_fresh(tmp_path,
                                                                           tiny_data_dir):
  source = make_run_dir(str(tmp_path / "keysynth"), tiny_data_dir, "keysynth")
  trained = checkpointing.best_params(source)
  config = test_config.get_config()
  config.data_dir = tiny_data_dir
  config.model = "keysynth"
  config.keysynth.onset_grid = 16  # adds partial_phase and partial_detune
  config.crop_align = 16
  config.init_from = source
  data = input_pipeline.load_dataset(tiny_data_dir)
  generator = models.build_generator(config, data.sample_rate)
  batch = generator.select_fields(next(data.batches("train", 1, seed=0, epoch=0,
                                                    crop_samples=512, crop_align=16)))
  state = train.create_train_state(config, generator, batch, total_steps=10)
  for name, leaf in trained.items():
    chex.assert_trees_all_equal(state.params[name], leaf)
  assert set(state.params) - set(trained) == {"partial_phase", "partial_detune"}
  np.testing.assert_array_equal(state.params["partial_phase"], 0.0)
  # A run of another model fits nothing: one clear error.
  wavenet_run = make_run_dir(str(tmp_path / "wavenet"), tiny_data_dir, "wavenet")
  with pytest.raises(checkpointing.CheckpointError, match="none of its parameters fit"):
    train.warm_start(state.params, wavenet_run)

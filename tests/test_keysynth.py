"""KeySynth: frame timing and key press tracking, keys gate the sound, the loss, generation."""

from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from data_gen import frame_timing, keyboard
from deepsynth_jax import audio_teacher, checkpointing, models, runs, train
from deepsynth_jax.models import key_reader
from deepsynth_jax.models import keysynth as pm
from deepsynth_jax.models.frame_encoder import previous_frame_rows
from experiments import export_run
from experiments.configs import test as test_config


def test_frame_starts_recovers_each_referenced_frame():
  starts = np.array([0, 300, 700, 1000])
  index, age = frame_timing.frame_index_and_age(starts, 1200)
  # A crop of samples [500, 1100) refers to frames 1-3; it carries frame 0 too (the previous frame
  # of its first) and one padding frame.
  crop_index, crop_age = index[None, 500:1100], age[None, 500:1100]
  got = np.asarray(pm.frame_starts(jnp.asarray(crop_index), jnp.asarray(crop_age), 5))
  np.testing.assert_array_equal(got[0, 1:4], [300 - 500, 700 - 500, 1000 - 500])
  # Frame 0 has no sample in the crop: placed PRE_CLIP_AGE before the first referenced frame;
  # the padding frame is never current (at the crop's length).
  assert got[0, 0] == -200 - pm.PRE_CLIP_AGE
  assert got[0, 4] == 600
  whole = np.asarray(pm.frame_starts(jnp.asarray(index[None]), jnp.asarray(age[None]), 4))
  np.testing.assert_array_equal(whole[0], starts)


def test_key_press_times_follow_held_keys():
  # Key 0: pressed in frames 0-2 (one press); key 1: frames 1 and 3 (two presses); key 2: never.
  pressed = np.zeros((1, 4, 88), np.float32)
  pressed[0, 0:3, 0] = 1
  pressed[0, [1, 3], 1] = 1
  starts = np.array([[0.0, 100.0, 250.0, 400.0]], np.float32)
  press = np.asarray(pm.key_press_times(_held(pressed), jnp.asarray(starts)))
  np.testing.assert_array_equal(press[0, :3, 0], [0, 0, 0])
  np.testing.assert_array_equal(press[0, [1, 3], 1], [100, 400])
  # A soft "held" interpolates between the two answers.
  half = pressed.copy()
  half[0, 1, 0] = 0.5
  soft = np.asarray(pm.key_press_times(_held(half), jnp.asarray(starts)))
  assert soft[0, 1, 0] == pytest.approx(0.5 * 0 + 0.5 * 100)


def _held(pressed: np.ndarray) -> jax.Array:
  """p[f] p[f - 1]: the probability that each key is held over from the previous frame."""
  p = jnp.asarray(pressed)
  return p * previous_frame_rows(p)


def _key_output_layer(reader_params) -> dict:
  """The key reader's output layer: the one dense layer with 88 outputs (one per key)."""
  layers = [p for p in reader_params.values()
            if isinstance(p, dict) and np.shape(p.get("bias")) == (88,)]
  assert len(layers) == 1, "expected one layer of the key reader with 88 outputs"
  return layers[0]


def _read_keys_regardless_of_image(params, key_bias: np.ndarray):
  """Makes the key reader's logits independent of the image: the bias alone says which keys
  sound; and makes the untrained instrument audible."""
  reader = _key_output_layer(params["key_reader"])
  reader["kernel"] = jnp.zeros_like(reader["kernel"])
  reader["bias"] = jnp.asarray(key_bias, jnp.float32)
  params["harmonics"]["bias"] = jnp.ones_like(params["harmonics"]["bias"])
  return params


def _labelled_config():
  """The test config's KeySynth with the column reader trained on key labels."""
  config = test_config.get_config()
  config.model = "keysynth"
  config.keysynth.reader = "columns"
  config.keysynth.key_weight = 1.0
  config.keysynth.teacher_forced_keys = True
  config.keysynth.heard_weight = 0.0
  return config


@functools.partial(jax.jit, static_argnums=(0, 5))
def _play(model: pm.KeySynth, params, frames, frame_index, frame_age, press_frames=True):
  """The forward pass, jitted: one compilation instead of hundreds of eager ops."""
  return model.apply({"params": params}, frames, frame_index, frame_age, press_frames)


def _model_and_params(key_bias: np.ndarray, t: int = 1024):
  config = _labelled_config()
  model = models.build_generator(config).module
  frames = np.zeros((1, 2, 32, 208), np.uint8)
  index, age = frame_timing.frame_index_and_age(np.array([0, 200]), t)
  inputs = (jnp.asarray(frames), jnp.asarray(index[None]), jnp.asarray(age[None]))
  params = jax.jit(model.init)(jax.random.PRNGKey(0), *inputs)["params"]
  return model, _read_keys_regardless_of_image(params, key_bias), inputs


def test_keys_not_shown_pressed_are_silent():
  model, params, inputs = _model_and_params(np.full(88, -30.0))
  audio = np.asarray(_play(model, params, *inputs))
  assert audio.shape == (1, 1024)
  assert np.abs(audio).max() < 1e-6


@pytest.mark.parametrize("key", [27, 48])  # C3 (130.8 Hz) and A4 (440 Hz)
def test_a_pressed_key_sounds_at_its_pitch(key):
  bias = np.full(88, -30.0)
  bias[key] = 30.0
  model, params, inputs = _model_and_params(bias, t=4000)
  audio = np.asarray(_play(model, params, *inputs))[0]
  assert np.abs(audio).max() > 1e-3
  spectrum = np.abs(np.fft.rfft(audio[400:] * np.hanning(3600)))
  freqs = np.fft.rfftfreq(3600, 1 / 4000)
  fundamental = 440.0 * 2 ** ((key + 21 - 69) / 12)
  # Every spectral peak is a harmonic of the key (num_harmonics = 2 in the test config).
  peaks = freqs[spectrum > 0.2 * spectrum.max()]
  assert np.all(np.min(np.abs(peaks[:, None] - fundamental * np.arange(1, 3)[None]), axis=1) < 3)
  assert np.any(np.abs(peaks - fundamental) < 3)


def _keys_with_floor(pressed_keys: list[int], floor: float) -> np.ndarray:
  """Reader biases: `pressed_keys` at p ~ 1, every other key at sigmoid bias = `floor`."""
  bias = np.full(88, np.log(floor / (1 - floor)) if floor > 0 else -30.0)
  bias[pressed_keys] = 30.0
  return bias


def test_voices_play_the_most_pressed_keys_and_drop_only_the_rest():
  chord = [39, 43, 46, 51]
  model, params, inputs = _model_and_params(_keys_with_floor(chord, 0.0), t=2000)
  all_keys = np.asarray(_play(model.clone(max_voices=0), params, *inputs))
  assert np.abs(all_keys).max() > 1e-3
  # Every sounding key has a voice: the same audio (up to float summation order).
  for voices in (4, 16, 88):
    voiced = np.asarray(_play(model.clone(max_voices=voices), params, *inputs))
    np.testing.assert_allclose(voiced, all_keys, atol=1e-6)
  # Fewer voices than keys down: the instrument drops keys, never invents them.
  dropped = np.asarray(_play(model.clone(max_voices=2), params, *inputs))
  assert 0.1 < np.sqrt(np.mean(dropped ** 2) / np.mean(all_keys ** 2)) < 0.95
  # A reader's small probability for every other key is what voices leave out: the 84 silent
  # keys at p = 0.01 add a quiet chorus to the all-keys audio only. (Camera frames: the re-strike
  # cue, which every key's p enters, is off.)
  clean = np.asarray(_play(model, params, *inputs, False))
  model, params, inputs = _model_and_params(_keys_with_floor(chord, 0.01), t=2000)
  floor = np.asarray(_play(model.clone(max_voices=0), params, *inputs, False))
  voiced = np.asarray(_play(model.clone(max_voices=4), params, *inputs, False))
  np.testing.assert_allclose(voiced, clean, atol=1e-5)
  assert np.abs(floor - clean).max() > 1e-3


def test_training_hears_every_key_whatever_the_voices():
  """The loss plays all 88 keys in training (a key the reader does not press yet still gets a
  gradient from the audio), the voices in validation."""
  config = _labelled_config()
  config.keysynth.teacher_forced_keys = False
  config.keysynth.key_weight = 0.0
  config.keysynth.max_voices = 2
  generator = models.build_generator(config)
  assert generator.module.max_voices == 2
  model, params, inputs = _model_and_params(_keys_with_floor([39, 43, 46, 51], 0.0), t=2000)
  batch = {"frames": inputs[0], "frame_index": inputs[1], "frame_age": inputs[2],
           "audio": jnp.asarray(_play(model.clone(max_voices=0), params, *inputs))}
  module = generator.module
  l1 = lambda train: jax.jit(lambda p: pm.loss_fn(module, p, batch, config, train)[1]["l1"])
  train_loss, eval_loss = l1(True)(params), l1(False)(params)
  assert float(train_loss) < 1e-6 < float(eval_loss)


def _play_one_key(model, params, press: int, key: int = 48, t: int = 2600) -> np.ndarray:
  """Audio (t,) of `key` struck at sample `press` (frame 0 shows no key, frame 1 the key)."""
  frames = np.zeros((1, 2, 32, 208), np.uint8)
  index, age = frame_timing.frame_index_and_age(np.array([0, press]), t)
  states = np.zeros((1, 2, 88), np.float32)
  states[0, 1, key] = 1.0
  play = jax.jit(lambda p, *x: model.apply({"params": p}, *x, key_states=jnp.asarray(states)))
  return np.asarray(play(params, jnp.asarray(frames), jnp.asarray(index[None]),
                         jnp.asarray(age[None])))[0]


def _onset_grid_model(seed: int, detune: float = 0.0):
  """(config, module, params): the test KeySynth with note-relative phases on a 16-sample grid,
  audible, with random partial phases (and detunings of this standard deviation)."""
  config = _labelled_config()
  config.keysynth.onset_grid = 16
  config.crop_align = 16
  model = models.build_generator(config).module
  frames = jnp.zeros((1, 2, 32, 208), jnp.uint8)
  index, age = frame_timing.frame_index_and_age(np.array([0, 200]), 1024)
  params = jax.jit(model.init)(jax.random.PRNGKey(0), frames, jnp.asarray(index[None]),
                               jnp.asarray(age[None]))["params"]
  params["harmonics"]["bias"] = jnp.ones_like(params["harmonics"]["bias"])
  rng = np.random.default_rng(seed)
  params["partial_phase"] = jnp.asarray(
      rng.uniform(0, 2 * np.pi, params["partial_phase"].shape) / pm.PHASE_SCALE, jnp.float32)
  if detune:
    params["partial_detune"] = jnp.asarray(
        rng.normal(0, detune, params["partial_detune"].shape), jnp.float32)
  return config, model, params


def test_note_phases_restart_each_note_on_the_onset_grid():
  """With `onset_grid`, a key struck at any time plays the same waveform from the next grid
  point on, as the sampled piano does; with absolute-time phases it does not."""
  config, model, params = _onset_grid_model(0)
  a = _play_one_key(model, params, 500)   # the note starts at 512
  b = _play_one_key(model, params, 1012)  # at 1024
  c = _play_one_key(model, params, 505)   # at 512, like a
  assert np.abs(a).max() > 1e-3
  np.testing.assert_allclose(a[512:2000], b[1024:2512], atol=2e-5)
  np.testing.assert_allclose(a[512:], c[512:], atol=2e-5)
  # The same presses with phases fixed by absolute time: another waveform at each press.
  absolute = model.clone(onset_grid=0)
  old = {k: v for k, v in params.items() if not k.startswith("partial_")}
  a0, b0 = (_play_one_key(absolute, old, press) for press in (500, 1012))
  assert np.abs(a0[512:2000] - b0[1024:2512]).max() > 0.1 * np.abs(a0).max()
  # A clip's crops must start on the grid for the phases to be the song's.
  config.crop_align = 1
  with pytest.raises(ValueError, match="crop_align"):
    models.build_generator(config)


def test_a_note_keeps_its_phases_at_a_coarser_hop():
  """At a coarser generation hop (32 samples) a note that starts inside a control block (on the
  16-sample onset grid) plays, from the next block on, the waveform it plays at hop 16: only the
  amplitudes' interpolation differs."""
  _, model, params = _onset_grid_model(1, detune=0.1)
  coarse = model.clone(hop=32)
  fine = _play_one_key(model, params, 550)      # the note starts at 560, a block boundary at 16
  mid = _play_one_key(coarse, params, 550)      # and inside a block at 32 (544-576)
  assert np.corrcoef(fine[576:], mid[576:])[0, 1] > 0.999
  # The same note started 16 samples later at hop 32 (on a block boundary): another waveform.
  later = _play_one_key(coarse, params, 566)
  assert np.corrcoef(mid[608:], later[608:])[0, 1] < 0.9


def test_generation_hop_is_generation_only():
  """`keysynth.generation_hop` sets the control hop of generation and validation; training
  plays at TRAINING_HOP whatever it is."""
  config = _labelled_config()
  config.keysynth.teacher_forced_keys = False
  config.keysynth.key_weight = 0.0
  model, params, inputs = _model_and_params(_keys_with_floor([39, 46], 0.0))
  batch = {"frames": inputs[0], "frame_index": inputs[1], "frame_age": inputs[2],
           "audio": jnp.asarray(_play(model, params, *inputs))}
  assert model.hop == pm.TRAINING_HOP == 16
  config.keysynth.generation_hop = 32
  module = models.build_generator(config).module
  assert module.hop == 32
  # It generates at 32, which sounds different; its training loss hears the audio at 16.
  assert np.abs(np.asarray(_play(module, params, *inputs)) - batch["audio"]).max() > 1e-3
  assert float(jax.jit(lambda p: pm.loss_fn(module, p, batch, config, True)[1]["l1"])(params)) \
      < 1e-6
  assert export_run.parse_generation(["keysynth.generation_hop=32"]) == {
      "keysynth.generation_hop": 32}


def test_partial_turns_are_each_partials_phase_in_exact_turns():
  """f (p - s) mod 1 for float32 frequencies f (turns per sample), control points p and note
  starts s (in rows): within float32 rounding of the exact value at ages up to 2^22 samples
  (17 min at 4 kHz), negative starts too; its derivative in f is the age p - s."""
  rng = np.random.default_rng(0)
  freq = rng.uniform(2.0 ** -8, 0.5, 7).astype(np.float32)
  points = rng.integers(0, 2 ** 22, (2, 5)).astype(np.int32)
  starts = rng.integers(-2 ** 20, 2 ** 22, (2, 3, 7)).astype(np.float32)
  rows = rng.integers(0, 3, (2, 5))
  got = np.asarray(jax.jit(pm.partial_turns)(freq, points, starts, rows), np.float64)
  age = points[..., None].astype(np.float64) - np.take_along_axis(
      starts.astype(np.float64), rows[..., None], axis=1)                  # (2, 5, 7)
  exact = np.mod(freq.astype(np.float64) * age + 0.5, 1.0) - 0.5
  error = np.mod(got - exact + 0.5, 1.0) - 0.5
  assert np.abs(error).max() < 2.0 ** -24 and np.all((got >= -0.5) & (got < 0.5))
  _, tangent = jax.jvp(lambda f: pm.partial_turns(f, points, starts, rows),
                       (jnp.asarray(freq),), (jnp.ones(7, jnp.float32),))
  np.testing.assert_allclose(tangent, age, rtol=1e-6)


def test_per_partial_reads_each_partials_key_value_exactly():
  """The note phases' partial note starts come from their keys' by a one-hot product: as exact
  as the gather it replaced, for values up to 2^24 samples (70 min at 4 kHz)."""
  key_of = pm.oscillator_bank(4000, 8)[1]
  rng = np.random.default_rng(0)
  ages = rng.integers(0, 2 ** 24, (2, 5, 88)).astype(np.float32)
  ages[0, 0] = np.arange(88)  # small values and zeros too
  got = jax.jit(lambda a: pm.per_partial(a, key_of))(jnp.asarray(ages))
  np.testing.assert_array_equal(got, ages[..., key_of])


@pytest.fixture
def keysynth_run(data):
  """(config, generator, initial params, a cropped training batch as jax arrays): the test
  config's KeySynth with key labels."""
  config = _labelled_config()
  generator = models.build_generator(config)
  batch = next(data.batches("train", 2, seed=0, epoch=0, crop_samples=512))
  params = generator.init(jax.random.PRNGKey(0), batch)
  return config, generator, params, {k: jnp.asarray(v) for k, v in batch.items()}


def test_loss_reports_key_reading_and_trains_on_key_labels(keysynth_run):
  config, generator, params, batch = keysynth_run
  loss, metrics = jax.jit(lambda p: generator.loss(p, batch, train=True))(params)
  assert np.isfinite(float(loss))
  assert 0.0 <= float(metrics["key_accuracy"]) <= 1.0
  assert float(metrics["key_cross_entropy"]) == pytest.approx(88 * np.log(2), rel=0.05)

  def reader_grad(weight, forced):
    config.keysynth.key_weight = weight
    config.keysynth.teacher_forced_keys = forced
    grads = jax.jit(jax.grad(lambda p: generator.loss(p, batch, train=True)[0]))(params)
    return _key_output_layer(grads["key_reader"])["bias"]

  # Teacher-forced keys: the audio terms do not reach the reader, the label term does. (Without
  # them the audio reaches the reader: test_label_free_training_never_reads_key_labels.)
  assert float(jnp.abs(reader_grad(0.0, True)).max()) == 0.0
  assert float(jnp.abs(reader_grad(1.0, True)).max()) > 1e-3


def test_evaluation_plays_the_reader_keys_not_the_labels(keysynth_run):
  _, generator, params, batch = keysynth_run
  # The reader reads every key as up: the reader's keys give silence.
  params = _read_keys_regardless_of_image(params, np.full(88, -30.0))
  assert batch["frame_keys"].any()
  _, trained = jax.jit(lambda p: generator.loss(p, batch, train=True))(params)
  _, evaluated = jax.jit(lambda p: generator.loss(p, batch, train=False))(params)
  silent = float(jnp.mean(jnp.abs(batch["audio"])))
  assert evaluated["l1"] == pytest.approx(silent, rel=1e-5)
  assert abs(float(trained["l1"]) - silent) > 1e-4


def test_generate_is_the_forward_pass_and_scores_the_true_audio(keysynth_run):
  _, generator, params, batch = keysynth_run
  # On a CPU generate plays the clips one at a time (cache-sized work); the audio is the
  # forward pass of the whole batch at once.
  assert pm.clips_at_once(2, "cpu") == 1 and pm.clips_at_once(2, "gpu") == 2
  out = generator.generate(params, batch["frames"], batch["frame_index"], batch["frame_age"],
                           true_audio=batch["audio"])
  forward = _play(generator.module, params, batch["frames"], batch["frame_index"],
                  batch["frame_age"])
  np.testing.assert_allclose(np.asarray(out.audio), np.clip(np.asarray(forward), -1, 1),
                             rtol=1e-6, atol=1e-7)
  assert out.cross_entropy.shape == (2,)
  # The same number as the loss's bucket cross-entropy of the prediction.
  _, metrics = jax.jit(lambda p: generator.loss(p, batch, train=False))(params)
  assert float(jnp.mean(out.cross_entropy)) == pytest.approx(float(metrics["cross_entropy"]),
                                                            rel=1e-5)
  assert generator.generate(params, batch["frames"], batch["frame_index"],
                            batch["frame_age"]).cross_entropy is None


def test_sin_cos_turns_is_within_a_micro_unit_of_the_exact_values():
  x = np.concatenate([np.random.default_rng(0).uniform(-0.5, 0.5, 100_000),
                      np.arange(-4, 5) / 8]).astype(np.float32)  # and the quarter turns
  sin, cos = pm.sin_cos_turns(jnp.asarray(x))
  exact = 2 * np.pi * x.astype(np.float64)
  np.testing.assert_allclose(sin, np.sin(exact), atol=1e-6, rtol=0)
  np.testing.assert_allclose(cos, np.cos(exact), atol=1e-6, rtol=0)


def test_stft_loss_averages_over_the_sizes_it_uses():
  rng = np.random.default_rng(0)
  a, b = (jnp.asarray(rng.normal(size=(1, 300)), jnp.float32) for _ in range(2))
  # A 300-sample clip fits sizes 64, 128 and 256 but not 512: the mean is over those three.
  used = pm.multi_resolution_stft_loss(a, b, sizes=(64, 128, 256))
  assert float(pm.multi_resolution_stft_loss(a, b, sizes=(64, 128, 256, 512))) == \
      pytest.approx(float(used), rel=1e-6)
  with pytest.raises(ValueError, match="shorter than every STFT size"):
    pm.multi_resolution_stft_loss(a[:, :32], b[:, :32])


# ---- learning without key labels ---------------------------------------------------------------


def test_key_positions_fall_on_each_key_of_the_simulated_keyboard():
  layout = keyboard.layout(32, 208)
  columns = key_reader.key_positions() * 208 / key_reader.NUM_WHITE_KEYS
  for key in range(88):
    assert np.any(layout.owner[:, int(columns[key])] == key), f"key {key} is not at its place"
  assert np.all(np.diff(key_reader.key_positions()) > 0)  # ordered by pitch


def test_placed_reader_reads_a_pressed_key_at_its_place():
  """With the classifier fixed to "darker than the released keyboard at my place = pressed", the
  placed reader's output for key k depends on the pixels at key k's place only."""
  reader = key_reader.PlacedKeyReader(channels=(4,), hidden=4)
  released = keyboard.render_frames(np.zeros((1, 88), bool))
  params = reader.init(jax.random.PRNGKey(0), released)["params"]
  assert float(params["left"]) == 0.0 and float(params["width"]) == 1.0
  for key in (0, 40, 87):
    pressed = np.zeros((1, 88), bool)
    pressed[0, key] = True
    frames = keyboard.render_frames(pressed)
    grads = jax.grad(lambda f, k=key: reader.apply({"params": params}, f)[0, k].sum())(
        frames.astype(np.float32))
    touched = np.flatnonzero(np.abs(np.asarray(grads[0])).sum(0) > 0)
    place = key_reader.key_positions()[key] * 208 / key_reader.NUM_WHITE_KEYS
    # The receptive field: 3x3 conv, interpolation and +-1 column window around the key's place.
    assert touched.min() >= place - 4 and touched.max() <= place + 4, (key, touched, place)


def test_label_free_training_never_reads_key_labels(data):
  config = test_config.get_config()
  config.model = "keysynth"
  generator = models.build_generator(config)
  assert not generator.uses_key_labels and "frame_keys" not in generator.batch_fields
  assert audio_teacher.FIELD in generator.batch_fields  # what the audio says: not a label
  audio_teacher.add_heard_keys(data)
  batch = next(data.batches("train", 2, seed=0, epoch=0, crop_samples=512))
  unlabelled = {k: jnp.asarray(v) for k, v in batch.items() if k != "frame_keys"}
  params = generator.init(jax.random.PRNGKey(0), unlabelled)
  loss, metrics = jax.jit(lambda p: generator.loss(p, unlabelled, train=True))(params)
  grads = jax.jit(jax.grad(lambda p: generator.loss(p, unlabelled, train=True)[0]))(params)
  assert np.isfinite(float(loss)) and "key_accuracy" not in metrics
  assert float(metrics["heard_cross_entropy"]) > 0
  # The audio loss alone reaches the reader, its placement included.
  reader_grads = grads["key_reader"]
  assert float(jnp.abs(reader_grads["left"])) > 0 and float(jnp.abs(reader_grads["width"])) > 0
  # Labelled configs do read them.
  assert "frame_keys" in models.build_generator(_labelled_config()).batch_fields


def test_training_records_what_the_model_learned_from(tiny_data_dir, tmp_path):
  config = test_config.get_config()
  config.model = "keysynth"
  config.data_dir = tiny_data_dir
  config.max_steps = 1
  train.train_and_evaluate(config, str(tmp_path / "run"), show_progress=False)
  facts = checkpointing.learned_from(checkpointing.read_run_record(str(tmp_path / "run")))
  assert facts == {"uses_key_labels": False, "frame_mode": "sparse"}
  # What train writes is the generator's own account (a labelled config says so).
  assert models.build_generator(_labelled_config()).uses_key_labels
  # An export may change how the model plays (generation-only settings), nothing else.
  out = str(tmp_path / "model")
  export_run.export_run(str(tmp_path / "run"), out,
                        generation=export_run.parse_generation(["keysynth.max_voices=2"]))
  exported = runs.load_run(out)
  assert exported.generator.module.max_voices == 2
  assert runs.load_run(str(tmp_path / "run")).generator.module.max_voices == 16
  assert "--generation=keysynth.max_voices=2" in open(os.path.join(out, "README.md")).read()
  stage1 = tmp_path / "stage1.log"
  stage1.write_text("the first stage's log")
  latest = export_run.export_run(str(tmp_path / "run"), str(tmp_path / "latest"),
                                 checkpoint="latest", earlier_logs=[str(stage1)])
  assert latest == runs.load_run(str(tmp_path / "latest")).step == 1
  readme = open(os.path.join(tmp_path / "latest", "README.md")).read()
  assert "Latest checkpoint (step 1)" in readme and "train_stage1.log" in readme
  assert (tmp_path / "latest" / "train_stage1.log").read_text() == "the first stage's log"
  # A missing log is refused before anything is written.
  with pytest.raises(ValueError, match="no log file at .*nope.log"):
    export_run.export_run(str(tmp_path / "run"), str(tmp_path / "unwritten"),
                          earlier_logs=[str(stage1), str(tmp_path / "nope.log")])
  assert not any(p.name.startswith("unwritten") for p in tmp_path.iterdir())
  for bad in (["keysynth.envelope_hidden=8"], ["keysynth.max_voices"], ["keysynth.max_voices=x"]):
    with pytest.raises(ValueError, match="--generation"):
      export_run.parse_generation(bad)

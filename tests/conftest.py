"""Shared fixtures: tiny MIDI songs made with mido, and a tiny dataset built from them."""

from __future__ import annotations

import io

import mido
import numpy as np
import pytest


@pytest.fixture(scope="session", autouse=True)
def _compilation_cache(tmp_path_factory):
  """Tests build the same tiny programs many times: compile each once per session."""
  import jax

  jax.config.update("jax_compilation_cache_dir", str(tmp_path_factory.mktemp("jax_cache")))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def make_song_midi(seed: int, seconds: float) -> bytes:
  """A random piano piece of about `seconds` s (1-3 note chords), as MIDI file bytes."""
  rng = np.random.default_rng(seed)
  events = []
  t = 0.3
  while t < seconds:
    for pitch in rng.choice(np.arange(30, 100), size=rng.integers(1, 4), replace=False):
      length = float(rng.choice([0.1, 0.3, 0.6]))
      events.append((round(t * 960), 1, mido.Message("note_on", note=int(pitch), velocity=90)))
      events.append((round((t + length) * 960), 0, mido.Message("note_off", note=int(pitch))))
    t += float(rng.choice([0.2, 0.4, 0.7]))
  events.sort(key=lambda e: (e[0], e[1]))
  mid = mido.MidiFile(ticks_per_beat=480)
  track = mido.MidiTrack()
  mid.tracks.append(track)
  last = 0
  for tick, _, msg in events:
    track.append(msg.copy(time=tick - last))
    last = tick
  buf = io.BytesIO()
  mid.save(file=buf)
  return buf.getvalue()


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory) -> str:
  """Six songs of 14-34 s split 60/20/20 by song: a few segments per split, built once."""
  from data_gen import make_dataset

  midis = tmp_path_factory.mktemp("tiny_midis")
  for i in range(6):
    (midis / f"s{i}.mid").write_bytes(make_song_midi(i, 14.0 + 4 * i))
  out = tmp_path_factory.mktemp("tiny_dataset")
  make_dataset.build_dataset(str(out), midi_dir=str(midis), num_songs=0, workers=1,
                             progress=False)
  return str(out)


@pytest.fixture(scope="module")
def data(tiny_data_dir):
  """The tiny dataset, loaded (one copy per test module)."""
  from deepsynth_jax import input_pipeline

  return input_pipeline.load_dataset(tiny_data_dir)


def write_keysynth_run(workdir: str, data_dir: str, offset: float) -> str:
  """Writes a KeySynth run directory as train.py leaves it (run.json, a best checkpoint at step
  3): the test config's KeySynth on `data_dir`, its initial parameters + `offset` (away from the
  init, so that a copy of them is recognizably this run's). Returns `workdir`."""
  import jax
  import optax
  from flax.training import train_state

  from deepsynth_jax import checkpointing, input_pipeline, models, train
  from experiments.configs import test as test_config

  data = input_pipeline.load_dataset(data_dir)
  config = test_config.get_config()
  config.data_dir = data_dir
  config.model = "keysynth"
  generator = models.build_generator(config, data.sample_rate)
  batch = generator.select_fields(next(data.batches("train", 1, seed=0, epoch=0,
                                                    crop_samples=256)))
  params = jax.tree.map(lambda x: x + offset, generator.init(jax.random.key(0), batch))
  state = train_state.TrainState.create(apply_fn=generator.module.apply, params=params,
                                        tx=optax.sgd(0.1))
  checkpointing.write_run_record(workdir, config, train._data_facts(data),
                                 learned_from={"uses_key_labels": False, "frame_mode": "sparse"})
  ckpts = checkpointing.RunCheckpoints(workdir)
  ckpts.save_best(3, state, {"step": 3, "history": []}, 5.0)
  ckpts.close()
  return workdir


@pytest.fixture(scope="module")
def clip(data):
  """Sparse frames (F, H, W) and their start samples of a validation example."""
  ex = data.example("validation", 0)
  count = int(ex["num_frames"])
  return ex["frames"][:count], ex["frame_start"][:count].astype(np.int64)

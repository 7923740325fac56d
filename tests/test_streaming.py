"""deepsynth_jax.streaming: streamed audio equals `sample()` on the same frames, for both models."""

from __future__ import annotations

import numpy as np
import pytest
from test_api import make_run_dir  # noqa: E402  (a run directory with random parameters)

import deepsynth_jax
from data_gen import keyboard
from deepsynth_jax import runs, streaming

RATE = 4000
# (sample, keys down): presses, a chord, a release, a re-press 3 samples after a release, a
# change inside a control block, and two changes one sample apart.
EVENTS = [(0, ()), (300, (40,)), (700, (40, 44)), (1111, (44,)), (1500, ()), (1503, (47,)),
          (2001, (47, 52, 59)), (2002, (47, 52)), (2600, (30,)), (3013, ())]
# Blocks of uneven sizes, not all multiples of KeySynth's 16-sample control blocks; few distinct
# sizes, since the WaveNet's block sampler compiles once per size.
BLOCKS = [333, 1, 16, 333, 700, 333, 1, 700, 16, 700, 333, 700]


def _keys(down) -> np.ndarray:
  state = np.zeros(keyboard.NUM_KEYS, bool)
  state[list(down)] = True
  return state


def _stream_events(stream: streaming.Stream) -> np.ndarray:
  """Plays EVENTS block by block, each change set just before the first block that may use it."""
  pending = list(EVENTS[1:])
  if EVENTS[0][1]:
    stream.set_keys(_keys(EVENTS[0][1]), at=0)
  out = []
  for n in BLOCKS:
    while pending and pending[0][0] < stream.position + n + 32:
      at, down = pending.pop(0)
      assert stream.set_keys(_keys(down), at=at) == at
    out.append(stream.generate(n))
  return np.concatenate(out)


VARIANTS = {"keysynth": ("keysynth", {}),
            # Random keys shown pressed: with rounded key states a key at p < 0.5 is silent.
            "keysynth_hard_held": ("keysynth", {"keysynth.hard_held": True}, 3.0),
            "keysynth_onset_grid": ("keysynth", {"keysynth.onset_grid": 16, "crop_align": 16}),
            # Control blocks of 32 samples: notes start inside them (on the 16-sample grid).
            "keysynth_hop32": ("keysynth", {"keysynth.onset_grid": 16, "crop_align": 16,
                                            "keysynth.generation_hop": 32}),
            "wavenet": ("wavenet", {})}


@pytest.fixture(scope="module", params=list(VARIANTS))
def run_dir(request, tmp_path_factory, tiny_data_dir):
  model, overrides, *bias = VARIANTS[request.param]
  return make_run_dir(str(tmp_path_factory.mktemp(request.param)), tiny_data_dir, model,
                      overrides, *bias)


def test_streamed_equals_offline(run_dir):
  run = runs.load_run(run_dir)
  stream = streaming.open_stream(run, seed=3)
  streamed = _stream_events(stream)
  total = sum(BLOCKS)
  assert streamed.shape == (total,) and streamed.dtype == np.float32
  np.testing.assert_array_equal(stream.audio(), streamed)
  # The model saw the simulator's frames of the key states, current from each change's sample.
  times = np.asarray([t for t, _ in EVENTS])
  expected = keyboard.render_frames(np.stack([_keys(d) for _, d in EVENTS]), *run.frame_shape)
  np.testing.assert_array_equal(stream.frame_times(), times)
  np.testing.assert_array_equal(stream.frames(), expected)
  offline = deepsynth_jax.sample(expected, times, checkpoint=run_dir, seconds=total / RATE,
                                 seed=3)
  assert np.std(offline) > 0
  np.testing.assert_allclose(streamed, offline, rtol=0, atol=2e-5)


def test_stream_refuses_bad_changes_and_ignores_unchanged_states(run_dir):
  stream = streaming.open_stream(runs.load_run(run_dir))
  assert stream.set_keys(_keys(())) is None  # the initial state: no new frame
  stream.generate(333)  # block sizes of test_streamed_equals_offline's: compiled already
  with pytest.raises(streaming.StreamInputError, match="too early"):
    stream.set_keys(_keys((40,)), at=10)
  with pytest.raises(streaming.StreamInputError, match=r"bool \(88,\)"):
    stream.set_keys(np.zeros(87, bool))
  with pytest.raises(streaming.StreamInputError, match="num_samples"):
    stream.generate(0)
  at = stream.set_keys(_keys((40,)))
  assert at == stream.earliest_change and at >= 333
  stream.generate(700)
  assert stream.set_keys(_keys(())) == stream.earliest_change
  stream.generate(333)
  np.testing.assert_array_equal(stream.notes(), [[at, stream.frame_times()[-1], 61, 100]])


def test_a_released_key_fades_and_streams_as_offline(tmp_path):
  from test_instrument_browser import known_keysynth_run

  times = np.array([0, 400, 1200])
  states = np.stack([_keys(()), _keys((39,)), _keys(())])  # C4 pressed at 0.1 s, released at 0.3
  heard = {}
  for release_ms in (0.0, 20.0):
    run_dir = known_keysynth_run(str(tmp_path / str(release_ms)), release_ms=release_ms)
    run = runs.load_run(run_dir)
    frames = keyboard.render_frames(states, *run.frame_shape)
    offline = deepsynth_jax.sample(frames, times, checkpoint=run_dir, seconds=0.5)
    stream = streaming.open_stream(run)
    for t, state in zip(times, states, strict=True):
      stream.set_keys(state, at=int(t))
    streamed = np.concatenate([stream.generate(16) for _ in range(2000 // 16)])
    np.testing.assert_allclose(streamed, offline, rtol=0, atol=2e-5)
    heard[release_ms] = np.abs(offline[1200 + 16:1200 + 80]).max()  # 4-20 ms after the release
  before = np.abs(offline[1100:1200]).max()
  assert heard[0.0] < 1e-6 * before  # cut within one control block
  assert 0.1 * before < heard[20.0] < before  # a fade, e^-1 every 20 ms

"""Property-based fuzzing of the MIDI path: a parsed, valid song or one clean MidiError, in bounded
time. tests/test_data_gen.py already feeds random bytes after a header and random byte edits of
one file; here: generated pathological songs, their mutations and truncations at every offset,
structured note lists (zero-length, overlapping, off-keyboard notes, absurd tempos and time
divisions) with exact oracles, and files over the size limit. The generators are those of
`python -m experiments.fuzz_midi`, which runs a longer campaign."""

from __future__ import annotations

import time

import numpy as np
import pytest
from conftest import make_song_midi
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from data_gen import midi
from experiments import fuzz_midi

TIME_LIMIT = 10.0  # seconds per input; the slowest legal input (a 2 MB file) parses in ~12 s


def fuzz(max_examples: int) -> settings:
  """Deterministic for CI (derandomize, no example database); time is bounded by `check`."""
  return settings(max_examples=max_examples, derandomize=True, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def check(data: bytes) -> fuzz_midi.Outcome:
  """A parsed song or a clean MidiError within the time limit (SIGALRM guards against hangs)."""
  t0 = time.perf_counter()
  outcome = fuzz_midi.check(data, timeout=TIME_LIMIT)
  assert time.perf_counter() - t0 < TIME_LIMIT
  return outcome


seeds = st.integers(0, 2 ** 32 - 1)


@fuzz(40)
@given(seeds)
def test_generated_songs(seed):
  check(fuzz_midi.random_song(np.random.default_rng(seed)))


@fuzz(60)
@given(seeds, st.booleans())
def test_mutated_songs(seed, realistic):
  rng = np.random.default_rng(seed)
  base = make_song_midi(seed % 20, 3.0) if realistic else fuzz_midi.random_song(rng)
  check(fuzz_midi.mutate(base, rng))


def test_every_truncation_of_a_valid_file():
  data = make_song_midi(3, 4.0)
  assert check(data).parsed
  outcomes = [check(data[:n]) for n in range(len(data))]
  assert not any(o.parsed for o in outcomes[:-8]), "a file cut inside its notes parsed"
  assert all(o.message for o in outcomes)


notes_strategy = st.lists(st.tuples(
    st.integers(0, 5000),  # onset tick
    st.one_of(st.just(0), st.integers(0, 2000)),  # length in ticks: zero-length notes included
    st.one_of(st.integers(0, 127), st.integers(midi.LOWEST_KEY, midi.HIGHEST_KEY)),
    st.integers(0, 127),  # velocity (0: a note-off)
    st.one_of(st.just(0), st.integers(0, 15)),  # channel (9: drums)
), max_size=30)
tempos = st.one_of(st.integers(midi.MIN_TEMPO_US, 2_000_000),
                   st.sampled_from([0, 1, midi.MIN_TEMPO_US - 1, 0xFFFFFF]))
divisions = st.one_of(st.sampled_from([480, 96, 24, 1, 0x7FFF, 0, 0xE250, 0xE728, 0x8001]),
                      st.integers(0, 0xFFFF))


@fuzz(80)
@given(notes_strategy, tempos, divisions)
@example([(0, 0, 60, 90, 0)], 500_000, 480)  # only a zero-length note
@example([(0, 960, 60, 90, 0), (480, 960, 60, 80, 0), (480, 10, 60, 70, 1)], 500_000, 480)
@example([(0, 480, 5, 90, 0), (0, 480, 120, 90, 0)], 500_000, 480)  # off the keyboard only
@example([(0, 480, 60, 90, 0)], 999, 480)  # absurd tempo
@example([(0, 480, 60, 90, 0)], 500_000, 0)  # zero ticks per beat
@example([(0, 480, 60, 90, 9)], 500_000, 0xE250)  # drums only, SMPTE division
def test_structured_notes(notes, tempo, division):
  outcome = check(fuzz_midi.song_from_notes(notes, tempo=tempo, division=division))
  usable = {p for _, length, p, v, ch in notes
            if midi.LOWEST_KEY <= p <= midi.HIGHEST_KEY and v > 0 and ch != midi.DRUM_CHANNEL}
  if tempo < midi.MIN_TEMPO_US:
    assert not outcome.parsed and "absurd tempo" in outcome.message
  elif division == 0:
    assert not outcome.parsed and "0 ticks per beat" in outcome.message
  elif not usable:
    assert not outcome.parsed, "a song without playable notes parsed"
  if outcome.parsed:
    perf = midi.parse_midi(fuzz_midi.song_from_notes(notes, tempo=tempo, division=division))
    assert set(perf.notes[:, 2].astype(int).tolist()) <= usable


def test_huge_files_are_refused_quickly(tmp_path):
  over = b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x01\xe0" + bytes(midi.MAX_FILE_BYTES)
  outcome = check(over)
  assert not outcome.parsed and "limit" in outcome.message and outcome.seconds < 1.0
  path = tmp_path / "huge.mid"
  with open(path, "wb") as f:  # a sparse file: 100 MB that cost no disk
    f.truncate(100 * 1024 * 1024)
  t0 = time.perf_counter()
  with pytest.raises(midi.MidiError, match="over the .*-byte limit"):
    midi.parse_midi(str(path))
  assert time.perf_counter() - t0 < 1.0
  # A large valid file (20,000 notes, ~160 kB) is parsed and built within the limit.
  large = fuzz_midi.large_song(np.random.default_rng(0))
  outcome = check(large)
  assert outcome.parsed and outcome.message.startswith("20000 notes")


def test_campaign_counts_add_up():
  result = fuzz_midi.campaign(60, seed=1, timeout=TIME_LIMIT)
  counts = result["counts"]
  assert counts["inputs"] == 60 and counts["crashes"] == 0 and counts["hangs"] == 0
  assert counts["parsed"] + counts["clean_errors"] == 60
  assert counts["parsed"] > 0 and counts["clean_errors"] > 0

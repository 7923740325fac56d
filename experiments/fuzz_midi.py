r"""Fuzzes the MIDI path: every input must end in a parsed song or one clean `MidiError`.

  python -m experiments.fuzz_midi [--count=10000] [--seed=0] [--timeout=60] [--crash_dir=DIR]

Each input is drawn (seeded) from one of these families: random bytes, a valid header followed by
random bytes, a generated song (raw Standard MIDI File bytes with absurd tempos and time divisions,
zero-length, overlapping, unterminated and off-keyboard notes, drums, pedal, running status, huge
delta times, type 0/1/2), a mutated song (bit flips, byte edits, insertions, deletions, chunk-length
edits), a truncated song, a file over the size limit, and (rarely) a large valid song. `check` runs
`data_gen.midi.parse_midi` and, for a parsed song, the rest of the song-building path up to notes
in samples, sparse frame starts, key states, rendered frames and segment frame ranges, checking the
invariants of each; audio is not rendered. The campaign prints the number of inputs, parsed songs,
clean errors, crashes (any other exception or broken invariant; must be 0), hangs (an input over
--timeout seconds) and the slowest input's time; it exits with status 1 on a crash or hang.
tests/test_midi_fuzz.py runs the same generators and checks under hypothesis.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import signal
import sys
import time
import traceback

import numpy as np

from data_gen import keyboard, midi, segments

SAMPLE_RATE = 4000
SEGMENT_SAMPLES, HOP_SAMPLES = 20_000, 12_000
# Frames are rendered at the smallest size that shows every key, and only for songs of at most
# this many frames (a 10^5-frame song renders fine but would only cost memory here).
RENDER_SIZE = (keyboard.MIN_HEIGHT, keyboard.MIN_WIDTH)
MAX_RENDERED_FRAMES = 20_000
FAMILIES = ("bytes", "header", "song", "mutated", "truncated", "huge", "large")
# Relative frequency of each family in the campaign.
WEIGHTS = (0.10, 0.10, 0.30, 0.32, 0.175, 0.003, 0.002)


class Hang(Exception):
  """An input took longer than the time limit."""


# ---- raw Standard MIDI File writer (no validation, so that it can write broken files) ---------


def vlq(n: int) -> bytes:
  """MIDI variable-length quantity (values above 0x0FFFFFFF are written with more bytes)."""
  out = [n & 0x7F]
  n >>= 7
  while n:
    out.append(0x80 | (n & 0x7F))
    n >>= 7
  return bytes(reversed(out))


def chunk(kind: bytes, data: bytes, length: int | None = None) -> bytes:
  return kind + (len(data) if length is None else length).to_bytes(4, "big") + data


def smf(tracks: list[bytes], *, fmt: int = 1, division: int = 480) -> bytes:
  """A Standard MIDI File from raw track data (each a sequence of delta-time + event bytes)."""
  header = fmt.to_bytes(2, "big") + len(tracks).to_bytes(2, "big") + division.to_bytes(2, "big")
  return chunk(b"MThd", header) + b"".join(chunk(b"MTrk", t) for t in tracks)


def tempo_event(us_per_beat: int) -> bytes:
  return b"\xff\x51\x03" + (us_per_beat & 0xFFFFFF).to_bytes(3, "big")


END_OF_TRACK = b"\xff\x2f\x00"


def _pick(rng: np.random.Generator, options, p=None):
  return options[int(rng.choice(len(options), p=p))]


def random_song(rng: np.random.Generator, max_notes: int = 200) -> bytes:
  """A random, often pathological, song as SMF bytes."""
  fmt = _pick(rng, [0, 1, 1, 1, 2], [0.25, 0.25, 0.2, 0.25, 0.05])
  num_tracks = 1 if fmt == 0 else int(rng.integers(1, 5))
  division = (_pick(rng, [480, 96, 960, 24]) if rng.random() < 0.8 else
              _pick(rng, [1, 0x7FFF, 0, 0xE250, 0xE728, 0xE71E, 0x8001,
                          int(rng.integers(0, 1 << 16))]))
  absurd_tempos = [0, 1, 999, midi.MIN_TEMPO_US, 0xFFFFFF]
  tracks = []
  for _ in range(num_tracks):
    events: list[tuple[int, int, bytes]] = []  # (tick, order, status + data)
    for _ in range(int(rng.integers(0, 4))):
      tempo = (_pick(rng, absurd_tempos) if rng.random() < 0.08
               else int(rng.integers(200_000, 1_500_000)))
      events.append((int(rng.integers(0, 4000)), 0, tempo_event(tempo)))
    tick = 0
    for _ in range(int(rng.integers(0, max_notes + 1))):
      tick += int(_pick(rng, [0, 0, 1, 60, 240, 480, int(rng.integers(0, 5000)), 0x0FFFFFFF],
                        [0.25, 0.05, 0.05, 0.2, 0.2, 0.15, 0.099, 0.001]))
      channel = _pick(rng, [0, 0, 0, 1, 9, int(rng.integers(0, 16))])
      pitch = (int(rng.integers(21, 109)) if rng.random() < 0.85 else
               _pick(rng, [0, 20, 109, 127, int(rng.integers(0, 128))]))
      velocity = int(rng.integers(1, 128)) if rng.random() < 0.95 else 0
      length = _pick(rng, [0, 1, 120, 480, 1920, int(rng.integers(0, 20_000))])
      events.append((tick, 1, bytes([0x90 | channel, pitch, velocity])))
      if rng.random() < 0.93:  # otherwise unterminated
        off = bytes([0x80 | channel, pitch, 64]) if rng.random() < 0.5 else \
            bytes([0x90 | channel, pitch, 0])
        events.append((tick + length, 0, off))
      if rng.random() < 0.1:  # the same key struck again while it sounds
        events.append((tick + length // 2, 1, bytes([0x90 | channel, pitch, velocity or 1])))
      if rng.random() < 0.05:  # sustain pedal
        events.append((tick, 0, bytes([0xB0 | channel, 64, _pick(rng, [0, 63, 64, 127])])))
      if rng.random() < 0.02:
        events.append((tick, 0, bytes([0xC0 | channel, int(rng.integers(0, 128))])))
      if rng.random() < 0.01:
        events.append((tick, 0, b"\xf0" + vlq(3) + b"\x7e\x01\xf7"))
    events.sort(key=lambda e: (e[0], e[1]))
    data = bytearray()
    last_tick, last_status = 0, None
    running = rng.random() < 0.3
    for t, _, event in events:
      data += vlq(t - last_tick)
      last_tick = t
      status = event[0]
      if running and status == last_status and status < 0xF0:
        data += event[1:]  # running status: the status byte is implied
      else:
        data += event
      last_status = status if status < 0xF0 else None
    if rng.random() < 0.95:
      data += vlq(0) + END_OF_TRACK
    tracks.append(bytes(data))
  return smf(tracks, fmt=fmt, division=division)


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
  """1-8 random edits: bit flips, byte values, insertions, deletions, copies, chunk lengths."""
  out = bytearray(data)
  for _ in range(_pick(rng, [1, 1, 2, 3, int(rng.integers(1, 9))])):
    if not out:
      out += bytes(rng.integers(0, 256, int(rng.integers(1, 16)), dtype=np.uint8))
      continue
    pos = int(rng.integers(0, len(out)))
    kind = int(rng.integers(0, 8))
    if kind == 7:  # a data byte (pitch, velocity, delta) set to another valid data value
      out[pos] = int(rng.integers(0, 128))
    elif kind == 0:
      out[pos] ^= 1 << int(rng.integers(0, 8))
    elif kind == 1:
      out[pos] = _pick(rng, [0x00, 0x7F, 0x80, 0xFF, int(rng.integers(0, 256))])
    elif kind == 2:
      out[pos:pos] = bytes(rng.integers(0, 256, int(rng.integers(1, 32)), dtype=np.uint8))
    elif kind == 3:
      del out[pos:pos + int(rng.integers(1, 64))]
    elif kind == 4:
      n = int(rng.integers(1, 256))
      out[pos:pos] = out[pos:pos + n]
    elif kind == 5:  # a chunk length set to something else
      starts = [i for i in range(len(out) - 8) if out[i:i + 4] in (b"MThd", b"MTrk")]
      if starts:
        i = _pick(rng, starts)
        value = _pick(rng, [0, 1, 6, 0xFFFFFFFF, int(rng.integers(0, 1 << 32))])
        out[i + 4:i + 8] = value.to_bytes(4, "big")
    else:
      out[pos:pos + 4] = b"\xff\xff\xff\x7f"  # a long variable-length quantity
  return bytes(out)


def song_from_notes(notes, *, tempo: int = 500_000, division: int = 480, fmt: int = 1) -> bytes:
  """One-track SMF bytes; notes: (onset_tick, length_ticks, pitch, velocity, channel) tuples
  (any values MIDI can hold: zero lengths, overlaps, pitches off the keyboard, velocity 0)."""
  events = [(0, 0, tempo_event(tempo))]
  for onset, length, pitch, velocity, channel in notes:
    events.append((onset, 2, bytes([0x90 | channel, pitch, velocity])))
    events.append((onset + length, 1, bytes([0x80 | channel, pitch, 0])))
  events.sort(key=lambda e: (e[0], e[1]))
  data = bytearray()
  last = 0
  for tick, _, event in events:
    data += vlq(tick - last) + event
    last = tick
  return smf([bytes(data + vlq(0) + END_OF_TRACK)], fmt=fmt, division=division)


def large_song(rng: np.random.Generator, num_notes: int = 20_000) -> bytes:
  """A valid song with many notes (hundreds of kB), for parse time."""
  pitches = rng.integers(21, 109, num_notes)
  data = bytearray(vlq(0) + tempo_event(500_000))
  for p in pitches.tolist():
    data += vlq(10) + bytes([0x90, p, 80]) + vlq(20) + bytes([0x80, p, 0])
  data += vlq(0) + END_OF_TRACK
  return smf([bytes(data)], fmt=0)


def random_input(rng: np.random.Generator, family: str | None = None) -> tuple[str, bytes]:
  """(family, bytes) of one fuzz input."""
  if family is None:
    family = str(rng.choice(FAMILIES, p=WEIGHTS))
  if family == "bytes":
    data = bytes(rng.integers(0, 256, int(rng.integers(0, 4000)), dtype=np.uint8))
  elif family == "header":
    data = (b"MThd\x00\x00\x00\x06" + bytes(rng.integers(0, 256, 6, dtype=np.uint8)) + b"MTrk"
            + bytes(rng.integers(0, 256, int(rng.integers(0, 2000)), dtype=np.uint8)))
  elif family == "song":
    data = random_song(rng)
  elif family == "mutated":
    data = mutate(random_song(rng), rng)
  elif family == "truncated":
    song = random_song(rng)
    data = song[:int(rng.integers(0, max(1, len(song))))]
  elif family == "huge":
    data = b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x01\xe0" + bytes(midi.MAX_FILE_BYTES)
  elif family == "large":
    data = large_song(rng)
  else:
    raise ValueError(f"unknown family {family!r}; use one of {FAMILIES}")
  return family, data


# ---- the check -----------------------------------------------------------------------------


@dataclasses.dataclass
class Outcome:
  parsed: bool
  seconds: float
  message: str  # the MidiError's message, or a summary of the parsed song


def check_performance(perf: midi.Performance) -> str:
  """Checks a parsed song and builds notes in samples, frames and segments from it.

  Raises:
    AssertionError: an invariant of `midi.Performance` or of the song-building path is broken.
  """
  notes = perf.notes
  assert notes.dtype == np.float64 and notes.ndim == 2 and notes.shape[1] == 4, notes.shape
  assert len(notes) > 0, "a parsed song has at least one note"
  assert np.all(np.isfinite(notes)), "non-finite note values"
  onset, offset, pitch, velocity = notes.T
  assert np.all(onset >= 0) and np.all(offset > onset), "a note ends before it starts"
  assert np.all(offset <= midi.MAX_SONG_SECONDS + 1e-6), "a note past the song-length limit"
  assert np.all((pitch >= midi.LOWEST_KEY) & (pitch <= midi.HIGHEST_KEY)), "a note off the keys"
  assert np.all(pitch == np.round(pitch)) and np.all((velocity >= 1) & (velocity <= 127))
  order = np.lexsort((pitch, onset))
  assert np.array_equal(order, np.arange(len(notes))), "notes not sorted by onset, pitch"
  by_key = np.lexsort((onset, pitch))
  same = pitch[by_key][1:] == pitch[by_key][:-1]
  assert np.all(offset[by_key][:-1][same] <= onset[by_key][1:][same]), "a key sounds twice"
  assert all(isinstance(v, int) and v >= 0 for v in perf.stats.values()), perf.stats

  samples = midi.notes_to_samples(notes, SAMPLE_RATE)
  assert samples.dtype == np.int64 and samples.shape[1] == 4 and len(samples) > 0
  assert np.all(samples[:, 1] > samples[:, 0]) and np.all(samples[:, 0] >= 0)
  num_samples = int(samples[:, 1].max()) + 1
  starts = keyboard.sparse_frame_starts(samples)
  starts = starts[starts < num_samples]
  assert starts[0] == 0 and np.all(np.diff(starts) > 0), "frame starts must strictly increase"
  keys = keyboard.keys_at(samples, starts)
  assert keys.shape == (len(starts), midi.NUM_KEYS)
  pressed = np.zeros(midi.NUM_KEYS, bool)
  pressed[samples[:, 2] - midi.LOWEST_KEY] = True
  assert np.all(keys.any(axis=0) <= pressed), "a key shown that no note presses"
  if len(starts) <= MAX_RENDERED_FRAMES:
    frames = keyboard.render_frames(keys, *RENDER_SIZE)
    assert frames.shape == (len(starts), *RENDER_SIZE) and frames.dtype == np.uint8
  windows = segments.segment_starts(num_samples, SEGMENT_SAMPLES, HOP_SAMPLES)
  first, count = segments.frame_ranges(starts, windows, SEGMENT_SAMPLES)
  assert np.all(first >= 0) and np.all(count >= 1), "a segment without a current frame"
  return f"{len(notes)} notes, {perf.duration_seconds:.1f} s, {len(starts)} frames"


def check(data: bytes, timeout: float | None = None) -> Outcome:
  """Parses `data` and, if it is a song, builds it (see `check_performance`).

  Args:
    data: the bytes of a would-be MIDI file.
    timeout: seconds after which `Hang` is raised (SIGALRM; main thread only), or None.

  Returns:
    The outcome: parsed (with a summary) or a clean `MidiError` (with its one-line message).

  Raises:
    Hang: over `timeout`. AssertionError: a broken invariant. Anything else: a crash.
  """
  def on_alarm(signum, frame):
    raise Hang(f"over {timeout} s")

  previous = None
  if timeout:
    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
  t0 = time.perf_counter()
  try:
    try:
      perf = midi.parse_midi(data)
    except midi.MidiError as e:
      message = str(e)
      assert message and "\n" not in message, f"MidiError message not one line: {message!r}"
      return Outcome(False, time.perf_counter() - t0, message)
    summary = check_performance(perf)
    return Outcome(True, time.perf_counter() - t0, summary)
  finally:
    if timeout:
      signal.setitimer(signal.ITIMER_REAL, 0)
      signal.signal(signal.SIGALRM, previous)


# ---- the campaign ----------------------------------------------------------------------------


def campaign(count: int, seed: int, timeout: float, crash_dir: str | None = None) -> dict:
  """Runs `count` seeded inputs through `check`; returns the counts and the slowest input."""
  rng = np.random.default_rng(seed)
  stats = collections.Counter()
  by_family = collections.defaultdict(collections.Counter)
  slowest = (0.0, "", 0)
  crashes: list[str] = []
  for i in range(count):
    family, data = random_input(rng)
    stats["inputs"] += 1
    by_family[family]["inputs"] += 1
    t0 = time.perf_counter()
    try:
      outcome = check(data, timeout=timeout)
      kind = "parsed" if outcome.parsed else "clean_errors"
    except Hang:
      kind = "hangs"
    except Exception as e:  # a crash: anything but a MidiError or a parsed, valid song
      kind = "crashes"
      crashes.append(f"input {i} ({family}, {len(data)} bytes): {type(e).__name__}: {e}\n"
                     + traceback.format_exc(limit=3))
    seconds = time.perf_counter() - t0
    stats[kind] += 1
    by_family[family][kind] += 1
    if seconds > slowest[0]:
      slowest = (seconds, family, len(data))
    if kind in ("crashes", "hangs") and crash_dir:
      os.makedirs(crash_dir, exist_ok=True)
      with open(os.path.join(crash_dir, f"input_{i:06d}_{family}.mid"), "wb") as f:
        f.write(data)
  return {"counts": stats, "by_family": by_family, "slowest": slowest, "crashes": crashes}


def main(argv: list[str]) -> None:
  del argv
  from absl import flags

  f = flags.FLAGS
  t0 = time.perf_counter()
  result = campaign(f.count, f.seed, f.timeout, f.crash_dir)
  c = result["counts"]
  seconds, family, size = result["slowest"]
  for crash in result["crashes"][:5]:
    print(crash, file=sys.stderr)
  print(f"inputs {c['inputs']}, parsed {c['parsed']}, clean errors {c['clean_errors']}, "
        f"crashes {c['crashes']}, hangs (> {f.timeout:g} s) {c['hangs']}; slowest input "
        f"{seconds:.3f} s ({family}, {size} bytes); {time.perf_counter() - t0:.0f} s in all "
        f"(seed {f.seed})")
  for name in FAMILIES:
    fc = result["by_family"].get(name)
    if fc:
      print(f"  {name:9s} {fc['inputs']:6d} inputs: {fc['parsed']:6d} parsed, "
            f"{fc['clean_errors']:6d} clean errors, {fc['crashes']} crashes, {fc['hangs']} hangs")
  if c["crashes"] or c["hangs"]:
    sys.exit(1)


if __name__ == "__main__":
  from absl import app, flags

  flags.DEFINE_integer("count", 10_000, "Number of fuzz inputs.")
  flags.DEFINE_integer("seed", 0, "Seed of the input generator.")
  flags.DEFINE_float("timeout", 60.0, "Seconds after which one input counts as a hang.")
  flags.DEFINE_string("crash_dir", None, "Write crashing or hanging inputs here (.mid files).")
  app.run(main)

"""Robust MIDI file -> piano notes (mido).

`parse_midi` turns a Standard MIDI File (type 0 or 1) into the notes one piano plays:

- Every part is played on the piano: program changes are ignored and all channels are merged onto
  the 88 keys. Notes on the drum channel (channel 10, index 9) and notes outside the piano's range
  (MIDI 21..108) are dropped and counted.
- Sustain pedal (CC64 >= 64 = down) is applied to note offsets: a key released while the pedal is
  down keeps sounding until the pedal comes up (or the key is struck again), and the note's offset
  is moved there. The renderer shows such a key held down for as long as its note sounds, so the
  video's key-up and the audio's note-off always agree; no pedal events reach the synthesizer.
- One key is one string: a note struck again while it still sounds ends the earlier note at the new
  onset; notes of the same pitch starting together (unisons of two parts) become one note with the
  larger velocity and the later offset. Zero-length notes are dropped and counted.
- At the same tick, note-offs are applied before note-ons, so a repeated note is a re-strike, and
  note-ons of one key on one channel are one strike (music21 puts all parts on channel 1). As in
  any synthesizer, a note-off ends the key's note even if it was struck by several note-ons.

Parsing is bounded: files over `MAX_FILE_BYTES`, more than `MAX_EVENTS` messages, a tempo faster
than `MIN_TEMPO_US` microseconds per beat, or a song longer than `MAX_SONG_SECONDS` are rejected.
Any bad input (missing, truncated, corrupt, empty, type 2, no notes on the 88 keys) raises
`MidiError` (a ValueError) naming the problem; no other exception escapes `parse_midi`.
"""

from __future__ import annotations

import dataclasses
import io
import os

import numpy as np

LOWEST_KEY = 21  # A0
HIGHEST_KEY = 108  # C8
NUM_KEYS = HIGHEST_KEY - LOWEST_KEY + 1  # 88
DRUM_CHANNEL = 9  # channel 10 in 1-based numbering
SUSTAIN_CC = 64

MAX_FILE_BYTES = 2 * 1024 * 1024  # mido parses ~0.2 MB/s at worst: bounds parsing to ~12 s
MAX_EVENTS = 1_000_000
MAX_SONG_SECONDS = 3600.0
MIN_TEMPO_US = 1000  # 60,000 beats per minute
DEFAULT_TEMPO_US = 500_000  # 120 beats per minute


class MidiError(ValueError):
  """A MIDI file that cannot be used, with the reason."""


@dataclasses.dataclass(frozen=True)
class Performance:
  """The notes one piano plays.

  Attributes:
    notes: float64 (M, 4): onset_seconds, offset_seconds, midi_pitch (21..108), velocity (1..127),
      sorted by onset then pitch; offset > onset; no two notes of a pitch overlap.
    stats: counts of what was dropped or changed (drum_notes, out_of_range_notes,
      zero_length_notes, unterminated_notes, pedal_extended_notes, merged_unison_notes,
      truncated_by_restrike).
  """
  notes: np.ndarray
  stats: dict[str, int]

  @property
  def duration_seconds(self) -> float:
    """Seconds until the last note-off."""
    return float(self.notes[:, 1].max()) if len(self.notes) else 0.0


def read_midi_bytes(source: str | os.PathLike | bytes) -> bytes:
  """The bytes of a MIDI file (path or bytes), at most MAX_FILE_BYTES; MidiError if unreadable."""
  if isinstance(source, (bytes, bytearray, memoryview)):
    data = bytes(source)
  else:
    try:
      size = os.path.getsize(source)
      if size > MAX_FILE_BYTES:
        raise MidiError(f"{os.fspath(source)} is {size} bytes, over the {MAX_FILE_BYTES}-byte "
                        "limit for a MIDI file")
      with open(source, "rb") as f:
        data = f.read(MAX_FILE_BYTES + 1)
    except MidiError:
      raise
    except (OSError, TypeError, ValueError) as e:
      raise MidiError(f"cannot read MIDI file {source!r}: {e}") from None
  if not data:
    raise MidiError("empty file (0 bytes)")
  if len(data) > MAX_FILE_BYTES:
    raise MidiError(f"{len(data)} bytes is over the {MAX_FILE_BYTES}-byte limit for a MIDI file")
  return data


def _load_mido(data: bytes):
  import mido

  try:
    return mido.MidiFile(file=io.BytesIO(data))
  except EOFError:
    raise MidiError("truncated MIDI file (ended inside a chunk)") from None
  except RecursionError:
    raise MidiError("corrupt MIDI file (unparseable structure)") from None
  except Exception as e:  # mido raises OSError, ValueError, KeyError, struct.error, ...
    msg = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
    raise MidiError(f"corrupt MIDI file: {msg}") from None


def _seconds_per_tick_fn(mid, tempo_ticks: np.ndarray, tempos: np.ndarray):
  """Returns a function mapping absolute ticks (int64 array) to seconds (float64)."""
  division = int(mid.ticks_per_beat)
  if division < 0 or division & 0x8000:
    # SMPTE time division: high byte is -frames per second, low byte ticks per frame.
    raw = division & 0xFFFF
    fps = 256 - (raw >> 8)
    ticks_per_frame = raw & 0xFF
    if fps not in (24, 25, 29, 30) or ticks_per_frame == 0:
      raise MidiError(f"invalid SMPTE time division (fps={fps}, ticks/frame={ticks_per_frame})")
    fps_real = 29.97 if fps == 29 else float(fps)
    scale = 1.0 / (fps_real * ticks_per_frame)
    return lambda ticks: ticks.astype(np.float64) * scale
  if division == 0:
    raise MidiError("invalid header: 0 ticks per beat")
  # Piecewise-linear tick -> seconds map with a segment per tempo change.
  seg_ticks = np.concatenate([[0], tempo_ticks]).astype(np.int64)
  seg_tempo = np.concatenate([[DEFAULT_TEMPO_US], tempos]).astype(np.float64)
  sec_per_tick = seg_tempo / 1e6 / division
  seg_seconds = np.concatenate([[0.0], np.cumsum(np.diff(seg_ticks) * sec_per_tick[:-1])])

  def to_seconds(ticks: np.ndarray) -> np.ndarray:
    i = np.searchsorted(seg_ticks, ticks, side="right") - 1
    return seg_seconds[i] + (ticks - seg_ticks[i]) * sec_per_tick[i]
  return to_seconds


def _collect_events(mid):
  """Flattens tracks into (tick, order, kind, channel, a, b) rows and the tempo map."""
  if mid.type not in (0, 1):
    raise MidiError(f"MIDI type {mid.type} is not supported (only type 0 and 1; type 2 holds "
                    "independent patterns)")
  rows = []
  tempo_rows = []
  total = 0
  end_tick = 0
  for track_i, track in enumerate(mid.tracks):
    total += len(track)
    if total > MAX_EVENTS:
      raise MidiError(f"more than {MAX_EVENTS} MIDI events; refusing to parse")
    tick = 0
    for msg_i, msg in enumerate(track):
      tick += int(msg.time)
      kind = msg.type
      if kind == "note_on" and msg.velocity > 0:
        rows.append((tick, 1, track_i, msg_i, msg.channel, msg.note, msg.velocity))
      elif kind == "note_off" or kind == "note_on":
        rows.append((tick, 0, track_i, msg_i, msg.channel, msg.note, 0))
      elif kind == "control_change" and msg.control == SUSTAIN_CC:
        # Pedal changes sort with note-offs: a pedal-up at the tick of a new note ends the old one.
        rows.append((tick, 0, track_i, msg_i, msg.channel, -1, msg.value))
      elif kind == "set_tempo":
        if msg.tempo < MIN_TEMPO_US:
          raise MidiError(f"absurd tempo {msg.tempo} us/beat (faster than "
                          f"{60e6 / MIN_TEMPO_US:.0f} BPM)")
        tempo_rows.append((tick, track_i, msg_i, msg.tempo))
    end_tick = max(end_tick, tick)
  return rows, tempo_rows, end_tick


def _monophonic_per_key(onset, offset, pitch, velocity, stats: dict[str, int] | None = None):
  """Makes each pitch one key: merges unisons, ends a sounding note at a re-strike.

  Works on float (seconds) or int (samples) times; returns arrays sorted by (onset, pitch).
  """
  order = np.lexsort((-velocity, pitch, onset))
  onset, offset, pitch, velocity = onset[order], offset[order], pitch[order], velocity[order]
  keep = np.ones(len(onset), bool)
  offset = offset.copy()
  velocity = velocity.copy()
  merged = truncated = 0
  by_pitch = np.lexsort((onset, pitch))
  prev = -1
  for i in by_pitch:
    if prev >= 0 and pitch[prev] == pitch[i]:
      if onset[i] == onset[prev]:
        offset[prev] = max(offset[prev], offset[i])
        velocity[prev] = max(velocity[prev], velocity[i])
        keep[i] = False
        merged += 1
        continue
      if offset[prev] > onset[i]:
        offset[prev] = onset[i]
        truncated += 1
    prev = i
  if stats is not None:
    stats["merged_unison_notes"] = stats.get("merged_unison_notes", 0) + merged
    stats["truncated_by_restrike"] = stats.get("truncated_by_restrike", 0) + truncated
  return onset[keep], offset[keep], pitch[keep], velocity[keep]


def parse_midi(source: str | os.PathLike | bytes, *,
               max_seconds: float | None = None) -> Performance:
  """Parses a MIDI file (path or bytes) into the notes a piano plays (see module docstring).

  Args:
    source: a path to a .mid file or the file's bytes.
    max_seconds: if given, the song is cut there: later notes are dropped and sounding notes end.

  Returns:
    A `Performance` with at least one note.

  Raises:
    MidiError: for any input that is not a usable MIDI file, naming the problem.
  """
  data = read_midi_bytes(source)
  try:
    return _parse(data, max_seconds)
  except MidiError:
    raise
  except Exception as e:  # Defensive: a bug or an unforeseen input must still be a MidiError.
    raise MidiError(f"corrupt MIDI file ({type(e).__name__}: {str(e)[:100]})") from None


def _parse(data: bytes, max_seconds: float | None) -> Performance:
  mid = _load_mido(data)
  rows, tempo_rows, end_tick = _collect_events(mid)
  tempo_rows.sort()
  to_seconds = _seconds_per_tick_fn(
      mid, np.array([r[0] for r in tempo_rows], np.int64),
      np.array([r[3] for r in tempo_rows], np.float64))
  end_seconds = float(to_seconds(np.array([end_tick], np.int64))[0])
  limit = MAX_SONG_SECONDS if max_seconds is None else min(max_seconds, MAX_SONG_SECONDS)
  if not np.isfinite(end_seconds) or (end_seconds > MAX_SONG_SECONDS and limit >= MAX_SONG_SECONDS):
    raise MidiError(f"the song lasts {end_seconds:.0f} s, over the {MAX_SONG_SECONDS:.0f} s limit")

  stats = dict(drum_notes=0, out_of_range_notes=0, zero_length_notes=0, unterminated_notes=0,
               pedal_extended_notes=0, merged_unison_notes=0, truncated_by_restrike=0)
  if not rows:
    raise MidiError("no notes (the file holds no note-on events)")
  rows.sort()  # by tick, note-offs and pedal first, then track and position
  ev = np.array(rows, np.int64)
  times = to_seconds(ev[:, 0])
  kinds, chans, keys, vals = ev[:, 1], ev[:, 4], ev[:, 5], ev[:, 6]

  notes = []  # (onset, offset, pitch, velocity, channel)
  sounding: dict[tuple[int, int], tuple[float, int]] = {}  # (chan, pitch) -> (onset, velocity)
  held_by_pedal: dict[tuple[int, int], tuple[float, int]] = {}
  pedal_down = [False] * 16
  for t, kind, chan, key, val in zip(times.tolist(), kinds.tolist(), chans.tolist(),
                                     keys.tolist(), vals.tolist(), strict=True):
    if key < 0:  # sustain pedal
      down = val >= 64
      if pedal_down[chan] and not down:
        for k in [k for k in held_by_pedal if k[0] == chan]:
          onset, vel = held_by_pedal.pop(k)
          notes.append((onset, t, k[1], vel, chan))
          stats["pedal_extended_notes"] += 1
      pedal_down[chan] = down
      continue
    k = (chan, key)
    if kind == 1:
      if k in sounding and sounding[k][0] == t:  # a unison of two parts on one channel
        sounding[k] = (t, max(sounding[k][1], val))
        stats["merged_unison_notes"] += 1
        continue
      # A sounding or pedal-held note of this key ends at the new strike.
      for table in (sounding, held_by_pedal):
        if k in table:
          onset, vel = table.pop(k)
          notes.append((onset, t, key, vel, chan))
      sounding[k] = (t, val)
    elif k in sounding:
      onset, vel = sounding.pop(k)
      if pedal_down[chan]:
        held_by_pedal[k] = (onset, vel)
      else:
        notes.append((onset, t, key, vel, chan))
  for table, counted in ((sounding, True), (held_by_pedal, False)):
    for (chan, key), (onset, vel) in table.items():
      notes.append((onset, end_seconds, key, vel, chan))
      if counted:
        stats["unterminated_notes"] += 1
      else:
        stats["pedal_extended_notes"] += 1

  arr = np.array(notes, np.float64).reshape(-1, 5)
  drum = arr[:, 4] == DRUM_CHANNEL
  stats["drum_notes"] = int(drum.sum())
  arr = arr[~drum]
  in_range = (arr[:, 2] >= LOWEST_KEY) & (arr[:, 2] <= HIGHEST_KEY)
  stats["out_of_range_notes"] = int((~in_range).sum())
  arr = arr[in_range]
  if max_seconds is not None:
    arr = arr[arr[:, 0] < max_seconds]
    arr[:, 1] = np.minimum(arr[:, 1], max_seconds)
  zero = arr[:, 1] <= arr[:, 0]
  stats["zero_length_notes"] = int(zero.sum())
  arr = arr[~zero]
  if len(arr) == 0:
    dropped = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in stats.items() if v)
    raise MidiError("no notes on the 88 piano keys (MIDI 21..108)"
                    + (f"; dropped {dropped}" if dropped else ""))
  onset, offset, pitch, vel = _monophonic_per_key(
      arr[:, 0], arr[:, 1], arr[:, 2].astype(np.int64), arr[:, 3].astype(np.int64), stats)
  out = np.stack([onset, offset, pitch.astype(np.float64), vel.astype(np.float64)], axis=1)
  return Performance(notes=out, stats=stats)


def release_before_repeats(notes: np.ndarray, release: float) -> tuple[np.ndarray, int]:
  """A performer's articulation of repeated notes: a key struck again rises first.

  A score (and its MIDI export) may end a note exactly where the next note of its key begins; a
  pianist cannot (the key must come up before it can be struck again), and a camera sees the key
  rise. Each note followed by a note of the same pitch ends at the latest `r` before that onset,
  r = min(release, half the interval between the two onsets), so a note keeps at least half of
  its interval; notes already released long enough are unchanged.

  Args:
    notes: (M, 4) onset, offset, pitch, velocity in any time unit (seconds or samples), no two
      notes of a pitch overlapping (as `parse_midi` and `notes_to_samples` return them).
    release: the shortest key-up time before a repeat, in the notes' time unit (>= 0).

  Returns:
    (the notes in the same order and dtype, the number of notes shortened).
  """
  if release < 0:
    raise ValueError(f"release must be >= 0, got {release}")
  out = np.array(notes, copy=True)
  if release == 0 or len(out) < 2:
    return out, 0
  by_pitch = np.lexsort((out[:, 0], out[:, 2]))
  this, after = by_pitch[:-1], by_pitch[1:]
  repeat = out[this, 2] == out[after, 2]
  this, after = this[repeat], after[repeat]
  gap = np.minimum(release, (out[after, 0] - out[this, 0]) / 2)
  if np.issubdtype(out.dtype, np.integer):
    gap = np.floor(gap).astype(out.dtype)
  latest = out[after, 0] - gap
  shorten = out[this, 1] > latest
  out[this[shorten], 1] = latest[shorten]
  return out, int(shorten.sum())


def notes_to_samples(notes: np.ndarray, sample_rate: int) -> np.ndarray:
  """Notes in seconds (M, 4) -> int64 (M, 4) `onset, offset, pitch, velocity` in samples.

  Times are rounded to the nearest sample at `sample_rate`; every note lasts at least one sample,
  and the one-key-one-string rule is re-applied after rounding.
  """
  notes = np.asarray(notes, np.float64)
  if len(notes) == 0:
    return np.zeros((0, 4), np.int64)
  onset = np.round(notes[:, 0] * sample_rate).astype(np.int64)
  offset = np.maximum(np.round(notes[:, 1] * sample_rate).astype(np.int64), onset + 1)
  onset, offset, pitch, vel = _monophonic_per_key(
      onset, offset, notes[:, 2].astype(np.int64), notes[:, 3].astype(np.int64))
  out = np.stack([onset, offset, pitch, vel], axis=1)
  return out[np.lexsort((out[:, 2], out[:, 0]))]

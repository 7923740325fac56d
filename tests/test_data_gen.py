"""Unit tests of data_gen: MIDI parsing, the keyboard renderer, synthesis, segments, video."""

from __future__ import annotations

import io
import os
import sys

import mido
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data_gen import keyboard, midi, segments, songs, synth, video

SR = 4000
TPB = 480  # at the default 120 BPM one tick is 1/960 s


def midi_bytes(notes, *, extra=(), tpb=TPB, tempo=500_000, file_type=1) -> bytes:
  """A one-track MIDI file. notes: (onset_s, offset_s, pitch, velocity[, channel]);
  extra: (time_s, mido message) for other events."""
  events = []
  for n in notes:
    on, off, pitch, vel = n[:4]
    ch = n[4] if len(n) > 4 else 0
    events.append((round(on * tpb * 2), 1, mido.Message("note_on", note=pitch, velocity=vel,
                                                         channel=ch)))
    events.append((round(off * tpb * 2), 0, mido.Message("note_off", note=pitch, channel=ch)))
  for t, msg in extra:
    events.append((round(t * tpb * 2), 0, msg))
  events.sort(key=lambda e: (e[0], e[1]))
  mid = mido.MidiFile(type=file_type, ticks_per_beat=tpb)
  track = mido.MidiTrack()
  mid.tracks.append(track)
  track.append(mido.MetaMessage("set_tempo", tempo=tempo, time=0))
  last = 0
  for tick, _, msg in events:
    track.append(msg.copy(time=tick - last))
    last = tick
  buf = io.BytesIO()
  mid.save(file=buf)
  return buf.getvalue()


# -- MIDI ----------------------------------------------------------------------------------------


def test_parse_drops_drums_and_out_of_range_notes():
  data = midi_bytes([(0.5, 1.0, 60, 100), (0.5, 1.0, 36, 90, 9), (1.0, 1.5, 10, 80),
                     (1.0, 1.5, 120, 80), (1.25, 2.0, 108, 70), (1.5, 2.0, 21, 60, 3)])
  perf = midi.parse_midi(data)
  np.testing.assert_allclose(perf.notes, [[0.5, 1.0, 60, 100], [1.25, 2.0, 108, 70],
                                          [1.5, 2.0, 21, 60]])
  assert perf.stats["drum_notes"] == 1
  assert perf.stats["out_of_range_notes"] == 2


def test_sustain_pedal_extends_note_offsets():
  pedal = lambda v: mido.Message("control_change", control=64, value=v)
  data = midi_bytes([(0.1, 0.2, 62, 80), (0.5, 0.75, 60, 100), (1.0, 1.1, 64, 90)],
                    extra=[(0.25, pedal(127)), (1.5, pedal(0))])
  perf = midi.parse_midi(data)
  np.testing.assert_allclose(perf.notes[:, :3], [[0.1, 0.2, 62], [0.5, 1.5, 60], [1.0, 1.5, 64]])
  assert perf.stats["pedal_extended_notes"] == 2


def test_one_key_one_string():
  # Unison of two channels, a re-strike while sounding, and a same-tick off/on (repeated note).
  data = midi_bytes([(0.5, 1.0, 60, 50, 0), (0.5, 1.5, 60, 90, 1), (1.0, 2.0, 60, 70, 2),
                     (2.0, 2.5, 60, 60, 2)])
  perf = midi.parse_midi(data)
  np.testing.assert_allclose(perf.notes, [[0.5, 1.0, 60, 90], [1.0, 2.0, 60, 70],
                                          [2.0, 2.5, 60, 60]])
  samples = midi.notes_to_samples(perf.notes, SR)
  assert samples.dtype == np.int64
  np.testing.assert_array_equal(samples[:, :2], [[2000, 4000], [4000, 8000], [8000, 10000]])


@pytest.mark.parametrize("name, data, match", [
    ("empty", b"", "empty file"),
    ("not midi", b"RIFF\x00\x00\x00\x04WAVE", "corrupt MIDI"),
    ("truncated", None, "truncated|corrupt"),
    ("drums only", midi_bytes([(0.0, 0.5, 36, 100, 9), (0.5, 1.0, 38, 100, 9)]),
     "no notes on the 88 piano keys.*2 drum notes"),
    ("out of range only", midi_bytes([(0.0, 0.5, 5, 100), (0.5, 1.0, 120, 100)]),
     "no notes on the 88 piano keys.*2 out of range notes"),
    ("no notes", midi_bytes([]), "no notes"),
    ("type 2", midi_bytes([(0.0, 0.5, 60, 100)], file_type=2), "type 2"),
    ("absurd tempo", midi_bytes([(0.0, 0.5, 60, 100)], tempo=10), "absurd tempo"),
    ("too long", midi_bytes([(0.0, 4000.0, 60, 100)]), "over the 3600 s limit"),
])
def test_bad_midi_raises_midi_error(name, data, match):
  if data is None:
    data = midi_bytes([(i * 0.1, i * 0.1 + 0.05, 60 + i % 12, 90) for i in range(50)])[:-40]
  with pytest.raises(midi.MidiError, match=match):
    midi.parse_midi(data)


def test_missing_file_raises_midi_error(tmp_path):
  with pytest.raises(midi.MidiError, match="cannot read"):
    midi.parse_midi(str(tmp_path / "nope.mid"))


def test_max_seconds_cuts_song():
  perf = midi.parse_midi(midi_bytes([(0.5, 2.0, 60, 90), (2.5, 3.0, 62, 90)]), max_seconds=1.0)
  np.testing.assert_allclose(perf.notes, [[0.5, 1.0, 60, 90]])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_midi_error(data):
  try:
    perf = midi.parse_midi(b"MThd\x00\x00\x00\x06" + data)
  except midi.MidiError:
    return
  assert perf.notes.shape[1] == 4 and len(perf.notes) > 0


def test_mutated_midi_raises_only_midi_error():
  good = midi_bytes([(i * 0.1, i * 0.1 + 0.3, 40 + i % 30, 90) for i in range(40)])
  rng = np.random.default_rng(0)
  for _ in range(300):
    data = bytearray(good)
    for pos in rng.integers(0, len(data), rng.integers(1, 6)):
      data[pos] = int(rng.integers(0, 256))
    if rng.random() < 0.3:
      data = data[:rng.integers(1, len(data))]
    try:
      midi.parse_midi(bytes(data))
    except midi.MidiError:
      pass


def test_release_before_repeats_lifts_the_key_before_a_repeat():
  # Pitch 60: a legato repeat (0.5 -> 0.5), a fast one (0.06 s apart), then one already released
  # 0.3 s before; pitch 64 overlaps them all and has no repeat.
  notes = np.array([[0.0, 0.5, 60, 80], [0.5, 0.56, 60, 80], [0.56, 0.7, 60, 80],
                    [1.0, 1.2, 60, 80], [0.0, 2.0, 64, 80]])
  out, count = midi.release_before_repeats(notes, 0.05)
  np.testing.assert_allclose(out[:, 1], [0.45, 0.53, 0.7, 1.2, 2.0])  # 0.53: half of 0.06 kept
  np.testing.assert_array_equal(out[:, [0, 2, 3]], notes[:, [0, 2, 3]])
  assert count == 2
  unchanged, none = midi.release_before_repeats(notes, 0.0)
  np.testing.assert_array_equal(unchanged, notes)
  assert none == 0
  # Samples: whole samples, and the same rule (a 3-sample interval keeps 2 of them).
  ints, _ = midi.release_before_repeats(np.array([[0, 2000, 60, 80], [2000, 2003, 60, 80],
                                                  [2003, 2500, 60, 80]], np.int64), 200)
  assert ints.dtype == np.int64
  assert ints[:, 1].tolist() == [1800, 2002, 2500]
  with pytest.raises(ValueError, match=">= 0"):
    midi.release_before_repeats(notes, -1.0)


def test_a_released_repeat_is_one_a_camera_can_see():
  from data_gen import visibility

  notes = np.array([[4000, 6000, 60, 80], [6000, 8000, 60, 80]], np.int64)  # legato repeat
  frames = keyboard.dense_frame_starts(12000, SR, 24)

  def visible(n):
    return visibility.onset_visibility(n, frames, press_frames=False, sample_rate=SR)["visible"]

  assert visible(notes).tolist() == [True, False]
  lifted, _ = midi.release_before_repeats(notes, SR // 24 + 1)  # one frame interval, 42 ms
  assert visible(lifted).tolist() == [True, True]


# -- keyboard ------------------------------------------------------------------------------------


@pytest.mark.parametrize("height, width", [(32, 208), (8, 104), (20, 150)])
def test_every_pressed_key_changes_its_pixels(height, width):
  idle = keyboard.render_keyboard(np.zeros(88, bool), height, width)
  assert idle.dtype == np.uint8 and idle.shape == (height, width)
  keys = np.eye(88, dtype=bool)
  frames = keyboard.render_frames(keys, height, width)
  owner = keyboard.layout(height, width).owner
  for k in range(88):
    changed = frames[k] != idle
    assert changed.any(), f"key {k} not visible at {height}x{width}"
    assert np.all(owner[changed] == k), f"pressing key {k} changed other keys' pixels"


def test_black_and_white_keys_look_different():
  idle = keyboard.render_keyboard(np.zeros(88, bool)).astype(int)
  owner = keyboard.layout().owner
  black = keyboard.is_black_key()
  assert black.sum() == 36
  means = np.array([idle[owner == k].mean() for k in range(88)])
  assert means[black].max() < 100 < means[~black].min()


def test_render_is_deterministic_and_validates_size():
  pressed = np.random.default_rng(0).random(88) < 0.3
  first = keyboard.render_keyboard(pressed)
  np.testing.assert_array_equal(first, keyboard.render_keyboard(pressed))
  with pytest.raises(ValueError, match="too small"):
    keyboard.render_keyboard(pressed, 32, 100)


def test_sparse_video_one_frame_per_press():
  notes = midi.notes_to_samples(np.array([[0.5, 1.2, 60, 90], [0.5, 1.0, 64, 90],
                                          [1.0, 1.5, 67, 90], [2.0, 2.5, 72, 90],
                                          [2.0, 2.25, 48, 90]]), SR)
  frames, starts, keys = keyboard.render_video(notes, 12000, SR)
  distinct_presses = 3
  assert len(frames) == distinct_presses + 1
  np.testing.assert_array_equal(starts, [0, 2000, 4000, 8000])
  pressed = [set((np.flatnonzero(k) + 21).tolist()) for k in keys]
  assert pressed == [set(), {60, 64}, {60, 67}, {72, 48}]
  np.testing.assert_array_equal(frames[0], keyboard.render_keyboard(np.zeros(88, bool)))
  assert not np.array_equal(frames[1], frames[0])


def test_dense_video_frame_rate():
  notes = np.array([[4000, 6000, 60, 90]], np.int64)
  frames, starts, keys = keyboard.render_video(notes, 8000, SR, "fps:30")
  assert len(starts) == 60 and starts[0] == 0
  np.testing.assert_array_equal(starts[:4], [0, 133, 267, 400])
  on = keys[:, 60 - 21].astype(bool)
  np.testing.assert_array_equal(on, (starts >= 4000) & (starts < 6000))
  with pytest.raises(ValueError, match="not valid"):
    keyboard.parse_frames_mode("fps:0", SR)


# -- synthesis -----------------------------------------------------------------------------------


def test_render_notes_timing_length_and_determinism():
  notes = np.array([[2000, 4000, 69, 100], [6000, 7000, 60, 80]], np.int64)
  audio, stats = synth.render_notes(notes, SR)
  assert audio.dtype == np.int16
  assert 7000 < len(audio) <= 7000 + 2 * SR + 400 + 4
  assert stats["clipped_samples"] == 0
  x = audio.astype(np.float64) / 32768
  assert np.abs(x[:1990]).max() < 1e-3  # silence before the first onset
  assert np.abs(x[2000:2100]).max() > 0.01  # sound right after it
  onset = np.flatnonzero(np.abs(x) > 1e-3)[0]
  assert 1995 <= onset <= 2020
  again, _ = synth.render_notes(notes, SR)
  assert audio.tobytes() == again.tobytes()


def _spectrum_peak(audio):
  x = audio.astype(np.float64)
  spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
  return np.fft.rfftfreq(len(x), 1 / SR)[np.argmax(spec)], np.sqrt(np.mean(x ** 2))


def test_resampling_keeps_pitch_and_removes_aliases():
  a4, _ = synth.render_notes(np.array([[0, 4000, 69, 100]], np.int64), SR)
  freq, rms_a4 = _spectrum_peak(a4[400:4000])
  assert abs(freq - 440) < 5
  # C8 (4186 Hz) is above the 2 kHz Nyquist limit: dropping samples would alias it to ~186 Hz;
  # soxr's anti-aliasing filter must remove it.
  c8, _ = synth.render_notes(np.array([[0, 4000, 108, 100]], np.int64), SR)
  _, rms_c8 = _spectrum_peak(c8[400:4000])
  assert rms_c8 < 0.05 * rms_a4


def test_missing_soundfont_is_one_clear_error(tmp_path):
  with pytest.raises(synth.SynthError, match="SoundFont not found: .*--soundfont"):
    synth.render_notes(np.array([[0, 100, 60, 90]]), SR,
                       synth.SynthSettings(soundfont=str(tmp_path / "none.sf2")))
  bad = tmp_path / "bad.sf2"
  bad.write_bytes(b"not a soundfont")
  with pytest.raises(synth.SynthError, match="not a SoundFont"):
    synth.check_available(str(bad))


def test_missing_libfluidsynth_is_one_clear_error(monkeypatch):
  monkeypatch.setitem(sys.modules, "fluidsynth", None)
  with pytest.raises(synth.SynthError, match="libfluidsynth not found: apt-get install"):
    synth.check_available()


# -- segments ------------------------------------------------------------------------------------


@pytest.mark.parametrize("n, expected", [(100, [0]), (20000, [0]), (20001, [0, 12000]),
                                         (44000, [0, 12000, 24000]),
                                         (44001, [0, 12000, 24000, 36000])])
def test_segment_boundaries_and_overlap(n, expected):
  starts = segments.segment_starts(n, 20000, 12000)
  np.testing.assert_array_equal(starts, expected)
  assert starts[-1] + 20000 >= n  # every sample covered
  assert np.all(starts[:-1] + 20000 - starts[1:] == 8000)  # 2 s overlap


def test_frame_ranges():
  fs = np.array([0, 5000, 20000, 30000])
  first, count = segments.frame_ranges(fs, np.array([0, 12000, 24000]), 20000)
  np.testing.assert_array_equal(first, [0, 1, 2])
  np.testing.assert_array_equal(count, [2, 3, 2])


def test_split_by_song_is_disjoint_and_seeded():
  names = segments.assign(20, segments.DEFAULT_FRACTIONS, seed=0)
  assert [names.count(s) for s in segments.SPLITS] == [12, 4, 4]
  assert names == segments.assign(20, segments.DEFAULT_FRACTIONS, seed=0)
  assert names != segments.assign(20, segments.DEFAULT_FRACTIONS, seed=1)
  starts = [segments.segment_starts(n, 20000, 12000) for n in range(30000, 30000 + 20 * 5000, 5000)]
  song_split, splits = segments.build_splits(starts, "song", segments.DEFAULT_FRACTIONS, 0)
  songs_in = {s: {i for i, _ in splits[s]} for s in segments.SPLITS}
  assert not (songs_in["train"] & songs_in["validation"] or songs_in["train"] & songs_in["test"]
              or songs_in["validation"] & songs_in["test"])
  assert sum(len(v) for v in splits.values()) == sum(len(s) for s in starts)
  _, by_seg = segments.build_splits(starts, "segment", segments.DEFAULT_FRACTIONS, 0)
  assert sum(len(v) for v in by_seg.values()) == sum(len(s) for s in starts)


# -- songs and video -----------------------------------------------------------------------------


def test_song_list_is_twenty_named_works():
  assert len(songs.SONGS) == 20
  assert len({s.id for s in songs.SONGS}) == 20
  assert len({s.corpus_path.split("/")[0] for s in songs.SONGS}) >= 10  # composers


def test_music21_export_of_a_listed_work(tmp_path):
  song = next(s for s in songs.SONGS if s.id == "schoenberg_op19_no6")
  path = str(tmp_path / "x.mid")
  songs.export_midi(song, path)
  perf = midi.parse_midi(path)
  assert 15 < perf.duration_seconds < 25 and len(perf.notes) > 50


def test_write_mp4_with_audio(tmp_path):
  import imageio_ffmpeg

  keys = np.zeros((3, 88), bool)
  keys[1, 39] = keys[2, 40] = True
  frames = keyboard.render_frames(keys)
  path = str(tmp_path / "clip.mp4")
  audio = np.sin(np.arange(2 * SR) * 2 * np.pi * 440 / SR).astype(np.float32) * 0.5
  video.write_mp4(path, frames, np.array([0, 2000, 6000]), SR, fps=10, audio=audio, scale=2)
  reader = imageio_ffmpeg.read_frames(path)
  meta = next(reader)
  got = [np.frombuffer(f, np.uint8).reshape(64, 416, 3)[..., 0] for f in reader]
  assert meta["size"] == (416, 64) and meta["audio_codec"]
  assert len(got) == 20
  # Frame at 0.6 s shows keyboard frame 1 (from 0.5 s), at 1.6 s frame 2 (from 1.5 s): compare on
  # the two changing keys (H.264 is lossy).
  up = lambda f: np.repeat(np.repeat(f, 2, 0), 2, 1).astype(int)
  owner = up(keyboard.layout().owner)
  region = (owner == 39) | (owner == 40)
  dist = lambda got_frame, f: np.abs(got_frame.astype(int) - up(frames[f]))[region].mean()
  assert dist(got[6], 1) < 5 < dist(got[6], 0)
  assert dist(got[16], 2) < 5 < dist(got[16], 1)
  assert not os.path.exists(path + ".tmp")

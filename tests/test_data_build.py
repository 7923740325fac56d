"""End-to-end tests of data_gen.make_dataset on tiny MIDI folders made with mido."""

from __future__ import annotations

import io
import json
import logging
import os

import mido
import numpy as np
import pytest

from data_gen import make_dataset, synth

SR = 4000


def midi_bytes(notes) -> bytes:
  """A one-track MIDI file at 120 BPM; notes: (onset_s, offset_s, pitch, velocity[, channel])."""
  events = []
  for n in notes:
    ch = n[4] if len(n) > 4 else 0
    events.append((round(n[0] * 960), 1, mido.Message("note_on", note=n[2], velocity=n[3],
                                                       channel=ch)))
    events.append((round(n[1] * 960), 0, mido.Message("note_off", note=n[2], channel=ch)))
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


def song(seed: int, seconds: float = 7.0) -> bytes:
  """A little random piece: chords and runs with distinct onsets on a 1/8 s grid."""
  rng = np.random.default_rng(seed)
  notes = []
  t = 0.25
  while t < seconds - 0.5:
    for pitch in rng.choice(np.arange(40, 90), size=rng.integers(1, 4), replace=False):
      length = float(rng.choice([0.125, 0.25, 0.5]))
      notes.append((t, t + length, int(pitch), int(rng.integers(40, 127))))
    t += float(rng.choice([0.125, 0.25, 0.375]))
  return midi_bytes(notes)


@pytest.fixture(scope="module")
def midi_dir(tmp_path_factory):
  d = tmp_path_factory.mktemp("midis")
  for i in range(4):
    (d / f"piece_{i}.mid").write_bytes(song(i))
  return str(d)


def build(out_dir, midi_dir, **kw):
  kw.setdefault("num_songs", 0)
  kw.setdefault("workers", 1)
  return make_dataset.build_dataset(str(out_dir), midi_dir=midi_dir, progress=False, **kw)


def read_all(folder) -> dict[str, bytes]:
  out = {}
  for root, _, names in os.walk(folder):
    for n in names:
      p = os.path.join(root, n)
      with open(p, "rb") as f:
        out[os.path.relpath(p, folder)] = f.read()
  return out


@pytest.fixture(scope="module")
def built(tmp_path_factory, midi_dir):
  out = tmp_path_factory.mktemp("ds")
  return str(out), build(out, midi_dir)


def test_layout_and_contents(built, midi_dir):
  out, manifest = built
  assert sorted(os.listdir(out)) == ["manifest.json", "midi", "songs"]
  with open(os.path.join(out, "manifest.json")) as f:
    assert json.load(f) == manifest
  assert manifest["format_version"] == 1 and manifest["sample_rate"] == SR
  assert manifest["segment_samples"] == 20000 and manifest["hop_samples"] == 12000
  assert manifest["soundfont"]["name"] == "FluidR3_GM.sf2"
  assert len(manifest["soundfont"]["sha256"]) == 64
  assert [s["id"] for s in manifest["songs"]] == [f"piece_{i}" for i in range(4)]
  for i, entry in enumerate(manifest["songs"]):
    with np.load(os.path.join(out, entry["file"]), allow_pickle=False) as z:
      arrays = dict(z)
    assert arrays["audio"].dtype == np.int16 and arrays["audio"].shape == (entry["num_samples"],)
    assert arrays["frames"].dtype == np.uint8 and arrays["frames"].shape[1:] == (32, 208)
    assert arrays["frame_keys"].shape == (len(arrays["frames"]), 88)
    notes = arrays["notes"]
    # Sparse video: one frame per distinct note press plus the start frame.
    assert len(arrays["frame_start"]) == len(np.unique(notes[:, 0])) + (notes[:, 0].min() > 0)
    assert arrays["frame_start"][0] == 0 and np.all(np.diff(arrays["frame_start"]) > 0)
    assert len(arrays["audio"]) > notes[:, 1].max()
    with open(os.path.join(out, entry["midi_file"]), "rb") as f:
      assert f.read() == song(i)
    n = entry["num_samples"]
    assert entry["num_segments"] == max(1, -(-(n - 8000) // 12000))
  segs = [tuple(s) for split in manifest["splits"].values() for s in split]
  assert len(segs) == len(set(segs)) == sum(s["num_segments"] for s in manifest["songs"])
  assert manifest["max_frames_per_segment"] >= 20


def test_split_by_song_is_disjoint(built):
  _, manifest = built
  songs_in = {k: {i for i, _ in v} for k, v in manifest["splits"].items()}
  assert all(songs_in[a].isdisjoint(songs_in[b])
             for a, b in [("train", "validation"), ("train", "test"), ("validation", "test")])
  for i, entry in enumerate(manifest["songs"]):
    assert i in songs_in[entry["split"]]
  assert [len(songs_in[s]) for s in ("train", "validation", "test")] == [2, 1, 1]


def test_same_bytes_regardless_of_workers(built, midi_dir, tmp_path):
  out, _ = built
  build(tmp_path, midi_dir, workers=2)
  assert read_all(out) == read_all(tmp_path)


def test_resume_redoes_only_damaged_songs(built, midi_dir, tmp_path, caplog):
  out, manifest = built
  first = read_all(out)
  build(tmp_path, midi_dir)
  songs_dir = tmp_path / "songs"
  os.remove(songs_dir / "piece_0.npz")  # killed before this song was written
  data = bytearray((songs_dir / "piece_1.npz").read_bytes())
  data[len(data) // 2] ^= 0xFF  # bit rot
  (songs_dir / "piece_1.npz").write_bytes(bytes(data))
  os.remove(songs_dir / "piece_2.json")  # killed between the npz and its sidecar
  os.remove(tmp_path / "manifest.json")
  untouched = os.stat(songs_dir / "piece_3.npz").st_mtime_ns
  with caplog.at_level(logging.WARNING):
    again = build(tmp_path, midi_dir)
  assert again == manifest
  assert read_all(tmp_path) == first
  assert os.stat(songs_dir / "piece_3.npz").st_mtime_ns == untouched
  assert "songs/piece_1.npz fails its checksum" in caplog.text
  assert "piece_3" not in caplog.text


def test_bad_files_are_skipped_with_reasons(tmp_path, midi_dir):
  d = tmp_path / "in"
  d.mkdir()
  for name in ("a_good.mid", "b_good.mid"):
    (d / name).write_bytes(song(len(name)))
  (d / "c_truncated.mid").write_bytes(song(7)[:-50])
  (d / "d_corrupt.mid").write_bytes(b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01\xe0MTrk\xff\xff")
  (d / "e_empty.mid").write_bytes(b"")
  (d / "f_drums.mid").write_bytes(midi_bytes([(0.0, 0.5, 36, 100, 9), (0.5, 1.0, 42, 90, 9)]))
  (d / "g_outside_keys.mid").write_bytes(midi_bytes([(0.0, 0.5, 5, 100), (0.5, 1.0, 127, 90)]))
  (d / "notes.txt").write_text("not a MIDI file name")
  manifest = build(tmp_path / "ds", str(d), num_songs=2)
  assert [s["id"] for s in manifest["songs"]] == ["a_good", "b_good"]
  assert manifest["skipped"] == []  # the first two usable files sufficed
  manifest = build(tmp_path / "ds", str(d), num_songs=0)
  reasons = {s["source"]: s["reason"] for s in manifest["skipped"]}
  assert sorted(reasons) == ["file:c_truncated.mid", "file:d_corrupt.mid", "file:e_empty.mid",
                             "file:f_drums.mid", "file:g_outside_keys.mid"]
  assert "truncated" in reasons["file:c_truncated.mid"] or "corrupt" in reasons[
      "file:c_truncated.mid"]
  assert "empty" in reasons["file:e_empty.mid"]
  assert "drum" in reasons["file:f_drums.mid"]
  assert "out of range" in reasons["file:g_outside_keys.mid"]
  assert not os.path.exists(tmp_path / "ds" / "songs" / "f_drums.npz")
  with pytest.raises(make_dataset.DatasetBuildError, match="only 2 of the 3 requested songs"):
    build(tmp_path / "ds2", str(d), num_songs=3)


def test_missing_soundfont_and_bad_options(tmp_path, midi_dir):
  with pytest.raises(synth.SynthError, match="SoundFont not found"):
    build(tmp_path / "x", midi_dir, soundfont=str(tmp_path / "missing.sf2"))
  with pytest.raises(make_dataset.DatasetBuildError, match="overlap"):
    build(tmp_path / "x", midi_dir, overlap_seconds=5)
  with pytest.raises(make_dataset.DatasetBuildError, match="frames"):
    build(tmp_path / "x", midi_dir, frames="fps:x")
  with pytest.raises(make_dataset.DatasetBuildError, match="no MIDI files"):
    build(tmp_path / "x", str(tmp_path))
  assert not os.path.exists(tmp_path / "x" / "manifest.json")


def test_dense_frames_and_split_by_segment(tmp_path, midi_dir):
  manifest = build(tmp_path, midi_dir, frames="fps:30", split_by="segment", num_songs=2,
                   height=16, width=104)
  assert manifest["frames"] == "fps:30" and manifest["renderer"]["height"] == 16
  assert {s["split"] for s in manifest["songs"]} == {"mixed"}
  with np.load(tmp_path / "songs" / "piece_0.npz", allow_pickle=False) as z:
    n, starts = len(z["audio"]), z["frame_start"]
    assert z["frames"].shape[1:] == (16, 104)
  assert len(starts) == int(np.ceil(n * 30 / SR))
  assert manifest["max_frames_per_segment"] in (150, 151)


def test_repeat_release_lifts_repeated_keys_in_audio_and_video(tmp_path):
  # Legato repeats of one key, as a score's MIDI export has them.
  folder = tmp_path / "midis"
  folder.mkdir()
  (folder / "repeats.mid").write_bytes(midi_bytes([(0.5, 1.0, 60, 90), (1.0, 1.5, 60, 90),
                                                   (1.5, 2.5, 60, 90), (0.5, 2.5, 67, 90)]))
  plain = build(tmp_path / "plain", str(folder), frames="fps:60")
  lifted = build(tmp_path / "lifted", str(folder), frames="fps:60", repeat_release_ms=50)
  assert plain["repeat_release_ms"] == 0 and lifted["repeat_release_ms"] == 50
  assert "released_before_repeat" not in plain["songs"][0]["stats"]
  assert lifted["songs"][0]["stats"]["released_before_repeat"] == 2
  with np.load(tmp_path / "lifted" / "songs" / "repeats.npz", allow_pickle=False) as z:
    notes, starts, keys = z["notes"], z["frame_start"], z["frame_keys"]
  c4 = notes[notes[:, 2] == 60]
  assert c4[:, 1].tolist() == [3800, 5800, 10000]  # 50 ms (200 samples) before each repeat
  shown = keys[:, 60 - 21].astype(bool)
  for offset, onset in zip(c4[:-1, 1], c4[1:, 0], strict=True):
    between = (starts >= offset) & (starts < onset)
    assert between.any() and not shown[between].any()  # a 60 fps frame sees the key up
  with np.load(tmp_path / "plain" / "songs" / "repeats.npz", allow_pickle=False) as z:
    assert z["notes"][z["notes"][:, 2] == 60][:, 1].tolist() == [4000, 6000, 10000]
    plain_audio = z["audio"]
  with np.load(tmp_path / "lifted" / "songs" / "repeats.npz", allow_pickle=False) as z:
    assert not np.array_equal(z["audio"], plain_audio)  # the synthesizer got the note-offs too
  # The option is part of a song's settings: the songs of a build without it are not reused.
  again = build(tmp_path / "plain", str(folder), frames="fps:60", repeat_release_ms=50)
  assert again["songs"][0]["sha256"] == lifted["songs"][0]["sha256"]
  with pytest.raises(make_dataset.DatasetBuildError, match="repeat_release_ms"):
    build(tmp_path / "x", str(folder), repeat_release_ms=-5)

"""Tests of deepsynth_jax.input_pipeline on a tiny dataset built from mido-made MIDI files."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from data_gen import frame_timing
from deepsynth_jax import input_pipeline as ip

KEYS = {"audio": (np.float32, (20000,)), "frames": (np.uint8, None),
        "frame_keys": (np.uint8, None),
        "frame_start": (np.int32, None), "num_frames": (np.int32, ()),
        "frame_index": (np.int32, (20000,)), "frame_age": (np.int32, (20000,)),
        "example_id": (np.int32, ())}


@pytest.fixture(scope="module")
def data_dir(tiny_data_dir):
  return tiny_data_dir  # tests that damage files copy it first


def check_example(data, ex, length=20000):
  for key, (dtype, shape) in KEYS.items():
    assert ex[key].dtype == dtype, key
    if shape is not None:
      assert ex[key].shape == ((length,) if shape == (20000,) else shape), key
  assert ex["frames"].shape == (data.max_frames, *data.frame_shape)
  assert ex["frame_start"].shape == (data.max_frames,)
  assert ex["frame_keys"].shape == (data.max_frames, 88)


def test_example_matches_song_file(data, data_dir):
  assert data.sample_rate == 4000 and data.segment_samples == 20000
  assert data.frame_shape == (32, 208)
  songs = data.manifest["songs"]
  for split in ip.SPLITS:
    for i in range(data.num_examples(split)):
      ex = data.example(split, i)
      check_example(data, ex)
      song, start = data.segment(split, i)
      with np.load(os.path.join(data_dir, songs[song]["file"]), allow_pickle=False) as z:
        audio, frames, fs, notes = z["audio"], z["frames"], z["frame_start"], z["notes"]
        keys = z["frame_keys"]
      want = np.zeros(20000, np.float32)
      chunk = audio[start:start + 20000].astype(np.float32) / 32768
      want[:len(chunk)] = chunk
      np.testing.assert_array_equal(ex["audio"], want)
      assert np.abs(ex["audio"]).max() <= 1.0
      n = int(ex["num_frames"])
      first = np.searchsorted(fs, start, side="right") - 1
      np.testing.assert_array_equal(ex["frames"][:n], frames[first:first + n])
      np.testing.assert_array_equal(ex["frames"][n:], np.broadcast_to(frames[first + n - 1],
                                                                      ex["frames"][n:].shape))
      np.testing.assert_array_equal(ex["frame_keys"][:n], keys[first:first + n])
      np.testing.assert_array_equal(ex["frame_keys"][n:], np.broadcast_to(
          keys[first + n - 1], ex["frame_keys"][n:].shape))
      rebased = np.maximum(fs[first:first + n] - start, 0)
      np.testing.assert_array_equal(ex["frame_start"][:n], rebased)
      assert np.all(ex["frame_start"][n:] == 20000)
      assert first + n == len(fs) or fs[first + n] >= start + 20000
      idx, _ = frame_timing.frame_index_and_age(rebased, 20000)
      np.testing.assert_array_equal(ex["frame_index"], idx)
      # The true age: the first frame's counts from its start in the song, not the window's.
      np.testing.assert_array_equal(ex["frame_age"], start + np.arange(20000) - fs[first + idx])
      assert ex["example_id"] == i
      seg_notes = data.notes(split, i)
      inside = (notes[:, 0] < start + 20000) & (notes[:, 1] > start)
      assert len(seg_notes) == inside.sum()
      assert seg_notes[:, :2].min() >= 0 and seg_notes[:, :2].max() <= 20000


def _synthetic_data() -> ip.DeepSynthData:
  """One 40,000-sample song whose audio is its sample index / 2**16 (so a crop's first sample
  gives its offset), frames starting at 0, 5000, 14000, 30000 and 33000, and two train segments
  (20,000 samples at 0 and 12,000; the second starts inside frame 1, 7000 samples into it)."""
  n, starts = 40000, np.array([0, 5000, 14000, 30000, 33000], np.int64)
  song = {"audio": np.arange(n, dtype=np.float32) / np.float32(2 ** 16),
          "frames": np.arange(len(starts), dtype=np.uint8)[:, None, None] * np.ones((1, 2, 3),
                                                                                   np.uint8),
          "frame_keys": np.zeros((len(starts), 88), np.uint8), "frame_start": starts,
          "notes": np.zeros((0, 4), np.int64)}
  manifest = {"sample_rate": 4000, "segment_samples": 20000, "max_frames_per_segment": 4,
              "splits": {"train": [[0, 0], [0, 12000]]}}
  return ip.DeepSynthData("synthetic", manifest, [song])


def test_age_is_true_age_when_the_window_starts_inside_a_frame():
  data = _synthetic_data()
  ex = data.example("train", 1)  # window [12000, 32000): frames 1 (from 5000), 2, 3
  assert int(ex["num_frames"]) == 3
  # frame_start stays a clip's frame list ([0] == 0, what frame_timing and the baseline take) ...
  np.testing.assert_array_equal(ex["frame_start"], [0, 2000, 18000, 20000])
  # ... but the age is the time since each frame really became current: 7000 at the window start.
  np.testing.assert_array_equal(ex["frame_age"][[0, 1999, 2000, 17999, 18000, 19999]],
                                [7000, 8999, 0, 15999, 0, 1999])
  want = 12000 + np.arange(20000) - np.array([5000, 14000, 30000])[ex["frame_index"]]
  np.testing.assert_array_equal(ex["frame_age"], want)
  np.testing.assert_array_equal(data.example("train", 0)["frame_age"][:5000], np.arange(5000))


def test_crop_in_the_middle_of_a_frame_reports_its_true_age():
  data = _synthetic_data()
  song_starts = np.array([0, 5000, 14000, 30000, 33000])
  offsets = set()
  for epoch in range(20):
    for batch in data.batches("train", 2, seed=0, epoch=epoch, crop_samples=1000, shuffle=False,
                              process_index=0, process_count=1):
      for row in range(2):
        pos = np.round(batch["audio"][row] * 2 ** 16).astype(np.int64)  # song samples
        current = np.searchsorted(song_starts, pos, side="right") - 1
        np.testing.assert_array_equal(batch["frame_age"][row], pos - song_starts[current])
        shown = batch["frames"][row, batch["frame_index"][row], 0, 0]
        np.testing.assert_array_equal(shown, current)  # frames[i] is filled with i
        offsets.add(int(pos[0]))
  # Some crops start inside frame 1 of the segment at 12,000, whose age there is 7000 + offset.
  assert any(12000 <= o < 14000 for o in offsets)


def test_aligned_crops_start_on_the_grid_and_unaligned_crops_are_unchanged():
  data = _synthetic_data()

  def crop_starts(align: int) -> list[int]:
    starts = []
    for epoch in range(20):
      for batch in data.batches("train", 2, seed=0, epoch=epoch, crop_samples=1000,
                                crop_align=align, shuffle=False, process_index=0,
                                process_count=1):
        starts += np.round(batch["audio"][:, 0] * 2 ** 16).astype(np.int64).tolist()
    return starts

  aligned = crop_starts(16)
  assert all(s % 16 == 0 for s in aligned) and len(set(aligned)) > 20
  # crop_align=1 draws the same offsets as before the option existed.
  default = [int(np.round(b["audio"][r, 0] * 2 ** 16)) for epoch in range(20)
             for b in data.batches("train", 2, seed=0, epoch=epoch, crop_samples=1000,
                                   shuffle=False, process_index=0, process_count=1)
             for r in range(2)]
  assert crop_starts(1) == default and any(s % 16 for s in default)
  with pytest.raises(ValueError, match="crop_align"):
    next(data.batches("train", 2, seed=0, epoch=0, crop_samples=1000, crop_align=0))


def test_batch_shapes_and_dtypes(data):
  batch = next(data.batches("train", 3, seed=0, epoch=0, process_index=0, process_count=1))
  for key, (dtype, _) in KEYS.items():
    assert batch[key].dtype == dtype
    assert batch[key].shape[0] == 3
  assert batch["audio"].shape == (3, 20000)
  assert batch["frames"].shape == (3, data.max_frames, 32, 208)


def _ids(data, **kw):
  kw.setdefault("process_index", 0)
  kw.setdefault("process_count", 1)
  return [b["example_id"].tolist() for b in data.batches("train", 2, **kw)]


def test_shuffle_is_deterministic_per_seed_and_epoch(data):
  n = data.num_examples("train")
  a = _ids(data, seed=1, epoch=0)
  assert a == _ids(data, seed=1, epoch=0)
  assert a != _ids(data, seed=1, epoch=1) and a != _ids(data, seed=2, epoch=0)
  assert len(a) == data.num_batches("train", 2, process_count=1) == n // 2
  flat = sum(a, [])
  assert len(set(flat)) == len(flat) == n // 2 * 2 and set(flat) <= set(range(n))
  assert _ids(data, seed=1, epoch=0, shuffle=False) == [[2 * b, 2 * b + 1] for b in range(n // 2)]


def test_start_batch_restarts_with_identical_batches(data):
  full = list(data.batches("train", 2, seed=3, epoch=2, crop_samples=1000, process_index=0,
                           process_count=1))
  resumed = list(data.batches("train", 2, seed=3, epoch=2, crop_samples=1000, start_batch=2,
                              process_index=0, process_count=1))
  assert len(resumed) == len(full) - 2
  for a, b in zip(full[2:], resumed, strict=True):
    assert a.keys() == b.keys()
    for k in a:
      np.testing.assert_array_equal(a[k], b[k])


def test_process_shards_are_disjoint_and_cover_global_batches(data):
  kw = dict(seed=5, epoch=0)
  shards = [_ids(data, process_index=p, process_count=2, **kw) for p in range(2)]
  assert len(shards[0]) == len(shards[1]) == data.num_batches("train", 2, process_count=2)
  order = np.random.default_rng([5, 0]).permutation(data.num_examples("train"))
  for b, (x, y) in enumerate(zip(*shards, strict=True)):
    assert not set(x) & set(y)
    assert x + y == order[b * 4:(b + 1) * 4].tolist()


def test_crop_windows_are_consistent(data):
  crop = 3000
  kept = data.frames_per_crop(crop)
  assert kept < data.max_frames  # cropped batches carry only the frames a crop can refer to
  batches = list(data.batches("train", 2, seed=0, epoch=0, crop_samples=crop, process_index=0,
                              process_count=1))
  offsets = set()
  for batch in batches:
    assert batch["audio"].shape == (2, crop) and batch["frame_index"].shape == (2, crop)
    assert batch["frames"].shape[1] == batch["frame_start"].shape[1] == kept
    for row, i in enumerate(batch["example_id"].tolist()):
      full = data.example("train", i)
      index, num = batch["frame_index"][row], int(batch["num_frames"][row])
      assert index.max() < num and index.min() in (0, 1)  # 1: the previous frame is kept too
      candidates = np.flatnonzero(full["audio"][:20000 - crop + 1] == batch["audio"][row, 0])
      matches = [o for o in candidates.tolist()
                 if np.array_equal(full["audio"][o:o + crop], batch["audio"][row])
                 and np.array_equal(full["frame_age"][o:o + crop], batch["frame_age"][row])
                 and np.array_equal(full["frames"][full["frame_index"][o:o + crop]],
                                    batch["frames"][row][index])]
      assert matches, f"example {i}: cropped audio/frames not a window of the example"
      offsets.add(matches[0])
      o = matches[0]
      lo = max(int(full["frame_index"][o]) - 1, 0)
      np.testing.assert_array_equal(batch["frame_start"][row, :num],
                                    full["frame_start"][lo:lo + num])
      np.testing.assert_array_equal(batch["frame_keys"][row, :num],
                                    full["frame_keys"][lo:lo + num])
      assert batch["frame_keys"].shape[1] == kept
  assert len(offsets) > 1  # offsets are random
  again = next(data.batches("train", 2, seed=0, epoch=0, crop_samples=crop, process_index=0,
                            process_count=1))
  np.testing.assert_array_equal(again["audio"], batches[0]["audio"])


def test_num_examples_and_remainder(data):
  n = data.num_examples("validation")
  assert n >= 3
  kw = dict(seed=0, epoch=0, shuffle=False, process_index=0, process_count=1)
  got = [b["example_id"].tolist() for b in data.batches("validation", 2, num_examples=3,
                                                         drop_remainder=False, **kw)]
  assert got == [[0, 1], [2]]
  assert data.num_batches("validation", 2, drop_remainder=False, process_count=1,
                          num_examples=3) == 2
  assert [b["example_id"].tolist() for b in data.batches("validation", 2, num_examples=3,
                                                         **kw)] == [[0, 1]]


def test_prefetch_keeps_order_and_raises(data):
  kw = dict(seed=0, epoch=0, process_index=0, process_count=1)
  plain = [b["example_id"].tolist() for b in data.batches("train", 2, **kw)]
  fetched = [b["example_id"].tolist() for b in ip.prefetch(data.batches("train", 2, **kw), 2)]
  assert plain == fetched

  def broken():
    yield 1
    raise RuntimeError("boom")

  it = ip.prefetch(broken(), 1)
  assert next(it) == 1
  with pytest.raises(RuntimeError, match="boom"):
    next(it)


def test_load_errors_are_actionable(data_dir, tmp_path):
  with pytest.raises(ip.DatasetError, match="run python -m data_gen.make_dataset"):
    ip.load_dataset(str(tmp_path))
  copy = tmp_path / "copy"
  shutil.copytree(data_dir, copy)
  with open(copy / "manifest.json") as f:
    manifest = json.load(f)
  path = copy / manifest["songs"][0]["file"]
  data = bytearray(path.read_bytes())
  data[100] ^= 1
  path.write_bytes(bytes(data))
  with pytest.raises(ip.DatasetError, match="fails its sha256 check"):
    ip.load_dataset(str(copy))
  manifest["format_version"] = 99
  (copy / "manifest.json").write_text(json.dumps(manifest))
  with pytest.raises(ip.DatasetError, match="format_version"):
    ip.load_dataset(str(copy))


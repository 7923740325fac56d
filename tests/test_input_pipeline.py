"""Tests of deepsynth_jax.input_pipeline on a tiny dataset built from mido-made MIDI files."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from deepsynth_jax import frames as frames_lib
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
      idx, age = frames_lib.frame_index_and_age(rebased, 20000)
      np.testing.assert_array_equal(ex["frame_index"], idx)
      np.testing.assert_array_equal(ex["frame_age"], age)
      assert ex["example_id"] == i
      seg_notes = data.notes(split, i)
      inside = (notes[:, 0] < start + 20000) & (notes[:, 1] > start)
      assert len(seg_notes) == inside.sum()
      assert seg_notes[:, :2].min() >= 0 and seg_notes[:, :2].max() <= 20000


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


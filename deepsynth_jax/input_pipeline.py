"""Reads the DeepSynth dataset (docs/DATA_FORMAT.md) into training batches (numpy only).

`load_dataset(dir)` checks the manifest and each song file's sha256, loads every song once into
memory (tens of MB) and serves segments: 5 s windows (20,000 samples at 4 kHz) of audio with the
sparse video frames that are current during them.

An example (batches add a leading B axis):
  audio        float32 (T,) in [-1, 1] (zero past the song's end)
  frames       uint8 (max_frames, H, W): the frame current at the window start, then every frame
               starting inside the window; padded with the last real frame
  frame_keys   uint8 (max_frames, 88): the key state each frame shows (1 = pressed, column k is
               MIDI pitch 21 + k), padded like `frames`
  frame_start  int32 (max_frames,): sample (from the window start) where each frame becomes
               current in the window; [0] == 0 (its true start, -frame_age[0], may precede the
               window); padding is T (never current)
  num_frames   int32 (): real frames
  press_frames bool (): whether the frames mark key presses (the dataset's `frames` mode is
               "sparse") rather than a camera's fixed frame rate ("fps:N")
  frame_index  int32 (T,), frame_age int32 (T,): the current frame of each sample, and samples
               since it really became current: frame 0's age counts from its start in the song,
               so frame_age[0] > 0 when the window starts inside it (frame_age = t -
               frame_start[frame_index] otherwise, as data_gen.frame_timing.frame_index_and_age)
  example_id   int32 (): the example's index in its split

`batches` is a deterministic function of its arguments: the order is a permutation seeded by
(seed, epoch); `crop_samples=L` cuts each example to a window of L samples at an offset seeded by
(seed, epoch, example_id), cropping frame_index/frame_age alongside (a crop's first samples keep
their frame's true age, however long before the crop it began) and keeping only the frames
the crop refers to (plus the previous one), padded to `frames_per_crop(L)` so that the frame
encoder does not run on frames the crop never uses; `start_batch` resumes mid-epoch with the same
batches; with several processes each takes its own contiguous slice of every global batch of
batch_size x process_count examples.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import threading
from collections.abc import Iterator

import jax
import numpy as np
from PIL import Image

from data_gen import frame_timing

FORMAT_VERSION = 1
SPLITS = ("train", "validation", "test")
_CROP_STREAM = 0xC209


class DatasetError(ValueError):
  """The dataset is missing, incomplete or corrupt; the message says how to (re)build it."""


def _rebuild_hint(data_dir: str) -> str:
  return f"run python -m data_gen.make_dataset --out_dir={data_dir}"


def _sha256(path: str) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


class DeepSynthData:
  """The dataset in memory; see the module docstring for examples and batches."""

  def __init__(self, data_dir: str, manifest: dict, songs: list[dict[str, np.ndarray]]):
    self.data_dir = data_dir
    self.manifest = manifest
    self.sample_rate = int(manifest["sample_rate"])
    self.segment_samples = int(manifest["segment_samples"])
    self.max_frames = int(manifest["max_frames_per_segment"])
    # "sparse" (a frame at every key press) or "fps:N" (a camera's clock).
    self.frame_mode = str(manifest.get("frames", "sparse"))
    self.press_frames = self.frame_mode == "sparse"
    self._audio = [s["audio"] for s in songs]
    self._frames = [s["frames"] for s in songs]
    self._frame_keys = [s["frame_keys"] for s in songs]
    self._frame_start = [s["frame_start"] for s in songs]
    self._notes = [s["notes"] for s in songs]
    # Per-frame fields derived after loading (`add_frame_field`): name -> one (F_song, ...) array
    # per song, carried in examples and batches like `frame_keys`.
    self._frame_fields: dict[str, list[np.ndarray]] = {}
    self.frame_shape = tuple(int(x) for x in self._frames[0].shape[1:])
    t = self.segment_samples
    self._segments: dict[str, np.ndarray] = {}
    self._first: dict[str, np.ndarray] = {}
    self._count: dict[str, np.ndarray] = {}
    for split in SPLITS:
      seg = np.asarray(manifest["splits"].get(split, []), np.int64).reshape(-1, 2)
      first = np.zeros(len(seg), np.int64)
      count = np.zeros(len(seg), np.int64)
      for song in np.unique(seg[:, 0]):
        rows = seg[:, 0] == song
        fs = self._frame_start[song]
        starts = seg[rows, 1]
        first[rows] = np.searchsorted(fs, starts, side="right") - 1
        count[rows] = np.searchsorted(fs, starts + t, side="left") - first[rows]
      if len(seg) and count.max() > self.max_frames:
        raise DatasetError(f"a {split} segment has {count.max()} frames, more than the manifest's "
                           f"max_frames_per_segment={self.max_frames}; "
                           f"{_rebuild_hint(data_dir)}")
      self._segments[split], self._first[split], self._count[split] = seg, first, count

  def song_audio(self) -> list[np.ndarray]:
    """Every song's whole audio, float32 (T_song,) in [-1, 1], in manifest order."""
    return list(self._audio)

  def song_notes(self) -> list[np.ndarray]:
    """Every song's notes, int64 (M_song, 4) `onset, offset, pitch, velocity` (samples from the
    song's start), in manifest order."""
    return list(self._notes)

  def song_frame_starts(self) -> list[np.ndarray]:
    """Every song's frame starts, int64 (F_song,) samples, in manifest order."""
    return list(self._frame_start)

  def add_frame_field(self, name: str, per_song: list[np.ndarray]) -> None:
    """Adds a per-frame field to every example and batch: `per_song[s]` has one row per frame
    of song s (F_s, ...). Examples and batches then carry `name` (B, F, ...) beside `frames`."""
    if len(per_song) != len(self._frames) or any(
        len(a) != len(f) for a, f in zip(per_song, self._frames, strict=True)):
      raise ValueError(f"frame field {name!r} must have one row per frame of every song")
    self._frame_fields[name] = [np.asarray(a) for a in per_song]

  # -- single examples -------------------------------------------------------------------------

  def _check_split(self, split: str) -> None:
    if split not in self._segments:
      raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")

  def num_examples(self, split: str) -> int:
    """Number of segments in `split`."""
    self._check_split(split)
    return len(self._segments[split])

  def split_frames(self, split: str) -> np.ndarray:
    """Every frame of the songs in `split`, each once: uint8 (N, H, W), songs in manifest
    order (frames for learning a per-frame function, e.g. `experiments/distill.py`)."""
    self._check_split(split)
    songs = np.unique(self._segments[split][:, 0])
    if not len(songs):
      return np.zeros((0, *self.frame_shape), np.uint8)
    return np.concatenate([self._frames[s] for s in songs])

  def segment(self, split: str, index: int) -> tuple[int, int]:
    """(song index into manifest['songs'], start sample) of example `index` of `split`."""
    self._check_split(split)
    n = len(self._segments[split])
    if not 0 <= index < n:
      raise IndexError(f"example {index} out of range for split {split!r} with {n} examples")
    song, start = self._segments[split][index]
    return int(song), int(start)

  def _fill(self, split: str, index: int, out: dict[str, np.ndarray], row: int,
            crop_offset: int, crop_len: int) -> None:
    """Writes example `index`, samples [crop_offset, crop_offset + crop_len), into row `row`."""
    song, start = self.segment(split, index)
    t = self.segment_samples
    audio = self._audio[song]
    a0 = start + crop_offset
    a1 = min(a0 + crop_len, len(audio))
    dst = out["audio"][row]
    if a1 > a0:
      dst[:a1 - a0] = audio[a0:a1]
    dst[max(a1 - a0, 0):] = 0.0
    first, count = int(self._first[split][index]), int(self._count[split][index])
    song_frames = self._frames[song]
    per_frame = {"frame_keys": self._frame_keys[song],
                 **{k: v[song] for k, v in self._frame_fields.items()}}
    # Window-relative starts of the window's frames; the first is <= 0 (current at the window
    # start, possibly since before it). `frame_start` reports it as 0 (a clip's frame list, as
    # data_gen.frame_timing takes it); `frame_age` counts from its true start.
    true_starts = self._frame_start[song][first:first + count] - start
    starts = true_starts.copy()
    starts[0] = 0
    kept = out["frames"].shape[1]
    if kept == self.max_frames:
      out["frames"][row, :count] = song_frames[first:first + count]
      out["frames"][row, count:] = song_frames[first + count - 1]
      for name, values in per_frame.items():
        out[name][row, :count] = values[first:first + count]
        out[name][row, count:] = values[first + count - 1]
      out["frame_start"][row, :count] = starts
      out["frame_start"][row, count:] = t
      out["num_frames"][row] = count
    # frame_index/age of samples [crop_offset, crop_offset + crop_len) of the window.
    pos = np.arange(crop_offset, crop_offset + crop_len, dtype=np.int64)
    idx = np.searchsorted(starts, pos, side="right") - 1
    out["frame_age"][row] = pos - true_starts[idx]
    out["example_id"][row] = index
    out["press_frames"][row] = self.press_frames
    if kept < self.max_frames:
      # Keep only the frames this crop refers to, and the one before them (the first one's
      # "previous frame"), so the frame encoder does not run on frames the crop never uses.
      lo = max(int(idx[0]) - 1, 0)
      hi = int(idx[-1]) + 1
      if hi - lo > kept:
        raise AssertionError(f"crop needs {hi - lo} frames, more than {kept}")
      out["frames"][row, :hi - lo] = song_frames[first + lo:first + hi]
      out["frames"][row, hi - lo:] = song_frames[first + hi - 1]
      for name, values in per_frame.items():
        out[name][row, :hi - lo] = values[first + lo:first + hi]
        out[name][row, hi - lo:] = values[first + hi - 1]
      out["frame_start"][row, :hi - lo] = starts[lo:hi]
      out["frame_start"][row, hi - lo:] = t
      out["num_frames"][row] = hi - lo
      idx = idx - lo
    out["frame_index"][row] = idx

  def frames_per_crop(self, crop_samples: int) -> int:
    """Frames a batch cropped to `crop_samples` carries: the most any crop of any split refers
    to (+1 for the first referenced frame's previous frame), at most `max_frames`."""
    if crop_samples >= self.segment_samples:
      return self.max_frames
    most = 1
    for fs in self._frame_start:
      # Frames referenced by a window [a, a + L): the one current at a, and those starting inside.
      inside = np.searchsorted(fs, fs + crop_samples, side="left") - np.arange(len(fs))
      most = max(most, int(inside.max()) + 1)
    return min(most + 1, self.max_frames)

  def _empty(self, batch: int, length: int) -> dict[str, np.ndarray]:
    h, w = self.frame_shape
    frames = self.max_frames if length >= self.segment_samples else self.frames_per_crop(length)
    return {
        "audio": np.empty((batch, length), np.float32),
        "frames": np.empty((batch, frames, h, w), np.uint8),
        "frame_keys": np.empty((batch, frames, 88), np.uint8),
        "frame_start": np.empty((batch, frames), np.int32),
        "num_frames": np.empty((batch,), np.int32),
        "frame_index": np.empty((batch, length), np.int32),
        "frame_age": np.empty((batch, length), np.int32),
        "example_id": np.empty((batch,), np.int32),
        "press_frames": np.empty((batch,), np.bool_),
        **{name: np.empty((batch, frames, *v[0].shape[1:]), v[0].dtype)
           for name, v in self._frame_fields.items()},
    }

  def example(self, split: str, index: int) -> dict[str, np.ndarray]:
    """One whole (un-cropped) segment; keys and shapes in the module docstring."""
    out = self._empty(1, self.segment_samples)
    self._fill(split, index, out, 0, 0, self.segment_samples)
    return {k: v[0] for k, v in out.items()}

  def notes(self, split: str, index: int) -> np.ndarray:
    """int64 (M, 4): notes sounding in the segment, `onset, offset, pitch, velocity`.

    Onset and offset are samples from the segment start, clipped to [0, T].
    """
    song, start = self.segment(split, index)
    t = self.segment_samples
    notes = self._notes[song]
    keep = (notes[:, 0] < start + t) & (notes[:, 1] > start)
    out = notes[keep].copy()
    out[:, :2] = np.clip(out[:, :2] - start, 0, t)
    return out

  # -- batches ---------------------------------------------------------------------------------

  @staticmethod
  def _processes(process_index, process_count) -> tuple[int, int]:
    if process_index is None:
      process_index = jax.process_index()
    if process_count is None:
      process_count = jax.process_count()
    if not 0 <= process_index < process_count:
      raise ValueError(f"process_index={process_index} must be in [0, {process_count})")
    return int(process_index), int(process_count)

  def _size(self, split: str, num_examples: int | None) -> int:
    n = self.num_examples(split)
    if num_examples is not None:
      if num_examples < 0:
        raise ValueError(f"num_examples={num_examples} must be >= 0")
      n = min(n, int(num_examples))
    return n

  def num_batches(self, split: str, batch_size: int, *, drop_remainder: bool = True,
                  process_count: int | None = None, num_examples: int | None = None) -> int:
    """Batches per epoch of `batch_size` examples per process."""
    if batch_size < 1:
      raise ValueError(f"batch_size={batch_size} must be >= 1")
    if process_count is None:
      _, process_count = self._processes(None, None)
    n = self._size(split, num_examples)
    global_batch = batch_size * process_count
    return n // global_batch if drop_remainder else -(-n // global_batch)

  def batches(self, split: str, batch_size: int, *, seed: int, epoch: int, start_batch: int = 0,
              shuffle: bool = True, crop_samples: int | None = None, crop_align: int = 1,
              drop_remainder: bool = True,
              num_examples: int | None = None, process_index: int | None = None,
              process_count: int | None = None) -> Iterator[dict[str, np.ndarray]]:
    """Yields this process's batches of one epoch, from batch `start_batch` on.

    Args:
      split: 'train', 'validation' or 'test'.
      batch_size: examples per batch on this process.
      seed, epoch: determine the order (if shuffle) and the crop offsets.
      start_batch: first batch to yield (to resume mid-epoch).
      shuffle: permute the examples (else split order).
      crop_samples: L: cut each example to L samples at a seeded random offset.
      crop_align: the offsets are multiples of this many samples (1: any offset).
      drop_remainder: drop a last incomplete global batch; otherwise it is split among processes
        in contiguous slices (possibly shorter, or empty on some process).
      num_examples: use only the first N examples of the split (before shuffling).
      process_index, process_count: this process's slot (default: jax's).
    """
    pi, pc = self._processes(process_index, process_count)
    n = self._size(split, num_examples)
    nb = self.num_batches(split, batch_size, drop_remainder=drop_remainder, process_count=pc,
                          num_examples=n)
    t = self.segment_samples
    length = t if crop_samples is None else int(crop_samples)
    if not 0 < length <= t:
      raise ValueError(f"crop_samples={crop_samples} must be in [1, {t}]")
    if start_batch < 0:
      raise ValueError(f"start_batch={start_batch} must be >= 0")
    if crop_align < 1:
      raise ValueError(f"crop_align={crop_align} must be >= 1")
    if shuffle:
      order = np.random.default_rng([int(seed), int(epoch)]).permutation(n)
    else:
      order = np.arange(n)
    global_batch = batch_size * pc
    for b in range(start_batch, nb):
      chunk = order[b * global_batch:(b + 1) * global_batch]
      if len(chunk) == global_batch:
        mine = chunk[pi * batch_size:(pi + 1) * batch_size]
      else:  # the last, incomplete batch (drop_remainder=False)
        mine = np.array_split(chunk, pc)[pi]
      out = self._empty(len(mine), length)
      for row, index in enumerate(mine.tolist()):
        offset = 0
        if crop_samples is not None and length < t:
          offset = crop_align * int(
              np.random.default_rng([int(seed), int(epoch), index, _CROP_STREAM])
              .integers(0, (t - length) // crop_align + 1))
        self._fill(split, index, out, row, offset, length)
      yield out


def resize_frames(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  """uint8 (..., H, W) grayscale or (..., H, W, 3) RGB frames -> uint8 (..., h, w) grayscale at
  `size` (h, w): RGB to luma, then bilinear resampling with antialiasing (PIL). Frames already
  grayscale at `size` are returned as they are."""
  frames = np.asarray(frames, np.uint8)
  rgb = frames.ndim >= 4 and frames.shape[-1] == 3
  lead = frames.shape[:-3] if rgb else frames.shape[:-2]
  h, w = int(size[0]), int(size[1])
  if not rgb and frames.shape[-2:] == (h, w):
    return frames
  flat = frames.reshape((-1, *frames.shape[len(lead):]))
  out = np.empty((flat.shape[0], h, w), np.uint8)
  for i, frame in enumerate(flat):
    image = Image.fromarray(frame, mode="RGB" if rgb else "L").convert("L")
    if image.size != (w, h):
      image = image.resize((w, h), Image.Resampling.BILINEAR)
    out[i] = np.asarray(image, np.uint8)
  return out.reshape((*lead, h, w))


def load_dataset(data_dir: str, verify: bool = True) -> DeepSynthData:
  """Loads the dataset in `data_dir`, checking the manifest (and file sha256s if verify).

  Raises:
    DatasetError: missing or incompatible manifest, missing or corrupt song file; the message
      says how to rebuild.
  """
  path = os.path.join(data_dir, "manifest.json")
  hint = _rebuild_hint(data_dir)
  if not os.path.isfile(path):
    raise DatasetError(f"no dataset in {data_dir} (manifest.json missing): {hint}")
  try:
    with open(path) as f:
      manifest = json.load(f)
  except (OSError, ValueError) as e:
    raise DatasetError(f"{path} is unreadable ({e}): {hint}") from None
  version = manifest.get("format_version") if isinstance(manifest, dict) else None
  if version != FORMAT_VERSION:
    raise DatasetError(f"{path} has format_version {version!r}, this reader needs "
                       f"{FORMAT_VERSION}: {hint} to rebuild it")
  required = ("sample_rate", "segment_samples", "max_frames_per_segment", "songs", "splits")
  missing = [k for k in required if k not in manifest]
  if missing or not manifest["songs"]:
    raise DatasetError(f"{path} lacks {missing or 'songs'}: {hint}")
  songs = []
  for entry in manifest["songs"]:
    file = os.path.join(data_dir, entry["file"])
    if not os.path.isfile(file):
      raise DatasetError(f"song file {file} is missing: {hint}")
    if verify and _sha256(file) != entry["sha256"]:
      raise DatasetError(f"song file {file} fails its sha256 check (corrupt or changed): {hint} "
                         "to regenerate it")
    try:
      with np.load(file, allow_pickle=False) as z:
        arrays = {k: z[k] for k in ("audio", "frames", "frame_keys", "frame_start", "notes")}
    except Exception as e:  # zipfile / format errors
      raise DatasetError(f"song file {file} is unreadable ({type(e).__name__}: {e}): "
                         f"{hint}") from None
    n = len(arrays["audio"])
    try:
      frame_timing.validate_frame_start(arrays["frame_start"], n)
    except ValueError as e:
      raise DatasetError(f"song file {file}: {e}: {hint}") from None
    if arrays["frames"].ndim != 3 or len(arrays["frames"]) != len(arrays["frame_start"]):
      raise DatasetError(f"song file {file}: frames {arrays['frames'].shape} do not match "
                         f"frame_start {arrays['frame_start'].shape}: {hint}")
    if arrays["frame_keys"].shape != (len(arrays["frames"]), 88):
      raise DatasetError(f"song file {file}: frame_keys {arrays['frame_keys'].shape} do not match "
                         f"frames {arrays['frames'].shape}: {hint}")
    arrays["audio"] = (arrays["audio"].astype(np.float32) / np.float32(32768.0))
    arrays["frame_start"] = arrays["frame_start"].astype(np.int64)
    arrays["notes"] = arrays["notes"].astype(np.int64).reshape(-1, 4)
    songs.append(arrays)
  return DeepSynthData(data_dir, manifest, songs)


def prefetch(iterator: Iterator, size: int = 2) -> Iterator:
  """Runs `iterator` in a background thread, keeping up to `size` items ready.

  Exceptions in the producer are re-raised in the consumer; abandoning the returned generator
  (or closing it) stops the producer.
  """
  if size < 1:
    raise ValueError(f"prefetch size must be >= 1, got {size}")
  q: queue.Queue = queue.Queue(maxsize=size)
  stop = threading.Event()
  done = object()

  def put(entry) -> bool:
    while not stop.is_set():
      try:
        q.put(entry, timeout=0.1)
        return True
      except queue.Full:
        continue
    return False

  def produce():
    try:
      for item in iterator:
        if not put((item, None)):
          return
      put((done, None))
    except BaseException as e:  # handed to the consumer
      put((done, e))

  thread = threading.Thread(target=produce, daemon=True, name="prefetch")
  thread.start()

  def consume():
    try:
      while True:
        item, err = q.get()
        if item is done:
          if err is not None:
            raise err
          return
        yield item
    finally:
      stop.set()

  return consume()

"""Training video of several kinds: the same songs rendered as sparse press frames and as camera
video at several frame rates, optionally seen through randomly drawn cameras.

A model that must play from any video learns from a mix. `RenderingMix` serves datasets built
from the same songs with `python -m data_gen.make_dataset --frames=...` (same audio, segments and
splits; only the video differs) as one dataset with `DeepSynthData`'s batch interface:

- each global batch takes its video from one rendering, drawn from (seed, epoch, batch) in
  training and cycling through the renderings in split order otherwise, so that a batch's frames
  have one padded length (one compilation per rendering) and validation sees every kind;
- with `camera_augment` p > 0, each training example's frames are, with probability p, seen
  through a camera drawn by `data_gen.camera.augment` (resolution, brightness and contrast, sensor
  noise, blur, a small shift, rotation and perspective), then resized back to the model's frame
  size as `sample()` resizes a real video (`input_pipeline.resize_frames`). Every draw is seeded
  by (seed, epoch, example_id): the same config gives the same batches.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from data_gen import camera
from deepsynth_jax import input_pipeline
from deepsynth_jax.input_pipeline import DatasetError, DeepSynthData

_RENDERING_STREAM = 0x5E1
_CAMERA_STREAM = 0xCA3


class RenderingMix:
  """Renderings of the same songs served as one dataset (see the module docstring).

  Attributes delegate to the first rendering (the primary one: its frame size is the model's)
  except `max_frames` (the largest), `frame_mode` (all modes joined by "+") and `renderings`.
  """

  def __init__(self, renderings: Sequence[DeepSynthData], camera_augment: float = 0.0):
    if not renderings:
      raise ValueError("RenderingMix needs at least one dataset")
    if not 0.0 <= camera_augment <= 1.0:
      raise ValueError(f"camera_augment={camera_augment} must be a probability in [0, 1]")
    self.renderings = list(renderings)
    self.camera_augment = float(camera_augment)
    primary = self.renderings[0]
    for other in self.renderings[1:]:
      _check_same_songs(primary, other)
    self.primary = primary
    self.data_dir = primary.data_dir
    self.manifest = primary.manifest
    self.sample_rate = primary.sample_rate
    self.segment_samples = primary.segment_samples
    self.frame_shape = primary.frame_shape
    self.max_frames = max(r.max_frames for r in self.renderings)
    self.frame_mode = "+".join(dict.fromkeys(r.frame_mode for r in self.renderings))

  def num_examples(self, split: str) -> int:
    return self.primary.num_examples(split)

  def num_batches(self, split: str, batch_size: int, **kwargs) -> int:
    return self.primary.num_batches(split, batch_size, **kwargs)

  def segment(self, split: str, index: int) -> tuple[int, int]:
    return self.primary.segment(split, index)

  def notes(self, split: str, index: int) -> np.ndarray:
    return self.primary.notes(split, index)

  def rendering_of_batch(self, split: str, seed: int, epoch: int, batch: int) -> int:
    """Which rendering global batch `batch` of (split, seed, epoch) takes its video from."""
    if split != "train":
      return batch % len(self.renderings)
    rng = np.random.default_rng([int(seed), int(epoch), int(batch), _RENDERING_STREAM])
    return int(rng.integers(len(self.renderings)))

  def batches(self, split: str, batch_size: int, *, seed: int, epoch: int, start_batch: int = 0,
              **kwargs) -> Iterator[dict[str, np.ndarray]]:
    """`DeepSynthData.batches` (same arguments), each batch from one rendering, training
    examples seen through random cameras (see the module docstring)."""
    n = self.primary.num_batches(split, batch_size,
                                 drop_remainder=kwargs.get("drop_remainder", True),
                                 process_count=kwargs.get("process_count"),
                                 num_examples=kwargs.get("num_examples"))
    for b in range(start_batch, n):
      rendering = self.renderings[self.rendering_of_batch(split, seed, epoch, b)]
      batch = next(rendering.batches(split, batch_size, seed=seed, epoch=epoch, start_batch=b,
                                     **kwargs))
      if split == "train" and self.camera_augment > 0:
        self._augment(batch, seed, epoch)
      yield batch

  def _augment(self, batch: dict[str, np.ndarray], seed: int, epoch: int) -> None:
    """Sees each example's frames through a random camera, in place (probability
    `camera_augment`, seeded by (seed, epoch, example_id))."""
    for row, example_id in enumerate(batch["example_id"].tolist()):
      rng = np.random.default_rng([int(seed), int(epoch), int(example_id), _CAMERA_STREAM])
      if rng.random() >= self.camera_augment:
        continue
      seen = camera.augment(batch["frames"][row], rng)
      batch["frames"][row] = input_pipeline.resize_frames(seen, self.frame_shape)


def _check_same_songs(a: DeepSynthData, b: DeepSynthData) -> None:
  """Raises DatasetError unless `b` renders the same songs as `a` (audio, segments, frame size)."""
  why = None
  if (a.sample_rate, a.segment_samples) != (b.sample_rate, b.segment_samples):
    why = "another sample rate or segment length"
  elif a.manifest["splits"] != b.manifest["splits"]:
    why = "other segments or splits"
  elif a.frame_shape != b.frame_shape:
    why = f"frames of {b.frame_shape} pixels, not {a.frame_shape}"
  elif any(len(x) != len(y) or not np.array_equal(x, y)
           for x, y in zip(a.song_audio(), b.song_audio(), strict=True)):
    why = "other audio"
  if why:
    raise DatasetError(f"{b.data_dir} is not a rendering of the songs in {a.data_dir} ({why}); "
                       f"build it with the same options as {a.data_dir} except --frames, e.g. "
                       f"python -m data_gen.make_dataset --out_dir={b.data_dir} --frames=fps:30")


TrainingData = DeepSynthData | RenderingMix


def load_training_data(data_dir: str, extra_data_dirs: Sequence[str] = (),
                       camera_augment: float = 0.0) -> TrainingData:
  """The training data of a config: `data_dir` alone, or mixed with other renderings of its
  songs and random cameras (`RenderingMix`).

  Raises:
    input_pipeline.DatasetError: a dataset is missing or corrupt, or not a rendering of the same
      songs.
  """
  primary = input_pipeline.load_dataset(data_dir)
  if not extra_data_dirs and camera_augment == 0:
    return primary
  others = [input_pipeline.load_dataset(d) for d in extra_data_dirs]
  return RenderingMix([primary, *others], camera_augment)


def renderings_of(data: TrainingData) -> list[DeepSynthData]:
  """The datasets behind `data` (itself when it is one)."""
  return list(data.renderings) if isinstance(data, RenderingMix) else [data]

"""A trained run, ready to generate: its generator, parameters and the facts of its data.

`load_run(workdir)` reads a run directory written by `python -m deepsynth_jax.train` (run.json and
its best checkpoint, falling back to the latest) and checks that the parameters fit the config;
`run_from_params(params, config)` wraps parameters without a run directory.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging

from deepsynth_jax import checkpointing, keyboard_locator, models

# Assumed for `params` + `config` without a run directory (the dataset's default).
DEFAULT_SAMPLE_RATE = 4000
# The dataset's segment length, when a run does not record it.
DEFAULT_SECONDS = 5.0


@dataclasses.dataclass(frozen=True)
class Run:
  """A model ready to generate: its config, generator, parameters and data facts."""

  config: ml_collections.ConfigDict
  generator: models.Generator
  params: Any
  sample_rate: int
  frame_shape: tuple[int, int] | None  # (H, W) it was trained on, when known
  segment_samples: int
  step: int | None  # training step of the checkpoint, when loaded from a run
  # What it learned from: {"uses_key_labels": bool, "frame_mode": "sparse" | "fps:N" | ...}.
  learned_from: dict = dataclasses.field(default_factory=dict)

  def fit_frames(self, frames: Any, press_frames: bool = True) -> Any:
    """uint8 (..., H, W) grayscale frames at the model's frame size. Frames of another size are
    a camera's: the keyboard is located in them (all the frames given are taken to be one
    camera's; (..., F, H, W) are clips of F frames) and rectified to the straight view the
    model was trained on
    (`keyboard_locator.straighten`: pose, focus and shades fitted to the video; frames at a
    fixed rate, `press_frames` False, are also denoised in time).

    Raises:
      keyboard_locator.KeyboardNotFoundError: the frames do not show the keyboard."""
    if self.frame_shape is None or tuple(np.shape(frames)[-2:]) == self.frame_shape:
      return frames
    frames = np.asarray(frames, np.uint8)
    clips = frames.reshape((-1, *frames.shape[-3:])) if frames.ndim >= 3 else frames[None, None]
    straight, pose = keyboard_locator.straighten(clips, self.frame_shape,
                                                 clock_frames=not press_frames)
    logging.info("keyboard located in %d x %d video: shift (%.4f, %.4f), roll %.2f deg, "
                 "keystone %.3f, blur %.2f, gain %.2f, offset %.1f (correlation %.3f)",
                 pose.height, pose.width, pose.shift_x, pose.shift_y, pose.rotation_deg,
                 pose.perspective, pose.blur_sigma, pose.gain, pose.offset, pose.correlation)
    return straight.reshape((*frames.shape[:-2], *self.frame_shape))

  def generate(self, frames: Any, frame_index: Any, frame_age: Any, *, seed: int = 0,
               temperature: float = 1.0, greedy: bool = False, true_audio: Any = None,
               example_ids: Any = None,
               press_frames: Any = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Audio float32 (B, T) in [-1, 1] for frames uint8 (B, F, H, W) and frame_index /
    frame_age int32 (B, T), and the free-running cross-entropy (B,) of `true_audio` (nats per
    sample) when given and defined (see `models.Generator.generate`). `press_frames` (B,) or
    scalar: the frames mark key presses (sparse video), not a camera's fixed rate."""
    frames = self.fit_frames(frames, bool(np.all(press_frames)))
    out = self.generator.generate(self.params, frames, frame_index, frame_age,
                                  seed=seed,
                                  temperature=temperature, greedy=greedy, true_audio=true_audio,
                                  example_ids=example_ids, press_frames=press_frames)
    ce = None if out.cross_entropy is None else np.asarray(out.cross_entropy, np.float32)
    return np.asarray(out.audio, np.float32), ce


def load_run(workdir: str) -> Run:
  """The best checkpoint of a run directory (cached per absolute path for the process).

  Raises:
    checkpointing.CheckpointError: not a DeepSynth run, or no checkpoint yet.
  """
  path = os.path.abspath(os.path.expanduser(str(workdir)))
  if os.path.isfile(path):
    raise checkpointing.CheckpointError(
        f"checkpoint {workdir} is a file; pass the run directory (the --workdir of "
        "python -m deepsynth_jax.train) that holds run.json")
  if not os.path.isdir(path):
    raise checkpointing.CheckpointError(
        f"checkpoint {workdir} does not exist; pass the --workdir of a trained run "
        "(python -m deepsynth_jax.train --config=... --workdir=...)")
  return _load_run_cached(path)


@functools.lru_cache(maxsize=8)
def _load_run_cached(path: str) -> Run:
  record = checkpointing.read_run_record(path)
  config = checkpointing.config_from_record(record)
  facts = record.get("data", {})
  sample_rate = int(facts.get("sample_rate", DEFAULT_SAMPLE_RATE))
  ckpts = checkpointing.RunCheckpoints(path, read_only=True)
  try:
    params, progress = ckpts.restore_best_params()
  finally:
    ckpts.close()
  frame_shape = None
  if "frame_height" in facts and "frame_width" in facts:
    frame_shape = (int(facts["frame_height"]), int(facts["frame_width"]))
  segment = int(facts.get("segment_samples", round(DEFAULT_SECONDS * sample_rate)))
  step = progress.get("best_step", progress.get("step")) if isinstance(progress, dict) else None
  generator = models.build_generator(config, sample_rate)
  run = Run(config=config, generator=generator, params=jax.device_put(params),
            sample_rate=sample_rate, frame_shape=frame_shape, segment_samples=segment,
            step=None if step is None else int(step),
            learned_from=_learned_from(checkpointing.learned_from(record), generator))
  mismatch = frame_shape and run.generator.params_mismatch(run.params, frame_shape)
  if mismatch:
    raise checkpointing.CheckpointError(
        f"the checkpoint in {path} does not fit the config in its run.json ({mismatch}); the "
        "run's files are mixed up: put back the run.json it was trained with, or re-train")
  return run


def run_from_params(params: Any, config: ml_collections.ConfigDict,
                    sample_rate: int = DEFAULT_SAMPLE_RATE) -> Run:
  """A `Run` from parameters and their config (no run directory).

  Raises:
    ValueError: `config.model` names no registered model.
  """
  generator = models.build_generator(config, sample_rate)
  return Run(config=config, generator=generator, params=params, sample_rate=sample_rate,
             frame_shape=None, segment_samples=round(DEFAULT_SECONDS * sample_rate), step=None,
             learned_from=_learned_from({"frame_mode": "unknown"}, generator))


def _learned_from(recorded: dict, generator: models.Generator) -> dict:
  """The recorded facts; whether key labels were used follows from the config for runs recorded
  before it was written down."""
  uses = recorded.get("uses_key_labels")
  return {"uses_key_labels": generator.uses_key_labels if uses is None else bool(uses),
          "frame_mode": recorded.get("frame_mode", "unknown")}


def clear_cache() -> None:
  """Forgets loaded runs (e.g. after a run saved a better checkpoint)."""
  _load_run_cached.cache_clear()



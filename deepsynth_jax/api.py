"""`sample`: the audio of one silent piano clip, from a trained run.

  import deepsynth_jax
  audio = deepsynth_jax.sample(frames, frame_times, checkpoint="runs/cpu")        # sparse frames
  audio = deepsynth_jax.sample(video_rgb, fps=30, checkpoint="runs/cpu", seconds=4.0)  # video

Two ways to give the video of ONE clip (for batches of clips use `deepsynth_jax.runs.Run.generate`):

- sparse frames, the dataset's format: `frames` uint8 (F, H, W) grayscale and `frame_times`
  (F,): the SAMPLE INDEX (at the model's sample rate, 4 kHz) at which each frame becomes
  current; `frame_times[0] == 0`, strictly increasing (for times in seconds use
  `data_gen.frame_timing.frame_start_from_times(seconds, 4000)`); each frame marks a key press;
- dense video: `frames` uint8 (F, H, W) or RGB (F, H, W, 3) at `fps` frames per second; frame f
  becomes current at sample round(f * sample_rate / fps). RGB frames are converted to grayscale.

Frames of any size are resized (PIL, bilinear with antialiasing) to the model's. Sparse frames
mark key presses (a new frame showing no new key is a key struck again); dense frames are a
camera's clock ticks. A model trained on one kind only warns once when given the other
(`FrameModeWarning`); the default model learned from press frames only, so it warns on camera
video, which it nevertheless plays (README, "Any video").

The model comes from a run directory (`checkpoint`, its best checkpoint and run.json; loaded once
per process and cached) or from `params` + `config` (the run's config; 4 kHz data assumed). Audio
comes from the model's `Generator.generate` (`deepsynth_jax.models`): an autoregressive model
(the WaveNet) is sampled one sample at a time by its `lax.scan` decoder (the vocoder, whose
gain head allows it, a block of samples at a time: `autoregressive.generate`'s `by_blocks`);
KeySynth generates the clip in one forward pass (temperature, seed and greedy do not apply).
Compilation happens once per model and padded input shape (frames are padded to a power of two
>= 16, an autoregressive model's length to a multiple of 0.25 s), so repeated calls are fast.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import ml_collections
import numpy as np

from data_gen import frame_timing
from deepsynth_jax import input_pipeline, keyboard_locator, models, runs
from deepsynth_jax.runs import Run, clear_cache, load_run  # noqa: F401 (public API)

# Frames are padded to a power of two, at least this many (a 5 s segment has ~15 sparse frames).
MIN_PADDED_FRAMES = 16


class SampleInputError(ValueError):
  """Arguments of `sample` that cannot be used; the message says what was expected."""


class FrameModeWarning(UserWarning):
  """The video is of another kind (sparse press frames / dense fps video) than the model's
  training video (its run.json `learned_from.frame_mode`)."""


_WARNED_FRAME_MODE: set[tuple[int, bool]] = set()


def sample(frames: Any, frame_times: Any = None, fps: float | None = None, *,
           checkpoint: str | None = None, params: Any = None,
           config: ml_collections.ConfigDict | None = None, seconds: float | None = None,
           temperature: float = 1.0, seed: int = 0, greedy: bool = False) -> np.ndarray:
  """Generates the audio of one silent clip.

  Args:
    frames: uint8 (F, H, W) grayscale frames, or (F, H, W, 3) RGB video frames (with `fps`).
    frame_times: int (F,) sample index (at the model's sample rate) at which each sparse frame
      becomes current; [0] == 0, strictly increasing. Give this or `fps`.
    fps: frame rate of dense video frames. Give this or `frame_times`.
    checkpoint: a run directory (python -m deepsynth_jax.train --workdir=...). Or give:
    params, config: the model's parameters and its config (e.g. from a run's run.json).
    seconds: length of the output; default: the video's length with `fps`, else 5 s (extended
      to 1 s past the last frame). Frames starting at or after the end are unused.
    temperature: > 0 scales the logits before sampling; 0 = greedy.
    seed: random seed; the same arguments and seed give the same audio.
    greedy: pick the most likely bucket at every step (no randomness).

  Returns:
    float32 (T,) audio in [-1, 1] at the model's sample rate (4 kHz), T = round(seconds * rate).

  Raises:
    SampleInputError: frames or times of the wrong rank, dtype, size, emptiness, order or value;
      missing/duplicate model arguments.
    checkpointing.CheckpointError: `checkpoint` is not a run directory or has no checkpoint.
  """
  run = _resolve_run(checkpoint, params, config)
  dense = fps is not None
  frames = _as_frames(frames, dense=dense)
  starts, num_samples = _frame_starts(frames.shape[0], frame_times, fps, seconds, run)
  frames = _fit_frame_size(frames, run, dense=dense)
  keep = int(np.sum(starts < num_samples))  # frames that become current inside the clip
  frames, starts = frames[:keep], starts[:keep]
  index, age = frame_timing.frame_index_and_age(starts, num_samples)
  _check_sampling_args(temperature, seed)
  _warn_frame_mode_mismatch(run, dense=dense)
  if run.generator.autoregressive:  # a scan per length: pad so that lengths recur
    frames, index, age = _pad_for_compilation(frames, index, age, run.sample_rate)
  audio, _ = run.generate(frames[None], index[None], age[None], temperature=temperature,
                          seed=seed, greedy=greedy, press_frames=not dense)
  return audio[0, :num_samples]


# ---- argument checks -------------------------------------------------------------------------


def _warn_frame_mode_mismatch(run: Run, dense: bool) -> None:
  """One warning per run and kind of video when the run's training video had none of its kind
  (`frame_mode` "sparse", "fps:N", or several joined by "+")."""
  mode = str(run.learned_from.get("frame_mode", "unknown"))
  kinds = {"dense" if m.startswith("fps:") else m for m in mode.split("+")}
  if mode == "unknown" or ("dense" if dense else "sparse") in kinds:
    return
  if (id(run), dense) in _WARNED_FRAME_MODE:
    return
  _WARNED_FRAME_MODE.add((id(run), dense))
  given = "dense video (fps=)" if dense else "sparse press frames (frame_times=)"
  warnings.warn(f"this model learned from {mode} video (run.json learned_from.frame_mode) but is "
                f"given {given}; expect worse audio: train on video of this kind too (python -m "
                "data_gen.make_dataset --frames=..., then --config.extra_data_dirs)",
                FrameModeWarning, stacklevel=3)



def _resolve_run(checkpoint, params, config) -> Run:
  if checkpoint is not None:
    if params is not None or config is not None:
      raise SampleInputError("pass either checkpoint=<run directory> or params= and config=, "
                             "not both")
    return load_run(checkpoint)
  if params is None or config is None:
    raise SampleInputError("no model: pass checkpoint=<run directory> (a trained --workdir), or "
                           "both params= and config=")
  if config.get("model") not in models.REGISTRY:
    raise SampleInputError(f"config.model is {config.get('model')!r}; expected one of "
                           f"{', '.join(sorted(models.REGISTRY))} (pass the run's config)")
  return runs.run_from_params(params, config)


def _check_sampling_args(temperature, seed) -> None:
  if not isinstance(temperature, (int, float, np.number)) or not math.isfinite(temperature) \
      or temperature < 0:
    raise SampleInputError(f"temperature must be a finite number >= 0 (0 = greedy), got "
                           f"{temperature!r}")
  if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) \
      or not 0 <= int(seed) < 2 ** 31:
    raise SampleInputError(f"seed must be an int in [0, 2**31), got {seed!r}")


def _as_frames(frames: Any, dense: bool) -> np.ndarray:
  """uint8 (F, H, W) or, for dense video, (F, H, W, 3); checked, not yet resized."""
  try:
    x = np.asarray(frames)
  except ValueError:  # a list of arrays of different shapes
    raise SampleInputError("frames must be images of one size (uint8 (F, H, W)); got a sequence "
                           "of differently shaped arrays: resize them to one size first") from None
  if x.size == 0:
    raise SampleInputError(f"frames are empty (shape {x.shape}); pass at least one frame")
  if x.dtype != np.uint8:
    raise SampleInputError(f"frames must be uint8 images (0..255), got dtype {x.dtype}; convert "
                           "with np.clip(x, 0, 255).astype(np.uint8)")
  rgb = x.ndim == 4 and x.shape[-1] == 3
  if not (x.ndim == 3 or (dense and rgb)):
    expected = "(F, H, W) grayscale or (F, H, W, 3) RGB" if dense else "(F, H, W) grayscale"
    raise SampleInputError(f"frames must be uint8 {expected}, got shape {x.shape}"
                           + ("" if dense or not rgb else "; for RGB video pass fps="))
  if x.shape[0] == 0 or x.shape[1] == 0 or x.shape[2] == 0:
    raise SampleInputError(f"frames are empty (shape {x.shape}); pass at least one frame")
  return x


def _frame_starts(num_frames: int, frame_times: Any, fps: Any, seconds: Any,
                  run: Run) -> tuple[np.ndarray, int]:
  """(frame starts int64 (F,), clip length in samples), validated."""
  rate = run.sample_rate
  if (frame_times is None) == (fps is None):
    raise SampleInputError("pass exactly one of frame_times= (sample index at which each frame "
                           f"becomes current, at {rate} Hz) or fps= (dense video)")
  if seconds is not None:
    if not isinstance(seconds, (int, float, np.number)) or not math.isfinite(seconds) \
        or seconds <= 0:
      raise SampleInputError(f"seconds must be a finite number > 0, got {seconds!r}")
    num_samples = round(float(seconds) * rate)
    if num_samples < 1:
      raise SampleInputError(f"seconds={seconds} is shorter than one sample at {rate} Hz")
  if fps is not None:
    if not isinstance(fps, (int, float, np.number)) or not math.isfinite(fps) \
        or not 0 < fps <= rate:
      raise SampleInputError(f"fps must be a finite number in (0, {rate}], got {fps!r}")
    starts = np.round(np.arange(num_frames) * (rate / float(fps))).astype(np.int64)
    if seconds is None:
      num_samples = max(1, math.ceil(num_frames * rate / float(fps)))
    return starts, num_samples
  times = np.asarray(frame_times)
  if times.shape != (num_frames,):
    raise SampleInputError(f"frame_times must have shape ({num_frames},), one per frame, got "
                           f"{times.shape}")
  if not (np.issubdtype(times.dtype, np.integer) or np.issubdtype(times.dtype, np.floating)):
    raise SampleInputError(f"frame_times must be numbers (sample indices), got dtype {times.dtype}")
  if np.issubdtype(times.dtype, np.floating):
    if not np.all(np.isfinite(times)):
      raise SampleInputError("frame_times contain NaN or infinity; pass finite sample indices")
    if np.any(np.abs(times) >= 2.0 ** 53):
      raise SampleInputError("frame_times are too large to be sample indices; pass sample "
                             f"indices at {rate} Hz (for seconds use "
                             f"data_gen.frame_timing.frame_start_from_times(times, {rate}))")
    if np.any(times != np.round(times)):
      raise SampleInputError(
          f"frame_times are sample indices at {rate} Hz and must be whole numbers; for times in "
          f"seconds pass data_gen.frame_timing.frame_start_from_times(times, {rate})")
  starts = times.astype(np.int64)
  try:
    frame_timing.validate_frame_start(starts, max(int(starts.max()) + 1, 1))
  except ValueError as e:
    raise SampleInputError(f"frame_times: {e}") from None
  if seconds is None:
    num_samples = max(run.segment_samples, int(starts[-1]) + rate)
  return starts, num_samples


def _fit_frame_size(frames: np.ndarray, run: Run, dense: bool) -> np.ndarray:
  """Frames at the model's size: RGB video is converted to grayscale, and frames of another size
  (sparse or dense alike) are a camera's: the keyboard is located in them and rectified to the
  model's view (`Run.fit_frames`)."""
  target = run.frame_shape
  if frames.ndim == 4 or (target is not None and frames.shape[1:] != target):
    if target is None:
      raise SampleInputError(f"cannot tell the model's frame size to fit these "
                             f"{frames.shape[1]} x {frames.shape[2]} frames to: load the model "
                             "from its run directory (checkpoint=...)")
    if frames.ndim == 4:
      frames = input_pipeline.resize_frames(frames, frames.shape[1:3])  # RGB -> luma
    try:
      frames = run.fit_frames(frames, press_frames=not dense)
    except keyboard_locator.KeyboardNotFoundError as e:
      raise SampleInputError(str(e)) from None
  _check_encoder_input(frames.shape[1:], run)
  return frames


def _pad_for_compilation(frames: np.ndarray, index: np.ndarray, age: np.ndarray,
                         rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Pads F to a power of two (>= 16) and T to a multiple of 0.25 s, so that shapes recur.

  Padded frames are never current; padded samples continue the last frame and are dropped. The
  samples before the padding are unchanged by it (each step's randomness is keyed by its time).
  """
  f, t = frames.shape[0], index.shape[0]
  f_pad = max(MIN_PADDED_FRAMES, 1 << (f - 1).bit_length())
  chunk = max(1, rate // 4)
  t_pad = -(-t // chunk) * chunk
  frames = np.concatenate([frames, np.zeros((f_pad - f, *frames.shape[1:]), np.uint8)])
  index = np.concatenate([index, np.full(t_pad - t, index[-1], np.int32)])
  age = np.concatenate([age, age[-1] + np.arange(1, t_pad - t + 1, dtype=np.int32)])
  return frames, index, age


def _check_encoder_input(size: tuple[int, int], run: Run) -> None:
  """Frames of (H, W) must fit the model's parameters (traced only, nothing runs)."""
  if run.frame_shape is not None and tuple(size) == run.frame_shape:
    return  # checked when the run was loaded
  mismatch = run.generator.params_mismatch(run.params, tuple(size))
  if mismatch is None:
    return
  if run.frame_shape is None:  # params + config: either may be what does not fit
    raise SampleInputError(f"params do not fit config on frames of {size[0]} x {size[1]} pixels "
                           f"({mismatch}); pass the config the params were trained with (the "
                           "run's run.json) and frames of the size they were trained on, or "
                           "checkpoint=<run directory>")
  raise SampleInputError(f"frames of {size[0]} x {size[1]} pixels do not fit this model, which "
                         f"was trained on {run.frame_shape[0]} x {run.frame_shape[1]} frames; pass "
                         "frames of that size (or dense video with fps=, which is resized)")

"""Inference of the transcribe-then-synthesize baseline: frames -> key states -> notes -> audio.

A trained key classifier (`deepsynth_jax.models.key_reader.KeyReader`, held with its config in a
`Baseline`) reads 88 key states off every uint8 (H, W) grayscale frame; `keys_to_notes` turns
them into notes (a key pressed in frame f but not in frame f - 1 starts a note at frame_start[f];
it ends at the first frame showing it released, or at the clip's end); `synthesize` renders the
notes with the dataset's SoundFont through `data_gen.synth`. Audio is float32 at the dataset's
sample rate (4 kHz); times are in samples.

What it cannot know from the video: velocity (every note gets the training notes' median
velocity), and a key struck again without a frame showing it released in between (one long note
instead). In sparse video a release is only seen at the next key press, so notes end late.

A baseline workdir (written by `deepsynth_jax.baseline_train.save_baseline`) holds
`checkpoint/<n>/`: the params and config of save n (`checkpointing.save_params`). Workdirs of the
earlier single-module baseline (`checkpoint/<n>/params/` + `checkpoint/<n>/config/`) load too.
`split_frames` gathers a dataset split's frames, for training (`baseline_train`) and evaluation
(`baseline_eval`); the command line is `deepsynth_jax.baseline`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from typing import Any

import jax
import numpy as np

from data_gen import frame_timing, keyboard, synth, wav
from deepsynth_jax import checkpointing, input_pipeline
from deepsynth_jax.models.key_reader import NUM_KEYS, KeyReader

DEFAULT_VELOCITY = 80
CHECKPOINT_DIR = "checkpoint"
FORMAT = "deepsynth_jax.baseline/1"
# The config file inside a checkpoint step of the earlier layout (an orbax JsonSave item).
_LEGACY_CONFIG = os.path.join("config", "metadata")


class BaselineError(ValueError):
  """Bad input to the baseline (shapes, dtypes, a workdir without a checkpoint...)."""


@dataclasses.dataclass
class Baseline:
  """A trained key classifier: params (pytree) and its config (JSON-able dict with height, width,
  channels, hidden, width_pools, velocity, synth_gain, threshold, the training settings and
  format)."""
  params: Any
  config: dict

  def model(self) -> KeyReader:
    return KeyReader(channels=tuple(self.config["channels"]), hidden=self.config["hidden"],
                     width_pools=self.config["width_pools"])


def check_frames(frames: Any, height: int | None = None, width: int | None = None) -> np.ndarray:
  """Frames as a uint8 (F, H, W) array; BaselineError unless they are (and H x W matches)."""
  f = np.asarray(frames)
  if f.ndim != 3 or f.dtype != np.uint8:
    raise BaselineError(f"frames must be uint8 (F, H, W) grayscale images, got dtype {f.dtype}, "
                        f"shape {f.shape}")
  if height is not None and f.shape[1:] != (height, width):
    raise BaselineError(f"frames are {f.shape[1]}x{f.shape[2]} but the classifier was trained on "
                        f"{height}x{width}; render the video at the training size")
  return f


@functools.lru_cache(maxsize=8)
def _jitted_apply(channels: tuple[int, ...], hidden: int, width_pools: int):
  model = KeyReader(channels=channels, hidden=hidden, width_pools=width_pools)
  return jax.jit(lambda params, x: model.apply({"params": params}, x))


def predict_keys(baseline: Baseline, frames: Any, batch_size: int = 256) -> np.ndarray:
  """Key states of each frame: uint8 frames (F, H, W) -> bool (F, 88) (column k = MIDI 21 + k).

  Frames go through the classifier in batches of `batch_size` (the last one zero-padded, so
  every batch has one shape and compiles once).
  """
  c = baseline.config
  f = check_frames(frames, c["height"], c["width"])
  apply = _jitted_apply(tuple(c["channels"]), int(c["hidden"]), int(c["width_pools"]))
  out = np.zeros((f.shape[0], NUM_KEYS), bool)
  threshold_logit = float(np.log(c["threshold"] / (1 - c["threshold"])))
  for i in range(0, f.shape[0], batch_size):
    chunk = f[i:i + batch_size]
    pad = batch_size - chunk.shape[0]
    padded = np.concatenate([chunk, np.zeros((pad,) + chunk.shape[1:], np.uint8)]) if pad else chunk
    logits = np.asarray(jax.device_get(apply(baseline.params, padded)))
    out[i:i + chunk.shape[0]] = logits[:chunk.shape[0]] > threshold_logit
  return out


def keys_to_notes(key_states: Any, frame_start: Any, num_samples: int,
                  velocity: int = DEFAULT_VELOCITY) -> np.ndarray:
  """Turns per-frame key states into notes.

  A key pressed in frame f and not in frame f - 1 (or pressed in frame 0) starts a note at
  frame_start[f]; the note ends at the start of the first later frame that shows the key
  released, or at `num_samples`.

  Args:
    key_states: (F, 88) bool or 0/1, column k = MIDI pitch 21 + k.
    frame_start: int (F,) samples at which each frame becomes current ([0] == 0, increasing).
    num_samples: clip length in samples.
    velocity: MIDI velocity of every note (1..127).

  Returns:
    int64 (M, 4) onset_sample, offset_sample, midi_pitch, velocity, sorted by onset then pitch.
  """
  keys = np.asarray(key_states)
  if keys.ndim != 2 or keys.shape[1] != NUM_KEYS:
    raise BaselineError(f"key states must have shape (F, {NUM_KEYS}), got {keys.shape}")
  starts = frame_timing.validate_frame_start(frame_start, num_samples)
  if starts.shape[0] != keys.shape[0]:
    raise BaselineError(f"got {keys.shape[0]} key states but {starts.shape[0]} frame starts")
  if not 1 <= int(velocity) <= 127:
    raise BaselineError(f"velocity must be in 1..127, got {velocity}")
  pressed = keys.astype(bool)
  padded = np.concatenate([np.zeros((1, NUM_KEYS), bool), pressed, np.zeros((1, NUM_KEYS), bool)])
  bounds = np.concatenate([starts, [num_samples]])
  rows = []
  for k in range(NUM_KEYS):
    change = np.diff(padded[:, k].astype(np.int8))
    for on, off in zip(np.flatnonzero(change == 1), np.flatnonzero(change == -1), strict=True):
      rows.append((bounds[on], bounds[off], keyboard.LOWEST_PITCH + k, int(velocity)))
  if not rows:
    return np.zeros((0, 4), np.int64)
  notes = np.asarray(rows, np.int64)
  return notes[np.lexsort((notes[:, 2], notes[:, 0]))]


def transcribe(baseline: Baseline, frames: Any, frame_start: Any, num_samples: int) -> np.ndarray:
  """Frames (F, H, W) uint8 + frame_start (F,) samples -> notes int64 (M, 4) (see keys_to_notes)."""
  return keys_to_notes(predict_keys(baseline, frames), frame_start, num_samples,
                       baseline.config["velocity"])


def synthesize(notes: np.ndarray, num_samples: int, sample_rate: int, soundfont: str,
               gain: float | None = None) -> np.ndarray:
  """Renders notes int (M, 4) with data_gen.synth (the dataset's renderer) -> float32
  (num_samples,) audio at `sample_rate` Hz, cut at the clip's end (release tails past it dropped)
  or zero-padded. `gain`: FluidSynth gain (None: data_gen.synth's default)."""
  if len(notes) == 0:
    return np.zeros((num_samples,), np.float32)
  settings = synth.SynthSettings(soundfont=soundfont, **({} if gain is None else {"gain": gain}))
  pcm, _ = synth.render_notes(notes, sample_rate, settings)
  out = wav.pcm16_to_float(pcm)[:num_samples]
  return np.pad(out, (0, num_samples - out.shape[0])).astype(np.float32)


def baseline_audio(workdir_or_baseline: str | Baseline, frames: Any, frame_start: Any,
                   num_samples: int, sample_rate: int, soundfont: str,
                   gain: float | None = None) -> np.ndarray:
  """The baseline's audio for a clip: float32 (num_samples,) in [-1, 1] at `sample_rate`.

  Args:
    workdir_or_baseline: a baseline workdir (loaded with `load_baseline`) or a loaded `Baseline`.
    frames: uint8 (F, H, W) frames of the clip.
    frame_start: int (F,) sample at which each frame becomes current ([0] == 0).
    num_samples: clip length in samples.
    sample_rate: Hz (4000 for the dataset).
    soundfont: path of the dataset's .sf2 (manifest soundfont.path).
    gain: FluidSynth gain; None = the training dataset's (stored in the config at training).
  """
  baseline = (load_baseline(workdir_or_baseline) if isinstance(workdir_or_baseline, str)
              else workdir_or_baseline)
  notes = transcribe(baseline, frames, frame_start, num_samples)
  if gain is None:
    gain = baseline.config.get("synth_gain")
  return synthesize(notes, num_samples, sample_rate, soundfont, gain)


def checkpoint_steps(workdir: str) -> list[int]:
  """Numbers n of the committed saves `workdir/checkpoint/<n>/`, ascending ([] if none).

  Saves in progress live in temporary folders whose names are not numbers, so they never count.
  """
  path = os.path.join(workdir, CHECKPOINT_DIR)
  names = os.listdir(path) if os.path.isdir(path) else []
  return sorted(int(n) for n in names if n.isdigit() and os.path.isdir(os.path.join(path, n)))


def load_baseline(workdir: str) -> Baseline:
  """Loads the newest baseline save of `workdir` (see the module docstring for the layout).

  Raises:
    BaselineError: no checkpoint, or one of another format.
    checkpointing.CheckpointError: the checkpoint is damaged.
  """
  steps = checkpoint_steps(workdir)
  if not steps:
    raise BaselineError(f"{workdir} has no baseline checkpoint ({CHECKPOINT_DIR}/<n>/); train "
                        "one with `python -m deepsynth_jax.baseline --data_dir=... --workdir=...`")
  step_dir = os.path.join(os.path.abspath(workdir), CHECKPOINT_DIR, str(steps[-1]))
  legacy_config = os.path.join(step_dir, _LEGACY_CONFIG)
  if os.path.isfile(legacy_config):  # the earlier layout: params and config as two orbax items
    params, _ = checkpointing.restore_params(os.path.join(step_dir, "params"))
    with open(legacy_config) as f:
      config = json.load(f)
  else:
    params, config = checkpointing.restore_params(step_dir)
  if config.get("format") != FORMAT:
    raise BaselineError(f"{step_dir} is not a {FORMAT} checkpoint (format "
                        f"{config.get('format')!r}); pass a baseline workdir or retrain")
  return Baseline(params=params, config=config)


def split_frames(data: input_pipeline.DeepSynthData,
                 split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Every frame current during some segment of `split`, once, and the velocities of its notes.

  Read through `data.example` / `data.notes`. Segments overlap (by 2 s in the default dataset),
  so a frame or note is taken from the first segment (by start) that shows it: from a later one
  only if it starts at or after the end of the earlier segments of the song. With
  `--split_by=segment` (gaps between a song's segments in a split), a frame current across a gap
  is taken twice.

  Args:
    data: a loaded dataset.
    split: 'train', 'validation' or 'test'.

  Returns:
    (frames uint8 (N, H, W), frame_keys uint8 (N, 88), note velocities int64 (V,)), in song then
    time order.
  """
  order = sorted((data.segment(split, i), i) for i in range(data.num_examples(split)))
  if not order:
    raise BaselineError(f"split {split!r} of {data.data_dir} has no segments")
  frames, keys, velocities = [], [], []
  song, covered = -1, 0  # samples [0, covered) of `song` are in the segments taken so far
  for (s, start), i in order:
    if s != song:
      song, covered = s, 0
    example = data.example(split, i)
    n = int(example["num_frames"])
    # Frame 0 is the one current at `start` (its frame_start is 0); it is new iff start is.
    new = start + example["frame_start"][:n].astype(np.int64) >= covered
    frames.append(example["frames"][:n][new])
    keys.append(example["frame_keys"][:n][new])
    notes = data.notes(split, i)
    velocities.append(notes[start + notes[:, 0] >= covered, 3])
    covered = start + data.segment_samples
  return np.concatenate(frames), np.concatenate(keys), np.concatenate(velocities)


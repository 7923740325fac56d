"""Transcribe-then-synthesize baseline: read the pressed keys off each frame, play them back.

A small VGG-like Flax CNN classifies every video frame (uint8 (H, W) grayscale keyboard) into 88
independent key states (sigmoid logits, binary cross-entropy, Adam). `transcribe` turns the frames'
key states into notes (a key pressed in frame f but not in frame f - 1 starts a note at
frame_start[f]; it ends at the first frame showing it released, or at the clip's end), and
`baseline_audio` renders those notes with the dataset's SoundFont through `data_gen.synth`.

What it cannot know from the video: velocity (every note gets the training notes' median velocity),
and a key struck again without a frame showing it released in between (one long note instead).
In sparse video a release is only seen at the next key press, so notes end late.

CLI:
  python -m deepsynth_jax.baseline --data_dir=data/deepsynth --workdir=runs/baseline [--steps=N]
trains on the train split's frames, writes `workdir/checkpoint/` (orbax) and `workdir/metrics.json`
(key precision / recall / F1 on the test split at frame and note level, and the audio metrics of
`deepsynth_jax.metrics` on the test segments, with the reference audio's and noise's rows).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

NUM_KEYS = 88
LOWEST_PITCH = 21
DEFAULT_VELOCITY = 80
CHECKPOINT_DIR = "checkpoint"
METRICS_FILE = "metrics.json"
FORMAT = "deepsynth_jax.baseline/1"


class BaselineError(ValueError):
  """Bad input to the baseline (shapes, dtypes, a workdir without a checkpoint...)."""


# ---------------------------------------------------------------------------------------------
# Model


def _model(channels: Sequence[int] = (8, 16, 16), hidden: int = 32, width_pools: int = 0):
  from deepsynth_jax.key_reader import KeyReader

  return KeyReader(channels=tuple(channels), hidden=hidden, width_pools=width_pools)


@dataclasses.dataclass
class Baseline:
  """A trained key classifier: params (pytree) and its config (JSON-able dict with height, width,
  channels, hidden, velocity, threshold)."""
  params: Any
  config: dict

  def model(self):
    return _model(self.config["channels"], self.config["hidden"], self.config["width_pools"])


def _check_frames(frames: Any, height: int | None = None, width: int | None = None) -> np.ndarray:
  f = np.asarray(frames)
  if f.ndim != 3 or f.dtype != np.uint8:
    raise BaselineError(f"frames must be uint8 (F, H, W) grayscale images, got dtype {f.dtype}, "
                        f"shape {f.shape}")
  if height is not None and f.shape[1:] != (height, width):
    raise BaselineError(f"frames are {f.shape[1]}x{f.shape[2]} but the classifier was trained on "
                        f"{height}x{width}; render the video at the training size")
  return f


def predict_keys(baseline: Baseline, frames: Any, batch_size: int = 256) -> np.ndarray:
  """Key states of each frame: uint8 frames (F, H, W) -> bool (F, 88) (column k = MIDI 21 + k)."""
  import jax

  f = _check_frames(frames, baseline.config["height"], baseline.config["width"])
  apply = _jitted_apply(baseline.config["channels"], baseline.config["hidden"],
                        baseline.config["width_pools"])
  out = np.zeros((f.shape[0], NUM_KEYS), bool)
  threshold_logit = float(np.log(baseline.config["threshold"] / (1 - baseline.config["threshold"])))
  for i in range(0, f.shape[0], batch_size):
    chunk = f[i:i + batch_size]
    pad = batch_size - chunk.shape[0]  # fixed batch shape: one compilation
    padded = np.concatenate([chunk, np.zeros((pad,) + chunk.shape[1:], np.uint8)]) if pad else chunk
    logits = np.asarray(jax.device_get(apply(baseline.params, padded)))
    out[i:i + chunk.shape[0]] = logits[:chunk.shape[0]] > threshold_logit
  return out


_APPLY_CACHE: dict = {}


def _jitted_apply(channels, hidden, width_pools):
  import jax

  key = (tuple(channels), int(hidden), int(width_pools))
  if key not in _APPLY_CACHE:
    model = _model(channels, hidden, width_pools)
    _APPLY_CACHE[key] = jax.jit(lambda params, x: model.apply({"params": params}, x))
  return _APPLY_CACHE[key]


# ---------------------------------------------------------------------------------------------
# Training


def unique_frames(frames: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Drops repeated (image, key state) pairs; keeps first occurrences in order."""
  flat = np.concatenate([frames.reshape(frames.shape[0], -1), keys.astype(np.uint8)], axis=1)
  _, first = np.unique(flat, axis=0, return_index=True)
  first = np.sort(first)
  return frames[first], keys[first]


@functools.lru_cache(maxsize=4)
def _train_step(channels: tuple[int, ...], hidden: int, width_pools: int, learning_rate: float):
  """(optimizer, jitted step(params, opt_state, frames, keys) -> (params, opt_state, loss)),
  cached so that repeated trainings of one configuration compile once."""
  import jax
  import optax

  model = _model(channels, hidden, width_pools)
  optimizer = optax.adam(learning_rate)

  @jax.jit
  def step_fn(params, opt_state, x, y):
    def loss_fn(p):
      logits = model.apply({"params": p}, x)
      return optax.sigmoid_binary_cross_entropy(logits, y).mean()
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  return optimizer, step_fn


def init_params(model, image_shape: tuple[int, int], seed: int) -> Any:
  """Initial weights, deterministic from `seed`: He-normal kernels (std sqrt(2 / fan_in)) and
  zero biases, drawn with numpy in a fixed leaf order.

  Shapes come from `jax.eval_shape` (nothing compiled); numpy instead of `jax.random` because
  compiling JAX's threefry sampler once per weight shape costs seconds each on a small CPU.
  """
  import jax
  import jax.numpy as jnp

  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0),
                          jnp.zeros((1,) + tuple(image_shape), jnp.uint8))["params"]
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    name = str(getattr(path[-1], "key", path[-1]))
    if name == "kernel":
      fan_in = int(np.prod(leaf.shape[:-1]))
      return (rng.standard_normal(leaf.shape) * np.sqrt(2.0 / fan_in)).astype(leaf.dtype)
    return np.zeros(leaf.shape, leaf.dtype)

  return jax.tree_util.tree_map_with_path(draw, shapes)


def train_classifier(frames: Any, keys: Any, *, steps: int = 700, batch_size: int = 32,
                     learning_rate: float = 2e-3, seed: int = 0,
                     channels: Sequence[int] = (8, 16, 16), hidden: int = 32,
                     width_pools: int = 0, velocity: int = DEFAULT_VELOCITY,
                     synth_gain: float | None = None, log_every: int = 0) -> Baseline:
  """Trains the key classifier with Adam on binary cross-entropy; deterministic given `seed`.

  Args:
    frames: uint8 (N, H, W) training frames.
    keys: (N, 88) 0/1 key states of those frames (column k = MIDI 21 + k).
    steps, batch_size, learning_rate: optimization (batches are drawn with replacement-free
      shuffles from numpy's default_rng(seed)).
    seed: PRNG seed of the initialization and the batch order.
    channels, hidden, width_pools: model size (see deepsynth_jax.key_reader.KeyReader).
    velocity: MIDI velocity given to transcribed notes (stored in the config).
    synth_gain: the dataset's FluidSynth gain (manifest synth.gain), stored in the config so that
      `baseline_audio` renders at the dataset's loudness; None = data_gen.synth's default.
    log_every: print the loss every this many steps (0: never).

  Returns:
    The trained `Baseline`.
  """
  import jax

  f = _check_frames(frames)
  k = np.asarray(keys)
  if k.shape != (f.shape[0], NUM_KEYS):
    raise BaselineError(f"keys must have shape ({f.shape[0]}, {NUM_KEYS}) to match the frames, "
                        f"got {k.shape}")
  if f.shape[0] == 0 or steps < 1 or batch_size < 1:
    raise BaselineError("training needs at least one frame, steps >= 1 and batch_size >= 1")
  k = k.astype(np.float32)
  config = dict(height=int(f.shape[1]), width=int(f.shape[2]), channels=list(channels),
                hidden=int(hidden), width_pools=int(width_pools), velocity=int(velocity),
                synth_gain=None if synth_gain is None else float(synth_gain),
                threshold=0.5, steps=int(steps),
                batch_size=int(batch_size), learning_rate=float(learning_rate), seed=int(seed),
                num_train_frames=int(f.shape[0]), format=FORMAT)
  model = _model(channels, hidden, width_pools)
  params = init_params(model, f.shape[1:], seed)
  optimizer, step_fn = _train_step(tuple(channels), int(hidden), int(width_pools),
                                   float(learning_rate))
  opt_state = optimizer.init(params)

  rng = np.random.default_rng(seed)
  batch = min(batch_size, f.shape[0])
  order, pos = rng.permutation(f.shape[0]), 0
  for step in range(1, steps + 1):
    if pos + batch > order.shape[0]:
      order, pos = rng.permutation(f.shape[0]), 0
    idx = order[pos:pos + batch]
    pos += batch
    params, opt_state, loss = step_fn(params, opt_state, f[idx], k[idx])
    if log_every and (step % log_every == 0 or step == steps):
      print(f"step {step}/{steps}  bce {float(loss):.5f}", flush=True)
  return Baseline(params=jax.device_get(params), config=config)


# ---------------------------------------------------------------------------------------------
# Save / load (orbax)


def save_baseline(baseline: Baseline, workdir: str) -> str:
  """Writes the params (orbax StandardSave) and config (JSON) to `workdir/checkpoint/<n>/`.

  Each save is a new orbax step n (1, 2, ...), committed atomically; the previous one is removed
  only after it. Returns the step directory.
  """
  import orbax.checkpoint as ocp

  path = os.path.join(os.path.abspath(workdir), CHECKPOINT_DIR)
  manager = ocp.CheckpointManager(path, options=ocp.CheckpointManagerOptions(
      max_to_keep=1, create=True, enable_async_checkpointing=False))
  step = (manager.latest_step() or 0) + 1  # a new step: the previous one goes once this commits
  manager.save(step, args=ocp.args.Composite(params=ocp.args.StandardSave(baseline.params),
                                             config=ocp.args.JsonSave(baseline.config)),
               force=True)
  manager.wait_until_finished()
  manager.close()
  return os.path.join(path, str(step))


def load_baseline(workdir: str) -> Baseline:
  """Loads the newest committed baseline checkpoint of `workdir` (see `save_baseline`)."""
  import orbax.checkpoint as ocp

  path = os.path.join(os.path.abspath(workdir), CHECKPOINT_DIR)
  if not os.path.isdir(path):
    raise BaselineError(f"{workdir} has no baseline checkpoint ({CHECKPOINT_DIR}/); train one with "
                        "`python -m deepsynth_jax.baseline --data_dir=... --workdir=...`")
  manager = ocp.CheckpointManager(path, options=ocp.CheckpointManagerOptions(
      read_only=True, enable_async_checkpointing=False))
  step = manager.latest_step()
  if step is None:
    manager.close()
    raise BaselineError(f"{path} holds no committed checkpoint; retrain the baseline")
  restored = manager.restore(step, args=ocp.args.Composite(params=ocp.args.StandardRestore(),
                                                           config=ocp.args.JsonRestore()))
  manager.close()
  config = dict(restored["config"])
  if config.get("format") != FORMAT:
    raise BaselineError(f"{path} is not a {FORMAT} checkpoint (format {config.get('format')!r})")
  return Baseline(params=restored["params"], config=config)


# ---------------------------------------------------------------------------------------------
# Key states -> notes -> audio


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
  from deepsynth_jax import frames as frames_lib

  keys = np.asarray(key_states)
  if keys.ndim != 2 or keys.shape[1] != NUM_KEYS:
    raise BaselineError(f"key states must have shape (F, {NUM_KEYS}), got {keys.shape}")
  starts = frames_lib.validate_frame_start(frame_start, num_samples)
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
      rows.append((bounds[on], bounds[off], LOWEST_PITCH + k, int(velocity)))
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
  """Renders notes with data_gen.synth (the dataset's renderer) -> float32 (num_samples,) audio,
  cut at the clip's end (release tails past it dropped) or zero-padded."""
  from data_gen import synth
  from deepsynth_jax import audio as audio_lib

  if len(notes) == 0:
    return np.zeros((num_samples,), np.float32)
  settings = synth.SynthSettings(soundfont=soundfont, **({} if gain is None else {"gain": gain}))
  pcm, _ = synth.render_notes(notes, sample_rate, settings)
  out = audio_lib.pcm16_to_float(pcm)[:num_samples]
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


# ---------------------------------------------------------------------------------------------
# Evaluation


def key_scores(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
  """Frame-level key precision / recall / F1 over all (frame, key) pairs (micro-averaged)."""
  p, t = np.asarray(predicted, bool), np.asarray(truth, bool)
  tp = int(np.sum(p & t))
  precision = tp / max(int(p.sum()), 1) if p.any() else float(not t.any())
  recall = tp / max(int(t.sum()), 1) if t.any() else 1.0
  f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
  return dict(precision=float(precision), recall=float(recall), f1=float(f1),
              exact_frames=float(np.mean(np.all(p == t, axis=1))) if p.shape[0] else 1.0)


def note_scores(estimated: np.ndarray, reference: np.ndarray, sample_rate: int,
                onset_tolerance: float = 0.05) -> dict[str, float]:
  """Note-level precision / recall / F1 of estimated vs reference notes (int (M, 4) each):
  mir_eval.transcription onset-only matching (exact key, onsets within 50 ms, offsets ignored).

  Returns:
    dict(precision, recall, f1, matched, num_estimated, num_reference).
  """
  import mir_eval

  from deepsynth_jax.metrics import midi_to_hz

  est, ref = np.asarray(estimated).reshape(-1, 4), np.asarray(reference).reshape(-1, 4)
  matched = 0
  if est.shape[0] and ref.shape[0]:
    def intervals(n):
      on = n[:, 0] / sample_rate
      return np.stack([on, np.maximum(n[:, 1] / sample_rate, on + 1e-3)], axis=1)

    matched = len(mir_eval.transcription.match_notes(
        intervals(ref), midi_to_hz(ref[:, 2]), intervals(est), midi_to_hz(est[:, 2]),
        onset_tolerance=onset_tolerance, offset_ratio=None))
  return {**_prf_from_counts(matched, est.shape[0], ref.shape[0]), "matched": matched,
          "num_estimated": int(est.shape[0]), "num_reference": int(ref.shape[0])}


def _prf_from_counts(matched: int, num_estimated: int, num_reference: int) -> dict[str, float]:
  precision = matched / num_estimated if num_estimated else float(num_reference == 0)
  recall = matched / num_reference if num_reference else float(num_estimated == 0)
  f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
  return dict(precision=float(precision), recall=float(recall), f1=float(f1))


def _write_json_atomic(path: str, obj: Any) -> None:
  tmp = f"{path}.tmp-{os.getpid()}"
  with open(tmp, "w") as f:
    json.dump(obj, f, indent=2, sort_keys=True)
    f.write("\n")
  os.replace(tmp, path)


def split_frames(data: Any, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """All frames current during some segment of `split`, from the song files.

  Args:
    data: a loaded `deepsynth_jax.input_pipeline.DeepSynthData`.
    split: 'train', 'validation' or 'test'.

  Returns:
    (frames uint8 (N, H, W), frame_keys uint8 (N, 88), notes velocities int64 (V,) of the songs).
  """
  manifest, t = data.manifest, data.segment_samples
  segments = np.asarray(manifest["splits"].get(split, []), np.int64).reshape(-1, 2)
  frames, keys, velocities = [], [], []
  for song in np.unique(segments[:, 0]).tolist():
    path = os.path.join(data.data_dir, manifest["songs"][song]["file"])
    with np.load(path, allow_pickle=False) as z:
      song_frames, song_keys = z["frames"], z["frame_keys"]
      starts, notes = z["frame_start"].astype(np.int64), z["notes"]
    ends = np.concatenate([starts[1:], [np.iinfo(np.int64).max]])
    used = np.zeros(starts.shape[0], bool)
    for start in segments[segments[:, 0] == song, 1]:
      used |= (starts < start + t) & (ends > start)
    frames.append(song_frames[used])
    keys.append(song_keys[used])
    velocities.append(notes[:, 3])
  if not frames:
    raise BaselineError(f"split {split!r} of {data.data_dir} has no segments")
  return np.concatenate(frames), np.concatenate(keys), np.concatenate(velocities)


def evaluate(baseline: Baseline, data: Any, split: str, num_segments: int = 0,
             seed: int = 0) -> dict[str, Any]:
  """Key and audio metrics of the baseline on `split` (see the module docstring).

  Args:
    baseline: the trained classifier.
    data: a loaded DeepSynthData.
    split: split to evaluate.
    num_segments: evaluate this many segments spread evenly over the split (0: all).
    seed: seed of the noise row.

  Returns:
    {"frame_keys": key_scores over all frames of the split, "notes": pooled note_scores of the
    segments' transcriptions (notes struck after the first 50 ms of each segment),
    "audio": {"baseline", "reference audio", "white noise (matched RMS)"} mean audio metrics,
    "num_segments"}.
  """
  from deepsynth_jax import metrics

  frames, keys, _ = split_frames(data, split)
  frame_scores = key_scores(predict_keys(baseline, frames), keys)
  n = data.num_examples(split)
  count = n if num_segments <= 0 else min(num_segments, n)
  indices = np.unique(np.round(np.linspace(0, n - 1, count)).astype(int)).tolist()
  sr, t = data.sample_rate, data.segment_samples
  soundfont = data.manifest["soundfont"]["path"]
  edge = int(np.ceil(metrics.CLIP_EDGE_S * sr))
  matched = estimated = reference_count = 0
  audio_rows, references, notes_list = [], [], []
  for i in indices:
    example = data.example(split, i)
    f = int(example["num_frames"])
    notes = data.notes(split, i)
    predicted = transcribe(baseline, example["frames"][:f], example["frame_start"][:f], t)
    counted = note_scores(predicted[predicted[:, 0] >= edge], notes[notes[:, 0] >= edge], sr)
    matched += counted["matched"]
    estimated += counted["num_estimated"]
    reference_count += counted["num_reference"]
    generated = synthesize(predicted, t, sr, soundfont, baseline.config.get("synth_gain"))
    audio_rows.append(metrics.audio_metrics(generated, example["audio"], sr, notes))
    references.append(example["audio"])
    notes_list.append(notes)
  audio = {"baseline": metrics.mean_metrics(audio_rows)}
  audio.update(metrics.reference_and_noise_rows(references, sr, notes_list, seed))
  return {"frame_keys": {**frame_scores, "num_frames": int(frames.shape[0])},
          "notes": {**_prf_from_counts(matched, estimated, reference_count), "matched": matched,
                    "num_estimated": estimated, "num_reference": reference_count},
          "audio": audio, "num_segments": len(indices)}


def main(argv: Sequence[str]) -> None:
  from absl import flags, logging

  from deepsynth_jax import input_pipeline, metrics

  del argv
  logging.set_verbosity(logging.WARNING)  # orbax logs every checkpoint step at INFO
  flag = flags.FLAGS
  began = time.perf_counter()
  data = input_pipeline.load_dataset(flag.data_dir)
  frames, keys, velocities = split_frames(data, "train")
  unique, unique_keys = unique_frames(frames, keys)
  velocity = int(np.median(velocities)) if velocities.size else DEFAULT_VELOCITY
  print(f"train: {frames.shape[0]} frames ({unique.shape[0]} distinct) of size "
        f"{frames.shape[1]}x{frames.shape[2]}; note velocity {velocity}", flush=True)
  loaded = time.perf_counter()
  model = train_classifier(unique, unique_keys, steps=flag.steps, batch_size=flag.batch_size,
                           learning_rate=flag.learning_rate, seed=flag.seed, velocity=velocity,
                           synth_gain=data.manifest.get("synth", {}).get("gain"),
                           log_every=max(1, flag.steps // 10))
  trained = time.perf_counter()
  os.makedirs(flag.workdir, exist_ok=True)
  saved_to = save_baseline(model, flag.workdir)
  print(f"trained in {trained - loaded:.0f} s; checkpoint {saved_to}", flush=True)
  results = evaluate(model, data, flag.eval_split, flag.num_eval_segments, flag.seed)
  evaluated = time.perf_counter()
  results.update(
      split=flag.eval_split, config=model.config, data_dir=os.path.abspath(flag.data_dir),
      train_frames=int(frames.shape[0]), train_distinct_frames=int(unique.shape[0]),
      seconds={"load": round(loaded - began, 1), "train": round(trained - loaded, 1),
               "evaluate": round(evaluated - trained, 1)})
  _write_json_atomic(os.path.join(flag.workdir, METRICS_FILE), results)
  fk, nk = results["frame_keys"], results["notes"]
  print(f"\n{flag.eval_split}: frame-level keys P {fk['precision']:.4f} R {fk['recall']:.4f} "
        f"F1 {fk['f1']:.4f} ({fk['num_frames']} frames); note-level P {nk['precision']:.4f} "
        f"R {nk['recall']:.4f} F1 {nk['f1']:.4f} ({nk['num_reference']} notes)")
  print(f"audio metrics, mean over {results['num_segments']} {flag.eval_split} segments:\n")
  print(metrics.markdown_table(results["audio"]))
  print(f"\nwrote {os.path.join(flag.workdir, METRICS_FILE)} "
        f"({evaluated - began:.0f} s in all)")


def _define_flags() -> None:
  from absl import flags

  flags.DEFINE_string("data_dir", "data/deepsynth", "Dataset directory (manifest.json inside).")
  flags.DEFINE_string("workdir", "runs/baseline", "Where the checkpoint and metrics.json go.")
  flags.DEFINE_integer("steps", 700, "Training steps.")
  flags.DEFINE_integer("batch_size", 32, "Frames per training step.")
  flags.DEFINE_float("learning_rate", 2e-3, "Adam learning rate.")
  flags.DEFINE_integer("seed", 0, "Seed of the initialization, batch order and noise row.")
  flags.DEFINE_string("eval_split", "test", "Split to evaluate on.")
  flags.DEFINE_integer("num_eval_segments", 0,
                       "Evaluate this many segments spread over the split (0: all).")


if __name__ == "__main__":
  from absl import app

  _define_flags()
  app.run(main)

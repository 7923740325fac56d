"""Training of the transcribe-then-synthesize baseline's key classifier, and saving it.

`train_classifier` fits `deepsynth_jax.models.key_reader.KeyReader` to uint8 (N, H, W) frames and
their (N, 88) key states (sigmoid logits, binary cross-entropy, Adam), deterministically given a
seed; `save_baseline` writes the result to a workdir that `transcription.load_baseline` reads.
The training frames of a dataset split come from `split_frames`, made distinct by
`unique_frames`.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from deepsynth_jax import checkpointing
from deepsynth_jax.models.key_reader import NUM_KEYS, KeyReader
from deepsynth_jax.transcription import (
    CHECKPOINT_DIR,
    DEFAULT_VELOCITY,
    FORMAT,
    Baseline,
    BaselineError,
    check_frames,
    checkpoint_steps,
    split_frames,
)

# split_frames lives in transcription (evaluation reads a split's frames too); it is part of
# this module's interface as the reader of the training frames.
__all__ = ["init_params", "make_train_step", "save_baseline", "split_frames", "train_classifier",
           "unique_frames"]


def unique_frames(frames: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Drops repeated (image, key state) pairs of frames (N, H, W) and keys (N, 88); keeps first
  occurrences in order."""
  flat = np.concatenate([frames.reshape(frames.shape[0], -1), keys.astype(np.uint8)], axis=1)
  _, first = np.unique(flat, axis=0, return_index=True)
  first = np.sort(first)
  return frames[first], keys[first]


@functools.lru_cache(maxsize=4)
def make_train_step(channels: tuple[int, ...], hidden: int, width_pools: int,
                    learning_rate: float) -> tuple[optax.GradientTransformation, Callable]:
  """(optimizer, jitted step(params, opt_state, frames, keys) -> (params, opt_state, loss)).

  frames are uint8 (B, H, W), keys float32 (B, 88) 0/1; loss is the mean binary cross-entropy
  (nats) before the update. Cached, so repeated trainings of one configuration compile once.
  """
  model = KeyReader(channels=channels, hidden=hidden, width_pools=width_pools)
  optimizer = optax.adam(learning_rate)

  @jax.jit
  def step(params, opt_state, x, y):
    def loss_fn(p):
      logits = model.apply({"params": p}, x)
      return optax.sigmoid_binary_cross_entropy(logits, y).mean()
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  return optimizer, step


def init_params(model: KeyReader, image_shape: tuple[int, int], seed: int) -> Any:
  """Initial weights, deterministic from `seed`: He-normal kernels (std sqrt(2 / fan_in)) and
  zero biases, drawn with numpy in a fixed leaf order.

  Shapes come from `jax.eval_shape` (nothing compiled); numpy instead of `jax.random` because
  compiling JAX's threefry sampler once per weight shape costs seconds each on a small CPU.
  """
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
    channels, hidden, width_pools: model size (see deepsynth_jax.models.key_reader.KeyReader).
    velocity: MIDI velocity given to transcribed notes (stored in the config).
    synth_gain: the dataset's FluidSynth gain (manifest synth.gain), stored in the config so that
      `transcription.baseline_audio` renders at the dataset's loudness; None = data_gen.synth's
      default.
    log_every: print the loss every this many steps (0: never).

  Returns:
    The trained `Baseline` (params as numpy arrays).
  """
  f = check_frames(frames)
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
  model = KeyReader(channels=tuple(channels), hidden=int(hidden), width_pools=int(width_pools))
  params = init_params(model, f.shape[1:], seed)
  optimizer, step_fn = make_train_step(tuple(channels), int(hidden), int(width_pools),
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


def save_baseline(baseline: Baseline, workdir: str) -> str:
  """Writes the params and config to `workdir/checkpoint/<n>/` (`checkpointing.save_params`).

  Each save is a new n (1, 2, ...), committed atomically; the earlier ones are removed only
  after it. Returns the new save's directory.

  Raises:
    checkpointing.CheckpointError: the write failed (the earlier save is kept).
  """
  root = os.path.join(os.path.abspath(workdir), CHECKPOINT_DIR)
  earlier = checkpoint_steps(workdir)
  path = os.path.join(root, str((earlier[-1] if earlier else 0) + 1))
  checkpointing.save_params(path, baseline.params, baseline.config)
  for step in earlier:
    shutil.rmtree(os.path.join(root, str(step)))
  return path

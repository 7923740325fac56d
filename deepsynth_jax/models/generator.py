"""The interface every video-to-audio model implements.

A `Generator` wraps one Flax module with what training, sampling and evaluation need of it:
parameters from a batch (`init`), a scalar training loss (`loss`), and audio from frames
(`generate`, with the free-running cross-entropy of the true audio where the model defines one).
`autoregressive` says whether the model feeds back its own samples (a WaveNet) or generates a
whole clip in one pass.

Batches (from `deepsynth_jax.input_pipeline`): `audio` float32 (B, T) in [-1, 1] at 4 kHz,
`frames` uint8 (B, F, H, W), `frame_index` and `frame_age` int32 (B, T) (the frame current at each
sample and the samples since it began), `example_id` int32 (B,), `frame_keys` uint8 (B, F, 88),
`num_frames` int32 (B,) and `press_frames` bool (B,) (whether the clip's frames mark key presses,
as sparse video does, or are a camera's clock ticks). A model reads only the keys it needs.

To add a model: one module defining its Flax module and a `Generator` subclass, and one line in
`deepsynth_jax.models.REGISTRY`.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar, NamedTuple

import flax.errors
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

Batch = dict[str, Any]
Params = Any


class GeneratedAudio(NamedTuple):
  """What `Generator.generate` returns.

  Attributes:
    audio: float32 (B, T) in [-1, 1] at the model's sample rate.
    cross_entropy: float32 (B,) free-running cross-entropy of the given true audio, nats per
      sample (each true bucket scored while the model runs on its own output), or None when no
      true audio was given.
  """

  audio: jax.Array
  cross_entropy: jax.Array | None


class Generator(abc.ABC):
  """A model from video frames to audio: its Flax module and how it is trained and run."""

  autoregressive: ClassVar[bool]

  def __init__(self, config: ml_collections.ConfigDict, sample_rate: int = 4000):
    self.config = config
    self.sample_rate = int(sample_rate)
    self.module = self.build_module()

  @abc.abstractmethod
  def build_module(self) -> nn.Module:
    """The Flax module, from `self.config`."""

  @abc.abstractmethod
  def module_inputs(self, batch: Batch) -> tuple[Any, ...]:
    """The module's positional inputs for a batch (what `init` traces with)."""

  @property
  def uses_key_labels(self) -> bool:
    """Whether training reads the simulator's key states (`frame_keys`), which no real video
    has; recorded in every run's run.json."""
    return False

  @property
  def batch_fields(self) -> tuple[str, ...]:
    """The batch keys that `init` and `loss` read (training passes no others)."""
    return ("audio", "frames", "frame_index", "frame_age", "example_id")

  def select_fields(self, batch: Batch) -> Batch:
    """`batch` without the keys this model does not read (e.g. key labels it must not see)."""
    return {k: v for k, v in batch.items() if k in self.batch_fields}

  def init(self, rng: jax.Array, batch: Batch) -> Params:
    """Initial parameters, shaped from one (un-sharded) batch."""
    # One compiled init instead of many small eagerly compiled ops.
    return jax.jit(self.module.init)(rng, *self.module_inputs(batch))["params"]

  @abc.abstractmethod
  def loss(self, params: Params, batch: Batch, *, train: bool,
           keys: jax.Array | None = None) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Scalar training objective and metrics (each a scalar mean over the batch).

    `metrics["loss"]` is the reported loss and `metrics["cross_entropy"]` the bucket
    cross-entropy in nats per sample (teacher-forced where the model has audio input).
    `keys`: (B,) per-example PRNG keys for training randomness (`example_keys`).
    """

  def loss_and_grad(self, params: Params, batch: Batch, *, keys: jax.Array
                    ) -> tuple[tuple[jax.Array, dict[str, jax.Array]], Params]:
    """`((loss, metrics), gradient of loss)` of `loss(params, batch, train=True, keys=keys)`:
    what a training step differentiates. A model may compute it another way that gives the same
    values to float rounding (the WaveNet's cache-blocked windows, `wavenet.train_window`)."""
    return jax.value_and_grad(lambda p: self.loss(p, batch, train=True, keys=keys),
                              has_aux=True)(params)

  @abc.abstractmethod
  def generate(self, params: Params, frames: Any, frame_index: Any, frame_age: Any, *,
               seed: int = 0, temperature: float = 1.0, greedy: bool = False,
               true_audio: Any = None, example_ids: Any = None,
               press_frames: Any = True) -> GeneratedAudio:
    """Audio for a batch of clips, from their frames alone.

    Args:
      params: the module's parameters.
      frames: uint8 (B, F, H, W); frame_index, frame_age: int32 (B, T).
      press_frames: bool (B,) or scalar: the frames mark key presses (sparse video) rather than
        a camera's fixed frame rate; a model that does not distinguish ignores it.
      seed, temperature, greedy: sampling controls (an example's samples depend only on
        (seed, example_ids[b], its inputs)); a model without sampling ignores them.
      true_audio: optional float32 (B, T): also score it (`GeneratedAudio.cross_entropy`).
      example_ids: int (B,) keys of each example's random numbers (default 0..B-1).
    """

  def params_mismatch(self, params: Params, frame_shape: tuple[int, int],
                      num_samples: int = 64) -> str | None:
    """Why `params` cannot run on frames of `frame_shape` (H, W), or None if they can.

    Traced on abstract inputs (nothing runs): a mismatch is parameters of another architecture
    or of another frame size.
    """
    batch = {"audio": jax.ShapeDtypeStruct((1, num_samples), jnp.float32),
             "frames": jax.ShapeDtypeStruct((1, 1, *frame_shape), jnp.uint8),
             "frame_index": jax.ShapeDtypeStruct((1, num_samples), jnp.int32),
             "frame_age": jax.ShapeDtypeStruct((1, num_samples), jnp.int32)}
    try:
      jax.eval_shape(lambda p, b: self.module.apply({"params": p}, *self.module_inputs(b)),
                     params, batch)
    except flax.errors.FlaxError as e:
      return " ".join(str(e).split(" (https://")[0].split())
    return None


def example_keys(base_key: jax.Array, step: jax.Array, example_id: jax.Array) -> jax.Array:
  """Per-example PRNG keys for one step: independent of batch order and device count."""
  step_key = jax.random.fold_in(base_key, step)
  return jax.vmap(lambda i: jax.random.fold_in(step_key, i))(example_id)

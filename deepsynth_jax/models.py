"""Model registry: builds the configured generator and its training loss.

Every model maps a batch from `deepsynth_jax.input_pipeline` to a scalar loss. Batch keys used here:
`audio` float32 (B, T) in [-1, 1] at 4 kHz, `frames` uint8 (B, F, H, W), `frame_index` and
`frame_age` int32 (B, T), `example_id` int32 (B,); the parallel model's loss also uses
`frame_keys` uint8 (B, F, 88) and `num_frames` int32 (B,).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from deepsynth_jax import audio as audio_lib
from deepsynth_jax import wavenet

MODELS = ("wavenet", "parallel")
Batch = dict[str, jax.Array]


def build_model(config: ml_collections.ConfigDict, sample_rate: int = 4000) -> nn.Module:
  """The Flax module named by `config.model`."""
  use_video = config.conditioning.get("use_video", True)  # absent in runs made before the flag
  common = dict(
      cond_features=config.conditioning.features,
      encoder_channels=tuple(config.encoder.channels),
      encoder_convs_per_block=config.encoder.convs_per_block,
      encoder_features=config.encoder.features,
      encoder_input_pool=config.encoder.input_pool,
      use_previous_frame=config.conditioning.use_previous_frame,
      use_frame_age=config.conditioning.use_frame_age and use_video,
      num_age_features=config.conditioning.num_age_features,
      sample_rate=sample_rate,
  )
  if config.model == "wavenet":
    c = config.wavenet
    return wavenet.WaveNet(num_layers=c.num_layers, layers_per_stack=c.layers_per_stack,
                           channels=c.channels, skip_channels=c.skip_channels,
                           use_video=use_video, **common)
  if config.model == "parallel":
    if not use_video:
      raise ValueError("the parallel model has no input but the video; keep "
                       "conditioning.use_video=True")
    from deepsynth_jax import parallel_model
    c = config.parallel
    return parallel_model.ParallelGenerator(
        envelope_hidden=c.envelope_hidden, envelope_layers=c.envelope_layers,
        num_harmonics=c.num_harmonics, key_channels=tuple(c.key_channels),
        key_hidden=c.key_hidden, num_age_features=config.conditioning.num_age_features,
        sample_rate=sample_rate)
  raise ValueError(f"unknown model {config.model!r}; set --config.model to one of {MODELS}")


def init_params(model: nn.Module, config: ml_collections.ConfigDict, rng: jax.Array,
                batch: Batch) -> Any:
  """Initial parameters, shaped from one (un-sharded) batch."""
  inputs = (batch["frames"], batch["frame_index"], batch["frame_age"])
  if config.model == "wavenet":
    buckets = audio_lib.quantize(jnp.asarray(batch["audio"]), config.quantization)
    inputs = (wavenet.audio_input_tokens(buckets), *inputs)
  # One compiled init instead of many small eagerly compiled ops.
  return jax.jit(model.init)(rng, *inputs)["params"]


def example_keys(base_key: jax.Array, step: jax.Array, example_id: jax.Array) -> jax.Array:
  """Per-example PRNG keys for one step: independent of batch order and device count."""
  step_key = jax.random.fold_in(base_key, step)
  return jax.vmap(lambda i: jax.random.fold_in(step_key, i))(example_id)


def loss_fn(model: nn.Module, params: Any, batch: Batch, config: ml_collections.ConfigDict,
            *, train: bool, keys: jax.Array | None = None) -> tuple[jax.Array, dict[str, Any]]:
  """Mean loss over the batch's samples, and metrics (each a scalar mean).

  For the WaveNet the loss is the teacher-forced softmax cross-entropy in nats per sample, with
  audio-input dropout when `train` (keys: (B,) per-example keys from `example_keys`).
  """
  if config.model == "wavenet":
    buckets = audio_lib.quantize(batch["audio"], config.quantization)
    rate = config.wavenet.audio_dropout if train else 0.0
    tokens = wavenet.audio_input_tokens(buckets, rate, keys if rate > 0 else None)
    logits = model.apply({"params": params}, tokens, batch["frames"], batch["frame_index"],
                         batch["frame_age"])
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, buckets)
    accuracy = jnp.mean(jnp.argmax(logits, -1) == buckets)
    loss = jnp.mean(ce)
    return loss, {"loss": loss, "cross_entropy": loss, "accuracy": accuracy}
  from deepsynth_jax import parallel_model
  return parallel_model.loss_fn(model, params, batch, config, train=train)

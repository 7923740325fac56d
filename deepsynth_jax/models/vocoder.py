"""The vocoder: a WaveNet plays a frozen KeySynth's audio as a piano (video -> KeySynth -> WaveNet).

KeySynth (`keysynth.py`) plays the notes the video shows, as sine partials; the method's WaveNet
(`wavenet.py`) has the piano's timbre but, free-running, no notes. Here a trained KeySynth reads the
clip and synthesizes its audio a (B, T) in one pass; a small non-causal conv stack turns a into
per-sample features (B, T, D) (it may look ahead: the whole clip's KeySynth audio is known before
sampling starts); and a WaveNet with per-sample conditioning (`WaveNet.use_sample_cond`) predicts
the 256 mu-law buckets of the true audio from its previous buckets and those features, i.e. learns
the piano's sound on top of KeySynth's notes. Training is the WaveNet's: teacher-forced softmax
cross-entropy with audio-input dropout; generation is the autoregressive `lax.scan` sampler (for
the anchored "gain" head, a block of `anchor_block` samples per iteration).

Anchored (`config.vocoder.anchored`): the WaveNet's distribution is a Gaussian over the buckets
around gain x anchor (`WaveNet.anchored_output`), where the anchor is the KeySynth audio plus a
learned correction from the conv stack (zero at initialization), the width comes from the
per-sample features and the gain from the WaveNet stack every `anchor_block` samples. The
waveform then comes from the video through KeySynth; the past audio sets the loudness a note was
struck with, which the video does not show. With `config.vocoder.level_loss` > 0 the gain is
trained on the loudness it gives (`wavenet.anchored_level_loss`, that weight times it added to
the cross-entropy), not through the logits. With `config.vocoder.anchor_mean="residual"` there is
no gain: the mean is the anchor plus the stack's per-sample residual, and the width is trained by
the anchor's own cross-entropy (added to the loss as "anchor_cross_entropy"), the error it has
when the residual has nothing to add, as free-running.

Scheduled sampling (`config.vocoder.own_samples` > 0): in training, that fraction of a batch's
examples (drawn per example from its key) is fed, as its past audio, the model's own greedy
samples of the clip (the `lax.scan` sampler with the current parameters, no gradient through
it) instead of the recording, and still scored against the recording: the model learns what to
play after its own past, which is what it is fed when it generates.

The KeySynth is frozen: its architecture comes from its run's run.json
(`config.vocoder.keysynth_run`) and its best parameters are copied, at `init`, into the vocoder's
own parameters (`params["keysynth"]`), so a vocoder checkpoint holds the KeySynth it was trained
with. The loss stops their gradient, so an optimizer without weight decay leaves them unchanged.
The vocoder's training reads no key labels; it `uses_key_labels` exactly when its KeySynth did.

Shapes: B batch, T audio samples (4 kHz), F frames (uint8 H x W), D feature channels.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from deepsynth_jax import audio as audio_lib
from deepsynth_jax import checkpointing
from deepsynth_jax.audio import audio_input_tokens
from deepsynth_jax.models import autoregressive
from deepsynth_jax.models.generator import GeneratedAudio, Generator
from deepsynth_jax.models.keysynth import (
  KeySynth,
  KeySynthGenerator,
  check_crops_on_grid,
  press_frames_of,
)
from deepsynth_jax.models.wavenet import WaveNet, anchored_level_loss, wavenet_from_config

Array = jax.Array
# Folded into an example's key to draw whether it is fed the model's own samples (a stream apart
# from the audio-input dropout's, which uses the key itself).
_OWN_SAMPLES_STREAM = 1


class Vocoder(nn.Module):
  """KeySynth -> non-causal features -> WaveNet with per-sample conditioning.

  Attributes:
    keysynth: the frozen KeySynth (its parameters are params["keysynth"]).
    wavenet: a WaveNet with `use_sample_cond=True` (params["wavenet"]).
    cond_layers: convolutions over the KeySynth audio (0: the features are the audio itself and
      its mu-law companding, D = 2).
    cond_channels: D, their channels.
    cond_kernel: their (odd) kernel size in samples; "same" padding, so each layer sees
      (cond_kernel - 1) / 2 samples ahead and behind.
    anchored: prepend the anchor (KeySynth audio + a learned correction from the features) as
      feature 0, for a WaveNet with `anchored_output`.
    correct_anchor: False makes the anchor the KeySynth audio itself (no learned correction).
  """

  keysynth: KeySynth
  wavenet: WaveNet
  cond_layers: int = 2
  cond_channels: int = 32
  cond_kernel: int = 9
  anchored: bool = False
  correct_anchor: bool = True

  def setup(self):
    self.cond_convs = [nn.Conv(self.cond_channels, (self.cond_kernel,), padding="SAME")
                       for _ in range(self.cond_layers)]
    if self.anchored and self.cond_layers and self.correct_anchor:
      self.anchor_correction = nn.Dense(1, kernel_init=nn.initializers.zeros_init())

  def keysynth_audio(self, frames: Array, frame_index: Array, frame_age: Array,
                     press_frames: Array | bool = True) -> Array:
    """uint8 (B, F, H, W) frames and their timing, int32 (B, T) -> KeySynth's float32 (B, T)
    audio in ~[-1, 1] (no gradient)."""
    return jax.lax.stop_gradient(self.keysynth(frames, frame_index, frame_age, press_frames))

  def sample_features(self, keysynth_audio: Array) -> Array:
    """float32 (B, T) KeySynth audio -> float32 (B, T, D) per-sample conditioning features
    (D + 1 when anchored: the anchor, audio in ~[-1, 1], first)."""
    a = jnp.clip(keysynth_audio, -1.0, 1.0)
    x = jnp.stack([a, audio_lib.mu_law_compand(a)], axis=-1)
    for conv in self.cond_convs:
      x = jnp.tanh(conv(x))
    if not self.anchored:
      return x
    corrected = self.cond_layers and self.correct_anchor
    anchor = a + self.anchor_correction(x)[..., 0] if corrected else a
    return jnp.concatenate([anchor[..., None], x], axis=-1)

  def conditioning(self, frames: Array, frame_index: Array, frame_age: Array,
                   press_frames: Array | bool = True) -> Array:
    """The clip's per-sample features (B, T, D): one KeySynth pass, then the conv stack."""
    return self.sample_features(self.keysynth_audio(frames, frame_index, frame_age, press_frames))

  def __call__(self, tokens: Array, frames: Array, frame_index: Array, frame_age: Array,
               press_frames: Array | bool = True, return_head: bool = False) -> Any:
    """Teacher-forced logits float32 (B, T, 256) from input tokens int32 (B, T)
    (`audio_input_tokens`), frames uint8 (B, F, H, W), frame_index and frame_age int32 (B, T)
    and press_frames bool (B,) or scalar; with `return_head` (anchored), also the WaveNet's head
    dict (`WaveNet.__call__`) with the anchor float32 (B, T) added as "anchor"."""
    features = self.conditioning(frames, frame_index, frame_age, press_frames)
    return self.logits_from_features(tokens, frames, frame_index, frame_age, features,
                                     return_head)

  def logits_from_features(self, tokens: Array, frames: Array, frame_index: Array,
                           frame_age: Array, features: Array, return_head: bool = False) -> Any:
    """As `__call__`, from the clip's `conditioning` features float32 (B, T, D) computed
    beforehand."""
    if not return_head:
      return self.wavenet(tokens, frames, frame_index, frame_age, features)
    logits, head = self.wavenet(tokens, frames, frame_index, frame_age, features,
                                return_head=True)
    return logits, {**head, "anchor": features[..., 0]}


def keysynth_run_config(record: dict, run_dir: str, sample_rate: int) -> ml_collections.ConfigDict:
  """The config in a KeySynth run's record (`checkpointing.read_run_record(run_dir)`), checked to
  be a KeySynth trained at `sample_rate`.

  Raises:
    checkpointing.CheckpointError: not a KeySynth run, or one of another sample rate.
  """
  config = checkpointing.config_from_record(record)
  if config.get("model") != "keysynth":
    raise checkpointing.CheckpointError(
        f"config.vocoder.keysynth_run={run_dir} is a {config.get('model')!r} run; pass the "
        "directory of a trained KeySynth (model='keysynth')")
  rate = int(record.get("data", {}).get("sample_rate", sample_rate))
  if rate != sample_rate:
    raise checkpointing.CheckpointError(
        f"the KeySynth in {run_dir} was trained at {rate} Hz but the vocoder's data is at "
        f"{sample_rate} Hz; train a KeySynth on this dataset")
  return config


class VocoderGenerator(Generator):
  """The two-stage model: a frozen KeySynth's audio conditions a WaveNet, sample by sample."""

  autoregressive = True

  def build_module(self) -> Vocoder:
    config, c = self.config, self.config.vocoder
    if config.wavenet.get("train_window", 0):
      raise ValueError(f"config.wavenet.train_window={config.wavenet.train_window}: windowed "
                       "training is the plain WaveNet's (model='wavenet'); the vocoder trains on "
                       "whole clips, set it to 0")
    opt = config.get("optimizer", {})
    if opt.get("name") == "adamw" and opt.get("weight_decay", 0.0) > 0:
      raise ValueError(f"optimizer.weight_decay={opt.weight_decay} would decay the frozen "
                       "KeySynth's parameters inside the vocoder's; set it to 0")
    self.keysynth_run = os.path.expanduser(str(c.keysynth_run))
    record = checkpointing.read_run_record(self.keysynth_run)
    keysynth_config = keysynth_run_config(record, self.keysynth_run, self.sample_rate)
    # The voices the vocoder was trained with, whatever the KeySynth run's record says now.
    keysynth_config.keysynth.max_voices = int(c.get("keysynth_max_voices", 0))
    keysynth_config.keysynth.release_ms = float(c.get("keysynth_release_ms", 0.0))
    # The vocoder's crops feed its KeySynth: they must start on that KeySynth's onset grid.
    check_crops_on_grid(config, int(keysynth_config.keysynth.get("onset_grid", 0)))
    keysynth = KeySynthGenerator(keysynth_config, self.sample_rate)
    recorded = checkpointing.learned_from(record)["uses_key_labels"]
    self._keysynth_uses_key_labels = (keysynth.uses_key_labels if recorded is None
                                      else bool(recorded))
    anchored = bool(c.get("anchored", False))  # absent in runs made before it
    anchor_mean = str(c.get("anchor_mean", "gain"))
    self.anchor_residual = anchored and anchor_mean == "residual"
    self.level_loss_weight = float(c.get("level_loss", 0.0))
    if self.level_loss_weight < 0 or (self.level_loss_weight and not anchored):
      raise ValueError(f"config.vocoder.level_loss={self.level_loss_weight} needs "
                       "vocoder.anchored and must be >= 0")
    self.own_samples_rate = float(c.get("own_samples", 0.0))
    if not 0.0 <= self.own_samples_rate <= 1.0:
      raise ValueError(f"config.vocoder.own_samples={self.own_samples_rate} is a fraction of "
                       "the examples: use a value in [0, 1]")
    if self.level_loss_weight and self.anchor_residual:
      raise ValueError("config.vocoder.level_loss trains the gain of anchor_mean='gain'; "
                       "anchor_mean='residual' has none (set level_loss=0)")
    if anchored and config.quantization != "mu_law":
      raise ValueError(f"config.vocoder.anchored centres its Gaussian on mu-law buckets; set "
                       f"config.quantization='mu_law' (got {config.quantization!r})")
    wavenet = wavenet_from_config(config, self.sample_rate, use_video=bool(c.frame_encoder),
                                  use_frame_age=bool(config.conditioning.use_frame_age),
                                  use_sample_cond=True, anchored_output=anchored,
                                  anchor_block=int(c.get("anchor_block", 64)),
                                  anchor_level_gain=self.level_loss_weight > 0,
                                  anchor_mean=anchor_mean)
    if c.cond_kernel < 1 or c.cond_kernel % 2 == 0:
      raise ValueError(f"config.vocoder.cond_kernel={c.cond_kernel} must be odd and >= 1")
    return Vocoder(keysynth=keysynth.module, wavenet=wavenet, cond_layers=c.cond_layers,
                   cond_channels=c.cond_channels, cond_kernel=c.cond_kernel, anchored=anchored,
                   correct_anchor=bool(c.get("anchor_correction", True)))

  @property
  def uses_key_labels(self) -> bool:
    """The vocoder's training reads none; its frozen KeySynth may have (its run.json says)."""
    return self._keysynth_uses_key_labels

  @property
  def batch_fields(self) -> tuple[str, ...]:
    return ("audio", "frames", "frame_index", "frame_age", "example_id", "press_frames")

  def module_inputs(self, batch: dict) -> tuple[Any, ...]:
    buckets = audio_lib.quantize(jnp.asarray(batch["audio"]), self.config.quantization)
    return (audio_input_tokens(buckets), batch["frames"], batch["frame_index"],
            batch["frame_age"], press_frames_of(batch))

  def init(self, rng: jax.Array, batch: dict) -> Any:
    """Fresh conv-stack and WaveNet parameters; params["keysynth"] are the KeySynth run's."""
    params = dict(super().init(rng, batch))
    trained = checkpointing.best_params(self.keysynth_run)
    fresh = params["keysynth"]
    shapes = lambda tree: jax.tree.map(lambda x: tuple(np.shape(x)), tree)
    if (jax.tree.structure(trained) != jax.tree.structure(fresh)
        or shapes(trained) != shapes(fresh)):
      raise checkpointing.CheckpointError(
          f"the parameters in {self.keysynth_run} do not fit its run.json's KeySynth on frames "
          f"of shape {tuple(np.shape(batch['frames'])[2:])}: re-train the KeySynth on this data")
    params["keysynth"] = jax.tree.map(lambda t, f: jnp.asarray(t, f.dtype), trained, fresh)
    return params

  def loss(self, params: Any, batch: dict, *, train: bool,
           keys: jax.Array | None = None) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Softmax cross-entropy of the recording in nats per sample, teacher-forced (when `train`:
    audio-input dropout, and the model's own samples as the past of `own_samples` of the
    examples; keys: (B,) per-example keys), plus the anchored head's extra term if any. The
    KeySynth parameters get no gradient."""
    params = {**params, "keysynth": jax.lax.stop_gradient(params["keysynth"])}
    buckets = audio_lib.quantize(batch["audio"], self.config.quantization)
    rate = self.config.wavenet.audio_dropout if train else 0.0
    clip = (batch["frames"], batch["frame_index"], batch["frame_age"])
    # One KeySynth pass serves the sampler (scheduled sampling) and the teacher-forced forward.
    features = self.module.apply({"params": params}, *clip, press_frames_of(batch),
                                 method=Vocoder.conditioning)
    inputs = buckets
    if train and self.own_samples_rate > 0:
      inputs = self._own_samples_mixed_in(params, clip, features, buckets, keys)
    tokens = audio_input_tokens(inputs, rate, keys if rate > 0 else None)
    apply = lambda **kw: self.module.apply({"params": params}, tokens, *clip, features,
                                           method=Vocoder.logits_from_features, **kw)
    cross_entropy = lambda logits: jnp.mean(
        optax.softmax_cross_entropy_with_integer_labels(logits, buckets))
    metrics, extra = {}, 0.0
    if self.level_loss_weight or self.anchor_residual:
      logits, head = apply(return_head=True)
      if self.anchor_residual:
        metrics["anchor_cross_entropy"] = extra = cross_entropy(head["anchor_logits"])
      else:
        metrics["level_loss"] = anchored_level_loss(head["gain"], head["anchor"], batch["audio"],
                                                    self.module.wavenet.anchor_block)
        extra = self.level_loss_weight * metrics["level_loss"]
    else:
      logits = apply()
    ce = cross_entropy(logits)
    accuracy = jnp.mean(jnp.argmax(logits, -1) == buckets)
    loss = ce + extra
    return loss, {"loss": loss, "cross_entropy": ce, "accuracy": accuracy, **metrics}

  def _own_samples_mixed_in(self, params: Any, clip: tuple[Any, ...], features: Array,
                            buckets: Array, keys: Array) -> Array:
    """int32 (B, T) input buckets: for a random `own_samples_rate` of the examples (drawn from
    their keys (B,)), the model's own greedy samples of the clip (frames, frame_index, frame_age)
    on its `conditioning` features (no gradient), else the true `buckets` (B, T)."""
    if keys is None:
      raise ValueError("config.vocoder.own_samples draws its examples from per-example keys; "
                       "pass keys=models.example_keys(...) with train=True")
    own = autoregressive.generate(self.module.wavenet, jax.lax.stop_gradient(params["wavenet"]),
                                  *clip, greedy=True, quantization=self.config.quantization,
                                  sample_cond=jax.lax.stop_gradient(features))
    use_own = jax.vmap(lambda k: jax.random.bernoulli(
        jax.random.fold_in(k, _OWN_SAMPLES_STREAM), self.own_samples_rate))(keys)
    return jnp.where(use_own[:, None], own.buckets, buckets)

  def conditioning(self, params: Any, frames: Any, frame_index: Any, frame_age: Any,
                   press_frames: Any = True) -> jax.Array:
    """The per-sample features float32 (B, T, D) the WaveNet is conditioned on (one KeySynth
    pass and the conv stack)."""
    frames = jnp.asarray(frames)
    press = jnp.broadcast_to(jnp.asarray(press_frames, jnp.bool_), frames.shape[:1])
    return _conditioning(self.module, params, frames, jnp.asarray(frame_index, jnp.int32),
                         jnp.asarray(frame_age, jnp.int32), press)

  def generate(self, params: Any, frames: Any, frame_index: Any, frame_age: Any, *,
               seed: int = 0, temperature: float = 1.0, greedy: bool = False,
               true_audio: Any = None, example_ids: Any = None,
               press_frames: Any = True) -> GeneratedAudio:
    """KeySynth's audio for the whole clip, then the WaveNet sampled on it autoregressively
    (`autoregressive.generate`: same seed / temperature / greedy / example_ids semantics as the
    method's WaveNet; free-running cross-entropy of `true_audio` when given)."""
    features = self.conditioning(params, frames, frame_index, frame_age, press_frames)
    out = autoregressive.generate(self.module.wavenet, params["wavenet"], frames, frame_index,
                                  frame_age, temperature=temperature, seed=seed, greedy=greedy,
                                  true_audio=true_audio, example_ids=example_ids,
                                  quantization=self.config.quantization, sample_cond=features)
    return GeneratedAudio(audio=jnp.clip(out.audio, -1.0, 1.0), cross_entropy=out.cross_entropy)


@functools.partial(jax.jit, static_argnames=("module",))
def _conditioning(module: Vocoder, params: Any, frames: jax.Array, frame_index: jax.Array,
                  frame_age: jax.Array, press_frames: jax.Array) -> jax.Array:
  return module.apply({"params": params}, frames, frame_index, frame_age, press_frames,
                      method=Vocoder.conditioning)

"""Autoregressive sampling from the WaveNet, and the free-running loss.

Shapes: B batch, T audio samples (4 kHz), F frames (uint8 H x W), L layers, C channels.

`generate` runs the model's incremental forward (`WaveNet.init_state` / `WaveNet.step`, one queue
per layer holding its last `dilation` inputs, so O(layers) work per sample) as a single jitted
`jax.lax.scan` over time. The frame encoder and every layer's conditioning projection
(`WaveNet.frame_conditioning`, (B, F, L, 2C)) are computed for all frames before the scan; each
step gathers only its current frame's row. The random numbers are drawn before the scan as well,
so no step does host work. With per-sample conditioning (`sample_cond` (B, T, D), a WaveNet with
`use_sample_cond`), every layer's projection of it (`WaveNet.sample_conditioning`, (T, B, L, 2C):
projected time-major, so that no copy of it is transposed) is likewise computed for all samples
before the scan, and step t reads its row t (with the raw features' first column, the anchor of
an anchored head).

For a WaveNet whose samples depend on the audio so far only through a gain per block (the
anchored "gain" head, `WaveNet.gains_by_block`), `generate` runs one iteration per block instead
(`_gain_block_scan`): the gain at the block's first sample from the stack evaluated where that
sample reads it (`WaveNet.log_gain_at`), then the whole block's samples at once, with the same
random numbers: the same samples as the per-sample scan.

Sampling draws one uniform u per example and step, the t-th number of the example's stream
`fold_in(key(seed), example_id)`, and inverts the cumulative distribution of
softmax(logits / temperature), so an example's samples depend only on (seed, example_id, its
inputs): not on the batch it is in, nor on how many samples are generated after it. Greedy
decoding (`greedy=True` or `temperature=0`) takes the argmax.

Free-running loss (the method's test metric): given the true audio, each step also scores the
TRUE bucket under the model's distribution (softmax of the logits, temperature 1) while the model
is fed its OWN previous samples; the mean over samples is the free-running cross-entropy in nats.

`naive_generate` is the reference: each step re-runs the parallel forward over the last
receptive-field window of tokens (for tests and the speed-up benchmark).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.extend.random as jax_random_ext
import jax.numpy as jnp
import numpy as np

from deepsynth_jax import audio as audio_lib
from deepsynth_jax import host_devices

Array = jax.Array

# Time steps per iteration of the scan's loop; unrolling 2 or 4 was slower on CPU (XLA:CPU).
DEFAULT_UNROLL = 1


class Generation(NamedTuple):
  """Output of `generate` / `naive_generate`.

  Attributes:
    buckets: int32 (B, T) generated buckets 0..255.
    audio: float32 (B, T) the buckets dequantized to [-1, 1] at the model's sample rate.
    cross_entropy: float32 (B,) free-running cross-entropy (nats per sample) of the true audio,
      or None when no true audio was given.
    sample_cross_entropy: float32 (B, T) its per-sample terms, or None.
  """

  buckets: Array
  audio: Array
  cross_entropy: Array | None
  sample_cross_entropy: Array | None


# ---- pieces shared by the fast and the naive sampler ------------------------------------------


def step_uniforms(seed: int | Array, example_ids: Array, num_samples: int) -> Array:
  """float32 (T, B) uniforms in [0, 1): u[t, b] = uniform(fold_in(key(seed), id_b), (T,))[t].

  JAX's threefry is counter-based (jax_threefry_partitionable, the default), so u[t, b] depends
  on (seed, id_b, t) only: the first T' < T steps get the same numbers as a T'-step run.
  """
  base = jax.random.key(seed)
  per_example = lambda i: jax.random.uniform(jax.random.fold_in(base, i), (num_samples,))
  return jax.vmap(per_example, out_axes=1)(example_ids.astype(jnp.uint32))


def _example_ids(example_ids: Any, batch: int) -> Array:
  if example_ids is None:
    return jnp.arange(batch, dtype=jnp.int32)
  ids = np.asarray(example_ids)
  if ids.shape != (batch,) or not np.issubdtype(ids.dtype, np.integer):
    raise ValueError(f"example_ids must be int (B,) = ({batch},), got {ids.dtype} {ids.shape}")
  return jnp.asarray(ids, jnp.int32)


def _cumsum_256(p: Array) -> Array:
  """Inclusive prefix sums of (B, 256) as 16 blocks of 16, with two small triangular matmuls.

  (XLA on CPU lowers jnp.cumsum to a quadratic reduce-window; this is ~30x less work.)
  """
  batch = p.shape[0]
  blocks = p.reshape(batch, 16, 16)
  upper = jnp.triu(jnp.ones((16, 16), p.dtype))       # upper[i, j] = 1 where i <= j
  within = blocks @ upper                              # prefix sums inside each block
  before = within[:, :, -1] @ (upper - jnp.eye(16, dtype=p.dtype))  # mass of earlier blocks
  return (within + before[:, :, None]).reshape(batch, 256)


def sample_from_logits(logits: Array, u: Array, temperature: Array,
                       greedy: bool | Array, log_widths: Any = None) -> Array:
  """Buckets (B,) int32 from logits (B, 256) and uniforms u (B,) in [0, 1).

  Inverse-CDF sampling of softmax(logits / temperature), or the argmax where `greedy` (a traced
  bool, so that greedy and sampled decoding share one compilation). With `log_widths` (256,)
  the logits are a log-density plus the buckets' log widths (the WaveNet's anchored head):
  temperature and greedy then act on the density, softmax(density / temperature + log_widths)
  and argmax(density), so that greedy decoding is the density's mode, not the widest bucket's.
  """
  if log_widths is not None:
    density = logits - log_widths
    z = density / temperature + log_widths
    logits = density
  else:
    z = logits / temperature
  p = jnp.exp(z - jnp.max(z, axis=-1, keepdims=True))
  cdf = _cumsum_256(p)
  # The first bucket whose cumulative mass exceeds u * total: never a bucket of zero mass, even
  # for u = 0 (and never past the last bucket).
  bucket = jnp.sum(cdf <= u[:, None] * cdf[:, -1:], axis=-1)
  bucket = jnp.minimum(bucket, audio_lib.NUM_BUCKETS - 1)
  return jnp.where(greedy, _argmax(logits), bucket).astype(jnp.int32)


def _argmax(logits: Array) -> Array:
  """jnp.argmax over the last axis (first maximum) as two plain reductions.

  XLA on CPU runs argmax's (value, index) reduction as a scalar loop: ~1 ms for (16, 256).
  """
  iota = jax.lax.broadcasted_iota(jnp.int32, logits.shape, logits.ndim - 1)
  is_max = logits == jnp.max(logits, axis=-1, keepdims=True)
  return jnp.min(jnp.where(is_max, iota, logits.shape[-1]), axis=-1)


def bucket_cross_entropy(logits: Array, target: Array) -> Array:
  """-log softmax(logits)[target]: (B, 256), (B,) -> float32 (B,) nats."""
  iota = jax.lax.broadcasted_iota(jnp.int32, logits.shape, 1)
  picked = jnp.sum(jnp.where(iota == target[:, None], logits, 0.0), axis=-1)  # not a gather
  return jax.nn.logsumexp(logits, axis=-1) - picked


def _log_widths(model: Any) -> Array | None:
  """The model's `log_bucket_widths` as a constant, or None (logits are plain logits)."""
  widths = getattr(model, "log_bucket_widths", None)
  return None if widths is None else jnp.asarray(widths, jnp.float32)


def _apply(model, params, *args, method):
  return model.apply({"params": params}, *args, method=method)


def _check_inputs(frames: Any, frame_index: Any, frame_age: Any, true_audio: Any = None,
                  sample_cond: Any = None) -> tuple[int, int]:
  """(B, T) of consistent sampler inputs, else ValueError naming the mismatch.

  `frames` is uint8 (B, F, H, W) frames or float32 (B, F, L, 2C) precomputed conditioning.
  """
  if np.ndim(frames) != 4:
    raise ValueError(f"frames must be uint8 (B, F, H, W) (or float (B, F, L, 2C) conditioning), "
                     f"got shape {np.shape(frames)}")
  b, t = np.shape(frame_index) if np.ndim(frame_index) == 2 else (None, None)
  if b is None or np.shape(frame_age) != (b, t) or np.shape(frames)[0] != b:
    raise ValueError(f"frame_index and frame_age must be int (B, T) with B = frames' batch; got "
                     f"frames {np.shape(frames)}, frame_index {np.shape(frame_index)}, "
                     f"frame_age {np.shape(frame_age)}")
  if t == 0:
    raise ValueError("nothing to generate: T = 0 samples")
  if true_audio is not None and np.shape(true_audio) != (b, t):
    raise ValueError(f"true_audio must be float (B, T) = {(b, t)}, got {np.shape(true_audio)}")
  if sample_cond is not None and (np.ndim(sample_cond) != 3 or np.shape(sample_cond)[:2] != (b, t)):
    raise ValueError(f"sample_cond must be float (B, T, D) with (B, T) = {(b, t)}, got "
                     f"{np.shape(sample_cond)}")
  return b, t


def _sample_cond(sample_cond: Any) -> Array | None:
  return None if sample_cond is None else jnp.asarray(sample_cond, jnp.float32)


# ---- the fast sampler: one scan over the incremental forward ---------------------------------


@functools.partial(jax.jit, static_argnames=("model", "return_logits", "quantization", "unroll"))
def _scan(model: Any, params: Any, frames: Array, frame_index: Array,
          frame_age: Array, seed: Array, example_ids: Array, temperature: Array, greedy: Array,
          tokens: Array | None, true_audio: Array | None, sample_cond: Array | None = None, *,
          return_logits: bool, quantization: str, unroll: int) -> dict[str, Array]:
  """The time loop; per-time inputs and outputs are (B, T[, 256]).

  frames: uint8 (B, F, H, W), or their float (B, F, L, 2C) `frame_conditioning`.
  tokens: if given, int32 (B, T) input tokens fed instead of the samples (teacher forcing).
  true_audio: if given, float32 (B, T) audio whose buckets are scored at every step.
  sample_cond: if given, float32 (B, T, D) per-sample features (the model's `sample_conditioning`
    projects them for all samples here, before the loop).
  """
  batch, length = frame_index.shape
  log_widths = _log_widths(model)
  frame_cond = (frames if jnp.issubdtype(frames.dtype, jnp.floating)
                else _apply(model, params, frames, method="frame_conditioning"))  # (B, F, L, 2C)
  state = _apply(model, params, batch, method="init_state")
  # Each step reads its frames' rows of the flattened (B * F, L, 2C) conditioning. The row numbers
  # are computed here, unsigned, in bounds and sorted: index arithmetic inside the loop would be
  # fused into the gather and redone for each of the B * L * 2C values it copies.
  num_frames = frame_cond.shape[1]
  flat_cond = frame_cond.reshape(batch * num_frames, *frame_cond.shape[2:])
  rows = (jnp.arange(batch)[:, None] * num_frames + frame_index).astype(jnp.uint32)
  xs = {"row": rows, "age": frame_age, "u": step_uniforms(seed, example_ids, length).T}
  if tokens is not None:
    xs["token"] = tokens
  if true_audio is not None:
    xs["target"] = audio_lib.quantize(true_audio, quantization)

  def body(carry, x):
    state, token = carry
    if tokens is not None:
      token = x["token"]
    cond_t = flat_cond.at[x["row"]].get(mode="promise_in_bounds", indices_are_sorted=True,
                                        unique_indices=True)
    extra = () if sample_cond is None else (x["sample_cond"],)
    logits, state = _apply(model, params, state, token, cond_t, x["age"], *extra, method="step")
    sample = sample_from_logits(logits, x["u"], temperature, greedy, log_widths)
    out = {"buckets": sample}
    if true_audio is not None:
      out["cross_entropy"] = bucket_cross_entropy(logits, x["target"])
    if return_logits:
      out["logits"] = logits
    return (state, sample), out

  start = jnp.full((batch,), audio_lib.NO_AUDIO, jnp.int32)
  xs = jax.tree.map(lambda v: jnp.swapaxes(v, 0, 1), xs)  # time-major, as the scan reads them
  if sample_cond is not None:  # projected time-major: the projection is 2LC / D times the size
    xs["sample_cond"] = _apply(model, params, jnp.swapaxes(sample_cond, 0, 1),
                               method="sample_conditioning")  # {"gate": (T, B, L, 2C), ...}
  _, out = jax.lax.scan(body, (state, start), xs, unroll=unroll)
  return _outputs({k: jnp.swapaxes(v, 0, 1) for k, v in out.items()}, quantization)


# ---- the block sampler: a gain-anchored head's samples a block at a time ----------------------


@functools.partial(jax.jit, static_argnames=("model", "quantization"))
def _gain_block_scan(model: Any, params: Any, frames: Array, frame_index: Array,
                     frame_age: Array, seed: Array, example_ids: Array, temperature: Array,
                     greedy: Array, true_audio: Array | None, sample_cond: Array, *,
                     quantization: str) -> dict[str, Array]:
  """`_scan`'s samples for a model whose `gains_by_block` (the anchored "gain" head), one
  iteration per `anchor_block` samples; per-time outputs (B, T).

  A sample's distribution there is a Gaussian around gain x anchor with a width from the
  per-sample features: only the gain, ramped from the previous block's first sample's to this
  block's, depends on the audio so far. So each iteration computes the gain at its block's first
  sample (`WaveNet.log_gain_at`, whose inputs end at the previous block's last sample) and then
  draws all of the block's samples at once, with the same uniforms as `_scan`: the same samples,
  up to float32 rounding of the gain.
  """
  batch, length = frame_index.shape
  block = model.anchor_block
  num_blocks = -(-length // block)
  pad = lambda v: jnp.pad(v, ((0, 0), (0, num_blocks * block - length)) + ((0, 0),) * (v.ndim - 2),
                          mode="edge")
  per_block = lambda v: jnp.swapaxes(pad(v).reshape(batch, num_blocks, block, *v.shape[2:]), 0, 1)
  frame_cond = (frames if jnp.issubdtype(frames.dtype, jnp.floating)
                else _apply(model, params, frames, method="frame_conditioning"))  # (B, F, L, 2C)
  head = _apply(model, params, sample_cond, method="sample_head_terms")  # anchor, width (B, T)
  xs = {"anchor": per_block(head["anchor"]), "width": per_block(head["width"]),
        "u": per_block(step_uniforms(seed, example_ids, length).T),
        "start": jnp.arange(num_blocks, dtype=jnp.int32) * block}
  if true_audio is not None:
    xs["target"] = per_block(audio_lib.quantize(true_audio, quantization))
  log_widths = _log_widths(model)

  def body(carry, x):
    buckets, before = carry
    tokens = audio_lib.audio_input_tokens(buckets[:, :length])
    now = _apply(model, params, tokens, frame_cond, frame_index, frame_age, sample_cond,
                 x["start"], method="log_gain_at")                          # (B,)
    before = jnp.where(x["start"] == 0, now, before)
    log_gain = _apply(model, params, before, now, method="block_log_gains")  # (B, block)
    logits = _apply(model, params, log_gain, x["width"], x["anchor"],
                    method="gain_head_logits")                               # (B, block, 256)
    flat = lambda v: v.reshape(batch * block, *v.shape[2:])
    sample = sample_from_logits(flat(logits), flat(x["u"]), temperature, greedy,
                                log_widths).reshape(batch, block)
    buckets = jax.lax.dynamic_update_slice_in_dim(buckets, sample, x["start"], axis=1)
    out = {}
    if true_audio is not None:
      out["cross_entropy"] = bucket_cross_entropy(flat(logits), flat(x["target"])).reshape(
          batch, block)
    return (buckets, now), out

  start = (jnp.zeros((batch, num_blocks * block), jnp.int32), jnp.zeros((batch,), jnp.float32))
  (buckets, _), out = jax.lax.scan(body, start, xs)
  out = {k: jnp.swapaxes(v, 0, 1).reshape(batch, -1)[:, :length] for k, v in out.items()}
  return _outputs({"buckets": buckets[:, :length], **out}, quantization)


def _outputs(out: dict[str, Array], quantization: str) -> dict[str, Array]:
  out["audio"] = audio_lib.dequantize(out["buckets"], quantization)
  if "cross_entropy" in out:
    out["sample_cross_entropy"] = out.pop("cross_entropy")
    out["cross_entropy"] = jnp.mean(out["sample_cross_entropy"], axis=1)
  return out


def generate(model: Any, params: Any, frames: Any, frame_index: Any, frame_age: Any,
             *, temperature: float = 1.0, seed: int = 0, greedy: bool = False,
             true_audio: Any = None, example_ids: Any = None, quantization: str = "mu_law",
             unroll: int = DEFAULT_UNROLL, sample_cond: Any = None,
             by_blocks: bool | None = None) -> Generation:
  """Samples audio autoregressively from the frames (fast: cached dilation queues, one scan).

  Args:
    model: the WaveNet (or a module with its `frame_conditioning`, `init_state` and `step`);
      hashable: one compilation per model, input shapes and static flags.
    params: its parameters.
    frames: uint8 (B, F, H, W) frames of each clip, or their float32 (B, F, L, 2C)
      `model.frame_conditioning(frames)` computed beforehand (e.g. to draw several samples of
      the same clips without re-running the frame encoder).
    frame_index: int32 (B, T) frame current at each sample (`frames.frame_index_and_age`).
    frame_age: int32 (B, T) samples since that frame became current.
    temperature: > 0 divides the logits before sampling; 0 means greedy.
    seed: base of the per-example, per-step random numbers.
    greedy: take the most likely bucket at each step (no randomness).
    true_audio: optional float32 (B, T) in [-1, 1]: also return its free-running cross-entropy.
    example_ids: int (B,) ids keying each example's random numbers (default 0..B-1).
    quantization: "mu_law" or "linear", as the model was trained.
    unroll: time steps per loop iteration of the scan (speed only; results are identical).
    sample_cond: optional float32 (B, T, D) per-sample features, for a model with per-sample
      conditioning (`WaveNet.use_sample_cond`): known for the whole clip before sampling.
    by_blocks: draw a block of `anchor_block` samples per iteration (`_gain_block_scan`), for a
      model whose `gains_by_block` (the anchored "gain" head; the default there), else one
      sample per iteration (the default elsewhere): the same samples up to float32 rounding of
      the gain.

  Returns:
    `Generation`: buckets int32 (B, T), audio float32 (B, T), and the free-running
    cross-entropy (B,) / (B, T) in nats if `true_audio` was given. With several local devices
    the batch is split over them (`host_devices.map_over_devices`): the same samples, sooner.
  """
  b, _ = _check_inputs(frames, frame_index, frame_age, true_audio, sample_cond)
  greedy, temperature = _check_temperature(temperature, greedy)
  blocks_possible = bool(getattr(model, "gains_by_block", False))
  if by_blocks is None:
    by_blocks = blocks_possible
  elif by_blocks and not blocks_possible:
    raise ValueError("by_blocks=True needs a model whose samples depend on the audio so far only "
                     "through a gain per block (WaveNet anchored_output with anchor_mean='gain')")
  batched = (jnp.asarray(frames), jnp.asarray(frame_index, jnp.int32),
             jnp.asarray(frame_age, jnp.int32), _example_ids(example_ids, b),
             None if true_audio is None else jnp.asarray(true_audio, jnp.float32),
             _sample_cond(sample_cond))
  shared = (params, jnp.int32(seed), jnp.float32(temperature), jnp.bool_(greedy))
  out = host_devices.map_over_devices(_generation_scan(model, quantization, unroll, by_blocks),
                                      batched, shared)
  return _generation(out)


@functools.cache
def _generation_scan(model: Any, quantization: str, unroll: int, by_blocks: bool):
  """`_scan` (or `_gain_block_scan`) for `generate`, batched arguments first
  (`host_devices.map_over_devices` splits the batch over the local devices; every example's
  random numbers are its own, so the samples do not depend on the split); one function object
  per model and static options."""
  def scan(frames, frame_index, frame_age, example_ids, true_audio, sample_cond, params, seed,
           temperature, greedy):
    if by_blocks:
      return _gain_block_scan(model, params, frames, frame_index, frame_age, seed, example_ids,
                              temperature, greedy, true_audio, sample_cond,
                              quantization=quantization)
    return _scan(model, params, frames, frame_index, frame_age, seed, example_ids, temperature,
                 greedy, None, true_audio, sample_cond, return_logits=False,
                 quantization=quantization, unroll=unroll)
  return scan


def teacher_forced_logits(model: Any, params: Any, tokens: Any, frames: Any,
                          frame_index: Any, frame_age: Any,
                          unroll: int = DEFAULT_UNROLL, sample_cond: Any = None) -> Array:
  """The scan fed the given input tokens: float32 (B, T, 256) logits.

  Same as `model.apply(params, tokens, frames, frame_index, frame_age[, sample_cond])` (the
  parallel forward) up to float32 rounding; `tokens` int32 (B, T) from
  `wavenet.audio_input_tokens`, `sample_cond` optional float32 (B, T, D) as for `generate`.
  """
  b, t = _check_inputs(frames, frame_index, frame_age, sample_cond=sample_cond)
  if np.shape(tokens) != (b, t):
    raise ValueError(f"tokens must be int (B, T) = {(b, t)}, got {np.shape(tokens)}")
  out = _scan(model, params, jnp.asarray(frames), jnp.asarray(frame_index, jnp.int32),
              jnp.asarray(frame_age, jnp.int32), jnp.int32(0), jnp.zeros((b,), jnp.int32),
              jnp.float32(1.0), jnp.bool_(True), jnp.asarray(tokens, jnp.int32), None,
              _sample_cond(sample_cond), return_logits=True, quantization="mu_law", unroll=unroll)
  return out["logits"]


def _check_temperature(temperature: float, greedy: bool) -> tuple[bool, float]:
  temperature = float(temperature)
  if not np.isfinite(temperature) or temperature < 0:
    raise ValueError(f"temperature must be a finite number >= 0 (0 = greedy), got {temperature}")
  if temperature == 0.0:
    return True, 1.0
  return bool(greedy), temperature


def _generation(out: dict[str, Array]) -> Generation:
  return Generation(buckets=out["buckets"], audio=out["audio"],
                    cross_entropy=out.get("cross_entropy"),
                    sample_cross_entropy=out.get("sample_cross_entropy"))


# ---- the naive reference sampler -------------------------------------------------------------


@functools.partial(jax.jit, static_argnames=("model", "quantization"))
def _naive_scan(model: Any, params: Any, frames: Array, frame_index: Array,
                frame_age: Array, seed: Array, example_ids: Array, temperature: Array,
                greedy: Array, true_audio: Array | None, sample_cond: Array | None = None, *,
                quantization: str) -> dict[str, Array]:
  batch, t = frame_index.shape
  window = min(model.receptive_field, t)
  frame_cond = _apply(model, params, frames, method="frame_conditioning")
  xs = {"step": jnp.arange(t), "u": step_uniforms(seed, example_ids, t)}
  if true_audio is not None:
    xs["target"] = jnp.swapaxes(audio_lib.quantize(true_audio, quantization), 0, 1)

  def body(tokens, x):
    step = x["step"]
    # Logits at `step` see the `window` tokens ending at `step`; early on, the window starts at 0
    # and later (not yet generated) tokens are ignored by causality.
    start = jnp.clip(step - window + 1, 0, t - window)
    cut = lambda a: jax.lax.dynamic_slice_in_dim(a, start, window, axis=1)
    emb = _apply(model, params, cut(tokens), method=lambda m, tok: m.embed(tok))
    extra = () if sample_cond is None else (cut(sample_cond),)
    logits = _apply(model, params, emb, frame_cond, cut(frame_index), cut(frame_age), *extra,
                    method="logits_from_embeddings")
    logits = jax.lax.dynamic_index_in_dim(logits, step - start, axis=1, keepdims=False)
    sample = sample_from_logits(logits, x["u"], temperature, greedy, _log_widths(model))
    tokens = jax.lax.dynamic_update_index_in_dim(tokens, sample, step + 1, axis=1)
    out = {"buckets": sample}
    if true_audio is not None:
      out["cross_entropy"] = bucket_cross_entropy(logits, x["target"])
    return tokens, out

  # One spare column: the last step's sample is written past the end and never read.
  tokens = jnp.full((batch, t + 1), audio_lib.NO_AUDIO, jnp.int32)
  _, out = jax.lax.scan(body, tokens, xs)
  return _outputs({k: jnp.swapaxes(v, 0, 1) for k, v in out.items()}, quantization)


def naive_generate(model: Any, params: Any, frames: Any, frame_index: Any,
                   frame_age: Any, *, temperature: float = 1.0, seed: int = 0,
                   greedy: bool = False, true_audio: Any = None, example_ids: Any = None,
                   quantization: str = "mu_law", sample_cond: Any = None) -> Generation:
  """As `generate`, recomputing the parallel forward over the receptive field at every step.

  O(receptive field x layers) work per sample instead of O(layers); same random numbers, so the
  same samples as `generate` up to float32 rounding. The frame conditioning is computed once (it
  does not depend on the audio); only the WaveNet stack is recomputed (with the window's rows of
  `sample_cond`, when given).
  """
  b, _ = _check_inputs(frames, frame_index, frame_age, true_audio, sample_cond)
  if getattr(model, "anchored_output", False) and getattr(model, "anchor_mean", "") == "gain":
    raise ValueError("naive_generate recomputes a window and cannot hold an anchored head's "
                     "gain over blocks that began before it; use generate")
  greedy, temperature = _check_temperature(temperature, greedy)
  out = _naive_scan(model, params, jnp.asarray(frames), jnp.asarray(frame_index, jnp.int32),
                    jnp.asarray(frame_age, jnp.int32), jnp.int32(seed),
                    _example_ids(example_ids, b), jnp.float32(temperature), jnp.bool_(greedy),
                    None if true_audio is None else jnp.asarray(true_audio, jnp.float32),
                    _sample_cond(sample_cond), quantization=quantization)
  return _generation(out)


# ---- block-wise decoding (streaming) ---------------------------------------------------------


def step_uniforms_range(seed: int | Array, example_id: int, start: int, num_samples: int) -> Array:
  """float32 (num_samples,): steps start .. start + num_samples - 1 of `step_uniforms`.

  Equal, bit for bit, to `step_uniforms(seed, [example_id], start + num_samples)[start:, 0]`,
  without drawing the `start` numbers before: with jax_threefry_partitionable (the default), the
  t-th 32 random bits of a key are threefry2x32(key, (0, t)), and `jax.random.uniform` maps
  them to [0, 1) by their top 23 bits. Without it, the prefix is drawn and cut.
  """
  key = jax.random.fold_in(jax.random.key(seed), jnp.uint32(example_id))
  if not jax.config.jax_threefry_partitionable:
    return jax.random.uniform(key, (start + num_samples,))[start:]
  return _uniforms_at(jax.random.key_data(key), jnp.uint32(start), num_samples)


@functools.partial(jax.jit, static_argnames=("num_samples",))
def _uniforms_at(key_data: Array, start: Array, num_samples: int) -> Array:
  counts = start + jnp.arange(num_samples, dtype=jnp.uint32)
  bits1, bits2 = jax_random_ext.threefry2x32_p.bind(key_data[0], key_data[1],
                                                    jnp.zeros_like(counts), counts)
  mantissa = jax.lax.shift_right_logical(bits1 ^ bits2, jnp.uint32(9)) | jnp.uint32(0x3F800000)
  return jnp.maximum(0.0, jax.lax.bitcast_convert_type(mantissa, jnp.float32) - 1.0)


@functools.partial(jax.jit, static_argnames=("model", "quantization"))
def _block_scan(model: Any, params: Any, state: Any, token: Array, frame_cond: Array,
                frame_index: Array, frame_age: Array, u: Array, temperature: Array,
                greedy: Array, *, quantization: str) -> tuple[Any, Array, Array, Array]:
  """The body of `_scan` over one block, from a carried (state, token)."""
  batch, num_frames = frame_cond.shape[:2]
  flat_cond = frame_cond.reshape(batch * num_frames, *frame_cond.shape[2:])
  rows = (jnp.arange(batch)[:, None] * num_frames + frame_index).astype(jnp.uint32)
  xs = {"row": rows, "age": frame_age, "u": u}

  def body(carry, x):
    state, token = carry
    cond_t = flat_cond.at[x["row"]].get(mode="promise_in_bounds", indices_are_sorted=True,
                                        unique_indices=True)
    logits, state = _apply(model, params, state, token, cond_t, x["age"], method="step")
    sample = sample_from_logits(logits, x["u"], temperature, greedy, _log_widths(model))
    return (state, sample), sample

  xs = {k: jnp.swapaxes(v, 0, 1) for k, v in xs.items()}
  (state, token), buckets = jax.lax.scan(body, (state, token), xs)
  buckets = jnp.swapaxes(buckets, 0, 1)
  return state, token, buckets, audio_lib.dequantize(buckets, quantization)


def generate_block(model: Any, params: Any, carry: tuple[Any, Array], frame_cond: Any,
                   frame_index: Any, frame_age: Any, uniforms: Any, *,
                   temperature: float = 1.0, greedy: bool = False,
                   quantization: str = "mu_law") -> tuple[tuple[Any, Array], Array, Array]:
  """The next block of `generate`'s samples, from the decoder state carried across blocks.

  Running `generate` over T samples equals running this over consecutive blocks of them (up to
  float32 rounding of the frame conditioning), given the same conditioning rows, frame ages and
  `step_uniforms` of each step.

  Args:
    model, params: as for `generate`.
    carry: (decoder state, int32 (B,) input token): `(model.init_state(B), NO_AUDIO)` at t = 0,
      then what the previous block returned.
    frame_cond: float32 (B, K, L, 2C) `frame_conditioning` rows of the frames the block uses.
    frame_index: int32 (B, n) row of `frame_cond` current at each of the block's n samples.
    frame_age: int32 (B, n) samples since that frame became current.
    uniforms: float32 (B, n) each step's uniform (`step_uniforms_range`).
    temperature, greedy, quantization: as for `generate`.

  Returns:
    (carry for the next block, buckets int32 (B, n), audio float32 (B, n) in [-1, 1]).
  """
  greedy, temperature = _check_temperature(temperature, greedy)
  state, token = carry
  state, token, buckets, audio = _block_scan(
      model, params, state, token, jnp.asarray(frame_cond, jnp.float32),
      jnp.asarray(frame_index, jnp.int32), jnp.asarray(frame_age, jnp.int32),
      jnp.asarray(uniforms, jnp.float32), jnp.float32(temperature), jnp.bool_(greedy),
      quantization=quantization)
  return (state, token), buckets, audio

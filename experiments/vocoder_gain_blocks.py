r"""How the anchored vocoder's gain blocks change what it plays (the README's "Holding the gain").

  python -m experiments.vocoder_gain_blocks --workdir=models/demo_vocoder --blocks=64,256,1024

Plays a gain-anchored vocoder (`vocoder.anchored`, anchor_mean "gain") greedily on the demo's test
segments with its gain decided every N samples for each N in --blocks, the same parameters
(`WaveNet.anchor_block` is not a parameter: the stack's gain at each block's first sample, ramped
linearly from the previous block's), and prints one row per N: onset F1 and precision, pitch F1 and
precision, STFT distance, waveform correlation, greedy free-running cross-entropy and RMS; beside
them the KeySynth audio the vocoder plays, as is and quantized to the 256 mu-law buckets.

  python -m experiments.vocoder_gain_blocks --workdir=models/demo_vocoder --blocks=512 \
      --keysynth_gains=0.6,0.8,1,1.2

also scores constant multiples of the KeySynth audio and the KeySynth audio at each recording's
RMS: what a gain alone could reach.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from absl import app, flags

from deepsynth_jax import audio as audio_lib
from deepsynth_jax import checkpointing, comparison, console, input_pipeline, metrics, runs
from deepsynth_jax.models import autoregressive, vocoder

COLUMNS = ("onset_f1", "onset_precision", "pitch_f1", "pitch_precision", "stft_distance",
           "waveform_correlation", "free_running_ce", "rms")


@functools.partial(jax.jit, static_argnames=("module",))
def _keysynth_audio(module: vocoder.Vocoder, params: Any, frames: jax.Array,
                    frame_index: jax.Array, frame_age: jax.Array) -> jax.Array:
  """The frozen KeySynth's audio float32 (B, T) of press-frame clips."""
  return module.apply({"params": params}, frames, frame_index, frame_age, True,
                      method=vocoder.Vocoder.keysynth_audio)


def _rms(audio: np.ndarray) -> float:
  return float(np.sqrt(np.mean(np.square(audio))))


def block_rows(run: runs.Run, data: input_pipeline.DeepSynthData, indices: list[int],
               blocks: list[int], num_samples: int | None = None,
               keysynth_gains: Sequence[float] = ()) -> dict[str, dict[str, float]]:
  """Mean metrics over the test examples `indices` (their first `num_samples` samples at 4 kHz
  when given), one row per gain block length ("block N"), plus "keysynth" and "keysynth,
  quantized" (the audio it plays, in [-1, 1]).

  With `keysynth_gains`, also one row "keysynth x c" per constant c, and "keysynth x the
  recording's level" (each segment scaled to the recording's RMS: an oracle, since the video does
  not show how hard a key was struck). They say how much of a score is loudness alone: the
  vocoder's gain changes the KeySynth waveform's level, never its shape."""
  generator = run.generator
  wavenet = getattr(generator.module, "wavenet", None)  # a vocoder's; the WaveNet has none
  if not (generator.config.model == "vocoder" and wavenet.anchored_output
          and wavenet.anchor_mean == "gain"):
    raise ValueError("the run is not a gain-anchored vocoder (config.vocoder.anchored, "
                     "anchor_mean='gain'); train one with "
                     "experiments/configs/vocoder_keysynth_gain_cpu.py")
  quantization = generator.config.quantization
  rows: dict[str, list[dict[str, float]]] = {}
  for i in indices:
    ex = data.example("test", int(i))
    clip = (ex["frames"][None], ex["frame_index"][None, :num_samples],
            ex["frame_age"][None, :num_samples])
    truth = ex["audio"][:num_samples]
    notes = metrics.clip_notes(data.notes("test", int(i)), len(truth))
    score = functools.partial(metrics.audio_metrics, reference=truth,
                              sample_rate=data.sample_rate, notes=notes)
    features = generator.conditioning(run.params, *clip)
    for n in blocks:
      out = autoregressive.generate(wavenet.clone(anchor_block=int(n)), run.params["wavenet"],
                                    *clip, greedy=True, quantization=quantization,
                                    sample_cond=features, true_audio=truth[None])
      played = np.clip(np.asarray(out.audio)[0], -1.0, 1.0)
      rows.setdefault(f"block {n}", []).append(
          {**score(played), "free_running_ce": float(np.mean(out.cross_entropy)),
           "rms": _rms(played)})
    keysynth = np.asarray(_keysynth_audio(generator.module, run.params, *clip))[0]
    quantized = audio_lib.dequantize(audio_lib.quantize(np.clip(keysynth, -1, 1), quantization),
                                     quantization)
    scaled = [(f"keysynth x {c:g}", float(c) * keysynth) for c in keysynth_gains]
    if keysynth_gains:
      scaled.append(("keysynth x the recording's level",
                     _rms(truth) / max(_rms(keysynth), 1e-8) * keysynth))
    for name, audio in (("keysynth", keysynth), ("keysynth, quantized", quantized), *scaled):
      audio = np.clip(audio, -1.0, 1.0)
      rows.setdefault(name, []).append({**score(audio), "rms": _rms(audio)})
  return {name: metrics.mean_metrics(r) for name, r in rows.items()}


def main(argv: Any) -> None:
  del argv
  f = flags.FLAGS
  console.quiet_library_chatter()
  try:
    data = input_pipeline.load_dataset(f.data_dir)
    run = runs.load_run(f.workdir)
    indices = comparison.spread_indices(data, "test", f.per_song)
    table = block_rows(run, data, indices, [int(b) for b in f.blocks],
                       keysynth_gains=[float(c) for c in f.keysynth_gains])
  except (checkpointing.CheckpointError, input_pipeline.DatasetError, ValueError) as e:
    raise SystemExit(f"error: {e}") from None
  print(f"{f.workdir} (trained with gain blocks of "
        f"{run.generator.module.wavenet.anchor_block}), greedy, {len(indices)} test segments "
        f"of {f.data_dir}:")
  print("| audio | " + " | ".join(COLUMNS) + " |")
  print("|---|" + "---:|" * len(COLUMNS))
  for name, m in table.items():
    cells = [f"{m[c]:.3f}" if c in m else "-" for c in COLUMNS]
    print(f"| {name} | " + " | ".join(cells) + " |")


def _define_flags() -> None:
  """Only the binary defines flags: tests import block_rows beside other binaries' modules, and
  absl refuses a flag name defined twice in one process (tests/test_imports.py)."""
  flags.DEFINE_string("workdir", "models/demo_vocoder", "A gain-anchored vocoder run directory.")
  flags.DEFINE_string("data_dir", "data/deepsynth", "The dataset (its test split).")
  flags.DEFINE_list("blocks", ["64", "256", "512", "1024"], "Gain block lengths, in samples.")
  flags.DEFINE_integer("per_song", 2, "Evenly spaced test segments per song.")
  flags.DEFINE_list("keysynth_gains", [], "Constant gains c: adds rows for c x the KeySynth "
                    "audio, and one for it at each recording's RMS (an oracle bound).")


if __name__ == "__main__":
  _define_flags()
  app.run(main)

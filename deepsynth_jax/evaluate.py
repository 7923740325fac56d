r"""Evaluates a trained run on a split: losses, generated audio, figures and videos.

  python -m deepsynth_jax.evaluate --workdir=runs/cpu --split=test --num_examples=5 --seconds=2

Loads the run's best checkpoint (config from its run.json) and, for each of the first N examples
of the split, generates audio from the frames (`Run.generate`, temperature-1 sampling
keyed by (--seed, example index)) and writes into <workdir>/eval_<split>/ (or --out_dir):

  metrics.json                       per-example and mean losses (nats per sample), music metrics
                                     (`deepsynth_jax.metrics`) of the generated audio, of the
                                     reference audio and of white noise, and the generation speed
  example_NNNN_generated.wav         the generated audio (16-bit PCM, the model's sample rate)
  example_NNNN_reference.wav         the true audio
  example_NNNN_comparison.png        waveforms and spectrograms of both
  example_NNNN_video.mp4             the silent keyboard video with the generated audio

Losses: `teacher_forced_cross_entropy` (each bucket given the TRUE previous audio) and
`free_running_cross_entropy` (each true bucket given the model's OWN generated past; the method's
test metric). The parallel model has no audio input: its only cross-entropy (of the discretized
distribution around its waveform) is reported as free-running, and teacher-forced is null.

Everything but the `speed` entry of metrics.json is a deterministic function of the run, the data
and the flags. `evaluate_run` is the importable entry point.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

import jax
import matplotlib
import numpy as np
from absl import app, flags
from matplotlib.figure import Figure
from tqdm import tqdm

from data_gen import video, wav
from deepsynth_jax import (
  checkpointing,
  comparison,
  console,
  input_pipeline,
  metrics,
  runs,
  transcription,
)
from deepsynth_jax import listening as listening_probes

FORMAT = "deepsynth_jax.eval/1"
# Written first into an output folder: marks it as ours, so re-running may overwrite it.
MARKER = ".deepsynth_eval"
SPLITS = ("train", "validation", "test")
# Per-example files that this module writes (older ones not rewritten by a run are removed).
MEDIA_FILE = re.compile(r"example_\d{4}_(generated\.wav|reference\.wav|comparison\.png|video\.mp4)")


class EvaluationError(ValueError):
  """The evaluation cannot run as asked; the message names the problem and the fix."""


def default_out_dir(workdir: str, split: str) -> str:
  return os.path.join(workdir, f"eval_{split}")


def evaluate_run(workdir: str, split: str = "test", num_examples: int | None = None, *,
                 data_dir: str | None = None, data: Any = None, seconds: float | None = None,
                 out_dir: str | None = None, temperature: float = 1.0, seed: int = 0,
                 media: bool = True, music_metrics: bool = True, listening: bool = False,
                 indices: list[int] | None = None,
                 show_progress: bool = True) -> dict[str, Any]:
  """Evaluates the best checkpoint of `workdir` on the first examples of `split`.

  Args:
    workdir: a training run directory (run.json + checkpoints).
    split: "train", "validation" or "test".
    num_examples: how many examples, in split order (default: the run's config.eval.num_examples,
      at most the split's size).
    data_dir: the dataset (default: the run's config.data_dir).
    data: an already loaded `input_pipeline.DeepSynthData` (instead of data_dir).
    seconds: evaluate the first `seconds` of each example (default: the whole segment).
    out_dir: output folder (default: <workdir>/eval_<split>).
    temperature, seed: sampling temperature (0 = greedy) and seed.
    media: write WAVs, figures and videos (metrics.json is always written).
    music_metrics: score the audio with `deepsynth_jax.metrics.audio_metrics`.
    listening: also run `deepsynth_jax.listening`'s swap and silence probes on these examples.
    indices: evaluate these example indices of the split (instead of the first num_examples).
    show_progress: a tqdm progress bar.

  Returns:
    The contents of metrics.json (see the module docstring).

  Raises:
    checkpointing.CheckpointError: workdir is not a DeepSynth run or has no checkpoint.
    input_pipeline.DatasetError: the dataset is missing or corrupt.
    EvaluationError: unknown or empty split, a dataset that does not match the run, bad
      arguments, or an output folder holding files of something else.
  """
  run = runs.load_run(workdir)
  if split not in SPLITS:
    raise EvaluationError(f"unknown split {split!r}; pass --split as one of {', '.join(SPLITS)}")
  if data is None:
    data = input_pipeline.load_dataset(data_dir or run.config.data_dir)
  _check_data_matches(run, data, data_dir or run.config.data_dir)
  available = data.num_examples(split)
  if available == 0:
    raise EvaluationError(f"split {split!r} of the dataset has no examples; pass another --split "
                          "or rebuild the dataset with a non-zero split fraction")
  if indices is not None:
    chosen = [int(i) for i in indices]
    if not chosen or min(chosen) < 0 or max(chosen) >= available:
      raise EvaluationError(f"example indices must be in [0, {available}) for split {split!r}, "
                            f"got {chosen[:5]}...")
  else:
    wanted = int(run.config.eval.num_examples if num_examples is None else num_examples)
    if wanted < 1:
      raise EvaluationError(f"--num_examples={wanted} must be >= 1")
    chosen = list(range(min(wanted, available)))
  n = len(chosen)
  length = _eval_length(seconds, data)
  if not np.isfinite(temperature) or temperature < 0:
    raise EvaluationError(f"--temperature={temperature} must be >= 0 (0 = greedy)")
  out_dir = out_dir or default_out_dir(workdir, split)
  _claim_out_dir(out_dir, workdir, split)

  rate = data.sample_rate
  teacher_forced = teacher_forced_fn(run)
  rows, times = [], []
  for i in tqdm(chosen, desc=f"evaluate {split}", unit="example", disable=not show_progress):
    ex = data.example(split, i)
    audio = ex["audio"][:length]
    batch = {"audio": audio[None],
             "frames": run.fit_frames(ex["frames"][None], bool(ex["press_frames"])),
             "frame_keys": ex["frame_keys"][None], "num_frames": ex["num_frames"][None],
             "frame_index": ex["frame_index"][None, :length],
             "frame_age": ex["frame_age"][None, :length],
             "example_id": np.asarray(ex["example_id"])[None],
             "press_frames": np.asarray(ex["press_frames"])[None]}
    t0 = time.perf_counter()
    audio_bt, free_running = run.generate(batch["frames"], batch["frame_index"],
                                          batch["frame_age"], temperature=temperature, seed=seed,
                                          true_audio=batch["audio"],
                                          example_ids=batch["example_id"],
                                          press_frames=batch["press_frames"])
    generated = audio_bt[0]
    times.append(time.perf_counter() - t0)
    tf_metrics = jax.device_get(teacher_forced(run.params, batch))
    row: dict[str, Any] = {
        "index": i,
        "example_id": int(ex["example_id"]),
        "segment": list(data.segment(split, i)) if hasattr(data, "segment") else None,
        "num_samples": int(length),
        # Without audio input a model's teacher-forced and free-running losses are one number.
        "teacher_forced_cross_entropy": (float(tf_metrics["cross_entropy"])
                                         if run.generator.autoregressive else None),
        "free_running_cross_entropy": float(free_running[0]),
    }
    if music_metrics:
      notes = metrics.clip_notes(data.notes(split, i), length)
      row["music"] = metrics.audio_metrics(generated, audio, rate, notes)
      row["reference_music"] = metrics.audio_metrics(audio, audio, rate, notes)
      row["noise_music"] = metrics.audio_metrics(
          metrics.white_noise_like(audio, seed + i), audio, rate, notes)
    if media:
      row["files"] = _write_media(out_dir, i, ex, generated, audio, rate, row)
    rows.append(row)

  result = {
      "format": FORMAT,
      "workdir": workdir,
      "checkpoint_step": run.step,
      "model": run.config.model,
      "learned_from": run.learned_from,
      "split": split,
      "num_examples": n,
      "num_samples": int(length),
      "sample_rate": int(rate),
      "temperature": float(temperature),
      "seed": int(seed),
      "mean": _means(rows),
      "examples": rows,
      "speed": comparison.speed(times, length, rate),
  }
  if listening:
    result["listening"] = listening_probes.listening_report(
        run, data, split, chosen, length=length, seed=seed, teacher_forced_fn=teacher_forced,
        temperature=temperature)
  checkpointing.write_json_atomic(os.path.join(out_dir, "metrics.json"), result)
  written = {name for row in rows for name in row.get("files", {}).values()}
  for name in os.listdir(out_dir):
    if MEDIA_FILE.fullmatch(name) and name not in written:  # from an earlier, larger run
      os.remove(os.path.join(out_dir, name))
  return result


# ---- per-example pieces ------------------------------------------------------------------------


def teacher_forced_fn(run: runs.Run):
  """jitted (params, batch) -> the run's evaluation metrics (`Generator.loss`, train=False)."""
  def loss_metrics(params, batch):
    batch = {k: v for k, v in batch.items() if k != "example_id"}
    return run.generator.loss(params, batch, train=False)[1]

  return jax.jit(loss_metrics)


def _write_media(out_dir: str, i: int, ex: dict, generated: np.ndarray, reference: np.ndarray,
                 rate: int, row: dict) -> dict[str, str]:
  stem = f"example_{i:04d}"
  files = {"generated_wav": f"{stem}_generated.wav", "reference_wav": f"{stem}_reference.wav",
           "figure": f"{stem}_comparison.png", "video": f"{stem}_video.mp4"}
  path = lambda key: os.path.join(out_dir, files[key])
  wav.write_wav(path("generated_wav"), generated, rate)
  wav.write_wav(path("reference_wav"), reference, rate)
  title = (f"example {i} (id {row['example_id']}): free-running CE "
           f"{row['free_running_cross_entropy']:.3f} nats")
  plot_comparison(path("figure"), generated, reference, rate, title)
  count = int(ex["num_frames"])
  starts = np.asarray(ex["frame_start"][:count], np.int64)
  keep = starts < len(generated)
  video.write_mp4(path("video"), ex["frames"][:count][keep], starts[keep], rate, fps=30,
                  audio=generated, num_samples=len(generated))
  return files


def plot_comparison(path: str, generated: np.ndarray, reference: np.ndarray, sample_rate: int,
                    title: str = "") -> None:
  """Writes a PNG: waveforms (top) and spectrograms (bottom) of generated vs reference audio."""
  cmap = matplotlib.colormaps["magma"].with_extremes(under="black", bad="black")
  fig = Figure(figsize=(12, 6), constrained_layout=True)  # no pyplot: no global backend state
  axes = fig.subplots(2, 2, sharex=True)
  for col, (name, audio) in enumerate((("generated", generated), ("reference", reference))):
    t = np.arange(len(audio)) / sample_rate
    axes[0, col].plot(t, audio, linewidth=0.4, color="tab:blue" if col == 0 else "tab:green")
    axes[0, col].set(title=name, ylim=(-1.05, 1.05), ylabel="amplitude")
    nfft = min(256, max(16, len(audio)))
    with np.errstate(divide="ignore"):  # silent stretches: log10(0) = -inf, drawn as the floor
      axes[1, col].specgram(audio.astype(np.float64), NFFT=nfft, Fs=sample_rate,
                            noverlap=nfft * 3 // 4, cmap=cmap, vmin=-120, vmax=0)
    axes[1, col].set(xlabel="time (s)", ylabel="frequency (Hz)")
  if title:
    fig.suptitle(title)
  tmp = f"{path}.tmp-{os.getpid()}"
  fig.savefig(tmp, format="png", dpi=80)
  os.replace(tmp, path)


# ---- checks and summaries ----------------------------------------------------------------------


def _check_data_matches(run: runs.Run, data: Any, data_dir: str) -> None:
  """Video of any frame rate and size is fine (frames are resized to the model's size); the
  audio's sample rate must be the model's."""
  if int(data.sample_rate) != run.sample_rate:
    raise EvaluationError(
        f"the dataset in {data_dir} has {data.sample_rate} Hz audio but the run was trained at "
        f"{run.sample_rate} Hz; pass a --data_dir built at --sample_rate={run.sample_rate}")


def _eval_length(seconds: float | None, data: Any) -> int:
  if seconds is None:
    return int(data.segment_samples)
  limit = data.segment_samples / data.sample_rate
  if not np.isfinite(seconds) or not 0 < round(float(seconds) * data.sample_rate) <= \
      data.segment_samples:
    raise EvaluationError(f"--seconds={seconds} must be in (0, {limit:g}] (the segment length)")
  return round(float(seconds) * data.sample_rate)


def _claim_out_dir(out_dir: str, workdir: str, split: str) -> None:
  """Creates the output folder, refusing one that holds files of something else."""
  marker = os.path.join(out_dir, MARKER)
  if os.path.isdir(out_dir) and os.listdir(out_dir) and not os.path.isfile(marker):
    raise EvaluationError(f"{out_dir} holds files that are not from a DeepSynth evaluation; pass "
                          "another --out_dir or empty that folder")
  if os.path.exists(out_dir) and not os.path.isdir(out_dir):
    raise EvaluationError(f"{out_dir} is a file, not a folder; pass another --out_dir")
  os.makedirs(out_dir, exist_ok=True)
  checkpointing.write_json_atomic(marker, {"format": FORMAT, "workdir": workdir, "split": split})


def _means(rows: list[dict]) -> dict[str, Any]:
  out: dict[str, Any] = {}
  for key in ("teacher_forced_cross_entropy", "free_running_cross_entropy"):
    values = [r[key] for r in rows if r[key] is not None]
    out[key] = float(np.mean(values)) if values else None
  for key in ("music", "reference_music", "noise_music"):
    if rows and key in rows[0]:
      out[key] = {k: float(np.mean([r[key][k] for r in rows])) for k in rows[0][key]}
  return out


def summary(result: dict[str, Any]) -> str:
  """A short text report of `evaluate_run`'s result."""
  mean = result["mean"]
  fmt = lambda v: "n/a" if v is None else f"{v:.4f}"
  learned = comparison.learned_from_text(result.get("learned_from", {}))
  lines = [f"{result['workdir']} ({result['model']}, step {result['checkpoint_step']}; "
           f"{learned}), {result['split']}: {result['num_examples']} examples x "
           f"{result['num_samples'] / result['sample_rate']:g} s",
           f"  teacher-forced CE {fmt(mean['teacher_forced_cross_entropy'])} nats, free-running "
           f"CE {fmt(mean['free_running_cross_entropy'])} nats",
           f"  generation: {result['speed']['samples_per_second']:,.0f} samples/s "
           f"({result['speed']['real_time_factor']:.2f}x real time)"]
  if "music" in mean:
    lines.append(metrics.markdown_table({"generated": mean["music"],
                                         "reference audio": mean["reference_music"],
                                         "white noise (matched RMS)": mean["noise_music"]}))
  if "listening" in result:
    swap, silence = result["listening"]["swap"]["mean"], result["listening"]["silence"]
    lines.append(f"  swap test (frames of another song's segment): onset F1 vs the shown notes "
                 f"{swap['vs_shown_onset_f1']:.3f}, vs the replaced segment's "
                 f"{swap['vs_other_onset_f1']:.3f}; pitch F1 {swap['vs_shown_pitch_f1']:.3f} vs "
                 f"{swap['vs_other_pitch_f1']:.3f}"
                 + (f"; teacher-forced video gain {swap['video_gain']:+.4f} nats"
                    if "video_gain" in swap else ""))
    lines.append(f"  silence test (untouched keyboard): RMS {silence['silence_rms']:.4f} "
                 f"(true audio RMS {silence['reference_rms']:.4f})")
  return "\n".join(lines)


# ---- command line ------------------------------------------------------------------------------


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  console.quiet_library_chatter()
  f = flags.FLAGS
  several = len(f.workdir) > 1 or f.baseline
  if several and f.out_dir:
    raise SystemExit("error: --out_dir is for one --workdir; with several, each writes into "
                     "<workdir>/eval_<split>")
  try:
    first = runs.load_run(f.workdir[0])
    data = input_pipeline.load_dataset(f.data_dir or first.config.data_dir)
    indices = comparison.spread_indices(data, f.split, f.per_song) if f.per_song else None
    results = {}
    for workdir in f.workdir:
      results[workdir] = evaluate_run(
          workdir, f.split, f.num_examples, data=data, data_dir=f.data_dir, seconds=f.seconds,
          out_dir=f.out_dir, temperature=f.temperature, seed=f.seed, media=f.media,
          music_metrics=f.music_metrics or several, listening=f.listening, indices=indices)
      print(summary(results[workdir]))
      print(f"wrote {os.path.join(f.out_dir or default_out_dir(workdir, f.split), 'metrics.json')}")
    if several:
      some = next(iter(results.values()))
      chosen = [row["index"] for row in some["examples"]]
      base = (comparison.baseline_rows(f.baseline, data, f.split, chosen, some["num_samples"])
              if f.baseline else None)
      print(f"\nAll on the same {len(chosen)} {f.split} examples x "
            f"{some['num_samples'] / some['sample_rate']:g} s:")
      print(comparison.comparison_table(results, base))
  except (checkpointing.CheckpointError, input_pipeline.DatasetError, EvaluationError,
          transcription.BaselineError) as e:
    raise SystemExit(f"error: {e}") from None


def _define_flags() -> None:
  flags.DEFINE_list("workdir", None, "Run directories of trained models (run.json + "
                    "checkpoints); several (comma-separated) print one comparison table.",
                    required=True)
  flags.DEFINE_string("baseline", None, "A transcription baseline workdir (python -m "
                      "deepsynth_jax.baseline) to add to the comparison table.")
  flags.DEFINE_integer("per_song", 0, "Evaluate this many examples of every song of the split "
                       "instead of the first --num_examples.")
  flags.DEFINE_bool("listening", True, "Run the swap and silence probes (deepsynth_jax.listening).")
  flags.DEFINE_enum("split", "test", SPLITS, "Dataset split to evaluate.")
  flags.DEFINE_integer("num_examples", None, "First N examples of the split (default: the run's "
                       "config.eval.num_examples).")
  flags.DEFINE_string("data_dir", None, "Dataset folder (default: the run's config.data_dir).")
  flags.DEFINE_float("seconds", None, "Evaluate the first S seconds of each example (default: "
                     "the whole segment).")
  flags.DEFINE_string("out_dir", None, "Output folder (default: <workdir>/eval_<split>).")
  flags.DEFINE_float("temperature", 1.0, "Sampling temperature (0 = greedy).")
  flags.DEFINE_integer("seed", 0, "Sampling seed.")
  flags.DEFINE_bool("media", True, "Write WAVs, figures and videos.")
  flags.DEFINE_bool("music_metrics", True, "Compute onset/pitch/STFT metrics.")


if __name__ == "__main__":
  _define_flags()
  app.run(main)

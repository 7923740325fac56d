"""Does the model listen to the video? Three probes, the same for every model.

Public WaveNets conditioned on notes can sound right when fed the true audio and then ignore their
conditioning when they generate from their own output. These probes measure it, always on audio
the model generated itself (free-running) unless said otherwise:

- follow-the-video: onset F1 and pitch F1 (`deepsynth_jax.metrics`) of the generated audio against
  the notes the video shows (reported by the eval binary per example, beside the reference's);
- swap: generate for segment A from segment B's frames (B from another song). A model that
  listens matches B's notes, not A's: F1 against both is reported. For an autoregressive model the
  teacher-forced probe is reported too: the cross-entropy of A's true audio given B's frames minus
  given A's own frames ("video gain", nats per sample); a model that ignores the video has gain ~0;
- silence: the frame of an untouched keyboard must give near-silence: RMS of the generated audio,
  beside the mean RMS of the true audio of the same examples.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from data_gen import keyboard
from deepsynth_jax import metrics, runs

SILENCE_SECONDS = 2.0


def _generate(run: runs.Run, frames: np.ndarray, frame_index: np.ndarray,
              frame_age: np.ndarray, *, seed: int, example_id: int,
              press_frames: bool = True, temperature: float = 1.0) -> np.ndarray:
  """Free-running audio (T,) for one clip's frames (batch axis added here)."""
  audio, _ = run.generate(frames[None], frame_index[None], frame_age[None], seed=seed,
                          temperature=temperature, example_ids=np.asarray([example_id]),
                          press_frames=np.asarray([press_frames]))
  return audio[0]


def _f1s(audio: np.ndarray, rate: int, notes: np.ndarray) -> dict[str, float]:
  onset = metrics.onset_scores(audio, rate, notes)
  pitch = metrics.pitch_scores(audio, rate, notes)
  return {"onset_f1": float(onset["f1"]), "pitch_f1": float(pitch["f1"])}


def swap_partner(data: Any, split: str, index: int, candidates: list[int]) -> int:
  """The first candidate example from another song than `index` (or the next one if none)."""
  song = data.segment(split, index)[0]
  for j in candidates:
    if data.segment(split, j)[0] != song:
      return j
  return candidates[(candidates.index(index) + 1) % len(candidates)]


def swap_test(run: runs.Run, data: Any, split: str, a: int, b: int, *, length: int,
              seed: int = 0, teacher_forced_fn=None,
              temperature: float = 1.0) -> dict[str, float]:
  """Generates for slot A from B's frames; scores against B's notes and A's notes."""
  ex_a, ex_b = data.example(split, a), data.example(split, b)
  rate = data.sample_rate
  notes_a = metrics.clip_notes(data.notes(split, a), length)
  notes_b = metrics.clip_notes(data.notes(split, b), length)
  generated = _generate(run, ex_b["frames"], ex_b["frame_index"][:length],
                        ex_b["frame_age"][:length], seed=seed, example_id=a,
                        press_frames=bool(ex_b["press_frames"]), temperature=temperature)
  out = {f"vs_shown_{k}": v for k, v in _f1s(generated, rate, notes_b).items()}
  out.update({f"vs_other_{k}": v for k, v in _f1s(generated, rate, notes_a).items()})
  out["partner"] = int(b)
  if teacher_forced_fn is not None and run.generator.autoregressive:
    def ce(frames_ex):
      batch = {"audio": ex_a["audio"][None, :length],
               "frames": run.fit_frames(frames_ex["frames"][None],
                                        bool(frames_ex["press_frames"])),
               "frame_index": frames_ex["frame_index"][None, :length],
               "frame_age": frames_ex["frame_age"][None, :length]}
      return float(teacher_forced_fn(run.params, batch)["cross_entropy"])
    own, swapped = ce(ex_a), ce(ex_b)
    out.update(teacher_forced_ce_own_video=own, teacher_forced_ce_swapped_video=swapped,
               video_gain=swapped - own)
  return out


def silence_test(run: runs.Run, data: Any, *, seed: int = 0, seconds: float = SILENCE_SECONDS,
                 temperature: float = 1.0) -> dict[str, float]:
  """RMS of audio generated from the untouched keyboard's frame."""
  h, w = data.frame_shape
  frame = keyboard.render_keyboard(np.zeros(88, bool), h, w)[None]
  length = int(seconds * data.sample_rate)
  index = np.zeros(length, np.int32)
  age = np.arange(length, dtype=np.int32)
  generated = _generate(run, frame, index, age, seed=seed, example_id=0,
                        temperature=temperature)
  return {"silence_rms": float(np.sqrt(np.mean(generated.astype(np.float64) ** 2))),
          "silence_peak": float(np.max(np.abs(generated))) if length else 0.0}


def listening_report(run: runs.Run, data: Any, split: str, indices: list[int], *, length: int,
                     seed: int = 0, teacher_forced_fn=None,
                     temperature: float = 1.0) -> dict[str, Any]:
  """Swap test for every example (partner from another song) and the silence test, generated
  at the evaluation's sampling `temperature` (0 = greedy)."""
  rows = []
  for a in indices:
    b = swap_partner(data, split, a, indices)
    rows.append({"index": int(a), **swap_test(run, data, split, a, b, length=length, seed=seed,
                                              teacher_forced_fn=teacher_forced_fn,
                                              temperature=temperature)})
  numeric = [k for k in rows[0] if k not in ("index", "partner")] if rows else []
  mean = {k: float(np.mean([r[k] for r in rows])) for k in numeric}
  reference_rms = float(np.mean([np.sqrt(np.mean(
      data.example(split, i)["audio"][:length].astype(np.float64) ** 2)) for i in indices]))
  return {"swap": {"mean": mean, "examples": rows},
          "silence": {**silence_test(run, data, seed=seed, temperature=temperature),
                      "reference_rms": reference_rms}}

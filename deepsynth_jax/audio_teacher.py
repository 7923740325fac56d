"""What the audio says was pressed at each frame: targets for a key reader without key labels.

The video says when something happens (every frame of sparse video is a key press; its start
sample is known from the video alone) and the reference audio says what: at each frame's start,
the spectral change of the audio is fitted with harmonic templates of the 88 keys
(`metrics.onset_key_activations`, the analysis of the blind transcription); keys whose activation
is at least `RELATIVE_THRESHOLD` of the frame's largest are "heard" as newly struck there. No key
state, MIDI note or anything derived from them is read: only `audio` and `frame_start`.

Measured on the 20-song dataset (5 songs, 2,406 frames; a diagnosis against the simulator's key
states, which training never reads): precision 0.50, recall 0.85 for the keys newly pressed at a
frame. The errors do not follow what the frames show, so a reader that must explain them from the
pictures learns the pressed look rather than the errors.
"""

from __future__ import annotations

import numpy as np

from deepsynth_jax import input_pipeline, metrics

FIELD = "frame_heard"
RELATIVE_THRESHOLD = 0.3


def heard_new_keys(audio: np.ndarray, frame_start: np.ndarray, sample_rate: int) -> np.ndarray:
  """float32 (F, 88) in {0, 1}: the keys heard struck at each frame's start.

  Args:
    audio: float (T,) a whole song's audio in [-1, 1] at `sample_rate`.
    frame_start: int (F,) sample at which each frame becomes current.
  """
  out = np.zeros((len(frame_start), 88), np.float32)
  for f, start in enumerate(np.asarray(frame_start, np.int64)):
    activation = metrics.onset_key_activations(audio, sample_rate, int(start))
    if activation.max() > 0:
      out[f] = activation >= RELATIVE_THRESHOLD * activation.max()
  return out


def add_heard_keys(data: input_pipeline.DeepSynthData) -> None:
  """Adds `frame_heard` (B, F, 88) to every example and batch of `data` (about 1 minute for the
  20-song dataset on 2 cores)."""
  per_song = [heard_new_keys(audio, starts, data.sample_rate)
              for audio, starts in zip(data.song_audio(), data.song_frame_starts(), strict=True)]
  data.add_frame_field(FIELD, per_song)

"""What the audio says was pressed at each frame: targets for a key reader without key labels.

The video says when something happens and the reference audio says what. In sparse video every
frame is a key press and its start sample is known from the video alone: at each frame's start,
the spectral change of the audio is fitted with harmonic templates of the 88 keys
(`metrics.onset_key_activations`, the analysis of the blind transcription); keys whose activation
is at least `RELATIVE_THRESHOLD` of the frame's largest are "heard" as newly struck there. In
camera video (a frame every 1/fps s) a frame is a clock tick, so the "when" comes from the audio:
onsets detected in it (`metrics.detect_onsets`) are fitted the same way, and what is heard at an
onset is credited to the first frame that starts at or after it (the first frame that can show
the key down). No key state, MIDI note or anything derived from them is read: only `audio` and
`frame_start`.

Measured on the 20-song dataset (5 songs, 2,406 frames; a diagnosis against the simulator's key
states, which training never reads): precision 0.50, recall 0.85 for the keys newly pressed at a
sparse frame. The errors do not follow what the frames show, so a reader that must explain them
from the pictures learns the pressed look rather than the errors.
"""

from __future__ import annotations

import numpy as np

from deepsynth_jax import input_pipeline, metrics

FIELD = "frame_heard"
RELATIVE_THRESHOLD = 0.3
# How late `metrics.detect_onsets` places a piano onset: measured on 5 songs of the dataset
# against their MIDI (2,012 onsets matched within 50 ms): median 22 ms, 5-95% 12-32 ms (the onset
# strength peaks once the attack has filled part of its 64 ms window).
DETECTOR_LAG_SECONDS = 0.022


def _heard(activation: np.ndarray) -> np.ndarray:
  """float32 (88,) in {0, 1}: keys with at least RELATIVE_THRESHOLD of the largest activation."""
  if activation.max() <= 0:
    return np.zeros(88, np.float32)
  return (activation >= RELATIVE_THRESHOLD * activation.max()).astype(np.float32)


def heard_new_keys(audio: np.ndarray, frame_start: np.ndarray, sample_rate: int,
                   press_frames: bool = True) -> np.ndarray:
  """float32 (F, 88) in {0, 1}: the keys heard newly struck at each frame.

  Args:
    audio: float (T,) a whole song's audio in [-1, 1] at `sample_rate`.
    frame_start: int (F,) sample at which each frame becomes current.
    press_frames: the frames mark key presses (sparse video: heard at each frame's start);
      False for a camera's fixed frame rate (heard at the audio's onsets, credited to the first
      frame starting at or after each).
  """
  starts = np.asarray(frame_start, np.int64)
  out = np.zeros((len(starts), 88), np.float32)
  if press_frames:
    for f, start in enumerate(starts):
      out[f] = _heard(metrics.onset_key_activations(audio, sample_rate, int(start)))
    return out
  for seconds in metrics.detect_onsets(audio, sample_rate):
    onset = max(int(round((seconds - DETECTOR_LAG_SECONDS) * sample_rate)), 0)
    f = int(np.searchsorted(starts, onset, side="left"))
    if f < len(starts):
      out[f] = np.maximum(out[f], _heard(metrics.onset_key_activations(audio, sample_rate,
                                                                       onset)))
  return out


def add_heard_keys(data: input_pipeline.DeepSynthData) -> None:
  """Adds `frame_heard` (B, F, 88) to every example and batch of `data` (about 1 minute for the
  20-song dataset on 2 cores)."""
  per_song = [heard_new_keys(audio, starts, data.sample_rate, data.press_frames)
              for audio, starts in zip(data.song_audio(), data.song_frame_starts(), strict=True)]
  data.add_frame_field(FIELD, per_song)

"""Which note onsets a keyboard video can show: the ceiling on recovering them from the video.

A frame at sample t shows a key pressed iff some note of that key sounds at t (onset <= t <
offset, as `data_gen.keyboard.keys_at` renders it). Two kinds of video:

* Press frames (the method's sparse video, `press_frames=True`): a frame starts at every note
  press, so a frame's very existence signals an onset, including a re-strike of a key shown held
  (a new frame showing no new key). An onset is visible iff a frame starts exactly at it and the
  note lasts (offset > onset; a zero-length note is never shown pressed).
* Sampled frames (dense `fps:N` video, `press_frames=False`): frames are taken regardless of the
  notes, so an onset is seen only as the key going from shown released to shown pressed. Let h be
  the first frame start >= onset and g the frame start before it. The onset is visible iff
  (a) the note itself is shown: h < offset (a note shorter than a frame interval that falls
      between frames is never shown);
  (b) the key is shown released just before: there is no frame before h, or no note of the pitch
      sounds at g. "Shown" uses the union of the pitch's note intervals, so a key held by an
      overlapping earlier note of the same pitch stays shown pressed; a legato repeat (previous
      offset == onset) is therefore never visible;
  (c) the press shown at h is credited to one note only: no other note of the pitch with an
      earlier onset (or the same onset and an earlier row) also sounds at h. Of several onsets
      between two frames, the earliest that is still sounding at h gets the press.
  Equivalently: every released -> pressed change of a key between consecutive frames (or a key
  pressed at the first frame) is credited to the earliest-onset note of that key with onset in
  (g, h] that sounds at h, and only credited notes are visible.

A re-strike is a note of a key some note of which (with an earlier onset) ended at most
`RESTRIKE_GAP_SECONDS` before this onset or has not ended by it (overlap, zero gap): a repeated
note rather than a new entry. Same-pitch notes with an identical onset count as one press: only
the first row of them can be visible, in either kind of video.
"""

from __future__ import annotations

import numpy as np

# A note whose key was last released at most this long before its onset (or is still held by an
# earlier note of the same key: overlap or zero gap) is a re-strike, a repeated note rather than a
# new entry of the key.
RESTRIKE_GAP_SECONDS = 0.25


def _as_notes(notes: np.ndarray) -> np.ndarray:
  notes = np.asarray(notes)
  if notes.size == 0:
    return np.zeros((0, 4), np.int64)
  if notes.ndim != 2 or notes.shape[1] < 3:
    raise ValueError(f"notes must have shape (M, 4) (onset, offset, pitch, velocity), got "
                     f"{notes.shape}")
  return notes.astype(np.int64)


def onset_visibility(notes: np.ndarray, frame_start: np.ndarray, *, press_frames: bool,
                     sample_rate: int = 4000) -> dict[str, np.ndarray]:
  """Per-note re-strike flag and whether the video can show the note's onset.

  Args:
    notes: int (M, 4) rows `onset_sample, offset_sample, midi_pitch, velocity` (samples at
      `sample_rate`; velocity unused). Any order; M may be 0.
    frame_start: int (F,) sample at which each frame is taken (any order; duplicates are one
      frame).
    press_frames: True for press-triggered (sparse) video, False for sampled (dense) video; see the
      module docstring for both rules.
    sample_rate: samples per second, to convert `RESTRIKE_GAP_SECONDS` to samples.

  Returns:
    {"restrike": bool (M,), "visible": bool (M,)}, in the input note order.
  """
  notes = _as_notes(notes)
  starts = np.unique(np.asarray(frame_start, np.int64).reshape(-1))
  m = len(notes)
  restrike = np.zeros(m, bool)
  visible = np.zeros(m, bool)
  if m == 0:
    return {"restrike": restrike, "visible": visible}
  gap = int(round(RESTRIKE_GAP_SECONDS * sample_rate))
  onset, offset, pitch = notes[:, 0], notes[:, 1], notes[:, 2]
  lasts = offset > onset
  # Process notes pitch by pitch in onset order (stable: row order breaks ties).
  order = np.lexsort((np.arange(m), onset, pitch))
  bounds = np.flatnonzero(np.diff(pitch[order])) + 1
  for rows in np.split(order, bounds):
    on, off = onset[rows], offset[rows]
    # Latest release so far: max offset over the notes before each one (exclusive prefix max).
    prev_max = np.concatenate([[np.iinfo(np.int64).min], np.maximum.accumulate(off)[:-1]])
    # Max offset over notes with a strictly earlier onset (same-onset notes are not previous).
    first_same = np.searchsorted(on, on, side="left")  # index of the first note with this onset
    earlier_max = prev_max[first_same]
    has_earlier = first_same > 0
    restrike[rows] = has_earlier & (on - earlier_max <= gap)
    duplicate = first_same < np.arange(len(rows))  # an earlier row has the same onset
    if len(starts) == 0:
      continue  # no video: nothing is shown
    if press_frames:
      at = np.searchsorted(starts, on, side="left")
      framed = (at < len(starts)) & (starts[np.minimum(at, len(starts) - 1)] == on)
      visible[rows] = framed & lasts[rows] & ~duplicate
      continue
    h_idx = np.searchsorted(starts, on, side="left")
    has_h = h_idx < len(starts)
    h = np.where(has_h, starts[np.minimum(h_idx, len(starts) - 1)], np.iinfo(np.int64).max)
    shown = has_h & (h < off)  # (a)
    g_idx = h_idx - 1
    g = starts[np.maximum(g_idx, 0)]
    # Notes with onset <= g form a prefix of this pitch's sorted notes; the key is pressed at g
    # iff the max offset over that prefix exceeds g.
    n_before_g = np.searchsorted(on, g, side="right")
    cummax = np.concatenate([[np.iinfo(np.int64).min], np.maximum.accumulate(off)])
    pressed_at_g = (g_idx >= 0) & (cummax[n_before_g] > g)
    released_before = ~pressed_at_g  # (b)
    # (c): given (b), every note with onset <= g ended by g, so "an earlier note sounds at h" is
    # "the max offset over all earlier rows exceeds h".
    first_credit = prev_max <= h
    visible[rows] = shown & released_before & first_credit
  return {"restrike": restrike, "visible": visible}


def _fraction(num: int, den: int) -> float | None:
  return num / den if den else None


def visibility_summary(notes: np.ndarray, frame_start: np.ndarray, *, press_frames: bool,
                       sample_rate: int = 4000) -> dict:
  """Counts of onsets and re-strikes the video can show (see `onset_visibility` for arguments).

  Returns:
    {"onsets": M, "visible_onsets", "onset_ceiling": visible / M (None when M == 0),
     "restrikes", "visible_restrikes", "restrike_ceiling": visible / restrikes (None when there
     are none)}; counts are ints, ceilings floats in [0, 1].
  """
  v = onset_visibility(notes, frame_start, press_frames=press_frames, sample_rate=sample_rate)
  onsets, seen = len(v["visible"]), int(v["visible"].sum())
  restrikes = int(v["restrike"].sum())
  seen_restrikes = int((v["restrike"] & v["visible"]).sum())
  return {"onsets": onsets, "visible_onsets": seen, "onset_ceiling": _fraction(seen, onsets),
          "restrikes": restrikes, "visible_restrikes": seen_restrikes,
          "restrike_ceiling": _fraction(seen_restrikes, restrikes)}

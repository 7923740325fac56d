"""The piano simulator: an 88-key keyboard as a camera above it sees it.

Images are grayscale uint8 (H, W), default 32 x 208 (4 px per white key). From the top: a strip of
fallboard felt, then the keys: 52 white keys (light, separated by a darker 1 px gap when a white key
is at least 3 px wide, with a slightly darker front lip) and 36 black keys (dark, over the top 62%
of the key area, each at least 1 px wide, centred on the boundary of its two white keys, with a
lighter front bevel). A pressed key is drawn depressed: it sinks by `shift` rows, leaving a deep
shadow at its back under the fallboard; a pressed white key turns darker, with a shadowed side, and
a pressed black key's top tilts towards the light and turns lighter. Every key's pressed and
released looks differ at every supported size (height >= 8, width >= 104), and rendering is a pure
function of the key state, so it is deterministic.

Video: sparse (the method's) puts one frame at every distinct note-press sample (a chord is one
frame) plus the frame at sample 0, each frame staying current until the next; dense (`fps:N`)
puts a frame every 1/N seconds like a real camera. A frame shows the keys whose notes sound at its
start sample (onset <= t < offset).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

NUM_KEYS = 88
LOWEST_PITCH = 21
NUM_WHITE = 52
DEFAULT_HEIGHT = 32
DEFAULT_WIDTH = 208
MIN_HEIGHT = 8
MIN_WIDTH = 2 * NUM_WHITE
LAYOUT_VERSION = 1

# Shades (0 = black, 255 = white).
FELT = 70
WHITE, WHITE_LIP, GAP = 235, 205, 140
WHITE_PRESSED, WHITE_PRESSED_LIP, WHITE_SIDE_SHADOW, BACK_SHADOW = 185, 160, 150, 105
BLACK, BLACK_BEVEL = 30, 75
BLACK_PRESSED, BLACK_BACK_SHADOW = 105, 0

_BLACK_PITCH_CLASSES = (1, 3, 6, 8, 10)


def is_black_key() -> np.ndarray:
  """bool (88,): whether key k (MIDI pitch 21 + k) is a black key."""
  return np.isin((np.arange(NUM_KEYS) + LOWEST_PITCH) % 12, _BLACK_PITCH_CLASSES)


@dataclasses.dataclass(frozen=True)
class Layout:
  """Pixel layout of the keyboard at one size.

  Attributes:
    owner: int16 (H, W): the key (0..87) each pixel belongs to, or 88 for felt and gaps.
    released: uint8 (H, W): the keyboard with no key pressed.
    pressed: uint8 (H, W): the keyboard with every key pressed.
    shift: rows a pressed key sinks by.
  """
  owner: np.ndarray
  released: np.ndarray
  pressed: np.ndarray
  shift: int

  def settings(self) -> dict:
    """JSON-able description of the renderer, for the dataset manifest."""
    h, w = self.owner.shape
    return {"height": int(h), "width": int(w), "layout_version": LAYOUT_VERSION,
            "white_keys": NUM_WHITE, "black_keys": NUM_KEYS - NUM_WHITE,
            "pressed_key": f"sinks {self.shift} rows, back shadow, white darker, black lighter"}


def check_size(height: int, width: int) -> None:
  """Raises ValueError unless every key (and every pressed key) is visible at this size."""
  if int(height) != height or int(width) != width or height < MIN_HEIGHT or width < MIN_WIDTH:
    raise ValueError(f"keyboard size {height}x{width} is too small: need height >= {MIN_HEIGHT} "
                     f"and width >= {MIN_WIDTH} (2 px per white key) so that every key is visible")


@functools.lru_cache(maxsize=16)
def layout(height: int = DEFAULT_HEIGHT, width: int = DEFAULT_WIDTH) -> Layout:
  """The keyboard's pixel layout at (height, width); cached, arrays read-only."""
  check_size(height, width)
  h, w = int(height), int(width)
  felt = max(1, round(h * 0.0625))
  key_h = h - felt
  black_h = max(2, round(key_h * 0.62))
  shift = max(1, round(key_h * 0.07))
  lip = max(1, round(key_h * 0.07))
  bevel = max(1, round(black_h * 0.12))

  owner = np.full((h, w), NUM_KEYS, np.int16)
  released = np.full((h, w), FELT, np.uint8)
  pressed = released.copy()
  black = is_black_key()
  white_keys = np.flatnonzero(~black)
  ww = w / NUM_WHITE

  for j, k in enumerate(white_keys):
    x0, x1 = round(j * ww), round((j + 1) * ww)
    gap = j > 0 and x1 - x0 >= 3
    xs = slice(x0 + 1 if gap else x0, x1)
    owner[felt:, xs] = k
    released[felt:, xs] = WHITE
    released[h - lip:, xs] = WHITE_LIP
    pressed[felt:, xs] = WHITE_PRESSED
    pressed[h - lip:, xs] = WHITE_PRESSED_LIP
    if x1 - x0 >= 3:
      pressed[felt:, x1 - 1] = WHITE_SIDE_SHADOW
    pressed[felt:felt + shift, xs] = BACK_SHADOW
    if gap:
      released[felt:, x0] = GAP
      pressed[felt:, x0] = GAP

  bw = 0.6 * ww
  for k in np.flatnonzero(black):
    boundary = int(np.sum(~black[:k]))  # white keys to its left
    c = boundary * ww
    x0 = round(c - bw / 2)
    x1 = max(x0 + 1, round(c + bw / 2))
    rows = slice(felt, felt + black_h)
    owner[rows, x0:x1] = k
    released[rows, x0:x1] = BLACK
    released[felt + black_h - bevel:felt + black_h, x0:x1] = BLACK_BEVEL
    pressed[rows, x0:x1] = BLACK_PRESSED
    pressed[felt:felt + shift, x0:x1] = BLACK_BACK_SHADOW

  for a in (owner, released, pressed):
    a.setflags(write=False)
  return Layout(owner=owner, released=released, pressed=pressed, shift=shift)


def render_frames(keys: np.ndarray, height: int = DEFAULT_HEIGHT,
                  width: int = DEFAULT_WIDTH) -> np.ndarray:
  """Renders key states (F, 88) (bool or 0/1; column k = MIDI pitch 21 + k) -> uint8 (F, H, W)."""
  keys = np.asarray(keys)
  if keys.ndim != 2 or keys.shape[1] != NUM_KEYS:
    raise ValueError(f"key states must have shape (F, {NUM_KEYS}), got {keys.shape}")
  lay = layout(height, width)
  ext = np.zeros((keys.shape[0], NUM_KEYS + 1), bool)
  ext[:, :NUM_KEYS] = keys.astype(bool)
  return np.where(ext[:, lay.owner], lay.pressed, lay.released)


def render_keyboard(pressed: np.ndarray, height: int = DEFAULT_HEIGHT,
                    width: int = DEFAULT_WIDTH) -> np.ndarray:
  """Renders one keyboard: pressed bool (88,) (all False = untouched) -> uint8 (H, W)."""
  pressed = np.asarray(pressed)
  if pressed.shape != (NUM_KEYS,):
    raise ValueError(f"pressed must have shape ({NUM_KEYS},), got {pressed.shape}")
  return render_frames(pressed[None], height, width)[0]


def parse_frames_mode(frames: str, sample_rate: int) -> float | None:
  """'sparse' -> None; 'fps:N' -> N frames per second (0 < N <= sample_rate); else ValueError."""
  if frames == "sparse":
    return None
  if isinstance(frames, str) and frames.startswith("fps:"):
    try:
      fps = float(frames[4:])
    except ValueError:
      fps = float("nan")
    if np.isfinite(fps) and 0 < fps <= sample_rate:
      return fps
  raise ValueError(f"--frames={frames!r} is not valid: use 'sparse' (a frame per note press) or "
                   f"'fps:N' with 0 < N <= {sample_rate} (e.g. fps:30)")


def sparse_frame_starts(notes: np.ndarray) -> np.ndarray:
  """int64 (F,): sample 0 and every distinct onset sample of notes (M, 4) (onset in column 0)."""
  onsets = np.asarray(notes, np.int64).reshape(-1, 4)[:, 0]
  return np.unique(np.concatenate([[0], onsets])).astype(np.int64)


def dense_frame_starts(num_samples: int, sample_rate: int, fps: float) -> np.ndarray:
  """int64 (F,): a frame every 1/fps seconds, starting at sample 0, before `num_samples`."""
  count = int(np.ceil(num_samples * fps / sample_rate))
  starts = np.unique(np.round(np.arange(count) * (sample_rate / fps)).astype(np.int64))
  return starts[starts < num_samples]


def keys_at(notes: np.ndarray, frame_start: np.ndarray) -> np.ndarray:
  """uint8 (F, 88): 1 where a note (M, 4) sounds at each frame's start (onset <= t < offset)."""
  notes = np.asarray(notes, np.int64).reshape(-1, 4)
  starts = np.asarray(frame_start, np.int64)
  first = np.searchsorted(starts, notes[:, 0], side="left")
  end = np.searchsorted(starts, notes[:, 1], side="left")
  key = notes[:, 2] - LOWEST_PITCH
  counts = np.zeros((len(starts) + 1, NUM_KEYS), np.int32)
  np.add.at(counts, (first, key), 1)
  np.add.at(counts, (end, key), -1)
  return (np.cumsum(counts, axis=0)[:-1] > 0).astype(np.uint8)


def render_video(notes: np.ndarray, num_samples: int, sample_rate: int, frames: str = "sparse",
                 height: int = DEFAULT_HEIGHT, width: int = DEFAULT_WIDTH):
  """Renders a whole performance's silent video.

  Args:
    notes: int64 (M, 4) onset_sample, offset_sample, midi_pitch (21..108), velocity.
    num_samples: the performance's audio length N in samples (frames start before it).
    sample_rate: samples per second of the note times.
    frames: 'sparse' or 'fps:N'.
    height, width: image size in pixels.

  Returns:
    (frames uint8 (F, H, W), frame_start int64 (F,), frame_keys uint8 (F, 88)); frame_start[0] == 0
    and frame_start strictly increases.
  """
  fps = parse_frames_mode(frames, sample_rate)
  if fps is None:
    starts = sparse_frame_starts(notes)
  else:
    starts = dense_frame_starts(num_samples, sample_rate, fps)
  starts = starts[starts < max(num_samples, 1)]
  keys = keys_at(notes, starts)
  return render_frames(keys, height, width), starts, keys

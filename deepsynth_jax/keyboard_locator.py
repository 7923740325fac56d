"""Finds the keyboard in a camera's video and rectifies it to the view a model was trained on.

A model reads keys at the places where its training frames showed them. A camera that is shifted,
rolled or tilted, or exposed differently, shows every key somewhere else and in other shades, so
a model trained on the simulator's straight view plays wrong notes. The keyboard's layout is
known (a piano's is standard: `data_gen.keyboard.layout`), so each video is located once:

1. `locate`: the video's median frame (the keyboard at rest: any key is up most of the time, and
   the sensor noise averages out) is compared with the rendered keyboard at rest seen through a
   camera pose (`data_gen.camera`: horizontal and vertical shift, roll and keystone); the pose of
   highest normalized correlation is found by a coarse scan of the shift over one white key,
   then coordinate search with halving steps. The shades follow from a least-squares fit of the
   median frame to the posed rendering (video = gain x rendering + offset).
2. `rectify`: every frame is resampled where the pose puts the straight view's pixels
   (antialiased bilinear, at the model's frame size) and its shades mapped back.

Frames uint8 (F, H, W) grayscale; the keyboard fills the image as in the simulator (a camera
framed on the keyboard). Deterministic: no randomness anywhere.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import ndimage

from data_gen import camera, keyboard

# (name, initial step, low, high) of the searched pose, in `camera.CameraStyle` units.
_POSE = (
    ("shift_x", 0.004, -0.05, 0.05),
    ("shift_y", 0.02, -0.2, 0.2),
    ("rotation_deg", 0.3, -3.0, 3.0),
    ("perspective", 0.01, 0.0, 0.2),
    ("blur_sigma", 0.4, 0.0, 4.0),
)
_HALVINGS = 6
# The coarse scan of shift_x: a white key is 1/52 of the width either way, in 1/10 of a key.
_SCAN_X = np.linspace(-1.0, 1.0, 21) / keyboard.NUM_WHITE
# Below this correlation the frames do not show the keyboard the simulator draws.
MIN_CORRELATION = 0.5


class KeyboardNotFoundError(ValueError):
  """The video does not show a keyboard framed like the simulator's (see MIN_CORRELATION)."""


@dataclasses.dataclass(frozen=True)
class KeyboardPose:
  """Where and how a video shows the keyboard.

  Attributes:
    height, width: the video's frame size, pixels.
    view_height, view_width: the straight view's size the pose is relative to, pixels.
    shift_x, shift_y, rotation_deg, perspective, blur_sigma: the camera pose and focus
      (`camera.CameraStyle` units: fractions of the width / height, degrees counter-clockwise,
      keystone fraction, blur std in pixels of a 32 x 208 keyboard).
    gain, offset: shades, video gray level = gain x rendered gray level + offset.
    correlation: normalized correlation of the posed rendering with the video's median frame
      (1 = a perfect match).
  """
  height: int
  width: int
  view_height: int = keyboard.DEFAULT_HEIGHT
  view_width: int = keyboard.DEFAULT_WIDTH
  shift_x: float = 0.0
  shift_y: float = 0.0
  rotation_deg: float = 0.0
  perspective: float = 0.0
  blur_sigma: float = 0.0
  gain: float = 1.0
  offset: float = 0.0
  correlation: float = 1.0


def _gray(frames: np.ndarray) -> np.ndarray:
  frames = np.asarray(frames)
  if frames.ndim != 3 or frames.dtype != np.uint8:
    raise ValueError(f"frames must be uint8 (F, H, W) grayscale, got {frames.dtype} "
                     f"{frames.shape}")
  return frames


def _posed(rest: np.ndarray, pose: dict[str, float], height: int, width: int) -> np.ndarray:
  """float64 (height, width): the straight view `rest` seen through `pose` at the video's size,
  as the simulator's camera films its rendering (`camera.view`)."""
  style = camera.CameraStyle(height=height, width=width, **pose)
  return camera.view(rest[None], style, np.random.default_rng(0))[0].astype(np.float64)


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
  a, b = a - a.mean(), b - b.mean()
  denom = math.sqrt(float(np.sum(a * a) * np.sum(b * b)))
  return float(np.sum(a * b) / denom) if denom > 0 else 0.0


def locate(frames: np.ndarray, size: tuple[int, int]) -> KeyboardPose:
  """The pose and shades of the keyboard in uint8 (F, H, W) frames of one camera, relative to the
  straight view at `size` (h, w) (the model's frame size: the keyboard is rendered there, as
  the model saw it in training, and filmed at the video's size).

  Raises:
    KeyboardNotFoundError: the best pose correlates below MIN_CORRELATION with the video.
  """
  frames = _gray(frames)
  height, width = frames.shape[1:]
  keyboard.check_size(height, width)
  median = np.median(frames, axis=0).astype(np.float64)
  rest = keyboard.render_keyboard(np.zeros(keyboard.NUM_KEYS, bool), *size)
  score = lambda p: _correlation(_posed(rest, p, height, width), median)
  pose = {name: 0.0 for name, *_ in _POSE}
  best = score(pose)
  for x in _SCAN_X:  # the keyboard repeats every white key: start within half a key of it
    trial = {**pose, "shift_x": float(x)}
    if (s := score(trial)) > best:
      pose, best = trial, s
  for level in range(_HALVINGS):
    improved = True
    while improved:
      improved = False
      for name, step, low, high in _POSE:
        for sign in (1.0, -1.0):
          value = min(max(pose[name] + sign * step / 2 ** level, low), high)
          trial = {**pose, name: value}
          if (s := score(trial)) > best + 1e-9:
            pose, best, improved = trial, s, True
  if best < MIN_CORRELATION:
    raise KeyboardNotFoundError(
        f"these {height} x {width} frames do not show a keyboard framed like the simulator's "
        f"(best correlation with it {best:.2f} < {MIN_CORRELATION}); frame the camera on the "
        "keyboard, whole and level, filling the image")
  design = np.stack([_posed(rest, pose, height, width).ravel(), np.ones(median.size)], axis=1)
  (gain, offset), *_ = np.linalg.lstsq(design, median.ravel(), rcond=None)
  return KeyboardPose(height=height, width=width, view_height=int(size[0]),
                      view_width=int(size[1]), gain=float(gain), offset=float(offset),
                      correlation=best, **pose)


def _video_coords(pose: KeyboardPose) -> tuple[np.ndarray, np.ndarray]:
  """float64 (h, w) row and column in the video of each pixel centre of the straight view
  (pose.view_height, pose.view_width): the camera's forward model (keystone, roll, shift, then
  the scale to the video's size), which `camera.view` inverts to film a rendering."""
  h, w = pose.view_height, pose.view_width
  y = np.arange(h) + 0.5 - h / 2
  x = np.arange(w) + 0.5 - w / 2
  y, x = np.meshgrid(y, x, indexing="ij")
  x = x * (1.0 - pose.perspective * (0.5 - y / h))
  t = math.radians(pose.rotation_deg)
  c, s = math.cos(t), math.sin(t)
  x, y = c * x + s * y, -s * x + c * y
  x = x + pose.shift_x * w
  y = y + pose.shift_y * h
  return (y + h / 2) * (pose.height / h) - 0.5, (x + w / 2) * (pose.width / w) - 0.5


def rectify(frames: np.ndarray, pose: KeyboardPose) -> np.ndarray:
  """uint8 (F, H, W) frames of the camera `pose` -> uint8 (F, h, w) straight views at the pose's
  view size, in the rendering's shades and focus: antialiasing blur (std (H / h - 1) / 2 pixels
  per axis when shrinking), bilinear sampling at `_video_coords` (edges replicated),
  (x - offset) / gain, then the lens blur undone (`deblur`)."""
  frames = _gray(frames)
  if frames.shape[1:] != (pose.height, pose.width):
    raise ValueError(f"frames are {frames.shape[1]} x {frames.shape[2]}, the pose is of "
                     f"{pose.height} x {pose.width} video")
  rows, cols = _video_coords(pose)
  sigma = (max(0.0, (pose.height / pose.view_height - 1) / 2),
           max(0.0, (pose.width / pose.view_width - 1) / 2))
  out = np.empty((len(frames), pose.view_height, pose.view_width), np.float32)
  for i, frame in enumerate(frames):
    image = frame.astype(np.float32)
    if max(sigma) > 0:
      image = ndimage.gaussian_filter(image, sigma, mode="nearest")
    out[i] = ndimage.map_coordinates(image, [rows, cols], order=1, mode="nearest")
  out = (out - np.float32(pose.offset)) / np.float32(pose.gain)
  # The lens blur in the straight view's pixels (blur_sigma is in pixels of a 32-row keyboard),
  # with the bilinear resampling's own blur.
  blur = pose.blur_sigma * pose.view_height / camera.REFERENCE_HEIGHT
  if blur > MIN_DEBLUR:
    out = deblur(out, math.hypot(blur, RESAMPLING_BLUR))
  return np.clip(np.rint(out), 0, 255).astype(np.uint8)


# Lens blur (std in the straight view's pixels) below which frames are left as they are.
MIN_DEBLUR = 0.1
# The bilinear resampling's own blur, std in pixels, added to the lens blur that `deblur` undoes.
RESAMPLING_BLUR = 0.3
# Noise-to-signal ratios the Wiener filter chooses among, per video.
NSR_GRID = (1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 1e-1, 2e-1)


def deblur(frames: np.ndarray, sigma: float) -> np.ndarray:
  """Wiener deconvolution of a Gaussian blur of std `sigma` pixels from float32 (F, h, w)
  straight views of one camera (reflected borders).

  Too little regularization turns the sensor noise into stripes, too much leaves the blur; the
  noise-to-signal ratio is chosen per video from NSR_GRID as the one whose frames come closest
  to the keyboard at rest as rendered (median over frames of the mean absolute difference: the
  few keys pressed in a frame do not move a median). A key reader trained on sharp frames
  tolerates noise (15 gray levels cost the shipped model's nothing) far better than blur (1.1
  pixels took its key F1 from 1.00 to 0.66).
  """
  h, w = frames.shape[1:]
  ph, pw = h // 2, w // 8
  spectrum = np.fft.rfft2(np.pad(frames, ((0, 0), (ph, ph), (pw, pw)), mode="reflect"))
  fy = np.fft.fftfreq(h + 2 * ph)[:, None]
  fx = np.fft.rfftfreq(w + 2 * pw)[None]
  transfer = np.exp(-2.0 * (np.pi * sigma) ** 2 * (fx ** 2 + fy ** 2))
  rest = keyboard.render_keyboard(np.zeros(keyboard.NUM_KEYS, bool), h, w).astype(np.float32)
  best, best_error = frames, math.inf
  for nsr in NSR_GRID:
    out = np.fft.irfft2(spectrum * (transfer / (transfer ** 2 + nsr)), s=(h + 2 * ph, w + 2 * pw))
    out = out[:, ph:ph + h, pw:pw + w].astype(np.float32)
    error = float(np.median(np.mean(np.abs(out - rest), axis=(1, 2))))
    if error < best_error:
      best, best_error = out, error
  return best


def straighten(frames: np.ndarray, size: tuple[int, int], *,
               clock_frames: bool = False) -> tuple[np.ndarray, KeyboardPose]:
  """`locate` then `rectify`: uint8 (F, H, W) frames of one clip, or (B, F, H, W) of B clips, all
  filmed by one camera -> uint8 (..., h, w) straight views at `size`, and the pose (fitted to
  all the frames together).

  With `clock_frames` (video at a fixed frame rate, not a frame per key press), each pixel is
  first replaced by its median over the frame and its two neighbours in time, within its clip:
  sensor noise, which deblurring amplifies, is new in every frame, while a key stays down for
  more than one frame of a 24-60 fps camera. (A key down for one frame only is lost; sparse
  press frames, where every frame is a new key state, are never filtered.)
  """
  frames = np.asarray(frames)
  if frames.ndim not in (3, 4):
    raise ValueError(f"frames must be uint8 (F, H, W) or (B, F, H, W), got {frames.shape}")
  clips = frames if frames.ndim == 4 else frames[None]
  pose = locate(_gray(clips.reshape((-1, *clips.shape[2:]))), size)
  out = []
  for clip in clips:
    if clock_frames and len(clip) >= 3:
      clip = ndimage.median_filter(clip, size=(3, 1, 1), mode="nearest")
    out.append(rectify(clip, pose))
  straight = np.stack(out)
  return (straight if frames.ndim == 4 else straight[0]), pose

r"""A camera-like view of the simulated keyboard: resolution, exposure, noise, blur and pose.

The simulator (data_gen.keyboard) renders a perfect, axis-aligned keyboard. A real camera differs;
a `CameraStyle` says how, and `view` applies it to rendered frames (uint8 (F, H, W) in, uint8
(F, style.height, style.width) out). Units:

  height, width     output resolution in pixels (the same field of view as the input: the whole
                    keyboard, resampled).
  brightness        gray levels (0..255) added after contrast.
  contrast          factor on the deviation from mid-gray 128 (1 = unchanged).
  noise_std         std of Gaussian sensor noise in gray levels, drawn independently per pixel and
                    per frame (quantiles exact to 1/65536, so |noise| <= 4.3 std).
  blur_sigma        std of a Gaussian blur (lens focus) in reference pixels: pixels of the keyboard
                    drawn at 32 x 208 (1/32 of the image height, 1/208 of its width), whatever the
                    input and output sizes.
  shift_x, shift_y  camera shift as a fraction of the image width / height (+ moves the keyboard
                    right / down in the image).
  rotation_deg      roll of the camera about the image centre, degrees (+ turns the keyboard
                    counter-clockwise as seen on screen).
  perspective       keystone: the far (top) edge of the keyboard appears narrower than the near
                    (bottom) edge by this fraction, about the centre column (0 = none).

`CLEAN` (all defaults: 32 x 208, nothing else) is the identity on 32 x 208 frames, bit for bit.
`STYLES` names the styles a dataset can be built with; `held_out` perturbs every setting outside
`TRAINING_RANGES`, the ranges `draw_style` / `augment` draw from for training augmentation, so a
model trained with augmentation is tested on a camera it never saw:

  python -m data_gen.make_dataset --out_dir=data/deepsynth
  python -m data_gen.make_dataset --out_dir=data/deepsynth_held_out_camera --camera=held_out

Song frames and their keys are the same in both datasets (same songs, same split); only the
frames' look differs. `view` is deterministic: the same frames, style and rng state give the same
bytes.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import numpy as np
from scipy import sparse, special

from data_gen import keyboard

REFERENCE_HEIGHT = 32  # blur_sigma is measured in pixels of the keyboard drawn at this size
REFERENCE_WIDTH = 208
ASPECT = REFERENCE_WIDTH / REFERENCE_HEIGHT  # 6.5: training styles keep the keyboard's aspect
MID_GRAY = 128.0
_CHUNK_FRAMES = 256  # frames processed at once (bounds the float32 working memory)


@dataclasses.dataclass(frozen=True)
class CameraStyle:
  """How a camera sees the keyboard; see the module docstring for the units of every field.

  Attributes:
    height, width: output resolution, pixels (each >= keyboard.MIN_HEIGHT / MIN_WIDTH).
    brightness: gray levels added (0..255 scale).
    contrast: factor on the deviation from mid-gray 128 (> 0).
    noise_std: Gaussian sensor noise std, gray levels, drawn per pixel and frame (>= 0).
    blur_sigma: Gaussian blur std in reference pixels (of a 32 x 208 keyboard) (>= 0).
    shift_x, shift_y: shift as a fraction of the image width / height (+ = right / down).
    rotation_deg: rotation about the image centre, degrees (+ = counter-clockwise on screen).
    perspective: keystone, the top edge narrower than the bottom by this fraction (0 <= p < 1).
  """
  height: int = REFERENCE_HEIGHT
  width: int = REFERENCE_WIDTH
  brightness: float = 0.0
  contrast: float = 1.0
  noise_std: float = 0.0
  blur_sigma: float = 0.0
  shift_x: float = 0.0
  shift_y: float = 0.0
  rotation_deg: float = 0.0
  perspective: float = 0.0

  def __post_init__(self):
    keyboard.check_size(self.height, self.width)
    if not self.contrast > 0 or not self.noise_std >= 0 or not self.blur_sigma >= 0:
      raise ValueError(f"camera style needs contrast > 0, noise_std >= 0 and blur_sigma >= 0: "
                       f"{self}")
    if not 0 <= self.perspective < 1:
      raise ValueError(f"camera perspective {self.perspective} must be in [0, 1)")
    values = (self.brightness, self.shift_x, self.shift_y, self.rotation_deg)
    if not all(math.isfinite(v) for v in values):
      raise ValueError(f"camera style values must be finite: {self}")

  def settings(self) -> dict[str, Any]:
    """JSON-able dict of the fields (ints for the resolution, floats for the rest)."""
    return {f.name: (int if f.name in ("height", "width") else float)(getattr(self, f.name))
            for f in dataclasses.fields(self)}


CLEAN = CameraStyle()


def width_for(height: int) -> int:
  """The width (pixels) that keeps the keyboard's 6.5 aspect ratio at `height`, rounded half up."""
  return int(math.floor(height * ASPECT + 0.5))


# field -> (low, high), inclusive, for training augmentation. The width is not drawn: it follows
# the height (width_for), so its range is that of the height times 6.5. At 24 x 156 a white key is
# still 3 px wide. The pose ranges move a key by at most a quarter of a white key (1 px of 4 at
# 32 x 208): a key reader that reads each key at a fixed place in the image
# (models/key_reader.py: PlacedKeyReader) reads the neighbouring key under a larger shift, and
# training with shifts of a whole key (measured: +-2% of the width, +-1.5 deg, keystone 4%) left
# the label-free reader unable to tell neighbouring keys apart (pitch F1 0.22 after 6 epochs,
# against 0.69 without the camera).
TRAINING_RANGES: dict[str, tuple[float, float]] = {
    "height": (24, 48),
    "width": (width_for(24), width_for(48)),
    "brightness": (-30.0, 30.0),
    "contrast": (0.7, 1.3),
    "noise_std": (0.0, 8.0),
    "blur_sigma": (0.0, 0.8),
    "shift_x": (-0.004, 0.004),
    "shift_y": (-0.03, 0.03),
    "rotation_deg": (-0.3, 0.3),
    "perspective": (0.0, 0.01),
}

# Named styles for whole datasets (make_dataset --camera). `held_out` sets every perturbation
# moderately outside its training range (never drawn by draw_style), still a plausible camera on
# which every key is visible: sharper resolution than any training draw, darker and flatter
# exposure, more noise and blur, a larger shift, roll and keystone.
STYLES: dict[str, CameraStyle] = {
    "clean": CLEAN,
    "held_out": CameraStyle(height=56, width=width_for(56), brightness=-45.0, contrast=0.6,
                            noise_std=11.0, blur_sigma=1.1, shift_x=0.006, shift_y=-0.04,
                            rotation_deg=0.45, perspective=0.015),
}


def draw_style(rng: np.random.Generator) -> CameraStyle:
  """A style drawn uniformly inside TRAINING_RANGES (the height uniformly among the integers, the
  width following it); deterministic given the rng state."""
  lo, hi = TRAINING_RANGES["height"]
  height = int(rng.integers(int(lo), int(hi) + 1))
  kw = {name: float(rng.uniform(lo, hi)) for name, (lo, hi) in TRAINING_RANGES.items()
        if name not in ("height", "width")}
  return CameraStyle(height=height, width=width_for(height), **kw)


# ----------------------------------------------------------------------------------------------
# The view.


def _source_coords(style: CameraStyle, in_h: int, in_w: int) -> tuple[np.ndarray, np.ndarray]:
  """Inverse mapping: for every output pixel centre, where it looks in the input frame.

  Returns float64 (h, w) row and column coordinates in input pixels (pixel centres at integers).
  The camera's forward model on centred input-pixel coordinates is keystone, then rotation about
  the centre, then shift; this inverts it: unshift, unrotate, unkeystone.
  """
  h, w = style.height, style.width
  # Output pixel centres in input pixel units, centred on the image centre.
  x = (np.arange(w) + 0.5) * (in_w / w) - in_w / 2
  y = (np.arange(h) + 0.5) * (in_h / h) - in_h / 2
  y, x = np.meshgrid(y, x, indexing="ij")
  x = x - style.shift_x * in_w
  y = y - style.shift_y * in_h
  if style.rotation_deg:
    t = math.radians(style.rotation_deg)
    c, s = math.cos(t), math.sin(t)
    x, y = c * x - s * y, s * x + c * y
  if style.perspective:
    # Forward: x' = x * scale(y), scale 1 - p at the top edge (y = -H/2), 1 at the bottom edge.
    x = x / (1.0 - style.perspective * (0.5 - y / in_h))
  return y + in_h / 2 - 0.5, x + in_w / 2 - 0.5


def _bilinear_matrix(ys: np.ndarray, xs: np.ndarray, in_h: int, in_w: int) -> sparse.csr_matrix:
  """Sparse (h*w, in_h*in_w) bilinear sampling at float (h, w) input coordinates, replicate
  border: row r holds the 4 taps of output pixel r (coinciding taps are summed by the product)."""
  def taps(coord, size):
    c = np.clip(coord.ravel().astype(np.float32), 0, size - 1)
    i0 = np.minimum(c.astype(np.int32), size - 1)  # c >= 0: truncation is the floor
    return i0, np.minimum(i0 + 1, size - 1), c - i0

  y0, y1, fy = taps(ys, in_h)
  x0, x1, fx = taps(xs, in_w)
  n = len(fx)
  cols = np.empty((n, 4), np.int32)
  cols[:, 0], cols[:, 1] = y0 * in_w + x0, y0 * in_w + x1
  cols[:, 2], cols[:, 3] = y1 * in_w + x0, y1 * in_w + x1
  gx = 1 - fx
  data = np.empty((n, 4), np.float32)
  data[:, 0], data[:, 1] = (1 - fy) * gx, (1 - fy) * fx
  data[:, 2], data[:, 3] = fy * gx, fy * fx
  return sparse.csr_matrix((data.ravel(), cols.ravel(), np.arange(0, 4 * n + 1, 4, dtype=np.int32)),
                           shape=(n, in_h * in_w))


def _gaussian_taps(sigma: float) -> tuple[np.ndarray, np.ndarray]:
  """Offsets and normalised float32 weights of a Gaussian of std `sigma` (pixels), truncated at
  4 sigma like scipy.ndimage."""
  radius = int(4.0 * sigma + 0.5)
  offsets = np.arange(-radius, radius + 1)
  weights = np.exp(-0.5 * (offsets / sigma) ** 2)
  return offsets, (weights / weights.sum()).astype(np.float32)


def _blur_rows_matrix(sigma: float, size: int) -> np.ndarray:
  """Dense float32 (size, size) Gaussian blur along one axis, replicate border."""
  offsets, weights = _gaussian_taps(sigma)
  k = np.zeros((size, size), np.float32)
  rows = np.repeat(np.arange(size), len(offsets))
  np.add.at(k, (rows, np.clip(rows + np.tile(offsets, size), 0, size - 1)),
            np.tile(weights, size))
  return k


def _blur_columns_matrix(sigma: float, height: int, width: int) -> sparse.csr_matrix:
  """Sparse (height*width, height*width) Gaussian blur along the rows of an image flattened row
  by row (i.e. across columns x), replicate border."""
  offsets, weights = _gaussian_taps(sigma)
  n, k = height * width, len(offsets)
  pixel = np.arange(n)
  x = pixel % width
  cols = (pixel - x)[:, None] + np.clip(x[:, None] + offsets, 0, width - 1)
  return sparse.csr_matrix((np.tile(weights, n), cols.ravel(), np.arange(0, k * n + 1, k)),
                           shape=(n, n))


_NOISE_LEVELS = 1 << 16


@functools.lru_cache(maxsize=1)
def _normal_table() -> np.ndarray:
  """float32 (65536,): standard normal quantiles at (k + 1/2) / 65536, rescaled to unit std."""
  z = special.ndtri((np.arange(_NOISE_LEVELS) + 0.5) / _NOISE_LEVELS)
  return (z / z.std()).astype(np.float32)


def _noise(rng: np.random.Generator, shape: tuple[int, ...], std: float) -> np.ndarray:
  """float32 Gaussian noise of `shape` and std `std`, by inverse CDF of 16-bit uniform draws from
  `rng` (quantiles exact to 1/65536, |z| <= 4.3): 2-3x faster than rng.standard_normal."""
  table = _normal_table() * np.float32(std)
  return np.take(table, rng.integers(0, _NOISE_LEVELS, size=shape, dtype=np.uint16))


def view(frames: np.ndarray, style: CameraStyle, rng: np.random.Generator) -> np.ndarray:
  """The frames as the camera `style` sees them.

  Steps, in effect: geometry (shift, rotation, keystone and the resolution change, as one inverse
  mapping computed once per call and one sparse bilinear sampling matrix applied to every frame,
  sampling the input at the output pixel centres, replicate border), Gaussian blur, contrast and
  brightness, sensor noise (i.i.d. Gaussian per pixel and frame, drawn from `rng` only when
  noise_std > 0, by inverse CDF of 16-bit uniform draws: see _noise), rounding and clipping to
  0..255. For speed the blur is applied on the input grid before the sampling, merged with the
  antialiasing blur of a downscale (std (f - 1) / 2 input pixels per axis, f the downscale
  factor, as in scikit-image): a Gaussian commutes with shift, rotation and scaling, so this
  equals blurring after the geometry up to the keystone's few-percent scale change. A style
  equal to CLEAN on frames of its size returns a copy of the input, bit for bit, and draws
  nothing from `rng`.

  Speed, 60 frames of 32 x 208 on one core (AMD EPYC, time.perf_counter, taskset to one core of
  a busy shared 2-core machine): to 32 x 208 with every perturbation on, about 6 ms of compute
  (sum of each step's best time; the noise draw is a third of it) and 10-13 ms best of 30 end to
  end; a random training style 8 ms on average (best of 10, 20 styles); held_out (56 x 364)
  about 23 ms. Work grows with the output size.

  Args:
    frames: uint8 (F, H, W), rendered keyboard frames (any size).
    style: the camera.
    rng: source of the sensor noise.

  Returns:
    uint8 (F, style.height, style.width).
  """
  frames = np.asarray(frames)
  if frames.ndim != 3 or frames.dtype != np.uint8:
    raise ValueError(f"frames must be uint8 (F, H, W), got {frames.dtype} {frames.shape}")
  num, in_h, in_w = frames.shape
  h, w = style.height, style.width
  moves = bool(style.shift_x or style.shift_y or style.rotation_deg or style.perspective)
  resample = moves or (in_h, in_w) != (h, w)
  if not resample and dataclasses.replace(style, height=REFERENCE_HEIGHT,
                                          width=REFERENCE_WIDTH) == CLEAN:
    return frames.copy()

  # Blur std on the input grid, per axis: the style's (reference pixels -> input pixels) and the
  # antialiasing of a downscale.
  sigma_y = math.hypot(style.blur_sigma * in_h / REFERENCE_HEIGHT, max(0.0, (in_h / h - 1) / 2))
  sigma_x = math.hypot(style.blur_sigma * in_w / REFERENCE_WIDTH, max(0.0, (in_w / w - 1) / 2))
  blur_y = _blur_rows_matrix(sigma_y, in_h) if int(4.0 * sigma_y + 0.5) else None
  blur_x = _blur_columns_matrix(sigma_x, in_h, in_w) if int(4.0 * sigma_x + 0.5) else None
  sample = _bilinear_matrix(*_source_coords(style, in_h, in_w), in_h, in_w) if resample else None
  gain = np.float32(style.contrast)
  offset = np.float32(MID_GRAY + style.brightness - MID_GRAY * style.contrast)

  out = np.empty((num, h, w), np.uint8)
  for start in range(0, num, _CHUNK_FRAMES):
    block = frames[start:start + _CHUNK_FRAMES]
    n = len(block)
    # Pixels x frames layout: every linear step is one matrix product for the whole chunk, and
    # the pointwise steps run on contiguous memory; the uint8 result is transposed back.
    x = np.ascontiguousarray(block.reshape(n, in_h * in_w).T, dtype=np.float32)
    if blur_y is not None:
      x = (blur_y @ x.reshape(in_h, in_w * n)).reshape(in_h * in_w, n)
    if blur_x is not None:
      x = blur_x @ x
    if sample is not None:
      x = sample @ x
    x *= gain
    x += offset
    if style.noise_std > 0:
      x += _noise(rng, x.shape, style.noise_std)
    np.rint(x, out=x)
    np.clip(x, 0, 255, out=x)
    out[start:start + n] = x.astype(np.uint8).T.reshape(n, h, w)
  return out


def augment(frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """Training augmentation: views uint8 (F, H, W) frames through `draw_style(rng)`.

  Returns uint8 (F, h, w) at the drawn resolution (24..48 rows, 6.5 times as wide); the caller
  resizes to the model's frame size. Deterministic given the rng state.
  """
  return view(frames, draw_style(rng), rng)

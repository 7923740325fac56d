"""Tests of data_gen.camera (camera-like views of the keyboard) and make_dataset --camera."""

from __future__ import annotations

import dataclasses
import json
import os
import time

import numpy as np
import pytest
from conftest import make_song_midi
from scipy import ndimage

from data_gen import camera, keyboard, make_dataset, store
from data_gen.camera import CLEAN, STYLES, TRAINING_RANGES, CameraStyle

H, W = keyboard.DEFAULT_HEIGHT, keyboard.DEFAULT_WIDTH
QUIET = dict(noise_std=0.0)  # geometry tests look at noiseless views


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
  """60 keyboard frames, 32 x 208, about 10% of the keys pressed."""
  keys = np.random.default_rng(0).random((60, keyboard.NUM_KEYS)) < 0.1
  return keyboard.render_frames(keys)


def see(frames, seed=0, **style) -> np.ndarray:
  return camera.view(frames, CameraStyle(**style), np.random.default_rng(seed))


def corr(a, b) -> float:
  return float(np.corrcoef(a.astype(np.float64).ravel(), b.astype(np.float64).ravel())[0, 1])


def lag(profile, reference, max_lag) -> int:
  """The shift (pixels, + = right) of `profile` against `reference` maximising their correlation."""
  p, r = profile - profile.mean(), reference - reference.mean()
  lags = np.arange(-max_lag, max_lag + 1)
  scores = [np.dot(p[max_lag + k:len(p) - max_lag + k], r[max_lag:len(r) - max_lag])
            for k in lags]
  return int(lags[np.argmax(scores)])


def key_profile(img) -> np.ndarray:
  """Column profile (mean over the key rows, below the felt) of one frame."""
  return img[img.shape[0] // 4:].astype(np.float64).mean(0)


# ----------------------------------------------------------------------------------------------
# Styles.


def test_clean_is_the_exact_identity(frames):
  rng = np.random.default_rng(3)
  state = rng.bit_generator.state
  out = camera.view(frames, CLEAN, rng)
  assert out.dtype == np.uint8 and out.tobytes() == frames.tobytes()
  assert out is not frames and rng.bit_generator.state == state  # a copy; no noise drawn
  noise = np.random.default_rng(1).integers(0, 256, (5, H, W), dtype=np.uint8)
  assert np.array_equal(camera.view(noise, STYLES["clean"], rng), noise)
  # A style of another size with nothing else is the identity on frames of its size.
  small = keyboard.render_frames(np.eye(88, dtype=bool)[:4], 16, 104)
  assert np.array_equal(see(small, height=16, width=104), small)


def test_same_seed_same_bytes_other_seed_other_noise(frames):
  style = STYLES["held_out"]
  a = camera.view(frames, style, np.random.default_rng(7))
  b = camera.view(frames, style, np.random.default_rng(7))
  c = camera.view(frames, style, np.random.default_rng(8))
  assert a.tobytes() == b.tobytes()
  assert np.mean(a != c) > 0.5
  quiet = dataclasses.replace(style, noise_std=0.0)
  d = camera.view(frames, quiet, np.random.default_rng(7))
  assert np.array_equal(d, camera.view(frames, quiet, np.random.default_rng(8)))
  # The noise has the asked std (gray levels) and no bias; pixels far from 0 and 255 only.
  inside = (d > 60) & (d < 195)
  diff = a.astype(np.float64)[inside] - d[inside]
  assert abs(diff.mean()) < 0.2 and abs(diff.std() - style.noise_std) < 0.3


def test_brightness_and_contrast(frames):
  base = frames.astype(np.float64)
  assert see(frames, brightness=20).mean() == pytest.approx(base.mean() + 20, abs=0.6)
  assert see(frames, brightness=-20).mean() == pytest.approx(base.mean() - 20, abs=0.6)
  flat = see(frames, contrast=0.5).astype(np.float64)
  assert np.abs(flat - (128 + 0.5 * (base - 128))).max() <= 0.5
  assert flat.std() == pytest.approx(0.5 * base.std(), rel=0.02)


def test_blur_lowers_horizontal_gradients(frames):
  def grad(x):
    return np.abs(np.diff(x.astype(np.float64), axis=2)).mean()
  g0, g1, g2 = grad(frames), grad(see(frames, blur_sigma=0.5)), grad(see(frames, blur_sigma=1.5))
  assert g2 < g1 < 0.9 * g0
  assert see(frames, blur_sigma=1.0).mean() == pytest.approx(frames.mean(), abs=1.0)


@pytest.mark.parametrize("shift_x,width", [(0.02, 208), (-0.05, 208), (0.03, 416)])
def test_shift_x_moves_the_keys_by_shift_times_width(frames, shift_x, width):
  height = width * H // W
  ref = key_profile(see(frames[:1], height=height, width=width)[0])
  moved = key_profile(see(frames[:1], height=height, width=width, shift_x=shift_x)[0])
  assert abs(lag(moved, ref, max_lag=width // 16) - shift_x * width) <= 1


def test_shift_y_moves_the_image_down():
  line = np.zeros((1, 64, 208), np.uint8)
  line[0, 32] = 255
  rows = np.arange(64)
  for shift_y in (0.05, -0.08):
    img = see(line, height=64, width=208, shift_y=shift_y)[0].astype(np.float64)
    centroid = (img.sum(1) * rows).sum() / img.sum()
    assert centroid == pytest.approx(32 + shift_y * 64, abs=0.3)


def test_rotation_is_counter_clockwise_about_the_centre():
  line = np.zeros((1, 64, 208), np.uint8)
  line[0, 32] = 255
  img = see(line, height=64, width=208, rotation_deg=2.0)[0].astype(np.float64)
  rows = np.arange(64)[:, None]

  def centroid(cols):
    part = img[:, cols]
    return (part * rows).sum() / part.sum()

  left, right, middle = centroid(slice(0, 52)), centroid(slice(156, 208)), centroid(slice(92, 116))
  assert right - left == pytest.approx(-np.tan(np.radians(2.0)) * 156, abs=0.5)  # right end up
  assert middle == pytest.approx(32, abs=0.3)


def test_perspective_narrows_the_top_edge():
  bars = np.zeros((1, 64, 208), np.uint8)
  bars[0, :, 20] = 255  # a vertical bar 84 px left of the centre (x = 104 at the pixel edges)
  p = 0.1
  img = see(bars, height=64, width=208, perspective=p)[0].astype(np.float64)
  cols = np.arange(208)

  def centroid(row):
    return (img[row] * cols).sum() / img[row].sum()

  # Centre of the top row is half a pixel below the top edge: its scale is 1 - p * (1 - 0.5/64).
  assert centroid(0) == pytest.approx(104 - 83.5 * (1 - p * (1 - 0.5 / 64)) - 0.5, abs=0.3)
  assert centroid(63) == pytest.approx(20, abs=0.3)
  assert centroid(0) > centroid(32) > centroid(63)


def smooth_corr(a, b) -> float:
  """Correlation of two frame stacks after a small blur (1 row, 2 columns): a pose that moves the
  key edges by a pixel or two keeps it high; another picture does not."""
  def blur(x):
    return ndimage.gaussian_filter(x.astype(np.float64), (0, 1, 2))
  return corr(blur(a), blur(b))


def test_pose_keeps_the_keyboard(frames):
  mid = slice(78, 130)  # the central columns, which rotation and keystone hardly move
  for style in (dict(rotation_deg=1.5), dict(rotation_deg=-1.5), dict(perspective=0.04),
                dict(**{k: TRAINING_RANGES[k][1] for k in ("rotation_deg", "perspective")})):
    out = see(frames, **style)
    assert not np.array_equal(out, frames)
    assert corr(out[:, :, mid], frames[:, :, mid]) > 0.8, style
    assert smooth_corr(out, frames) > 0.85, style
  # The held-out camera, resized back to 32 x 208, against the clean keyboard shifted like it.
  held_out = STYLES["held_out"]
  shifted = see(frames, shift_x=held_out.shift_x, shift_y=held_out.shift_y)
  for noise in (0.0, STYLES["held_out"].noise_std):
    held = camera.view(frames, dataclasses.replace(STYLES["held_out"], noise_std=noise),
                       np.random.default_rng(0))
    back = see(held, height=H, width=W)
    assert corr(back[:, :, mid], shifted[:, :, mid]) > 0.55
    assert smooth_corr(back, shifted) > 0.7
  tilted = see(frames, rotation_deg=10.0)  # a camera far off: the bounds can fail
  assert corr(tilted[:, :, mid], frames[:, :, mid]) < 0.55 and smooth_corr(tilted, frames) < 0.7


def test_every_key_press_stays_visible_through_the_held_out_camera():
  keys = np.vstack([np.zeros((1, 88), bool), np.eye(88, dtype=bool)])  # none, then each key
  style = dataclasses.replace(STYLES["held_out"], noise_std=0.0)
  out = camera.view(keyboard.render_frames(keys), style, np.random.default_rng(0)).astype(int)
  change = np.abs(out[1:] - out[:1]).reshape(88, -1)
  noise = STYLES["held_out"].noise_std
  assert change.max(1).min() > 2 * noise  # every press moves some pixels by > 2 noise stds
  assert (change > noise).sum(1).min() >= 30  # over a patch of pixels, not one


@pytest.mark.parametrize("height,width", [(24, 156), (48, 312), (56, 364), (16, 104)])
def test_output_shape_follows_the_style(frames, height, width):
  out = see(frames[:5], height=height, width=width, brightness=5, noise_std=2, rotation_deg=1)
  assert out.shape == (5, height, width) and out.dtype == np.uint8
  small = keyboard.render_frames(np.zeros((3, 88), bool), 16, 104)  # any input size
  assert see(small, height=height, width=width).shape == (3, height, width)
  # Up and back down: nearly the input (bilinear resampling of the key edges only).
  if height > H:
    back = see(see(frames[:5], height=height, width=width), height=H, width=W)
    assert corr(back, frames[:5]) > 0.9


def test_downscaling_is_antialiased():
  # Stripes of period 2.2 px, finer than a 3x smaller image can show: a smooth gray, no moire.
  x = np.arange(624)
  stripes = np.broadcast_to(np.rint(128 + 100 * np.cos(2 * np.pi * x / 2.2)), (1, 24, 624))
  out = see(stripes.astype(np.uint8), height=8, width=208)
  assert abs(out.mean() - 128) < 2 and out.astype(np.float64).std() < 8


def test_resolution_change_keeps_the_key_positions(frames):
  ref = key_profile(frames[0])
  for width in (156, 312, 364):
    out = key_profile(see(frames[:1], height=round(width / 6.5), width=width)[0])
    resampled = np.interp((np.arange(W) + 0.5) * width / W - 0.5, np.arange(width), out)
    assert lag(resampled, ref, max_lag=8) == 0
    assert np.corrcoef(resampled, ref)[0, 1] > 0.8


def test_many_frames_are_processed_like_one(frames):
  many = np.concatenate([frames] * 5)  # 300 frames: more than one chunk
  style = dataclasses.replace(STYLES["held_out"], noise_std=0.0)
  out = camera.view(many, style, np.random.default_rng(0))
  one = camera.view(many[-1:], style, np.random.default_rng(0))
  assert np.array_equal(out[-1], one[0]) and np.array_equal(out[0], out[60])


def test_bad_styles_and_frames(frames):
  for bad in (dict(contrast=0.0), dict(noise_std=-1.0), dict(blur_sigma=-0.1),
              dict(perspective=1.0), dict(height=4), dict(width=50), dict(rotation_deg=np.nan)):
    with pytest.raises(ValueError):
      CameraStyle(**bad)
  with pytest.raises(ValueError, match="uint8"):
    camera.view(frames.astype(np.float32), CLEAN, np.random.default_rng(0))


def test_view_is_fast(frames):
  style = camera.draw_style(np.random.default_rng(5))
  best = np.inf
  for _ in range(5):
    t = time.perf_counter()
    camera.view(frames, style, np.random.default_rng(0))
    best = min(best, time.perf_counter() - t)
  assert best < 0.1  # about 5-10 ms on one core; this only catches a large slowdown


# ----------------------------------------------------------------------------------------------
# Training ranges, draws and the held-out style.


def test_held_out_lies_outside_every_training_range():
  held, clean = STYLES["held_out"].settings(), CLEAN.settings()
  assert set(TRAINING_RANGES) == set(held)
  differ = [k for k in held if held[k] != clean[k]]
  assert sorted(differ) == sorted(held)  # every setting is perturbed
  for k in differ:
    lo, hi = TRAINING_RANGES[k]
    assert held[k] < lo or held[k] > hi, k
  # The clean camera is inside the training ranges: augmentation covers the clean dataset.
  for k, (lo, hi) in TRAINING_RANGES.items():
    assert lo <= clean[k] <= hi, k
  assert held["width"] == camera.width_for(held["height"]) == 364
  json.dumps(held)


def test_draw_style_stays_inside_the_ranges():
  rng = np.random.default_rng(0)
  draws = [camera.draw_style(rng) for _ in range(200)]
  values = {k: np.array([d.settings()[k] for d in draws]) for k in TRAINING_RANGES}
  for k, (lo, hi) in TRAINING_RANGES.items():
    assert values[k].min() >= lo and values[k].max() <= hi, k
    assert values[k].min() < lo + 0.1 * (hi - lo) and values[k].max() > hi - 0.1 * (hi - lo), k
  assert all(d.width == camera.width_for(d.height) for d in draws)
  assert camera.draw_style(np.random.default_rng(4)) == camera.draw_style(np.random.default_rng(4))
  assert camera.draw_style(np.random.default_rng(4)) != camera.draw_style(np.random.default_rng(5))


def test_augment_draws_a_style_and_views_through_it(frames):
  out = camera.augment(frames, np.random.default_rng(11))
  rng = np.random.default_rng(11)
  style = camera.draw_style(rng)
  assert out.shape == (60, style.height, style.width)
  assert np.array_equal(out, camera.view(frames, style, rng))
  assert np.array_equal(out, camera.augment(frames, np.random.default_rng(11)))


# ----------------------------------------------------------------------------------------------
# make_dataset --camera.


@pytest.fixture(scope="module")
def midi_dir(tmp_path_factory) -> str:
  d = tmp_path_factory.mktemp("camera_midis")
  for i in range(3):
    (d / f"p{i}.mid").write_bytes(make_song_midi(40 + i, 3.0))
  return str(d)


def build(out_dir, midi_dir, **kw) -> dict:
  return make_dataset.build_dataset(str(out_dir), midi_dir=midi_dir, num_songs=0, workers=1,
                                    progress=False, max_song_seconds=2.0, **kw)


def read_all(folder) -> dict[str, bytes]:
  out = {}
  for root, _, names in os.walk(folder):
    for n in names:
      with open(os.path.join(root, n), "rb") as f:
        out[os.path.relpath(os.path.join(root, n), folder)] = f.read()
  return out


def test_dataset_with_the_held_out_camera(tmp_path, midi_dir):
  clean_dir, held_dir = tmp_path / "clean", tmp_path / "held"
  build(clean_dir, midi_dir)
  manifest = build(held_dir, midi_dir, camera="held_out")
  style = STYLES["held_out"]
  assert manifest["camera"] == {"style": "held_out", **style.settings()}
  assert manifest["renderer"]["height"] == H and manifest["renderer"]["width"] == W
  for entry in manifest["songs"]:
    with np.load(held_dir / entry["file"]) as z, np.load(clean_dir / entry["file"]) as c:
      assert z["frames"].shape == (len(c["frames"]), style.height, style.width)
      for k in ("audio", "frame_start", "frame_keys", "notes"):
        assert np.array_equal(z[k], c[k]), k
      # The song's own noise: rendered from the clean frames with the song's seed.
      seed = make_dataset._camera_seed(entry["id"], entry["midi_sha256"])
      expect = camera.view(c["frames"], style, np.random.default_rng([seed, 0xCA]))
      assert np.array_equal(z["frames"], expect)
  # Re-running with the other camera redoes every song; the same camera keeps them.
  again = build(held_dir, midi_dir, camera="held_out")
  assert again == manifest
  build(held_dir, midi_dir)
  assert read_all(held_dir) == read_all(clean_dir)
  with pytest.raises(make_dataset.DatasetBuildError, match="camera"):
    build(tmp_path / "x", midi_dir, camera="fisheye")


def test_clean_build_is_unchanged(tmp_path, midi_dir):
  default = build(tmp_path / "default", midi_dir)
  clean = build(tmp_path / "clean", midi_dir, camera="clean")
  assert read_all(tmp_path / "default") == read_all(tmp_path / "clean") and clean == default
  assert default["camera"] == {"style": "clean", **CLEAN.settings()}
  small = build(tmp_path / "small", midi_dir, height=16, width=104)
  assert (small["camera"]["height"], small["camera"]["width"]) == (16, 104)  # stored frame size
  # The songs' settings keys are those of builds before --camera existed (no camera entry), so
  # existing datasets are kept, not re-rendered; and the frames are the renderer's, untouched.
  task = {"sample_rate": 4000, "frames": "sparse", "height": H, "width": W,
          "soundfont_sha256": "s", "synth": {"a": 1}, "max_song_seconds": 2.0, "gain": 0.5,
          "tail_seconds": 1.0}
  before = {**task, "format_version": make_dataset.FORMAT_VERSION,
            "generator_version": make_dataset.GENERATOR_VERSION, "midi_sha256": "m"}
  expected = store.sha256_bytes(json.dumps(before, sort_keys=True).encode())
  assert make_dataset._config_key({**task, "camera": "clean"}, "m") == expected
  assert make_dataset._config_key({**task, "camera": "held_out"}, "m") != expected
  # Likewise --repeat_release_ms: absent at 0 (the score's timing), part of the key otherwise.
  assert make_dataset._config_key({**task, "camera": "clean", "repeat_release_ms": 0.0},
                                  "m") == expected
  assert make_dataset._config_key({**task, "camera": "clean", "repeat_release_ms": 50.0},
                                  "m") != expected
  entry = default["songs"][0]
  rendered = make_dataset.render_performance(os.path.join(midi_dir, "p0.mid"),
                                             max_song_seconds=2.0)
  with np.load(tmp_path / "default" / entry["file"]) as z:
    assert np.array_equal(z["frames"], rendered["frames"])

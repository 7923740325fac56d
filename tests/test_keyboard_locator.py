"""deepsynth_jax.keyboard_locator: the keyboard found in a camera's video and straightened."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import ndimage

from data_gen import camera, keyboard
from deepsynth_jax import keyboard_locator as kl

H, W = keyboard.DEFAULT_HEIGHT, keyboard.DEFAULT_WIDTH
# Every setting outside the training cameras' ranges (like camera.STYLES["held_out"], other values).
POSED = camera.CameraStyle(height=50, width=camera.width_for(50), brightness=-30.0, contrast=0.7,
                           blur_sigma=0.9, shift_x=-0.007, shift_y=0.035, rotation_deg=-0.5,
                           perspective=0.02)


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
  """40 sharp keyboard frames, 32 x 208, about 5% of the keys pressed."""
  keys = np.random.default_rng(0).random((40, keyboard.NUM_KEYS)) < 0.05
  return keyboard.render_frames(keys)


def _film(frames, style, seed=0):
  return camera.view(frames, style, np.random.default_rng(seed))


def test_locate_recovers_the_pose_focus_and_shades(frames):
  pose = kl.locate(_film(frames, POSED), (H, W))
  assert (pose.height, pose.width, pose.view_height, pose.view_width) == (50, 325, H, W)
  assert abs(pose.shift_x - POSED.shift_x) < 0.001   # a fifth of a key is 0.004
  assert abs(pose.shift_y - POSED.shift_y) < 0.01
  assert abs(pose.rotation_deg - POSED.rotation_deg) < 0.05
  assert abs(pose.perspective - POSED.perspective) < 0.005
  assert abs(pose.blur_sigma - POSED.blur_sigma) < 0.15
  # video = gain x rendering + offset; the style's contrast c and brightness b give gain c and
  # offset 128 (1 - c) + b.
  assert abs(pose.gain - POSED.contrast) < 0.03
  assert abs(pose.offset - (128 * (1 - POSED.contrast) + POSED.brightness)) < 4
  assert pose.correlation > 0.99
  # The straight view of the simulator's own frames is the identity pose.
  same = kl.locate(frames, (H, W))
  assert (same.shift_x, same.shift_y, same.rotation_deg, same.perspective,
          same.blur_sigma) == (0, 0, 0, 0, 0)
  assert abs(same.gain - 1) < 1e-6 and abs(same.offset) < 1e-4


def test_straightened_frames_show_the_keys_where_the_model_saw_them(frames):
  sharp = dataclasses.replace(POSED, blur_sigma=0.0)
  filmed = _film(frames, sharp)
  straight, pose = kl.straighten(filmed, (H, W))
  assert straight.shape == frames.shape and straight.dtype == np.uint8
  error = lambda x: float(np.mean(np.abs(x.astype(np.float64) - frames)))
  # Two bilinear resamplings (the camera's, and back) blur the 1-pixel gaps between keys: 14.5
  # gray levels on average, as for a change of size alone; a resize that leaves the keys where
  # the camera put them is off by 83.
  assert error(straight) < 20
  scaled_only, _ = kl.straighten(_film(frames, camera.CameraStyle(height=50, width=325)), (H, W))
  assert error(straight) < 1.1 * error(scaled_only)
  plain = camera.view(filmed, camera.CameraStyle(), np.random.default_rng(0))  # a resize
  assert error(plain) > 4 * error(straight)
  # Blur is undone: the deblurred view is closer to the sharp frames than the blurred one.
  blurred = _film(frames, POSED)
  pose = kl.locate(blurred, (H, W))
  soft = kl.rectify(blurred, dataclasses.replace(pose, blur_sigma=0.0))
  assert error(kl.rectify(blurred, pose)) < 0.8 * error(soft)
  # Deterministic.
  np.testing.assert_array_equal(kl.straighten(filmed, (H, W))[0], straight)


def test_camera_noise_is_filtered_in_time_only_for_clock_frames(frames):
  noisy = _film(frames, dataclasses.replace(POSED, noise_std=10.0))
  clock, _ = kl.straighten(noisy, (H, W), clock_frames=True)
  press, _ = kl.straighten(noisy, (H, W))
  error = lambda x: float(np.mean(np.abs(x.astype(np.float64) - frames)))
  assert not np.array_equal(clock, press)
  # Press frames each show a new state: one frame's keys stay its own (the median of 3 frames in
  # time would drop a key pressed in one frame only).
  single = keyboard.render_frames(np.eye(keyboard.NUM_KEYS, dtype=bool)[[40, 41, 42]])
  filmed = _film(np.repeat(single, [5, 1, 5], axis=0), dataclasses.replace(POSED, blur_sigma=0))
  press_view, _ = kl.straighten(filmed, (H, W))
  clock_view, _ = kl.straighten(filmed, (H, W), clock_frames=True)
  key = keyboard.layout(H, W).owner == 41
  assert press_view[5][key].mean() < 200 < clock_view[5][key].mean()  # pressed keys are darker
  assert error(clock) < 30 and error(press) < 30
  # Several clips of one camera: one pose, each clip filtered in time on its own.
  both, pose = kl.straighten(np.stack([noisy, noisy[::-1]]), (H, W), clock_frames=True)
  assert both.shape == (2, *frames.shape)
  np.testing.assert_array_equal(both[0], kl.rectify(ndimage.median_filter(
      noisy, size=(3, 1, 1), mode="nearest"), pose))


def test_not_a_keyboard_is_one_clear_error():
  noise = np.random.default_rng(0).integers(0, 256, (10, 40, 260)).astype(np.uint8)
  with pytest.raises(kl.KeyboardNotFoundError, match="do not show a keyboard"):
    kl.locate(noise, (H, W))
  with pytest.raises(ValueError, match="uint8"):
    kl.locate(noise.astype(np.float32), (H, W))
  pose = kl.KeyboardPose(height=50, width=325)
  with pytest.raises(ValueError, match="the pose is of 50 x 325"):
    kl.rectify(noise, pose)

r"""Writing a keyboard video (sparse or dense frames) as .mp4, with optional audio.

  python -m data_gen.video --data_dir=data/deepsynth --song=joplin_maple_leaf_rag --out=rag.mp4
  python -m data_gen.video --data_dir=data/deepsynth --song=0 --out=song0.mp4 --noaudio

`write_mp4` shows at each video frame (a fixed rate, 30 fps by default) the keyboard frame current
at that time, upscaled by nearest neighbour for viewing, encoded with H.264 (imageio-ffmpeg's
ffmpeg). Audio, if given, is resampled to 16 kHz with soxr (AAC has no 4 kHz mode) and muxed in.
The evaluation reuses it to put generated audio under a silent video.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

from data_gen import frame_timing, store
from data_gen import wav as wav_io

MUX_SAMPLE_RATE = 16000


def video_frame_indices(frame_start: np.ndarray, num_samples: int, sample_rate: int,
                        fps: float) -> np.ndarray:
  """int64 (V,): for each video frame at 1/fps spacing, the index of the current keyboard frame."""
  starts = frame_timing.validate_frame_start(frame_start, num_samples)
  count = max(1, int(np.ceil(num_samples * fps / sample_rate)))
  times = np.floor(np.arange(count) * (sample_rate / fps)).astype(np.int64)
  return np.searchsorted(starts, times, side="right") - 1


def write_mp4(path: str, frames: np.ndarray, frame_start: np.ndarray, sample_rate: int,
              fps: float = 30, audio: np.ndarray | None = None, scale: int = 4,
              num_samples: int | None = None) -> None:
  """Writes a keyboard video as H.264 .mp4, atomically.

  Args:
    path: output .mp4 path.
    frames: uint8 (F, H, W) grayscale keyboard frames.
    frame_start: (F,) int sample index at which each frame becomes current ([0] == 0, increasing).
    sample_rate: samples per second of frame_start (and of audio).
    fps: video frame rate.
    audio: optional float32 (N,) in [-1, 1] at sample_rate, muxed in as AAC.
    scale: integer upscaling of each frame (nearest neighbour).
    num_samples: video length in samples; default len(audio), else 1 s past the last frame start.
  """
  import imageio_ffmpeg

  frames = np.asarray(frames)
  if frames.ndim != 3 or frames.dtype != np.uint8:
    raise ValueError(f"frames must be uint8 (F, H, W), got {frames.dtype} {frames.shape}")
  if len(frame_start) != len(frames):
    raise ValueError(f"{len(frames)} frames but {len(frame_start)} frame starts")
  if audio is not None:
    audio = np.asarray(audio, np.float32)
    if audio.ndim != 1:
      raise ValueError(f"audio must be mono (N,), got shape {audio.shape}")
  if num_samples is None:
    num_samples = len(audio) if audio is not None else int(frame_start[-1]) + int(sample_rate)
  if not fps > 0 or int(scale) != scale or scale < 1:
    raise ValueError(f"fps ({fps}) must be > 0 and scale ({scale}) a positive integer")
  index = video_frame_indices(frame_start, int(num_samples), int(sample_rate), fps)
  scale = int(scale)
  h, w = frames.shape[1] * scale, frames.shape[2] * scale
  ph, pw = h + h % 2, w + w % 2  # H.264 4:2:0 needs even sizes

  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix=".video.", suffix=".mp4", dir=folder)
  os.close(fd)
  wav = None
  try:
    if audio is not None:
      import soxr
      fd, wav = tempfile.mkstemp(prefix=".audio.", suffix=".wav", dir=folder)
      os.close(fd)
      up = soxr.resample(audio.astype(np.float64), int(sample_rate), MUX_SAMPLE_RATE)
      wav_io.write_wav(wav, up, MUX_SAMPLE_RATE)
    writer = imageio_ffmpeg.write_frames(
        tmp, (pw, ph), pix_fmt_in="gray", fps=fps, codec="libx264", macro_block_size=1,
        ffmpeg_log_level="error", audio_path=wav, audio_codec="aac" if wav else None,
        output_params=["-shortest"] if wav else None)
    writer.send(None)
    canvas = np.zeros((ph, pw), np.uint8)
    last = -1
    for i in index.tolist():
      if i != last:
        canvas[:h, :w] = np.repeat(np.repeat(frames[i], scale, axis=0), scale, axis=1)
        last = i
      writer.send(canvas.tobytes())
    writer.close()
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
  finally:
    for f in (tmp, wav):
      if f and os.path.exists(f):
        os.remove(f)


def main(argv):
  del argv
  from absl import flags

  f = flags.FLAGS
  try:
    manifest = store.read_manifest(f.data_dir)
  except ValueError as e:
    raise SystemExit(f"error: {e}") from None
  sample_rate = int(manifest["sample_rate"])
  songs = manifest["songs"]
  ids = [s["id"] for s in songs]
  song = int(f.song) if f.song.isdigit() else ids.index(f.song) if f.song in ids else None
  if song is None or not 0 <= song < len(songs):
    raise SystemExit(f"error: no song {f.song!r} in {f.data_dir}; choose an index < {len(songs)} "
                     f"or one of: {', '.join(ids)}")
  with np.load(os.path.join(f.data_dir, songs[song]["file"]), allow_pickle=False) as z:
    frames, frame_start, pcm = z["frames"], z["frame_start"], z["audio"]
  audio = wav_io.pcm16_to_float(pcm)
  write_mp4(f.out, frames, frame_start, sample_rate, fps=f.fps,
            audio=audio if f.audio else None, scale=f.scale, num_samples=len(audio))
  print(f"wrote {f.out} ({ids[song]}, {len(audio) / sample_rate:.1f} s)")


if __name__ == "__main__":
  from absl import app, flags

  flags.DEFINE_string("data_dir", None, "Dataset folder.", required=True)
  flags.DEFINE_string("song", "0", "Song id or index in the manifest.")
  flags.DEFINE_string("out", None, "Output .mp4 path.", required=True)
  flags.DEFINE_float("fps", 30, "Video frame rate.")
  flags.DEFINE_integer("scale", 4, "Upscaling factor.")
  flags.DEFINE_bool("audio", True, "Mux the song's audio in.")
  app.run(main)

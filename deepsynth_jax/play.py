r"""A playable instrument: any MIDI file is played by the simulator, then the model hears the video.

  python -m deepsynth_jax.play --midi=song.mid --out=played/ --checkpoint=models/demo_keysynth
  python -m deepsynth_jax.play --midi=song.mid --out=played_30fps/ \
      --checkpoint=models/demo_keysynth --frames=fps:30 [--camera=held_out]

The simulator films the keyboard as sparse press frames (the method's video, the default) or as a
camera at N frames per second (`--frames=fps:N`), optionally through a camera style of
`data_gen.camera.STYLES`.

Writes into --out: `video.mp4` (the silent simulated keyboard with the model's audio),
`generated.wav`, `reference.wav` (the SoundFont's rendering of the same notes, for comparison) and
`reference_video.mp4`. The model sees only the frames; the MIDI never reaches it.
"""

from __future__ import annotations

import os
import time

from absl import app, flags

from data_gen import camera as camera_lib
from data_gen import keyboard, make_dataset, midi, synth, video, wav
from deepsynth_jax import api, checkpointing, console


def play(midi_path: str, out_dir: str, checkpoint: str, *, soundfont: str | None = None,
         max_seconds: float | None = 60.0, temperature: float = 1.0, seed: int = 0,
         frames: str = "sparse", camera: str = "clean") -> dict:
  """Renders `midi_path` into frames, generates its audio from them, writes the files.

  `frames`: "sparse" (a frame at every key press) or "fps:N" (a camera's N frames per second),
  seen through the camera style `camera` (`data_gen.camera.STYLES`).

  Returns:
    dict of written paths and facts (seconds of audio, generation wall time).
  """
  record = checkpointing.read_run_record(checkpoint)
  facts = record["data"]
  sample_rate = int(facts["sample_rate"])
  perf = make_dataset.render_performance(
      midi_path, soundfont=soundfont or synth.DEFAULT_SOUNDFONT, sample_rate=sample_rate,
      height=int(facts["frame_height"]), width=int(facts["frame_width"]),
      max_song_seconds=max_seconds or None, frames=frames, camera=camera)
  reference = wav.pcm16_to_float(perf["audio"])
  fps = keyboard.parse_frames_mode(frames, sample_rate)
  timing = {"fps": fps} if fps else {"frame_times": perf["frame_start"]}
  start = time.perf_counter()
  generated = api.sample(perf["frames"], **timing, checkpoint=checkpoint,
                         seconds=len(reference) / sample_rate, temperature=temperature,
                         seed=seed)
  seconds_taken = time.perf_counter() - start
  os.makedirs(out_dir, exist_ok=True)
  paths = {name: os.path.join(out_dir, name) for name in
           ("video.mp4", "generated.wav", "reference.wav", "reference_video.mp4")}
  wav.write_wav(paths["generated.wav"], generated, sample_rate)
  wav.write_wav(paths["reference.wav"], reference, sample_rate)
  video.write_mp4(paths["video.mp4"], perf["frames"], perf["frame_start"], sample_rate,
                  audio=generated)
  video.write_mp4(paths["reference_video.mp4"], perf["frames"], perf["frame_start"], sample_rate,
                  audio=reference)
  return {**paths, "seconds": len(generated) / sample_rate, "generation_seconds": seconds_taken,
          "num_notes": int(len(perf["notes"])), "num_frames": int(len(perf["frames"]))}


def _define_flags() -> None:
  # Defined only when run as a program, so that importing `play` defines no flags.
  flags.DEFINE_string("midi", None, "A MIDI file to play.")
  flags.DEFINE_string("out", None, "Output folder (created).")
  flags.DEFINE_string("checkpoint", None, "A trained run's workdir.")
  flags.DEFINE_string("soundfont", None, "SoundFont of the reference audio (default: FluidR3).")
  flags.DEFINE_float("max_seconds", 60.0, "Play at most this many seconds of the piece (0 = all).")
  flags.DEFINE_float("temperature", 1.0, "Sampling temperature (autoregressive models).")
  flags.DEFINE_integer("seed", 0, "Sampling seed.")
  flags.DEFINE_string("frames", "sparse", "The video: 'sparse' (a frame at every key press) or "
                      "'fps:N' (a camera at N frames per second).")
  flags.DEFINE_enum("camera", "clean", list(camera_lib.STYLES),
                    "Camera style of the video (data_gen.camera.STYLES).")


def main(argv):
  del argv
  console.quiet_library_chatter()
  FLAGS = flags.FLAGS
  if not FLAGS.midi or not FLAGS.out or not FLAGS.checkpoint:
    raise app.UsageError("give --midi=FILE --out=DIR --checkpoint=WORKDIR")
  if not os.path.isfile(FLAGS.midi):
    raise app.UsageError(f"--midi={FLAGS.midi}: no such file")
  try:
    keyboard.parse_frames_mode(FLAGS.frames, 4000)
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  try:
    result = play(FLAGS.midi, FLAGS.out, FLAGS.checkpoint, soundfont=FLAGS.soundfont,
                  max_seconds=FLAGS.max_seconds, temperature=FLAGS.temperature, seed=FLAGS.seed,
                  frames=FLAGS.frames, camera=FLAGS.camera)
  except (checkpointing.CheckpointError, midi.MidiError, synth.SynthError,
          api.SampleInputError) as e:
    # A bad checkpoint, MIDI file or SoundFont, or sampling arguments: one line, no traceback.
    where = f"{FLAGS.midi}: " if isinstance(e, midi.MidiError) else ""
    raise SystemExit(f"error: {where}{' '.join(str(e).split())}") from None
  print(f"played {result['num_notes']} notes ({result['seconds']:.1f} s, {result['num_frames']} "
        f"frames) in {result['generation_seconds']:.1f} s; video with the model's audio: "
        f"{result['video.mp4']}")
  return 0


if __name__ == "__main__":
  _define_flags()
  app.run(main)

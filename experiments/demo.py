r"""`make demo`: the main job end to end on a CPU: dataset, models, and what they hear.

  python -m experiments.demo [--out=demo_out] [--midi_dir=MY_MIDIS] [--train]

1. Builds the 20-song dataset into --data_dir if it is not there (about 2 minutes on 2 cores).
2. Takes the models that ship in models/ (each folder's README.md names the command that trained
   it, and its train.log is the log of that run), or with --train trains them here first.
3. For held-out test songs, writes into --out for every model: an .mp4 of the silent simulated
   video with the model's audio, the generated and the true WAVs, comparison figures, and
   metrics.json (cross-entropies, onset F1 and the pitch metric of the generated audio against the
   notes the video shows, beside the reference audio's and white noise's scores). The default
   model also plays the first held-out song from 30 fps camera video (--camera_fps,
   --camera_models) into <song>_30fps/video.mp4.
4. With --midi_dir, every MIDI file there is also played by the simulator and heard by the models.
Ends by printing where everything is and the headline figures.
"""

from __future__ import annotations

import functools
import glob
import importlib.util
import json
import os
import time

from absl import app, flags

from data_gen import make_dataset
from deepsynth_jax import comparison, evaluate, input_pipeline, play, train

FLAGS = flags.FLAGS

# The commands that produce each shipped model (its README.md and train.log record the run): its
# training configs, each stage after the first starting from the one before (config.init_from).
TRAIN_CONFIGS = {"keysynth_phase": ("experiments/configs/keysynth_phase_cpu.py",),
                 "keysynth": ("experiments/configs/keysynth_cpu.py",),
                 "keysynth_labels": ("experiments/configs/keysynth_labels_cpu.py",),
                 "vocoder": ("experiments/configs/vocoder_gain512_cpu.py",
                             "experiments/configs/vocoder_gain512_level_cpu.py"),
                 "wavenet": ("experiments/configs/cpu.py",)}
# Models that start from another demo model (config.init_from): with --train, from the one
# trained here.
STARTS_FROM = {"keysynth_phase": "keysynth"}
# Vocoders and the demo KeySynth they play (config.vocoder.keysynth_run).
PLAYS = {"vocoder": "keysynth_phase"}
# Sampling temperature per model (autoregressive models; 0 = greedy): the anchored vocoder's
# distribution is a Gaussian around its waveform, and its mean is what it plays.
TEMPERATURES = {"vocoder": 0.0}


def ensure_dataset(data_dir: str) -> None:
  if os.path.exists(os.path.join(data_dir, "manifest.json")):
    return
  print(f"[demo] building the 20-song dataset in {data_dir} ...", flush=True)
  start = time.perf_counter()
  make_dataset.build_dataset(data_dir)
  print(f"[demo] dataset built in {time.perf_counter() - start:.0f} s", flush=True)


def _load_config(path: str):
  spec = importlib.util.spec_from_file_location("demo_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


@functools.cache
def model_workdir(name: str, *, train_here: bool, data_dir: str, models_dir: str = "models",
                  runs_dir: str = "runs") -> str:
  """The shipped model folder models_dir/demo_<name>, or with `train_here` the run trained here
  by TRAIN_CONFIGS[name]'s stages (runs_dir/demo_<name>, its earlier stages beside it as
  demo_<name>_stage<k>), each trained once per process."""
  if not train_here:
    path = os.path.join(models_dir, f"demo_{name}")
    if not os.path.exists(os.path.join(path, "run.json")):
      raise SystemExit(f"[demo] no shipped model at {path}; run `make demo ARGS=--train` to train "
                       "one here")
    return path
  upstream = functools.partial(model_workdir, train_here=True, data_dir=data_dir,
                               models_dir=models_dir, runs_dir=runs_dir)
  init_from = upstream(STARTS_FROM[name]) if name in STARTS_FROM else None
  keysynth_run = upstream(PLAYS[name]) if name in PLAYS else None
  stages = TRAIN_CONFIGS[name]
  for k, path in enumerate(stages, start=1):
    config = _load_config(path)
    config.data_dir = data_dir
    if init_from is not None:
      config.init_from = init_from
    if keysynth_run is not None:
      config.vocoder.keysynth_run = keysynth_run
    workdir = os.path.join(runs_dir, f"demo_{name}" + ("" if k == len(stages) else f"_stage{k}"))
    print(f"[demo] training {name} ({path}) into {workdir} ...", flush=True)
    train.train_and_evaluate(config, workdir)
    init_from = workdir
  return workdir


def main(argv):
  del argv
  train.quiet_logs()
  start = time.perf_counter()
  ensure_dataset(FLAGS.data_dir)
  data = input_pipeline.load_dataset(FLAGS.data_dir)
  indices = comparison.spread_indices(data, "test", FLAGS.examples_per_song)
  test_songs = sorted({data.segment("test", i)[0] for i in indices})
  summary = {}
  for name in FLAGS.models:
    workdir = model_workdir(name, train_here=FLAGS.train, data_dir=FLAGS.data_dir,
                            models_dir=FLAGS.models_dir)
    out = os.path.join(FLAGS.out, name)
    print(f"[demo] {name}: hearing {len(indices)} test segments of {len(test_songs)} held-out "
          "songs ...", flush=True)
    temperature = TEMPERATURES.get(name, 1.0)
    result = evaluate.evaluate_run(workdir, "test", data=data, indices=indices,
                                   out_dir=os.path.join(out, "test_segments"), listening=True,
                                   temperature=temperature)
    songs = []
    for song in test_songs[:FLAGS.songs]:
      entry = data.manifest["songs"][song]
      midi_path = os.path.join(FLAGS.data_dir, entry["midi_file"])
      played = play.play(midi_path, os.path.join(out, entry["id"]), workdir,
                         max_seconds=FLAGS.song_seconds, temperature=temperature)
      songs.append({"song": entry["title"], **{k: v for k, v in played.items()
                                               if k in ("video.mp4", "seconds")}})
    if FLAGS.camera_fps and name in FLAGS.camera_models:
      entry = data.manifest["songs"][test_songs[0]]
      fps = f"{FLAGS.camera_fps:g}"
      played = play.play(os.path.join(FLAGS.data_dir, entry["midi_file"]),
                         os.path.join(out, f"{entry['id']}_{fps}fps"), workdir,
                         max_seconds=FLAGS.song_seconds, frames=f"fps:{fps}",
                         temperature=temperature)
      songs.append({"song": f"{entry['title']} ({fps} fps camera video)",
                    "video.mp4": played["video.mp4"], "seconds": played["seconds"]})
    if FLAGS.midi_dir:
      for path in sorted(glob.glob(os.path.join(FLAGS.midi_dir, "*.mid*"))):
        stem = os.path.splitext(os.path.basename(path))[0]
        played = play.play(path, os.path.join(out, "yours", stem), workdir,
                           max_seconds=FLAGS.song_seconds, temperature=temperature)
        songs.append({"song": stem, "video.mp4": played["video.mp4"],
                      "seconds": played["seconds"]})
    summary[name] = {"workdir": workdir, "learned_from": result["learned_from"],
                     "metrics": os.path.join(out, "test_segments", "metrics.json"),
                     "mean": result["mean"], "speed": result["speed"], "songs": songs,
                     "listening": result["listening"], "temperature": temperature}

  os.makedirs(FLAGS.out, exist_ok=True)
  wall = time.perf_counter() - start
  with open(os.path.join(FLAGS.out, "summary.json"), "w") as f:
    json.dump({"wall_seconds": wall, "models": summary}, f, indent=2, default=float)
  print(headline(summary, wall))


def headline(summary: dict, wall: float) -> str:
  lines = ["", f"DeepSynth demo done in {wall / 60:.1f} min. Outputs in {FLAGS.out}/:"]
  for name, s in summary.items():
    m = s["mean"]
    music = m.get("music", {})
    ref = m.get("reference_music", {})
    noise = m.get("noise_music", {})

    def trio(key, music=music, ref=ref, noise=noise):
      if key not in music:
        return "n/a"
      return f"{music[key]:.2f} (reference {ref.get(key, float('nan')):.2f}, noise " \
             f"{noise.get(key, float('nan')):.2f})"

    swap = s["listening"]["swap"]["mean"]
    silence = s["listening"]["silence"]
    decoding = "" if s.get("temperature", 1.0) == 1.0 else (
        "; greedy" if s["temperature"] == 0 else f"; temperature {s['temperature']:g}")
    lines.append(f"  {name} ({comparison.learned_from_text(s['learned_from'])}{decoding}):")
    lines.append(f"    onset F1 {trio('onset_f1')}; pitch F1 {trio('pitch_f1')}; "
                 f"free-running CE {m['free_running_cross_entropy']:.3f} nats; "
                 f"{s['speed'].get('real_time_factor', float('nan')):.1f}x real time")
    lines.append(f"    listens to the video? swap test onset F1 {swap['vs_shown_onset_f1']:.2f} vs "
                 f"the shown notes, {swap['vs_other_onset_f1']:.2f} vs the replaced segment's; "
                 f"silence RMS {silence['silence_rms']:.4f} (music {silence['reference_rms']:.4f})")
    for song in s["songs"]:
      lines.append(f"    {song['song']}: {song['video.mp4']}")
    lines.append(f"    metrics: {s['metrics']}")
  return "\n".join(lines)


def _define_flags() -> None:
  flags.DEFINE_string("data_dir", "data/deepsynth", "Dataset folder (built if missing).")
  flags.DEFINE_string("out", "demo_out", "Output folder.")
  flags.DEFINE_list("models", ["keysynth_phase", "keysynth", "keysynth_labels", "vocoder",
                              "wavenet"],
                    "Which demo models (models/demo_<name>): keysynth_phase (no key labels, the "
                    "default: keysynth fine-tuned with note-relative phases), keysynth (no key "
                    "labels), keysynth_labels (trained on the simulator's key labels: the upper "
                    "bound), vocoder (a WaveNet sampled autoregressively on keysynth_phase's "
                    "audio, greedy), wavenet (the method).")
  flags.DEFINE_string("models_dir", "models", "Folder holding the shipped demo_<name> models.")
  flags.DEFINE_bool("train", False, "Train the demo models here instead of using the shipped ones.")
  flags.DEFINE_integer("examples_per_song", 2, "Test segments evaluated per test song.")
  flags.DEFINE_float("song_seconds", 20.0, "Seconds of each test song played into an .mp4.")
  flags.DEFINE_integer("songs", 2, "Test songs played into an .mp4 per model.")
  flags.DEFINE_float("camera_fps", 30, "Also play the first test song from camera video at this "
                     "frame rate (0 = no), with the --camera_models.")
  flags.DEFINE_list("camera_models", ["keysynth_phase"], "Models that play the camera-video song "
                    "(the default plays camera video; the others learned press frames only).")
  flags.DEFINE_string("midi_dir", None, "Your own MIDI files: each is played and heard too.")


if __name__ == "__main__":
  _define_flags()
  app.run(main)

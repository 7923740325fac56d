r"""Benchmark: build the 20-song dataset from scratch into a temp folder and time it.

  python -m experiments.bench_dataset [--workers=N] [--midi_cache=data/deepsynth/midi]
      [--num_songs=N]

Prints the wall time, the CPU time of all processes, audio seconds rendered per wall second and
video frames per wall second; then times the reader (load + batches of 8 x 20,000 samples).
The fp32 matmul peak is measured in the same process (`experiments.peak`) and printed beside
these figures, but none is a fraction of it: rendering audio with FluidSynth, drawing frames and
reading files are not counted FLOPs, so a FLOP rate would be invented.
With --midi_cache, the music21 exports are copied from that folder first, so the build times only
rendering and segmenting (the export is cached in a real dataset folder too).
"""

from __future__ import annotations

import os
import resource
import shutil
import tempfile
import time

from absl import app, flags, logging

from data_gen import make_dataset
from deepsynth_jax import input_pipeline
from experiments import peak

FLAGS = flags.FLAGS
flags.DEFINE_integer("workers", None, "Worker processes (default: all cores).")
flags.DEFINE_string("midi_cache", None, "Folder of cached <song_id>.mid music21 exports.")
flags.DEFINE_string("frames", "sparse", "Video mode, as make_dataset --frames.")
flags.DEFINE_integer("num_songs", None, "Songs to build (default: the builder's 20).")


def _cpu_seconds() -> float:
  own = resource.getrusage(resource.RUSAGE_SELF)
  kids = resource.getrusage(resource.RUSAGE_CHILDREN)
  return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  workers = FLAGS.workers or len(os.sched_getaffinity(0))
  print(peak.peak_line(peak.matmul_peak()))
  print("# fraction of peak: none (no FLOP count: synthesis, drawing and file I/O)")
  songs = {} if FLAGS.num_songs is None else {"num_songs": FLAGS.num_songs}
  with tempfile.TemporaryDirectory(prefix="bench_dataset_") as out:
    if FLAGS.midi_cache:
      shutil.copytree(FLAGS.midi_cache, os.path.join(out, "midi"))
    cpu0, t0 = _cpu_seconds(), time.perf_counter()
    manifest = make_dataset.build_dataset(out, workers=workers, frames=FLAGS.frames,
                                          progress=False, **songs)
    wall, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
    audio_s = manifest["total_seconds"]
    frames = sum(s["num_frames"] for s in manifest["songs"])
    what = "rendering + segmenting (MIDI cached)" if FLAGS.midi_cache else \
        "music21 export + rendering + segmenting"
    print(f"build: {len(manifest['songs'])} songs, {what}, {workers} worker(s) on "
          f"{os.cpu_count()} cores")
    print(f"  wall {wall:.1f} s, CPU {cpu:.1f} s (all processes)")
    print(f"  audio: {audio_s:.0f} s ({audio_s / 60:.1f} min) -> {audio_s / wall:.1f} audio s per "
          f"wall s ({audio_s / cpu:.1f} per CPU s)")
    print(f"  video: {frames} frames -> {frames / wall:.0f} frames per wall s")
    print(f"  segments {manifest['num_segments']}, max_frames_per_segment "
          f"{manifest['max_frames_per_segment']}")

    t0 = time.perf_counter()
    data = input_pipeline.load_dataset(out)
    load = time.perf_counter() - t0
    it = data.batches("train", 8, seed=0, epoch=0, process_index=0, process_count=1)
    next(it)
    t0 = time.perf_counter()
    count = 0
    for _ in it:
      count += 1
      if count == 20:
        break
    per_batch = (time.perf_counter() - t0) / max(count, 1)
    print(f"reader: load+verify {load:.2f} s; {per_batch * 1000:.1f} ms per batch of 8 x "
          f"{data.segment_samples} samples ({count} batches)")


if __name__ == "__main__":
  app.run(main)

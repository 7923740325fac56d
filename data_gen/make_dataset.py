r"""Builds the synthetic piano-video dataset (layout: docs/DATA_FORMAT.md).

  python -m data_gen.make_dataset --out_dir=data/deepsynth
  python -m data_gen.make_dataset --out_dir=DIR --midi_dir=MY_MIDIS --num_songs=0 --frames=fps:30
  python -m data_gen.make_dataset --out_dir=data/deepsynth_held_out_camera --camera=held_out

Each song (the 20 works of data_gen.songs, or the MIDI files of --midi_dir) is parsed
(data_gen.midi), rendered as audio (data_gen.synth: FluidSynth piano at 16 kHz, soxr to 4 kHz,
int16) and as a silent keyboard video (data_gen.keyboard, seen through the --camera style of
data_gen.camera; `clean`, the default, keeps the rendered frames as they are), and written to
songs/<id>.npz with a sidecar songs/<id>.json (its sha256 and the settings that made it). Songs are
rendered in parallel on all cores; the result does not depend on the number of workers. Segments
(5 s windows every 3 s) and the 60/20/20 split by song are recorded in manifest.json, written last.

Re-running skips songs whose file still matches its sidecar (settings and sha256) and redoes the
rest, so a killed run keeps its finished songs; a file that fails its checksum is reported and
regenerated. Bad MIDI files are skipped with a one-line reason and listed at the end (and under
`skipped` in the manifest); the run fails only if fewer usable songs remain than --num_songs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from typing import Any

import numpy as np
from absl import logging

from data_gen import camera as camera_lib
from data_gen import keyboard, midi, segments, songs, store, synth

FORMAT_VERSION = 1
GENERATOR_VERSION = 1  # bump when rendering changes, so old song files are redone
MIDI_EXTENSIONS = (".mid", ".midi", ".smf", ".kar")
SUSTAIN_PEDAL = ("applied to note offsets: a key released while the sustain pedal is down stays "
                 "down in the video and sounds in the audio until the pedal is released")
MAX_REPEAT_RELEASE_MS = 500.0


class DatasetBuildError(ValueError):
  """The dataset cannot be built as asked; the message says why and what to change."""


@dataclasses.dataclass(frozen=True)
class Options:
  """Build options (the CLI flags); defaults are the method's values."""
  num_songs: int = 20
  midi_dir: str | None = None
  soundfont: str = synth.DEFAULT_SOUNDFONT
  sample_rate: int = 4000
  segment_seconds: float = 5.0
  overlap_seconds: float = 2.0
  frames: str = "sparse"
  height: int = keyboard.DEFAULT_HEIGHT
  width: int = keyboard.DEFAULT_WIDTH
  split_by: str = "song"
  split_fractions: Any = segments.DEFAULT_FRACTIONS
  seed: int = 0
  workers: int | None = None
  max_song_seconds: float | None = None
  gain: float = synth.DEFAULT_GAIN
  tail_seconds: float = synth.DEFAULT_TAIL_SECONDS
  camera: str = "clean"
  repeat_release_ms: float = 0.0
  progress: bool = True

  def validate(self) -> None:
    try:
      if self.num_songs < 0:
        raise ValueError(f"--num_songs={self.num_songs} must be >= 0 (0 = every usable song)")
      if self.midi_dir is None and self.num_songs > len(songs.SONGS):
        raise ValueError(f"--num_songs={self.num_songs}: the built-in list has "
                         f"{len(songs.SONGS)} works; use --midi_dir for more songs")
      if self.midi_dir is not None and not os.path.isdir(self.midi_dir):
        raise ValueError(f"--midi_dir={self.midi_dir} is not a folder")
      synth.render_rate(self.sample_rate)
      seg = segments.seconds_to_samples(self.segment_seconds, self.sample_rate,
                                        "segment_seconds")
      ovl = segments.seconds_to_samples(self.overlap_seconds, self.sample_rate,
                                        "overlap_seconds")
      segments.check_windows(seg, ovl)
      keyboard.parse_frames_mode(self.frames, self.sample_rate)
      keyboard.check_size(self.height, self.width)
      if self.split_by not in ("song", "segment"):
        raise ValueError(f"--split_by={self.split_by!r} must be 'song' or 'segment'")
      segments.parse_fractions(self.split_fractions)
      if self.workers is not None and self.workers < 1:
        raise ValueError(f"--workers={self.workers} must be >= 1")
      if self.max_song_seconds is not None and not self.max_song_seconds > 0:
        raise ValueError(f"--max_song_seconds={self.max_song_seconds} must be > 0")
      if not self.gain > 0 or not self.tail_seconds >= 0:
        raise ValueError("gain must be > 0 and tail_seconds >= 0")
      if not 0 <= self.repeat_release_ms <= MAX_REPEAT_RELEASE_MS:
        raise ValueError(f"--repeat_release_ms={self.repeat_release_ms} must be in [0, "
                         f"{MAX_REPEAT_RELEASE_MS:g}] (0 = the score's timing)")
      if self.camera not in camera_lib.STYLES:
        raise ValueError(f"--camera={self.camera!r} must be one of "
                         f"{', '.join(camera_lib.STYLES)} (data_gen.camera.STYLES)")
    except DatasetBuildError:
      raise
    except ValueError as e:
      raise DatasetBuildError(str(e)) from None


def render_performance(midi_path: str | bytes, *, soundfont: str = synth.DEFAULT_SOUNDFONT,
                       sample_rate: int = 4000, frames: str = "sparse",
                       height: int = keyboard.DEFAULT_HEIGHT, width: int = keyboard.DEFAULT_WIDTH,
                       max_song_seconds: float | None = None, gain: float = synth.DEFAULT_GAIN,
                       tail_seconds: float = synth.DEFAULT_TAIL_SECONDS, camera: str = "clean",
                       camera_seed: int = 0,
                       repeat_release_ms: float = 0.0) -> dict[str, np.ndarray]:
  """Renders one MIDI file (path or bytes) as audio and keyboard video.

  `frames` is "sparse" or "fps:N"; `camera` a style of `data_gen.camera.STYLES` (its noise seeded
  by `camera_seed`), which sets the frames' size (H, W) unless it is "clean";
  `repeat_release_ms` the key-up time before a repeated note (`midi.release_before_repeats`; 0
  keeps the score's timing), in the audio and the video alike.

  Returns:
    dict with `audio` int16 (N,) at `sample_rate`; `frames` uint8 (F, H, W); `frame_start` int64
    (F,) samples ([0] == 0, increasing); `frame_keys` uint8 (F, 88); `notes` int64 (M, 4)
    onset_sample, offset_sample, pitch, velocity.

  Raises:
    midi.MidiError: unusable MIDI. synth.SynthError: FluidSynth or SoundFont missing.
  """
  if camera not in camera_lib.STYLES:
    raise ValueError(f"camera={camera!r} must be one of {', '.join(camera_lib.STYLES)}")
  arrays, _ = _render(midi.parse_midi(midi_path, max_seconds=max_song_seconds), soundfont=soundfont,
                      sample_rate=sample_rate, frames=frames, height=height, width=width,
                      gain=gain, tail_seconds=tail_seconds, camera=camera,
                      camera_seed=camera_seed, repeat_release_ms=repeat_release_ms)
  return arrays


def _render(perf: midi.Performance, *, soundfont, sample_rate, frames, height, width, gain,
            tail_seconds, camera: str = "clean", camera_seed: int = 0,
            repeat_release_ms: float = 0.0) -> tuple[dict[str, np.ndarray], dict[str, int]]:
  notes = midi.notes_to_samples(perf.notes, sample_rate)
  notes, released = midi.release_before_repeats(notes, int(round(repeat_release_ms * sample_rate
                                                                 / 1000)))
  settings = synth.SynthSettings(soundfont=soundfont, gain=gain, tail_seconds=tail_seconds)
  audio, synth_stats = synth.render_notes(notes, sample_rate, settings)
  video, frame_start, frame_keys = keyboard.render_video(notes, len(audio), sample_rate, frames,
                                                         height, width)
  if camera != "clean":  # clean: the rendered frames as they are (no rng drawn)
    video = camera_lib.view(video, camera_lib.STYLES[camera],
                            np.random.default_rng([camera_seed, 0xCA]))
  arrays = {"audio": audio, "frames": video, "frame_start": frame_start.astype(np.int64),
            "frame_keys": frame_keys, "notes": notes.astype(np.int64)}
  stats = {**perf.stats, **synth_stats}
  if repeat_release_ms:  # absent otherwise, so the stats of songs built before it are unchanged
    stats["released_before_repeat"] = released
  return arrays, stats


# ----------------------------------------------------------------------------------------------
# One song, in a worker process.


def _config_key(task: dict, midi_sha: str) -> str:
  cfg = {k: task[k] for k in ("sample_rate", "frames", "height", "width", "soundfont_sha256",
                               "synth", "max_song_seconds", "gain", "tail_seconds")}
  cfg.update(format_version=FORMAT_VERSION, generator_version=GENERATOR_VERSION,
             midi_sha256=midi_sha)
  if task["camera"] != "clean":  # absent for clean, so songs built before --camera stay valid
    cfg["camera"] = {"style": task["camera"], **camera_lib.STYLES[task["camera"]].settings()}
  if task.get("repeat_release_ms"):  # likewise absent for the score's timing
    cfg["repeat_release_ms"] = task["repeat_release_ms"]
  return store.sha256_bytes(json.dumps(cfg, sort_keys=True).encode())


def _camera_seed(song_id: str, midi_sha: str) -> int:
  """Seed of a song's camera noise: from its id and MIDI content only (not the worker count)."""
  return int(store.sha256_bytes(f"{song_id}:{midi_sha}".encode())[:16], 16)


def _read_sidecar(path: str) -> dict | None:
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def _get_midi(task: dict, sidecar: dict | None) -> tuple[bytes | None, str | None, list[str]]:
  """Returns (MIDI bytes, skip reason, log lines); writes out_dir/midi/<id>.mid."""
  log = []
  midi_path = task["midi_path"]
  if task["kind"] == "file":
    try:
      data = midi.read_midi_bytes(task["source_path"])
    except midi.MidiError as e:
      return None, str(e), log
    return data, None, log
  # Corpus work: use the cached export unless it is missing or differs from the sidecar's.
  song = songs.SONGS[task["corpus_index"]]
  data = None
  if os.path.exists(midi_path):
    with open(midi_path, "rb") as f:
      data = f.read()
    if sidecar and sidecar.get("midi_sha256") not in (None, store.sha256_bytes(data)):
      log.append(f"{task['id']}: cached MIDI export changed; exporting again")
      data = None
  if data is None:
    try:
      songs.export_midi(song, midi_path)
    except ValueError as e:
      return None, str(e), log
    with open(midi_path, "rb") as f:
      data = f.read()
  return data, None, log


def process_song(task: dict) -> dict:
  """Renders (or keeps) one song; returns its manifest entry plus frame_start and log lines."""
  t0 = time.perf_counter()
  out_dir, sid = task["out_dir"], task["id"]
  npz_rel, side_rel = f"songs/{sid}.npz", f"songs/{sid}.json"
  npz_path, side_path = os.path.join(out_dir, npz_rel), os.path.join(out_dir, side_rel)
  sidecar = _read_sidecar(side_path)
  result: dict[str, Any] = {"index": task["index"], "id": sid, "source": task["source"]}

  data, reason, log = _get_midi(task, sidecar)
  result["log"] = log
  if data is None:
    return {**result, "status": "skipped", "reason": reason}
  midi_sha = store.sha256_bytes(data)
  key = _config_key(task, midi_sha)

  def keep_midi_copy():
    """Writes midi/<id>.mid for a user file (the cached export is already there for a work)."""
    if task["kind"] != "file":
      return
    existing = None
    if os.path.exists(task["midi_path"]):
      with open(task["midi_path"], "rb") as f:
        existing = f.read()
    if existing != data:
      store.write_bytes(task["midi_path"], data)

  if sidecar and sidecar.get("config_key") == key and os.path.exists(npz_path):
    actual = store.sha256_file(npz_path)
    if actual == sidecar.get("sha256"):
      keep_midi_copy()
      with np.load(npz_path, allow_pickle=False) as z:
        frame_start = z["frame_start"]
      return {**result, **sidecar["entry"], "status": "kept", "frame_start": frame_start,
              "seconds": time.perf_counter() - t0}
    log.append(f"{npz_rel} fails its checksum (sha256 {actual[:12]}... != "
               f"{str(sidecar.get('sha256'))[:12]}...): regenerating it")

  try:
    perf = midi.parse_midi(data, max_seconds=task["max_song_seconds"])
  except midi.MidiError as e:
    if task["kind"] == "corpus" and os.path.exists(task["midi_path"]):
      os.remove(task["midi_path"])  # a bad cached export: export again on the next run
    return {**result, "status": "skipped", "reason": str(e)}
  keep_midi_copy()

  arrays, stats = _render(perf, soundfont=task["soundfont"], sample_rate=task["sample_rate"],
                          frames=task["frames"], height=task["height"], width=task["width"],
                          gain=task["gain"], tail_seconds=task["tail_seconds"],
                          camera=task["camera"], camera_seed=_camera_seed(sid, midi_sha),
                          repeat_release_ms=task["repeat_release_ms"])
  store.save_npz(npz_path, arrays)
  sha = store.sha256_file(npz_path)
  n = len(arrays["audio"])
  entry = {
      "id": sid, "title": task["title"], "source": task["source"],
      "duration_seconds": round(n / task["sample_rate"], 4), "num_samples": n,
      "num_notes": len(arrays["notes"]), "num_frames": len(arrays["frame_start"]),
      "file": npz_rel, "sha256": sha, "midi_file": f"midi/{sid}.mid", "midi_sha256": midi_sha,
      "peak": round(float(np.abs(arrays["audio"].astype(np.int32)).max()) / 32767, 4),
      "stats": {k: int(v) for k, v in stats.items()},
  }
  store.write_json(side_path, {"config_key": key, "sha256": sha, "midi_sha256": midi_sha,
                               "entry": entry})
  dropped = {k: v for k, v in stats.items() if v and k != "merged_unison_notes"}
  if dropped:
    log.append(f"{sid}: " + ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in dropped.items()))
  return {**result, **entry, "status": "rendered", "frame_start": arrays["frame_start"],
          "seconds": time.perf_counter() - t0}


# ----------------------------------------------------------------------------------------------
# The whole dataset.


def _song_id(name: str, taken: set[str]) -> str:
  base = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "song"
  sid, k = base, 2
  while sid in taken:
    sid, k = f"{base}_{k}", k + 1
  taken.add(sid)
  return sid


def _candidates(opts: Options) -> list[dict]:
  if opts.midi_dir is None:
    return [{"kind": "corpus", "corpus_index": i, "id": s.id, "title": s.title,
             "source": f"music21:{s.corpus_path}"} for i, s in enumerate(songs.SONGS)]
  files = []
  for root, dirs, names in os.walk(opts.midi_dir):
    dirs.sort()
    for name in sorted(names):
      if name.lower().endswith(MIDI_EXTENSIONS):
        files.append(os.path.join(root, name))
  files.sort(key=lambda p: os.path.relpath(p, opts.midi_dir))
  if not files:
    raise DatasetBuildError(f"--midi_dir={opts.midi_dir} holds no MIDI files "
                            f"({', '.join(MIDI_EXTENSIONS)})")
  taken: set[str] = set()
  out = []
  for p in files:
    rel = os.path.relpath(p, opts.midi_dir)
    out.append({"kind": "file", "source_path": os.path.abspath(p), "title": rel,
                "id": _song_id(os.path.splitext(rel)[0].replace(os.sep, "_"), taken),
                "source": f"file:{rel}"})
  return out


def _run(tasks: list[dict], workers: int, progress: bool) -> list[dict]:
  from tqdm import tqdm

  bar = tqdm(total=len(tasks), unit="song", disable=not progress, dynamic_ncols=True)
  results = []
  try:
    if workers <= 1 or len(tasks) <= 1:
      for t in tasks:
        results.append(process_song(t))
        bar.update(1)
    else:
      import multiprocessing as mp
      # spawn: workers never inherit the parent's threads (JAX, tqdm) or locks.
      with mp.get_context("spawn").Pool(min(workers, len(tasks))) as pool:
        for r in pool.imap_unordered(process_song, tasks):
          results.append(r)
          bar.update(1)
  finally:
    bar.close()
  return sorted(results, key=lambda r: r["index"])


def build_dataset(out_dir: str, **options) -> dict:
  """Builds (or completes) the dataset in `out_dir`; returns the manifest written there.

  Args:
    out_dir: output folder (created).
    **options: fields of `Options` (num_songs, midi_dir, soundfont, sample_rate, segment_seconds,
      overlap_seconds, frames, height, width, split_by, split_fractions, seed, workers,
      max_song_seconds, gain, tail_seconds, camera, repeat_release_ms, progress).

  Raises:
    DatasetBuildError: bad options, or fewer usable songs than `num_songs`.
    synth.SynthError: FluidSynth or the SoundFont is missing.
  """
  opts = Options(**options)
  opts.validate()
  synth.check_available(opts.soundfont)
  t0 = time.perf_counter()
  out_dir = os.path.abspath(out_dir)
  os.makedirs(os.path.join(out_dir, "songs"), exist_ok=True)
  os.makedirs(os.path.join(out_dir, "midi"), exist_ok=True)
  for folder in (out_dir, os.path.join(out_dir, "songs"), os.path.join(out_dir, "midi")):
    for name in store.remove_temp_files(folder):  # left by a killed run
      logging.info("removed the partial file %s of an interrupted run", name)
  sf_sha = store.sha256_file(opts.soundfont)
  synth_desc = synth.SynthSettings(opts.soundfont, opts.gain, opts.tail_seconds).describe(
      opts.sample_rate)
  workers = opts.workers or len(os.sched_getaffinity(0))
  common = {"out_dir": out_dir, "soundfont": opts.soundfont, "soundfont_sha256": sf_sha,
            "sample_rate": opts.sample_rate, "frames": opts.frames, "height": opts.height,
            "width": opts.width, "synth": synth_desc, "max_song_seconds": opts.max_song_seconds,
            "gain": opts.gain, "tail_seconds": opts.tail_seconds, "camera": opts.camera,
            "repeat_release_ms": opts.repeat_release_ms}

  candidates = _candidates(opts)
  wanted = opts.num_songs or len(candidates)
  if opts.midi_dir is None:
    candidates = candidates[:wanted]
  done: list[dict] = []
  skipped: list[dict] = []
  next_i = 0
  # Rounds: the first `wanted` candidates, then as many more as were skipped, in order; so the
  # songs used are the first `wanted` usable ones whatever the number of workers.
  while next_i < len(candidates) and len(done) < wanted:
    batch = candidates[next_i:next_i + wanted - len(done)]
    tasks = [{**common, **c, "index": next_i + j,
              "midi_path": os.path.join(out_dir, "midi", f"{c['id']}.mid")}
             for j, c in enumerate(batch)]
    next_i += len(batch)
    for r in _run(tasks, workers, opts.progress):
      for line in r.pop("log", []):
        logging.warning("%s", line)
      if r["status"] == "skipped":
        logging.warning("skipped %s: %s", r["source"], r["reason"])
        skipped.append({"source": r["source"], "reason": r["reason"]})
      else:
        done.append(r)
  done.sort(key=lambda r: r["index"])

  if skipped:
    logging.warning("skipped %d file(s):\n%s", len(skipped),
                    "\n".join(f"  {s['source']}: {s['reason']}" for s in skipped))
  if not done or (opts.num_songs and len(done) < wanted):
    raise DatasetBuildError(
        f"only {len(done)} of the {wanted} requested songs are usable ({len(skipped)} skipped, "
        "reasons above); add MIDI files, or pass --num_songs=0 to use every usable file")

  manifest = _manifest(opts, done, skipped, sf_sha, synth_desc)
  store.write_json(os.path.join(out_dir, "manifest.json"), manifest)
  wall = time.perf_counter() - t0
  status = {s: sum(r["status"] == s for r in done) for s in ("rendered", "kept")}
  logging.info("dataset in %s: %d songs (%d rendered, %d kept), %.1f min of audio, segments %s, "
               "max %d frames per segment; %.1f s", out_dir, len(done), status["rendered"],
               status["kept"], manifest["total_seconds"] / 60, manifest["num_segments"],
               manifest["max_frames_per_segment"], wall)
  return manifest


def _manifest(opts: Options, done: list[dict], skipped: list[dict], sf_sha: str,
              synth_desc: dict) -> dict:
  sr = opts.sample_rate
  seg = segments.seconds_to_samples(opts.segment_seconds, sr, "segment_seconds")
  hop = segments.check_windows(seg, segments.seconds_to_samples(opts.overlap_seconds, sr,
                                                                "overlap_seconds"))
  fractions = segments.parse_fractions(opts.split_fractions)
  starts = [segments.segment_starts(r["num_samples"], seg, hop) for r in done]
  max_frames = max(int(segments.frame_ranges(r["frame_start"], s, seg)[1].max())
                   for r, s in zip(done, starts, strict=True))
  song_split, splits = segments.build_splits(starts, opts.split_by, fractions, opts.seed)
  entries = []
  for r, s, split in zip(done, starts, song_split, strict=True):
    e = {k: r[k] for k in ("id", "title", "source")}
    e["split"] = split
    e.update({k: r[k] for k in ("duration_seconds", "num_samples", "num_notes", "num_frames")})
    e["num_segments"] = len(s)
    e.update({k: r[k] for k in ("file", "sha256", "midi_file", "midi_sha256", "peak", "stats")})
    entries.append(e)
  layout = keyboard.layout(opts.height, opts.width)
  style = camera_lib.STYLES[opts.camera]
  if opts.camera == "clean":  # frames stored as rendered, at the renderer's size
    style = dataclasses.replace(style, height=opts.height, width=opts.width)
  return {
      "format_version": FORMAT_VERSION,
      "generator_version": GENERATOR_VERSION,
      "sample_rate": sr,
      "render_sample_rate": synth.render_rate(sr),
      "segment_seconds": opts.segment_seconds,
      "overlap_seconds": opts.overlap_seconds,
      "segment_samples": seg,
      "hop_samples": hop,
      "split_by": opts.split_by,
      "split_fractions": list(fractions),
      "seed": opts.seed,
      "frames": opts.frames,
      "renderer": layout.settings(),  # the keyboard as drawn, before the camera
      "camera": {"style": opts.camera, **style.settings()},  # height, width: the stored frames
      "synth": synth_desc,
      "soundfont": {"name": os.path.basename(opts.soundfont), "path": opts.soundfont,
                    "sha256": sf_sha, "bank": synth.BANK, "preset": synth.PRESET},
      "sustain_pedal": SUSTAIN_PEDAL,
      "repeat_release_ms": opts.repeat_release_ms,
      "max_song_seconds": opts.max_song_seconds,
      "source": "music21 corpus" if opts.midi_dir is None else "midi_dir",
      "max_frames_per_segment": max_frames,
      "total_seconds": round(sum(r["num_samples"] for r in done) / sr, 4),
      "num_segments": {k: len(v) for k, v in splits.items()},
      "songs": entries,
      "skipped": skipped,
      "splits": splits,
  }


# ----------------------------------------------------------------------------------------------
# CLI. Flags are defined only when run as a program, so importing this module (the `play` command
# reuses render_performance) never clashes with another program's flags.


def _define_flags():
  from absl import flags

  d = Options()
  flags.DEFINE_string("out_dir", None, "Output folder for the dataset.", required=True)
  flags.DEFINE_integer("num_songs", d.num_songs, "Songs to use (0 = every usable one).")
  flags.DEFINE_string("midi_dir", None, "Folder of MIDI files to use instead of the built-in "
                      "music21 works (searched recursively, sorted by path).")
  flags.DEFINE_string("soundfont", d.soundfont, "SoundFont (.sf2); bank 0 preset 0 is played.")
  flags.DEFINE_integer("sample_rate", d.sample_rate, "Audio sample rate in Hz.")
  flags.DEFINE_float("segment_seconds", d.segment_seconds, "Segment length in seconds.")
  flags.DEFINE_float("overlap_seconds", d.overlap_seconds, "Overlap of consecutive segments.")
  flags.DEFINE_string("frames", d.frames, "'sparse' (a frame per note press) or 'fps:N'.")
  flags.DEFINE_integer("height", d.height, "Frame height in pixels.")
  flags.DEFINE_integer("width", d.width, "Frame width in pixels (4 px per white key at 208).")
  flags.DEFINE_enum("split_by", d.split_by, ["song", "segment"], "Split unit.")
  flags.DEFINE_list("split_fractions", [str(x) for x in d.split_fractions],
                    "train,validation,test fractions.")
  flags.DEFINE_integer("seed", d.seed, "Seed of the split shuffle.")
  flags.DEFINE_integer("workers", None, "Worker processes (default: all cores).")
  flags.DEFINE_float("max_song_seconds", None, "Cut every song at this many seconds.")
  flags.DEFINE_float("gain", d.gain, "FluidSynth output gain.")
  flags.DEFINE_float("tail_seconds", d.tail_seconds, "Longest release tail after the last note.")
  flags.DEFINE_string("camera", d.camera,
                      "Camera style of the video (data_gen.camera.STYLES): clean or held_out")
  flags.DEFINE_float("repeat_release_ms", d.repeat_release_ms,
                     "A key struck again is released this long before (at most half the "
                     "interval; audio and video alike): 0 = the score's timing, where a repeated "
                     "note can end exactly at the next, which no camera can see.")
  return flags.FLAGS


def main(argv):
  del argv
  import sys

  f = FLAGS
  try:
    build_dataset(f.out_dir, num_songs=f.num_songs, midi_dir=f.midi_dir, soundfont=f.soundfont,
                  sample_rate=f.sample_rate, segment_seconds=f.segment_seconds,
                  overlap_seconds=f.overlap_seconds, frames=f.frames, height=f.height,
                  width=f.width, split_by=f.split_by, split_fractions=f.split_fractions,
                  seed=f.seed, workers=f.workers, max_song_seconds=f.max_song_seconds,
                  gain=f.gain, tail_seconds=f.tail_seconds, camera=f.camera,
                  repeat_release_ms=f.repeat_release_ms)
  except (DatasetBuildError, synth.SynthError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)
  except OSError as e:  # e.g. --out_dir is a file, read-only, or the disk is full
    where = f" ({e.filename})" if e.filename else ""
    print(f"error: cannot write the dataset in {f.out_dir}: {e.strerror or e}{where}; pass an "
          "--out_dir you can write to, or free disk space (a re-run keeps the finished songs)",
          file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
  from absl import app

  FLAGS = _define_flags()
  logging.set_verbosity(logging.INFO)
  app.run(main)

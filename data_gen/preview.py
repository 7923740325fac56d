r"""Figures of the dataset, like the method's figures 1-3 (PNG, matplotlib Agg).

  python -m data_gen.preview --data_dir=data/deepsynth --out=figures

writes `frame.png` (keyboard frames of one segment, upscaled, pressed notes named), `waveform.png`
(one 5 s segment's audio with its frame starts) and `note.png` (the note of the dataset heard most
alone: its attack, and its decay with the envelope in dB).
"""

from __future__ import annotations

import os

import numpy as np

from data_gen import store, wav

_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def note_name(pitch: int) -> str:
  """MIDI pitch -> name, e.g. 60 -> 'C4'."""
  return f"{_NAMES[pitch % 12]}{pitch // 12 - 1}"


def isolated_note(notes: np.ndarray, sample_rate: int) -> tuple[int, float]:
  """(index, score) of the note heard most alone: struck alone, longest after the previous notes
  ended (up to 0.5 s counts), then longest before the next onset (up to 2 s counts)."""
  onsets, offsets = notes[:, 0], notes[:, 1]
  uniq, first, counts = np.unique(onsets, return_index=True, return_counts=True)
  single = counts[np.searchsorted(uniq, onsets)] == 1
  order = np.argsort(onsets, kind="stable")
  prev_end = np.full(len(notes), -sample_rate, np.int64)  # the latest offset of earlier notes
  running = np.maximum.accumulate(offsets[order])
  prev_end[order[1:]] = running[:-1]
  quiet = np.minimum(onsets - prev_end, sample_rate // 2)
  nxt = np.searchsorted(uniq, onsets, side="right")
  after = np.where(nxt < len(uniq), uniq[np.minimum(nxt, len(uniq) - 1)] - onsets, 2 * sample_rate)
  score = np.where(single, quiet * 10.0 + np.minimum(after, 2 * sample_rate), -1.0)
  i = int(np.argmax(score))
  return i, float(score[i])


def make_figures(data_dir: str, out_dir: str, song: int = 0, segment: int | None = None) -> list:
  """Writes frame.png, waveform.png and note.png for one song; returns their paths."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  manifest = store.read_manifest(data_dir)
  sr = int(manifest["sample_rate"])
  entry = manifest["songs"][song]
  with np.load(os.path.join(data_dir, entry["file"]), allow_pickle=False) as z:
    audio = wav.pcm16_to_float(z["audio"])
    frames, frame_start, frame_keys, notes = z["frames"], z["frame_start"], z["frame_keys"], \
        z["notes"]
  os.makedirs(out_dir, exist_ok=True)
  t = int(manifest["segment_samples"])
  if segment is None:  # the segment with the most frames
    starts = np.arange(0, max(len(audio) - t, 1), manifest["hop_samples"])
    counts = np.searchsorted(frame_start, starts + t) - np.searchsorted(frame_start, starts)
    segment = int(np.argmax(counts))
  start = int(segment * manifest["hop_samples"])
  in_seg = np.flatnonzero((frame_start >= start) & (frame_start < start + t))
  paths = []

  # Figure 1: frames.
  show = in_seg[:6] if len(in_seg) else np.array([0])
  fig, axes = plt.subplots(len(show), 1, figsize=(10, 1.1 * len(show) + 0.4), squeeze=False)
  for ax, f in zip(axes[:, 0], show, strict=True):
    ax.imshow(frames[f], cmap="gray", vmin=0, vmax=255, interpolation="nearest", aspect="auto")
    pressed = [note_name(21 + k) for k in np.flatnonzero(frame_keys[f])]
    ax.set_title(f"frame {f} from {frame_start[f] / sr:.3f} s: {' '.join(pressed) or '(none)'}",
                 fontsize=8, loc="left")
    ax.set_xticks([])
    ax.set_yticks([])
  fig.suptitle(f"{entry['title']}: keyboard frames {frames.shape[1]}x{frames.shape[2]} px",
               fontsize=9)
  fig.tight_layout()
  paths.append(os.path.join(out_dir, "frame.png"))
  fig.savefig(paths[-1], dpi=120)
  plt.close(fig)

  # Figure 2: waveform of one segment with its frame starts.
  seg = np.zeros(t, np.float32)
  chunk = audio[start:start + t]
  seg[:len(chunk)] = chunk
  fig, ax = plt.subplots(figsize=(10, 3))
  ax.plot((start + np.arange(t)) / sr, seg, lw=0.3, color="k")
  for s in frame_start[in_seg]:
    ax.axvline(s / sr, color="tab:red", lw=0.5, alpha=0.6)
  ax.set_xlabel("time (s)")
  ax.set_ylabel("amplitude")
  ax.set_title(f"{entry['title']}: {t / sr:.0f} s segment at {sr} Hz; red: frame starts",
               fontsize=9)
  fig.tight_layout()
  paths.append(os.path.join(out_dir, "waveform.png"))
  fig.savefig(paths[-1], dpi=120)
  plt.close(fig)

  # Figure 3: one note's attack and decay, the note heard most alone in the dataset.
  best = (-2.0, song, 0)
  for k, e in enumerate(manifest["songs"]):
    with np.load(os.path.join(data_dir, e["file"]), allow_pickle=False) as z:
      i, score = isolated_note(z["notes"], sr)
    best = max(best, (score, -k, i))
  note_song, i = -best[1], best[2]
  note_entry = manifest["songs"][note_song]
  with np.load(os.path.join(data_dir, note_entry["file"]), allow_pickle=False) as z:
    audio, notes = wav.pcm16_to_float(z["audio"]), z["notes"]
  onset, offset, pitch, vel = (int(x) for x in notes[i])
  later = notes[:, 0][notes[:, 0] > onset]
  end = min(int(later.min()) if len(later) else len(audio), onset + 3 * sr, len(audio))
  x = audio[max(onset - sr // 50, 0):end]
  tt = (np.arange(len(x)) + max(onset - sr // 50, 0) - onset) / sr * 1000
  fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3.2))
  attack = tt < 60
  a1.plot(tt[attack], x[attack], color="k", lw=0.8, marker=".", ms=2)
  a1.set_title(f"attack of {note_name(pitch)} (velocity {vel}) at {onset / sr:.2f} s of "
                f"{note_entry['id']}", fontsize=9)
  a1.set_xlabel("ms from onset")
  hop = max(sr // 100, 1)
  env = np.array([np.abs(x[j:j + hop]).max() for j in range(0, len(x) - hop + 1, hop)])
  a2.plot(tt, x, color="0.6", lw=0.3)
  a2b = a2.twinx()
  a2b.plot(tt[:len(env) * hop:hop], 20 * np.log10(np.maximum(env, 1e-5)), color="tab:blue")
  a2b.set_ylabel("envelope (dBFS)", color="tab:blue")
  a2.axvline((offset - onset) / sr * 1000, color="tab:red", lw=0.8)
  a2.set_title(f"decay; note-off at {(offset - onset) / sr * 1000:.0f} ms (red)", fontsize=9)
  a2.set_xlabel("ms from onset")
  fig.tight_layout()
  paths.append(os.path.join(out_dir, "note.png"))
  fig.savefig(paths[-1], dpi=120)
  plt.close(fig)
  return paths


def main(argv):
  del argv
  from absl import flags

  f = flags.FLAGS
  for p in make_figures(f.data_dir, f.out, song=f.song, segment=f.segment):
    print(f"wrote {p}")


if __name__ == "__main__":
  from absl import app, flags

  flags.DEFINE_string("data_dir", None, "Dataset folder.", required=True)
  flags.DEFINE_string("out", None, "Folder for the PNGs.", required=True)
  flags.DEFINE_integer("song", 0, "Song index in the manifest.")
  flags.DEFINE_integer("segment", None, "Segment of the song (default: the one with most frames).")
  app.run(main)

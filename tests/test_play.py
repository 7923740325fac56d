"""deepsynth_jax.play: a MIDI file played by the simulator and heard by a (random-parameter)
KeySynth run: the four files it writes, that the model hears only the frames (its audio is
`deepsynth_jax.sample`'s on the simulator's frames, and the same for a MIDI that differs only in
what the video cannot show), and the CLI's usage errors."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import mido
import numpy as np
import pytest
from scipy.io import wavfile

import deepsynth_jax
from data_gen import make_dataset, synth, wav
from deepsynth_jax import play

sys.path.insert(0, os.path.dirname(__file__))
from conftest import make_song_midi  # noqa: E402
from test_api import make_run_dir  # noqa: E402  (the same fake trained run)

pytestmark = pytest.mark.filterwarnings("ignore:os.fork")  # ffmpeg and the CLI run as subprocesses

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_SECONDS = 2.0
FILES = ("video.mp4", "generated.wav", "reference.wav", "reference_video.mp4")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_data_dir):
  return make_run_dir(str(tmp_path_factory.mktemp("play_run")), tiny_data_dir, "keysynth")


@pytest.fixture(scope="module")
def midi_path(tmp_path_factory):
  path = tmp_path_factory.mktemp("play_midi") / "song.mid"
  path.write_bytes(make_song_midi(7, 4.0))  # cut to MAX_SECONDS by play
  return str(path)


@pytest.fixture(scope="module")
def played(run_dir, midi_path, tmp_path_factory):
  out = str(tmp_path_factory.mktemp("played") / "out")  # created by play
  return out, play.play(midi_path, out, run_dir, max_seconds=MAX_SECONDS)


def _read_wav(path):
  rate, pcm = wavfile.read(path)
  assert pcm.dtype == np.int16 and pcm.ndim == 1
  return rate, pcm


def test_play_writes_the_videos_and_the_two_wavs(played, data):
  out, result = played
  assert sorted(os.listdir(out)) == sorted(FILES)
  for name in FILES:
    assert result[name] == os.path.join(out, name)
  rate, generated = _read_wav(result["generated.wav"])
  ref_rate, reference = _read_wav(result["reference.wav"])
  assert rate == ref_rate == data.sample_rate
  assert len(generated) == len(reference)
  # At most MAX_SECONDS of the piece, plus the synthesizer's release tail.
  assert MAX_SECONDS * rate / 2 < len(reference) <= (MAX_SECONDS + 3) * rate
  assert np.sqrt(np.mean(reference.astype(np.float64) ** 2)) > 100  # the notes are heard
  assert result["seconds"] == pytest.approx(len(generated) / rate)
  assert result["num_notes"] > 0 and result["num_frames"] > 1
  assert result["generation_seconds"] > 0
  for name in ("video.mp4", "reference_video.mp4"):
    with open(result[name], "rb") as f:
      head = f.read(12)
    assert head[4:8] == b"ftyp", f"{name} is not an MP4 file"
    assert os.path.getsize(result[name]) > 1000


def test_play_audio_is_the_models_audio_for_the_simulators_frames(played, run_dir, midi_path,
                                                                  data):
  _, result = played
  rate, generated = _read_wav(result["generated.wav"])
  _, reference = _read_wav(result["reference.wav"])
  perf = make_dataset.render_performance(midi_path, soundfont=synth.DEFAULT_SOUNDFONT,
                                         sample_rate=rate, height=data.frame_shape[0],
                                         width=data.frame_shape[1], max_song_seconds=MAX_SECONDS)
  np.testing.assert_array_equal(reference, perf["audio"])  # the SoundFont's rendering
  assert result["num_frames"] == len(perf["frames"]) and result["num_notes"] == len(perf["notes"])
  expected = deepsynth_jax.sample(perf["frames"], perf["frame_start"], checkpoint=run_dir,
                                  seconds=len(reference) / rate, seed=0)
  np.testing.assert_array_equal(generated, wav.float_to_pcm16(expected))
  assert np.any(generated != 0)


def _softer(midi_bytes: bytes) -> bytes:
  """The same piece with every key struck softer: another sound, the same video."""
  mid = mido.MidiFile(file=io.BytesIO(midi_bytes))
  for track in mid.tracks:
    for i, msg in enumerate(track):
      if msg.type == "note_on" and msg.velocity > 0:
        track[i] = msg.copy(velocity=30)
  buf = io.BytesIO()
  mid.save(file=buf)
  return buf.getvalue()


def test_the_model_hears_the_video_not_the_midi(played, run_dir, midi_path, tmp_path):
  _, loud = played
  soft_midi = tmp_path / "soft.mid"
  with open(midi_path, "rb") as f:
    soft_midi.write_bytes(_softer(f.read()))
  soft = play.play(str(soft_midi), str(tmp_path / "out"), run_dir, max_seconds=MAX_SECONDS)
  # The reference audio follows the velocities (softer, and its release tail ends sooner); the
  # model's audio does not: it never sees them. It is as long as the reference, so the two agree
  # on the shorter one's length.
  loud_ref, soft_ref = _read_wav(loud["reference.wav"])[1], _read_wav(soft["reference.wav"])[1]
  n = min(len(loud_ref), len(soft_ref))
  loudness = lambda x: np.sqrt(np.mean(x[:n].astype(np.float64) ** 2))
  assert loudness(soft_ref) < 0.7 * loudness(loud_ref)
  loud_gen, soft_gen = _read_wav(loud["generated.wav"])[1], _read_wav(soft["generated.wav"])[1]
  assert len(soft_gen) == len(soft_ref) and np.any(loud_gen[:n] != 0)
  np.testing.assert_allclose(soft_gen[:n], loud_gen[:n], atol=1)  # 1 LSB of 16-bit PCM


def _cli(*args: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-m", "deepsynth_jax.play", *args], capture_output=True,
                        text=True, cwd=ROOT, env={**os.environ, "JAX_PLATFORMS": "cpu"},
                        timeout=300)


def _last_line(stderr: str) -> str:
  return [line for line in stderr.splitlines() if line.strip()][-1]


def test_cli_usage_errors_are_one_line_and_write_nothing(tmp_path, run_dir):
  out = tmp_path / "out"
  missing = tmp_path / "nope.mid"
  proc = _cli(f"--midi={missing}", f"--out={out}", f"--checkpoint={run_dir}")
  assert proc.returncode != 0 and "Traceback" not in proc.stderr
  assert _last_line(proc.stderr) == f"--midi={missing}: no such file"
  proc = _cli(f"--out={out}", f"--checkpoint={run_dir}")  # no --midi
  assert proc.returncode != 0 and "Traceback" not in proc.stderr
  assert "give --midi=FILE --out=DIR --checkpoint=WORKDIR" in _last_line(proc.stderr)
  assert not out.exists()


def test_cli_missing_checkpoint_is_one_line(tmp_path, midi_path):
  proc = _cli(f"--midi={midi_path}", f"--out={tmp_path / 'out'}",
              f"--checkpoint={tmp_path / 'no_run'}")
  assert proc.returncode == 1 and "Traceback" not in proc.stderr
  assert _last_line(proc.stderr).startswith("error: ")
  assert "not a DeepSynth run" in _last_line(proc.stderr)


def test_cli_corrupt_midi_is_one_line(tmp_path, run_dir):
  corrupt = tmp_path / "corrupt.mid"
  corrupt.write_bytes(b"MThd\x00\x00\x00\x06 not a MIDI file")
  proc = _cli(f"--midi={corrupt}", f"--out={tmp_path / 'out'}", f"--checkpoint={run_dir}")
  assert proc.returncode == 1 and "Traceback" not in proc.stderr
  assert _last_line(proc.stderr).startswith("error: ") and "corrupt.mid" in proc.stderr
  assert not (tmp_path / "out").exists()

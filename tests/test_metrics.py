"""Tests of deepsynth_jax.metrics on synthetic piano-like tones (no dataset needed)."""

from __future__ import annotations

import numpy as np
import pytest

from deepsynth_jax import metrics

SR = 4000


def piano_like(notes: np.ndarray, num_samples: int, sample_rate: int = SR) -> np.ndarray:
  """Sum of exponentially decaying harmonic tones, one per (onset, offset, pitch, velocity) row."""
  out = np.zeros(num_samples)
  for onset, _, pitch, velocity in notes:
    t = np.arange(num_samples - onset) / sample_rate
    f0 = metrics.midi_to_hz(pitch)
    tone = np.zeros_like(t)
    for h in range(1, 12):
      if h * f0 < 0.45 * sample_rate:
        tone += 0.7 ** (h - 1) * np.sin(2 * np.pi * h * f0 * t)
    out[onset:] += velocity / 127 * tone * np.exp(-t / 0.3)
  return (0.5 * out / np.abs(out).max()).astype(np.float32)


def melody(pitches=(60, 64, 67, 72, 55), gap_s=0.4) -> np.ndarray:
  onsets = (np.arange(len(pitches)) * gap_s + 0.2) * SR
  rows = [[o, o + 0.3 * SR, p, 100] for o, p in zip(onsets, pitches, strict=True)]
  return np.array(rows, np.int64)


@pytest.fixture(scope="module")
def clip():
  notes = melody()
  return piano_like(notes, int(2.5 * SR)), notes


def test_identical_audio_scores_perfectly(clip):
  audio, notes = clip
  assert metrics.stft_distance(audio, audio, SR) == 0.0
  onsets = metrics.onset_scores(audio, SR, notes)
  assert onsets["f1"] == 1.0 and onsets["num_reference"] == len(notes)
  pitch = metrics.pitch_scores(audio, SR, notes)
  assert pitch["f1"] == 1.0 and pitch["chroma_f1"] == 1.0
  bundle = metrics.audio_metrics(audio, audio, SR, notes)
  assert bundle["stft_distance"] == 0.0 and bundle["onset_f1"] == 1.0 and bundle["pitch_f1"] == 1.0


def test_stft_distance_grows_with_difference(clip):
  audio, _ = clip
  rng = np.random.default_rng(0)
  slight = audio + 0.001 * rng.standard_normal(audio.shape).astype(np.float32)
  assert 0.0 < metrics.stft_distance(slight, audio, SR) < metrics.stft_distance(
      metrics.white_noise_like(audio, seed=1), audio, SR)
  with pytest.raises(ValueError, match="same length"):
    metrics.stft_distance(audio[:-1], audio, SR)


def test_silence_has_zero_recall(clip):
  audio, notes = clip
  silence = np.zeros_like(audio)
  assert metrics.onset_scores(silence, SR, notes)["recall"] == 0.0
  assert metrics.pitch_scores(silence, SR, notes)["recall"] == 0.0


def test_onset_shifted_outside_window_is_a_miss(clip):
  audio, notes = clip
  moved = notes.copy()
  moved[2, 0] += int(0.1 * SR)  # 100 ms late: outside the 50 ms window
  scores = metrics.onset_scores(audio, SR, moved)
  assert scores["recall"] == pytest.approx(4 / 5)
  assert scores["precision"] == pytest.approx(4 / 5)
  moved[2, 0] = notes[2, 0] + int(0.02 * SR)  # 20 ms: still a hit
  assert metrics.onset_scores(audio, SR, moved)["f1"] == 1.0


def test_chord_onsets_merge_within_30ms():
  notes = np.array([[400, 900, 60, 90], [480, 900, 64, 90], [800, 900, 67, 90],
                    [5000, 6000, 60, 90]], np.int64)
  got = metrics.reference_onsets(notes, SR, num_samples=4000)
  np.testing.assert_allclose(got, [0.1, 0.2])  # the third note is 100 ms after the first
  # Onsets in the first 50 ms (the clip edge) do not count.
  edge = np.array([[0, 9, 60, 90], [199, 300, 62, 90]])
  assert metrics.reference_onsets(edge, SR, 4000).size == 0


def test_clip_starting_mid_note_with_clipped_note_list(clip):
  # A segment cut 0.1 s after the second note's onset, its notes clipped to the segment as
  # DeepSynthData.notes does: the sounding note's onset becomes 0 and must not count.
  audio, notes = clip
  cut = int(notes[1, 0] + 0.1 * SR)
  seg_notes = notes[notes[:, 1] > cut].copy()
  seg_notes[:, :2] = np.clip(seg_notes[:, :2] - cut, 0, None)
  segment = audio[cut:]
  assert metrics.onset_scores(segment, SR, seg_notes)["f1"] == 1.0
  assert metrics.pitch_scores(segment, SR, seg_notes)["f1"] == 1.0


@pytest.mark.parametrize("pitch", [33, 57, 69, 86])
def test_tone_pitch_is_found_and_its_semitone_neighbour_is_not(pitch):
  notes = melody(pitches=(pitch,))
  audio = piano_like(notes, int(1.0 * SR))
  _, found = metrics.transcribe_audio(audio, SR)
  assert pitch in found and pitch + 1 not in found and pitch - 1 not in found
  assert metrics.pitch_scores(audio, SR, notes)["recall"] == 1.0
  wrong = notes.copy()
  wrong[:, 2] += 1
  assert metrics.pitch_scores(audio, SR, wrong)["recall"] == 0.0


def test_noise_and_clicks_score_low_on_pitch(clip):
  audio, notes = clip
  noise = metrics.white_noise_like(audio, seed=0)
  assert metrics.pitch_scores(noise, SR, notes)["f1"] < 0.2
  clicks = np.zeros_like(audio)
  clicks[notes[:, 0]] = 0.8
  assert metrics.onset_scores(clicks, SR, notes)["f1"] == 1.0  # right rhythm ...
  assert metrics.pitch_scores(clicks, SR, notes)["f1"] < 0.2  # ... wrong notes


def test_inaudible_and_outside_notes_are_excluded(clip):
  audio, notes = clip
  extra = np.array([[notes[0, 0], notes[0, 1], 100, 90],  # C8 has no audible partial at 4 kHz
                    [-400, 200, 60, 90],  # struck before the clip
                    [len(audio) + 10, len(audio) + 99, 60, 90]], np.int64)
  scores = metrics.pitch_scores(audio, SR, np.concatenate([notes, extra]))
  assert scores["f1"] == 1.0 and scores["num_inaudible"] == 1
  assert scores["num_reference"] == len(notes)
  assert metrics.highest_audible_midi(SR) == 93


def test_white_noise_is_deterministic_with_matched_rms(clip):
  audio, _ = clip
  a, b = metrics.white_noise_like(audio, seed=3), metrics.white_noise_like(audio, seed=3)
  assert a.dtype == np.float32 and a.tobytes() == b.tobytes()
  assert np.sqrt(np.mean(a ** 2)) == pytest.approx(np.sqrt(np.mean(audio ** 2)), rel=0.05)
  assert metrics.white_noise_like(audio, seed=4).tobytes() != a.tobytes()


def test_reference_and_noise_rows_and_table(clip):
  audio, notes = clip
  rows = metrics.reference_and_noise_rows([audio], SR, [notes])
  assert rows["reference audio"]["pitch_f1"] == 1.0
  assert rows["white noise (matched RMS)"]["pitch_f1"] < 0.2
  table = metrics.markdown_table(rows)
  assert table.count("\n") == 3 and "| reference audio | 1.000 |" in table


def test_bad_inputs_raise_one_clear_error(clip):
  audio, notes = clip
  with pytest.raises(metrics.MetricInputError, match="mono"):
    metrics.onset_scores(np.stack([audio, audio]), SR, notes)
  with pytest.raises(metrics.MetricInputError, match="pcm16_to_float"):
    metrics.pitch_scores((audio * 32767).astype(np.int16), SR, notes)
  with pytest.raises(metrics.MetricInputError, match=r"\(M, 4\)"):
    metrics.pitch_scores(audio, SR, notes[:, :3])
  with pytest.raises(metrics.MetricInputError, match="sample_rate"):
    metrics.stft_distance(audio, audio, 4000.5)


def test_waveform_correlation_rewards_only_the_recording_in_phase():
  t = np.arange(4000) / 4000
  tone = 0.3 * np.sin(2 * np.pi * 220 * t)
  assert metrics.waveform_correlation(tone, tone) == pytest.approx(1.0)
  assert metrics.waveform_correlation(0.1 * tone, tone) == pytest.approx(1.0)  # any gain
  # The same partial a quarter period late: the STFT cannot tell, the waveform can.
  late = 0.3 * np.sin(2 * np.pi * 220 * t - np.pi / 2)
  assert abs(metrics.waveform_correlation(late, tone)) < 0.01
  noise = metrics.white_noise_like(tone.astype(np.float32), seed=1)
  assert metrics.stft_distance(late, tone, 4000) < 0.1 * metrics.stft_distance(noise, tone, 4000)
  assert abs(metrics.waveform_correlation(noise, tone)) < 0.05
  assert metrics.waveform_correlation(np.zeros(4000), tone) == 0.0
  with pytest.raises(metrics.MetricInputError, match="length"):
    metrics.waveform_correlation(tone[:100], tone)

r"""The CPU vocoder without audio-input dropout: it hears all of its past audio.

  python -m deepsynth_jax.train --config=experiments/configs/vocoder_nodrop_cpu.py \
      --workdir=runs/vocoder_nodrop_cpu

The method's dropout makes a frame-conditioned WaveNet use the video, which it would otherwise
ignore. The vocoder's conditioning (the frozen KeySynth's audio, sample by sample) already carries
the notes; with dropout 0.75 the WaveNet must predict 3 samples in 4 without their past, and the
KeySynth audio's partials, whose phases are not the piano's, cannot tell it the next sample: it
learns a wide distribution and samples noise. Without dropout it can continue the waveform it has
started, as a vocoder does, and take from the KeySynth audio when a note starts and which.

Measured (2026-11-30, 40.9 min on 2 cores): teacher-forced CE 3.1 nats on the demo's test
segments, but free-running it still generates noise with faint harmonic lines (onset / pitch F1
0.51 / 0.04; README, "A WaveNet on the learned instrument").
"""

from experiments.configs import vocoder_cpu


def get_config():
  config = vocoder_cpu.get_config()
  config.wavenet.audio_dropout = 0.0
  return config

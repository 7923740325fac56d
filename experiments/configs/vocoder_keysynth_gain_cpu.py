r"""The anchored vocoder on the KeySynth's own waveform, trained on its own past (shipped as
models/demo_vocoder until vocoder_gain256_cpu.py replaced it).

vocoder_anchored_cpu.py with two changes, each measured on the demo's 8 test segments (README,
"The anchored vocoder"):
- the anchor is the phase KeySynth's audio itself (`vocoder.anchor_correction=False`): the learned
  correction raised the waveform correlation (0.589 -> 0.628) but added sound the blind
  transcription hears as notes (the anchor alone: onset / pitch F1 0.877 / 0.667, against the
  KeySynth's 0.983 / 0.790), more than the WaveNet's gain can take away;
- scheduled sampling from the first step (`vocoder.own_samples=0.5`): half of each batch is fed
  the model's own greedy samples as its past, so that the gain learns what to play after its own
  past (trained on the recording's past only, it shrank at every block, to a sixth of the
  recording's loudness); the best epoch is the one with the lowest greedy free-running
  cross-entropy on 16 validation clips of 2 s.
So the WaveNet decides, from the audio so far and the video, how loud each 64-sample block of the
KeySynth's notes sounds, and how wide its distribution is around them:

  python -m deepsynth_jax.train --config=experiments/configs/vocoder_keysynth_gain_cpu.py \
      --workdir=runs/vocoder_keysynth_gain_cpu
"""

from experiments.configs import vocoder_anchored_cpu, vocoder_anchored_own_cpu


def get_config():
  config = vocoder_anchored_cpu.get_config()
  config.vocoder.anchor_correction = False
  config.vocoder.own_samples = 0.5
  # 12 epochs of 43 steps: 516 steps, ~30 min on 2 cores (sampling half the batch each step).
  config.num_epochs = 12
  return vocoder_anchored_own_cpu.select_on_greedy_free_running(config)

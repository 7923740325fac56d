r"""The residual anchored vocoder at CPU size: vocoder_anchored_cpu.py with no gain.

Each sample's distribution over the 256 buckets is a Gaussian, in linear audio units, around the
anchor (the phase KeySynth's audio + a learned, non-causal correction) plus a residual that the
WaveNet stack predicts from the audio so far, at every sample, in units of the width
(`anchor_mean="residual"`, models/wavenet.py). vocoder_anchored_cpu.py scaled the anchor by a
gain from the stack: the loss-optimal gain is below the level ratio wherever the anchor is
imperfect, and free-running, fed its own quieter past, the gain shrank again (it plays at a sixth
of the recording's loudness). Here a past that agrees with the anchor predicts nothing to add.
The width comes from the per-sample features and is trained on the anchor's own error (the
"anchor_cross_entropy" term), the error free-running sampling leaves it with. Its mean is what it
plays: the demo decodes it greedily.

  python -m deepsynth_jax.train --config=experiments/configs/vocoder_residual_cpu.py \
      --workdir=runs/vocoder_residual_cpu
"""

from experiments.configs import vocoder_anchored_cpu


def get_config():
  config = vocoder_anchored_cpu.get_config()
  config.vocoder.anchor_mean = "residual"
  # 16 epochs of 43 steps: 688 steps, ~35 min on 2 cores.
  config.num_epochs = 16
  return config

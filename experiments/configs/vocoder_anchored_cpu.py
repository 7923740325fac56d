r"""The anchored vocoder at CPU size (models/demo_vocoder): a WaveNet, sampled autoregressively,
that takes the waveform from the phase-aligned KeySynth and the loudness from the audio so far.

vocoder_phase_cpu.py with the anchored head (models/wavenet.py, `anchored_output`): each sample's
distribution over the 256 buckets is a Gaussian, in linear audio units, around gain x (KeySynth
audio + a learned, non-causal correction from the conv stack); the gain comes from the WaveNet
stack at the start of each 64-sample block (ramped between blocks), the width from the per-sample
features alone. The free-logit vocoders learned, teacher-forced, to continue their own past
waveform and drifted into noise free-running (README, "A WaveNet on the learned instrument");
this head cannot move its mean or its width sample by sample from its own output, and the video
shows no velocity, so what the past audio is left to say is how hard a key was struck. Its mean
is what it plays: the demo decodes it greedily. The KeySynth is the shipped one, so a clone has
everything the vocoder loads:

  python -m deepsynth_jax.train --config=experiments/configs/vocoder_anchored_cpu.py \
      --workdir=runs/vocoder_anchored_cpu
"""

from experiments.configs import default, vocoder_phase_cpu


def get_config():
  config = vocoder_phase_cpu.get_config()
  config.vocoder.keysynth_run = "models/demo_keysynth_phase"
  config.vocoder.anchored = True
  config.vocoder.anchor_block = 64
  # 20 epochs of 43 steps: 860 steps, ~40 min on 2 cores.
  config.num_epochs = 20
  return config


def continued_config(epochs: int = 5):
  """This run continued from its best parameters (`init_from`) for `epochs` epochs at learning
  rate 1e-3 (10 warm-up steps): the base of the variants trained on top of it."""
  return default.continued(get_config(), "runs/vocoder_anchored_cpu", epochs)

r"""The anchored vocoder with its gain trained on loudness: vocoder_anchored_cpu.py continued for
5 epochs (215 steps) from its best parameters, with `vocoder.level_loss`.

Trained through the logits, the gain that minimizes the loss shrinks the mean below the level
ratio wherever the anchor is imperfect, and free-running, fed its own quieter past, the model
shrinks it again: the first run plays at a sixth of the recording's loudness (README, "The
anchored vocoder"). Here the gain gets no gradient from the logits; it learns to give each
64-sample block the recording's RMS (the squared log-ratio of levels, weight 1):

  python -m deepsynth_jax.train --config=experiments/configs/vocoder_anchored_cpu.py \
      --workdir=runs/vocoder_anchored_cpu
  python -m deepsynth_jax.train --config=experiments/configs/vocoder_anchored_level_cpu.py \
      --workdir=runs/vocoder_anchored_level_cpu
"""

from experiments.configs import vocoder_anchored_cpu


def get_config():
  config = vocoder_anchored_cpu.continued_config(epochs=5)
  config.vocoder.level_loss = 1.0
  return config

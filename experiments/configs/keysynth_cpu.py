r"""KeySynth at CPU size, from (frames, audio) pairs alone: the shipped models/demo_keysynth.

No key labels: the placed key reader learns where the keyboard lies in the image, and which key is
pressed, from the audio loss and the audio teacher only (default.py's keysynth section). It learns
from sparse press frames and plays camera video at any frame rate as well (`hard_held`).

  python -m deepsynth_jax.train --config=experiments/configs/keysynth_cpu.py \
      --workdir=runs/keysynth_cpu
"""

from experiments.configs import cpu


def get_config():
  config = cpu.get_config()
  config.model = "keysynth"
  # Generate (and validate) with rounded key states, so that camera video plays too; training
  # is the same either way (soft states).
  config.keysynth.hard_held = True
  config.crop_samples = 4000
  config.num_epochs = 20
  config.optimizer.learning_rate = 2e-3
  config.optimizer.warmup_steps = 50
  config.eval.num_examples = 40
  config.eval.batch_size = 20
  # No audio input: its generated audio is its teacher-forced output, so select on that loss.
  config.eval.selection_metric = "teacher_forced"
  return config

r"""KeySynth at CPU size trained with the simulator's key labels: the upper bound that no real
video allows (the shipped models/demo_keysynth_labels).

The key reader maps image columns to keys with a dense layer, learns them from the key states the
simulator drew, and the instrument is trained on those states.

  python -m deepsynth_jax.train --config=experiments/configs/keysynth_labels_cpu.py \
      --workdir=runs/keysynth_labels_cpu
"""

from experiments.configs import keysynth_cpu


def get_config():
  config = keysynth_cpu.get_config()
  config.keysynth.reader = "columns"
  config.keysynth.key_weight = 1.0
  config.keysynth.teacher_forced_keys = True
  config.keysynth.heard_weight = 0.0
  return config

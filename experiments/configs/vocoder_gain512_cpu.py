r"""vocoder_gain256_cpu.py with the gain decided every 512 samples (128 ms):

  python -m deepsynth_jax.train --config=experiments/configs/vocoder_gain512_cpu.py \
      --workdir=runs/vocoder_gain512_cpu
"""

from experiments.configs import vocoder_gain256_cpu


def get_config():
  config = vocoder_gain256_cpu.get_config()
  config.vocoder.anchor_block = 512
  return config

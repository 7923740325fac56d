r"""vocoder_gain256_cpu.py with the gain decided every 512 samples (128 ms): the first stage of
models/demo_vocoder (vocoder_gain512_level_cpu.py continues it). Held longer, the gain changes
less often inside a note, so the blind transcription hears fewer of its steps as notes (greedy,
the demo's 8 test segments: onset / pitch F1 0.902 / 0.697 at 256 -> 0.928 / 0.727 here); the
STFT distance rose (1.570 -> 1.615).

  python -m deepsynth_jax.train --config=experiments/configs/vocoder_gain512_cpu.py \
      --workdir=runs/vocoder_gain512_cpu
"""

from experiments.configs import vocoder_gain256_cpu


def get_config():
  config = vocoder_gain256_cpu.get_config()
  config.vocoder.anchor_block = 512
  return config

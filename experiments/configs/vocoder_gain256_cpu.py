r"""The KeySynth-gain vocoder with its gain decided every 256 samples (64 ms) instead of 64
(shipped as models/demo_vocoder until vocoder_gain512_cpu.py replaced it).

vocoder_keysynth_gain_cpu.py with `vocoder.anchor_block=256`. Its greedy output is, to within a
bucket, gain x the KeySynth's audio, and the blind transcription heard the gain's block-to-block
changes as notes: on the demo's 8 test segments the KeySynth's audio times the gain that model
played scored onset / pitch F1 0.869 / 0.661 (quantized: 0.836 / 0.636), times that gain's mean
0.983 / 0.790. Played with its gain held over 256 samples (no retraining, same parameters) that
model already scored 0.921 / 0.729, at the same free-running loss (5.324). Here it is trained so:

  python -m deepsynth_jax.train --config=experiments/configs/vocoder_gain256_cpu.py \
      --workdir=runs/vocoder_gain256_cpu
"""

from experiments.configs import vocoder_keysynth_gain_cpu


def get_config():
  config = vocoder_keysynth_gain_cpu.get_config()
  config.vocoder.anchor_block = 256
  return config

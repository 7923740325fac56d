r"""vocoder_phase_cpu.py trained 9 epochs more (387 steps, ~15 min on 2 cores): does the vocoder
on the phase-aligned KeySynth improve with budget? Starts from that run's best parameters
(`init_from`), so the two runs together are about 60 minutes of training:

  python -m deepsynth_jax.train --config=experiments/configs/vocoder_phase_more_cpu.py \
      --workdir=runs/vocoder_phase_more_cpu
"""

from experiments.configs import default, vocoder_phase_cpu


def get_config():
  config = default.continued(vocoder_phase_cpu.get_config(), "runs/vocoder_phase_cpu", 9,
                             warmup_steps=20)
  config.checkpoint_every_steps = 43
  return config

r"""The CPU vocoder on the phase-aligned KeySynth: vocoder_nodrop_cpu.py with one change, the
KeySynth whose partials restart at each note (keysynth_phase_cpu.py), so that its waveform lines
up with the piano's and the WaveNet can take the next sample from it, not only which notes sound.

  python -m deepsynth_jax.train --config=experiments/configs/keysynth_phase_cpu.py \
      --workdir=runs/keysynth_phase_cpu
  python -m deepsynth_jax.train --config=experiments/configs/vocoder_phase_cpu.py \
      --workdir=runs/vocoder_phase_cpu

The checkpoint is selected on the teacher-forced loss: the free-running loss (the method's test
metric) ranks an untrained, near-uniform model first, since a model that follows its own
trajectory is punished at every sample where that trajectory has drifted from the reference
(both earlier vocoder runs kept their step-43 checkpoint under it). Free-running quality is
measured on the generated audio instead (deepsynth_jax.evaluate).
"""

from experiments.configs import vocoder_nodrop_cpu


def get_config():
  config = vocoder_nodrop_cpu.get_config()
  config.vocoder.keysynth_run = "runs/keysynth_phase_cpu"
  config.vocoder.keysynth_max_voices = 16  # as the KeySynth generates (default.py)
  config.crop_align = 16  # the KeySynth's notes start on a 16-sample grid
  config.eval.selection_metric = "teacher_forced"
  return config

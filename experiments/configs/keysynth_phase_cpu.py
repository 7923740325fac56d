r"""The shipped KeySynth with note-relative phases, fine-tuned: a waveform that lines up with the
piano's, for the vocoder to copy.

The simulator's piano plays the same waveform every time a key is struck (scaled by velocity),
starting on FluidSynth's 16-sample block grid after the press (data_gen.synth). KeySynth's
oscillators had phases fixed by absolute time, so its partials never lined up with the piano's
and only the STFT loss could teach it. With `keysynth.onset_grid` = 16 each partial restarts at
its learned phase when its note starts on the grid and runs at its learned detuning, so the
waveform L1 teaches phase too. Starts from models/demo_keysynth (reader and instrument MLP, same
shapes; only `partial_phase` and `partial_detune` start fresh) and trains 10 epochs:

  python -m deepsynth_jax.train --config=experiments/configs/keysynth_phase_cpu.py \
      --workdir=runs/keysynth_phase_cpu
"""

from experiments.configs import keysynth_cpu


def get_config():
  config = keysynth_cpu.get_config()
  config.keysynth.onset_grid = 16
  config.crop_align = 16
  config.init_from = "models/demo_keysynth"
  # As shipped (default.py): generation with 16 voices.
  config.keysynth.max_voices = 16
  config.num_epochs = 10
  config.optimizer.learning_rate = 1e-3
  return config

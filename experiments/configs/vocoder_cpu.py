r"""The vocoder at CPU size: a WaveNet that plays the shipped KeySynth's audio as a piano.

Two stages (deepsynth_jax.models.vocoder): the frozen KeySynth of models/demo_keysynth (learned
without key labels) reads the keys off the video and plays them as sine partials; a small WaveNet,
conditioned per sample on that audio and with no frame encoder of its own, learns the piano's
sound on top. Only the WaveNet and the conv stack over the KeySynth audio are trained:

  python -m deepsynth_jax.train --config=experiments/configs/vocoder_cpu.py \
      --workdir=runs/vocoder_cpu
"""

from experiments.configs import cpu


def get_config():
  config = cpu.get_config()
  config.model = "vocoder"
  # config.vocoder as in default.py: models/demo_keysynth, 2 conv layers x 32, kernel 9, no
  # frame encoder.
  # The video reaches the WaveNet through KeySynth's audio only: no frame timing features either.
  config.conditioning.use_frame_age = False
  # 10 layers (dilations 1 .. 512: 1025 samples, 0.26 s of past audio) x 48 channels.
  config.wavenet.num_layers = 10
  config.wavenet.layers_per_stack = 10
  config.wavenet.channels = 48
  config.wavenet.skip_channels = 48
  # The method's best dropout: the notes must come from the conditioning, not the audio history.
  config.wavenet.audio_dropout = 0.75
  config.crop_samples = 3000
  # 24 epochs of 43 steps (346 train clips): 1,032 steps, at 2-3.3 s/step on 2 cores (alone /
  # shared with another job) <= 57 min of steps plus 24 cheap validations.
  config.num_epochs = 24
  config.optimizer.learning_rate = 2e-3
  config.optimizer.warmup_steps = 50
  # Free-running validation (the method's metric) on a few clips, so that epochs stay cheap.
  config.eval.selection_metric = "free_running"
  config.eval.num_examples = 8
  config.eval.batch_size = 8
  config.eval.free_running_samples = 2000
  config.log_every_steps = 10
  config.checkpoint_every_steps = 100
  return config

r"""A CPU-sized DeepSynth run: 7 layers x 64 channels, a light frame encoder, short crops.

A first run on a laptop (2 cores: a few minutes per epoch):

  python -m deepsynth_jax.train --config=experiments/configs/cpu.py --workdir=runs/cpu
"""

from experiments.configs import default


def get_config():
  config = default.get_config()
  config.wavenet.num_layers = 7
  config.wavenet.layers_per_stack = 7
  config.wavenet.channels = 64
  config.wavenet.skip_channels = 64
  config.wavenet.audio_dropout = 0.5
  config.encoder.channels = (16, 32, 32)
  config.encoder.convs_per_block = 1
  config.encoder.features = 64
  config.encoder.input_pool = 2
  config.conditioning.features = 64
  config.batch_size = 8
  config.crop_samples = 4000
  config.num_epochs = 8
  config.optimizer.learning_rate = 2e-3
  config.optimizer.warmup_steps = 100
  config.eval.num_examples = 20
  config.eval.batch_size = 10
  config.eval.free_running_samples = 2000
  config.log_every_steps = 20
  config.checkpoint_every_steps = 100
  return config

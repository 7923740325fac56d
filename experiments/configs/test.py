r"""A tiny configuration for unit tests: same structure as default.py, seconds per run."""

from experiments.configs import default


def get_config():
  config = default.get_config()
  config.wavenet.num_layers = 3
  config.wavenet.layers_per_stack = 3
  config.wavenet.channels = 8
  config.wavenet.skip_channels = 8
  config.wavenet.audio_dropout = 0.5
  config.keysynth.key_channels = (4, 4)
  config.keysynth.key_hidden = 4
  config.keysynth.envelope_hidden = 8
  config.keysynth.envelope_layers = 1
  config.keysynth.num_harmonics = 2
  config.encoder.channels = (4,)
  config.encoder.convs_per_block = 1
  config.encoder.features = 8
  config.conditioning.features = 8
  config.conditioning.num_age_features = 4
  config.batch_size = 4
  config.crop_samples = 256
  config.num_epochs = 2
  config.optimizer.learning_rate = 3e-3
  config.optimizer.warmup_steps = 2
  config.eval.num_examples = 4
  config.eval.batch_size = 4
  config.eval.free_running_samples = 64
  config.eval.selection_metric = "teacher_forced"
  config.log_every_steps = 1
  config.checkpoint_every_steps = 2
  config.prefetch_batches = 0
  return config

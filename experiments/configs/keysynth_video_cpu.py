r"""KeySynth at CPU size for any video: keysynth_cpu.py (no key labels) learning from sparse press
frames and camera video together.

The same songs rendered as sparse press frames and as camera video at 24, 30 and 60 fps, a batch
of one kind at a time (deepsynth_jax.renderings), half of the examples seen through a randomly
drawn camera (data_gen.camera.TRAINING_RANGES). Build the renderings first (about 1 min each):

  python -m data_gen.make_dataset --out_dir=data/deepsynth
  for fps in 24 30 60; do
    python -m data_gen.make_dataset --out_dir=data/deepsynth_fps$fps --frames=fps:$fps
  done
  python -m deepsynth_jax.train --config=experiments/configs/keysynth_video_cpu.py \
      --workdir=runs/keysynth_video_cpu
"""

from experiments.configs import keysynth_cpu


def get_config():
  config = keysynth_cpu.get_config()
  config.extra_data_dirs = ("data/deepsynth_fps24", "data/deepsynth_fps30",
                            "data/deepsynth_fps60")
  config.camera_augment = 0.5
  # Generate with rounded key states: a held key keeps its press time through camera frames.
  config.keysynth.hard_held = True
  # Validation cycles through the four renderings, a batch each.
  config.eval.num_examples = 80
  return config

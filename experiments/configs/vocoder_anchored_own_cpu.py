r"""The anchored vocoder trained on its own past: vocoder_anchored_cpu.py continued from its best
parameters with scheduled sampling.

Teacher-forced, the gain head learned to read the loudness from the recording's past; generating,
it reads its own, which its gain (optimal below the level ratio wherever the anchor is imperfect)
has made quieter, and it shrinks again: the first run plays at a sixth of the recording's
loudness (README, "The anchored vocoder"). Here half of each batch's examples are fed the
model's own greedy samples as their past (`vocoder.own_samples`, the sampler run with the
current parameters) and scored against the recording, so the gain learns what to play after its
own past; the best epoch is the one with the lowest greedy free-running cross-entropy on 16
validation clips of 2 s (not the teacher-forced loss, which the own-past examples no longer
track):

  python -m deepsynth_jax.train --config=experiments/configs/vocoder_anchored_cpu.py \
      --workdir=runs/vocoder_anchored_cpu
  python -m deepsynth_jax.train --config=experiments/configs/vocoder_anchored_own_cpu.py \
      --workdir=runs/vocoder_anchored_own_cpu
"""

from experiments.configs import vocoder_anchored_cpu


def select_on_greedy_free_running(config):
  """The best epoch: the lowest greedy free-running cross-entropy on 16 validation clips of 2 s."""
  config.eval.selection_metric = "free_running"
  config.eval.free_running_temperature = 0.0
  config.eval.num_examples = 16
  config.eval.batch_size = 16
  config.eval.free_running_samples = 8000
  return config


def get_config():
  config = vocoder_anchored_cpu.continued_config(epochs=5)
  config.vocoder.own_samples = 0.5
  return select_on_greedy_free_running(config)

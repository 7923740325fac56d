r"""The vocoder of vocoder_gain512_cpu.py continued for 5 epochs (215 steps) from its best
parameters, with its gain trained on loudness (`vocoder.level_loss`).

Through the logits, the gain that minimizes the loss shrinks the mean below the level ratio
wherever the KeySynth's waveform is not the recording's: that vocoder plays at RMS 0.039
against the KeySynth's 0.060 and the recordings' ~0.08, and its STFT distance (1.615 on the demo's
8 test segments) is above the KeySynth's (1.561). Here the gain gets no gradient from the logits;
it learns to give each 512-sample block the recording's RMS (squared log-ratio of levels, weight 1).
The best epoch is the one with the lowest validation teacher-forced loss, cross-entropy plus level
loss: the objective trained here (the greedy free-running cross-entropy the first stage selected
on does not score the level this stage is for). Shipped as models/demo_vocoder:

  python -m deepsynth_jax.train --config=experiments/configs/vocoder_gain512_cpu.py \
      --workdir=runs/vocoder_gain512_cpu
  python -m deepsynth_jax.train --config=experiments/configs/vocoder_gain512_level_cpu.py \
      --workdir=runs/vocoder_gain512_level_cpu
"""

from experiments.configs import default, vocoder_gain512_cpu


def get_config():
  config = default.continued(vocoder_gain512_cpu.get_config(), "runs/vocoder_gain512_cpu", 5)
  config.vocoder.level_loss = 1.0
  config.eval.selection_metric = "teacher_forced"
  return config

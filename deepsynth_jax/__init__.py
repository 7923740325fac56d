"""DeepSynth-JAX: hear a silent piano video.

Given frames of a piano being played, predict the audio (4 kHz, 256 mu-law buckets) with the
method's video-conditioned WaveNet or KeySynth (a key reader playing a learned instrument).

- `deepsynth_jax.sample(frames, ...)`: audio for a clip's frames from a trained run.
- `python -m deepsynth_jax.train`, `... .evaluate`, `... .play`, `... .baseline`: the binaries.

Layers (imports go down only; `make test` checks them with import-linter, see setup.cfg):
binaries (play, baseline) > evaluation (evaluate > listening, comparison, baseline_eval) >
training and sampling (train, baseline_train, api, streaming > runs, transcription,
audio_teacher) > models > data
(input_pipeline, checkpointing, metrics, audio). The simulator `data_gen` imports none of it.
"""

from deepsynth_jax.api import sample

__version__ = "0.1.0"
__all__ = ["sample"]

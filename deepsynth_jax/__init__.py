"""DeepSynth-JAX: hear a silent piano video.

Given frames of a piano being played, predict the audio (4 kHz, 256 mu-law buckets) with a
video-conditioned WaveNet (the method) or a parallel generator. Public entry points:

- `deepsynth_jax.sample(frames, ...)`: audio for a clip's frames from a trained run.
- `python -m deepsynth_jax.train`, `... .evaluate`, `... .play`: the binaries.
"""

__version__ = "0.1.0"


def __getattr__(name):
  # Lazy, so that `import deepsynth_jax` (and data_gen workers) do not import JAX.
  if name == "sample":
    from deepsynth_jax.api import sample
    return sample
  raise AttributeError(f"module 'deepsynth_jax' has no attribute {name!r}")

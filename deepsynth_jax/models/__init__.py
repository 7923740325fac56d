"""The models, by name: `build_generator(config)` returns the `Generator` named by `config.model`.

- "wavenet" (`wavenet.py`): the method's video-conditioned WaveNet, sampled autoregressively by
  the `lax.scan` decoder of `autoregressive.py`;
- "keysynth" (`keysynth.py`): a key reader and a learned additive instrument, generating a whole
  clip in one pass;
- "vocoder" (`vocoder.py`): a WaveNet conditioned per sample on a frozen KeySynth's audio, sampled
  by the same decoder (the one model built on others).

Shared pieces: `frame_encoder.py` (the VGG-like frame encoder and conditioning helpers),
`key_reader.py` (88 key states per frame). A new model is one module with a `Generator` subclass
(`generator.py`) and one line in `REGISTRY`.
"""

from __future__ import annotations

import ml_collections

from deepsynth_jax.models import keysynth, vocoder, wavenet
from deepsynth_jax.models.generator import GeneratedAudio, Generator, example_keys

REGISTRY: dict[str, type[Generator]] = {
    "wavenet": wavenet.WaveNetGenerator,
    "keysynth": keysynth.KeySynthGenerator,
    "vocoder": vocoder.VocoderGenerator,
}

__all__ = ["REGISTRY", "GeneratedAudio", "Generator", "build_generator", "example_keys"]


def build_generator(config: ml_collections.ConfigDict, sample_rate: int = 4000) -> Generator:
  """The generator named by `config.model` (a key of `REGISTRY`), built from `config`."""
  name = config.get("model")
  if name not in REGISTRY:
    raise ValueError(f"unknown model {name!r}; set --config.model to one of "
                     f"{', '.join(sorted(REGISTRY))}")
  return REGISTRY[name](config, sample_rate)

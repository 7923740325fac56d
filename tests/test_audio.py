"""Audio quantization: mu-law companding and its inverse, buckets and their centres, on numpy and
jax arrays alike."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from deepsynth_jax import audio


def test_mu_law_expand_inverts_compand_on_numpy_and_jax():
  x = np.linspace(-1.0, 1.0, 2001).astype(np.float32)
  y = audio.mu_law_compand(x)
  assert isinstance(y, np.ndarray)
  np.testing.assert_allclose(audio.mu_law_expand(y), x, atol=1e-6)
  np.testing.assert_allclose(np.asarray(audio.mu_law_compand(jnp.asarray(x))), y, atol=1e-6)
  # Odd, monotonic, ends fixed; quiet audio is stretched (1% of full scale -> ~0.23).
  np.testing.assert_allclose(audio.mu_law_compand(-x), -y, atol=1e-7)
  assert np.all(np.diff(y) > 0) and abs(y[-1] - 1.0) < 1e-6
  assert 0.2 < audio.mu_law_compand(np.float32(0.01)) < 0.25


@pytest.mark.parametrize("scheme", audio.SCHEMES)
def test_bucket_centres_quantize_to_themselves(scheme):
  buckets = np.arange(audio.NUM_BUCKETS)
  centres = audio.dequantize(buckets, scheme)
  assert centres.dtype == np.float32 and np.all(np.diff(centres) > 0)
  assert centres.min() >= -1.0 and centres.max() <= 1.0
  np.testing.assert_array_equal(audio.quantize(centres, scheme), buckets)
  np.testing.assert_array_equal(np.asarray(audio.quantize(jnp.asarray(centres), scheme)), buckets)
  np.testing.assert_array_equal(audio.quantize(np.array([-3.0, 3.0]), scheme), [0, 255])
  with pytest.raises(ValueError, match="unknown quantization"):
    audio.quantize(centres, "a_law")

"""The training benchmark's synthetic batches carry what every benchmarked model trains on."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from deepsynth_jax import models
from experiments import bench_train, peak


@pytest.mark.parametrize("name", ["cpu", "l7_c128", "drop75_l7_c128", "keysynth", "vocoder"])
def test_synthetic_batch_has_every_field_the_model_reads(name):
  generator = models.build_generator(bench_train.config_for(name))
  batch = bench_train.synthetic_batch(2, 512, 4, np.random.default_rng(0))
  assert set(generator.batch_fields) <= set(batch)


def test_the_keysynth_loss_traces_on_a_synthetic_batch():
  # Traced, not compiled (a compile of the CPU KeySynth's loss takes ~25 s): a missing field
  # fails at trace time, as it did in `make bench`.
  generator = models.build_generator(bench_train.config_for("keysynth"))
  batch = bench_train.synthetic_batch(2, 512, 4, np.random.default_rng(0))
  params = jax.eval_shape(generator.init, jax.random.key(0), batch)
  keys = models.example_keys(jax.random.key(1), 0, batch["example_id"])
  loss, _ = jax.eval_shape(lambda p: generator.loss(p, batch, train=True, keys=keys), params)
  assert loss.shape == () and loss.dtype == np.float32


def test_bf16_names_are_wavenet_configs_with_bfloat16_products():
  assert bench_train.config_for("l7_c128_bf16").wavenet.dtype == "bfloat16"
  assert bench_train.config_for("l7_c128").wavenet.dtype == "float32"
  with pytest.raises(ValueError, match="WaveNet"):
    bench_train.config_for("keysynth_bf16")


def test_window_names_train_a_wavenet_config_in_windows():
  windowed = bench_train.config_for("l7_c128_bf16_w4000")
  assert windowed.wavenet.train_window == 4000 and windowed.wavenet.dtype == "bfloat16"
  windowed.wavenet.train_window = 0
  assert windowed.to_dict() == bench_train.config_for("l7_c128_bf16").to_dict()
  assert bench_train.config_for("l7_c128").wavenet.train_window == 0
  assert bench_train.base_name("l7_c128_bf16_w4000") == bench_train.base_name("l7_c128") == \
      "l7_c128"
  with pytest.raises(ValueError, match="WaveNet"):
    bench_train.config_for("keysynth_w4000")
  vocoder = bench_train.config_for("vocoder")
  vocoder.wavenet.train_window = 1000  # set by hand: refused, not silently ignored
  with pytest.raises(ValueError, match="the vocoder trains on whole clips"):
    models.build_generator(vocoder)
  assert bench_train.bf16_rows(["l7_c128", "l7_c128_bf16_w4000"])
  assert not bench_train.bf16_rows(["l7_c128_w4000", "keysynth"])


def test_a_windowed_step_is_profiled_one_window_at_a_time():
  # 1,000 samples + 128 of halo; 40 frames over 8,000 samples -> 5 in a window; 8 windows a clip
  assert bench_train.window_shape(1000, 128, 8000, 40) == (1128, 5, 8)
  assert bench_train.window_shape(3000, 128, 8000, 2) == (3128, 1, 3)


def test_model_sizes_name_the_main_stack():
  size = lambda name: peak.model_size(models.build_generator(bench_train.config_for(name)).module)
  assert size("l7_c128") == "7 x 128"
  assert size("vocoder") == "10 x 48 (WaveNet on a KeySynth)"


def test_the_teacher_forced_vocoder_is_the_vocoder_without_scheduled_sampling():
  vocoder, plain = (bench_train.config_for(n) for n in ("vocoder", "vocoder_teacher_forced"))
  assert vocoder.vocoder.own_samples > 0 and plain.vocoder.own_samples == 0
  plain.vocoder.own_samples = vocoder.vocoder.own_samples
  assert plain.to_dict() == vocoder.to_dict()


def test_a_step_that_would_not_fit_in_memory_is_skipped_with_the_reason():
  gib = 2.0 ** 30
  assert bench_train.too_big(2 * gib, 23 * gib) is None
  assert bench_train.too_big(None, 23 * gib) is None and bench_train.too_big(2 * gib, None) is None
  reason = bench_train.too_big(16 * gib, 15 * gib)
  assert "16.0 GiB" in reason and "15.0 GiB available" in reason


def test_compiled_memory_counts_arguments_outputs_and_temporaries():
  x = jax.numpy.ones((256, 256), np.float32)
  fn = lambda a: jax.numpy.tanh(a @ a) @ a
  flops, needed = peak.compiled_flops_and_memory(fn, x)
  assert needed is not None and needed >= 2 * x.nbytes  # the argument and the output at least
  assert flops == peak.compiled_flops(fn, x)  # the same count as from a compilation of its own
  available = peak.available_memory()
  assert available is None or available > 0

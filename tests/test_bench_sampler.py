"""The sampler benchmark's synthetic clips have the dataset's frame timing (experiments only)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from data_gen import frame_timing
from deepsynth_jax import models
from experiments import bench_sampler, peak
from experiments.configs import test as test_config


@pytest.mark.parametrize("num_frames", [1, 30, 150])
def test_clips_spread_their_frames_as_the_simulator_times_them(num_frames):
  frames, index, age = bench_sampler.clips(2, 20_000, num_frames)
  assert frames.shape == (2, num_frames, bench_sampler.HEIGHT, bench_sampler.WIDTH)
  starts = np.ceil(np.arange(num_frames) * 20_000 / num_frames).astype(np.int64)
  want_index, want_age = frame_timing.frame_index_and_age(starts, 20_000)
  np.testing.assert_array_equal(np.asarray(index), np.tile(want_index, (2, 1)))
  np.testing.assert_array_equal(np.asarray(age), np.tile(want_age, (2, 1)))
  assert set(np.unique(np.asarray(index))) == set(range(num_frames))


def test_parallel_is_the_shipped_default_generator():
  """`--configs=parallel` times the default KeySynth (note-relative phases, 16 voices); the
  other parallel names time the earlier variants."""
  default = bench_sampler.config_for("parallel").keysynth
  assert (default.onset_grid, default.max_voices) == (16, 16)
  absolute = bench_sampler.config_for("parallel_absolute_phases").keysynth
  assert (absolute.onset_grid, absolute.max_voices) == (0, 16)
  assert bench_sampler.config_for("parallel_all_keys").keysynth.max_voices == 0
  # The shipped students' settings, read from their run records.
  hops = {name: models.build_generator(bench_sampler.config_for(name)).module.hop
          for name in ("parallel_faster", "parallel_faster_hop32")}
  assert hops == {"parallel_faster": 16, "parallel_faster_hop32": 32}


def test_bf16_names_sample_with_bfloat16_products():
  """`l7_c128_bf16` is `l7_c128` with the WaveNet's products in bfloat16 (the rows share their
  targets); the parallel generator has no such option."""
  bf16, fp32 = bench_sampler.config_for("l7_c128_bf16"), bench_sampler.config_for("l7_c128")
  assert (bf16.wavenet.dtype, fp32.wavenet.dtype) == ("bfloat16", "float32")
  bf16.wavenet.dtype = "float32"
  assert bf16 == fp32
  with pytest.raises(ValueError, match="WaveNet"):
    bench_sampler.config_for("parallel_bf16")


def test_a_bf16_step_counts_the_flops_of_its_products():
  """XLA counts a bf16 step's weight roundings as FLOPs; the row counts its float32 twin's, which
  has the same products (and the same parameters)."""
  config = test_config.get_config()
  config.wavenet.dtype = "bfloat16"
  generator = models.build_generator(config, bench_sampler.SAMPLE_RATE)
  params = bench_sampler.random_params(generator)
  twin = bench_sampler.products_twin(generator.module)
  assert twin.dtype == np.float32 and generator.module.dtype == jnp.bfloat16
  as_run = bench_sampler.step_cost(generator.module, params, 1)
  counted = bench_sampler.step_cost(twin, params, 1)
  assert counted < as_run
  config.wavenet.dtype = "float32"
  fp32 = models.build_generator(config, bench_sampler.SAMPLE_RATE).module
  assert bench_sampler.products_twin(fp32) is fp32
  assert counted == bench_sampler.step_cost(fp32, params, 1)


def test_one_pass_profile_times_every_piece_of_a_clip():
  config = test_config.get_config()
  config.model = "keysynth"
  config.keysynth.onset_grid = 16  # note-relative phases, as the shipped default
  config.crop_align = 16
  generator = models.build_generator(config, bench_sampler.SAMPLE_RATE)
  params = bench_sampler.random_params(generator)
  row = bench_sampler.profile_one_pass(generator, params, num_frames=3, repeats=1,
                                       clip_seconds=0.1)
  assert set(row) == {"key reader", "control amplitudes (reader included)", "phases",
                      "synthesis", "whole clip"}
  assert all(ms > 0 for ms in row.values())


def test_vocoder_rows_time_the_shipped_size_by_blocks_and_by_samples():
  generators = {name: models.build_generator(bench_sampler.config_for(name),
                                             bench_sampler.SAMPLE_RATE)
                for name in bench_sampler.VOCODERS}
  wavenet = generators["vocoder"].module.wavenet
  assert (wavenet.num_layers, wavenet.channels, wavenet.anchor_block) == (10, 48, 512)
  assert wavenet.gains_by_block
  params = bench_sampler.random_params(generators["vocoder"])
  rows = {name: bench_sampler.bench_vocoder(generator, params, 2, 3, bench_sampler.VOCODERS[name],
                                            clip_seconds=0.3, repeats=1)
          for name, generator in generators.items()}
  assert all(row["steps"] == 1200 and row["sps"] > 0 and row["flops"] is None
             for row in rows.values())


def test_step_bytes_count_the_weights_a_step_reads():
  """The roofline's bytes per step are at least the weights of the stack the step runs through
  (XLA's "bytes accessed"), and the matrix-vector bandwidth is a positive rate."""
  config = test_config.get_config()
  generator = models.build_generator(config, bench_sampler.SAMPLE_RATE)
  params = bench_sampler.random_params(generator)
  step_bytes = bench_sampler.step_cost(generator.module, params, 1, peak.compiled_bytes)
  stack = sum(4 * x.size for name, layer in params.items() if name.startswith("layer_")
              for x in jax.tree.leaves(layer))
  assert stack > 0 and step_bytes >= stack
  assert peak.matvec_bandwidth(64 * 64 * 4, iterations=10, repeats=1) > 0


def test_needed_fraction_is_the_targets_flop_rate_over_the_peak():
  # 1000x real time at 4 kHz and 46,600 FLOPs a sample need 186.4 GFLOP/s: 111.6% of 167.
  assert peak.needed_fraction(4_000_000, 46_600.0, 167e9) == "111.6%"
  assert peak.needed_fraction(40_000, 1.61e6, 161e9) == "40.0%"
  assert peak.needed_fraction(None, 46_600.0, 167e9) == "-"
  assert peak.needed_fraction(4_000_000, None, 167e9) == "-"

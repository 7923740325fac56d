"""The training benchmark's synthetic batches carry what every benchmarked model trains on."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from deepsynth_jax import models
from experiments import bench_train


@pytest.mark.parametrize("name", ["cpu", "l7_c128", "drop75_l7_c128", "keysynth"])
def test_synthetic_batch_has_every_field_the_model_reads(name):
  generator = models.build_generator(bench_train.config_for(name))
  batch = bench_train.synthetic_batch(2, 512, 4, np.random.default_rng(0))
  assert set(generator.batch_fields) <= set(batch)


def test_the_keysynth_loss_runs_on_a_synthetic_batch():
  generator = models.build_generator(bench_train.config_for("keysynth"))
  batch = bench_train.synthetic_batch(2, 512, 4, np.random.default_rng(0))
  params = generator.init(jax.random.key(0), batch)
  loss, _ = generator.loss(params, batch, train=True,
                           keys=models.example_keys(jax.random.key(1), 0, batch["example_id"]))
  assert np.isfinite(float(loss))

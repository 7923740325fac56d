"""The training benchmark: its synthetic batches carry what every benchmarked model trains on,
its config names mean what they say, and its PyTorch yardstick is timed in the same run."""

from __future__ import annotations

import functools

import jax
import numpy as np
import pytest

from deepsynth_jax import models
from experiments import bench_train, peak, pytorch_reference


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


def _fake_interpreter(tmp_path, body: str) -> str:
  """An executable standing in for a torch interpreter: runs `body` (bash); each run's arguments
  a line of args.txt."""
  path = tmp_path / "python"
  path.write_text(f'#!/bin/bash\necho "$@" >> {tmp_path / "args.txt"}\n{body}\n')
  path.chmod(0o755)
  return str(path)


def test_the_pytorch_wavenet_is_timed_by_the_script_in_the_given_interpreter(tmp_path):
  python = _fake_interpreter(tmp_path, (
      "echo '# torch 2.13.0+cpu'\necho 'pytorch_wavenet train layers=7 channels=128 cin=128 "
      "batch=3x500 dtype=fp32 threads=2: 18,712 samples/s (median 3.42 s of 5 steps)'"))
  assert pytorch_reference.samples_per_s(python, "7 x 128", batch=3, samples=500,
                                         steps=4) == 18_712
  args = (tmp_path / "args.txt").read_text().split()
  assert args == [str(pytorch_reference.SCRIPT), "--layers=7", "--channels=128",
                  "--cin_channels=128", "--batch=3", "--samples=500", "--steps=4"]
  (tmp_path / "args.txt").unlink()
  figures, line = bench_train.pytorch_figures(
      ["l7_c128_bf16_w1000", "keysynth", "vocoder_bf16", "vocoder_teacher_forced", "vocoder"],
      python, batch=3, samples=500, steps=4)
  # keysynth has no PyTorch twin; the vocoder's rows share one size, timed once.
  assert figures == {"l7_c128": 18_712, "vocoder": 18_712, "vocoder_teacher_forced": 18_712}
  assert line.endswith("samples/s: 7 x 128 18,712; 10 x 48 18,712")
  runs = (tmp_path / "args.txt").read_text().splitlines()
  assert [r.split()[1:4] for r in runs] == [list(pytorch_reference.SIZES["7 x 128"]),
                                            list(pytorch_reference.SIZES["10 x 48"])]
  figures, line = bench_train.pytorch_figures(["l7_c128"], None, batch=8, samples=8000, steps=5)
  assert figures == {"l7_c128": 12_773} and "TARGETS.md" in line


@pytest.mark.parametrize("body", ["echo \"ModuleNotFoundError: No module named 'torch'\" >&2; "
                                  "exit 1",
                                  "echo 'step seconds: 1.0'"])
def test_an_interpreter_that_cannot_time_it_is_one_clear_error(tmp_path, body):
  python = _fake_interpreter(tmp_path, body)
  with pytest.raises(pytorch_reference.PyTorchUnavailable,
                     match="without a result line.*needs torch and wavenet_vocoder") as error:
    pytorch_reference.samples_per_s(python, "10 x 48", batch=2, samples=100, steps=1)
  if "exit 1" in body:
    assert "No module named 'torch'" in str(error.value)
  with pytest.raises(pytorch_reference.PyTorchUnavailable, match="No such file"):
    pytorch_reference.samples_per_s(str(tmp_path / "missing"), "10 x 48", batch=2, samples=100,
                                    steps=1)


def test_rows_are_set_against_the_pytorch_figure():
  cells = functools.partial(bench_train.pytorch_cells, 30_000, 5e6)
  ratio, needs = cells(20_000, False, 200e9, None, same_run=True)
  assert ratio == "1.50x" and needs == peak.fraction(2 * 20_000 * 5e6, 200e9) == "100.0%"
  assert cells(20_000, True, 200e9, 400e9, same_run=True) == ("1.50x", "100.0%; 50.0%")
  # Another day's figure (TARGETS.md's) sizes the target but is not a ratio to print.
  assert cells(20_000, False, 200e9, None, same_run=False) == ("-", "100.0%")
  assert cells(None, False, 200e9, None, same_run=True) == ("-", "-")

r"""Training throughput of the public PyTorch WaveNet (r9y9/wavenet_vocoder) on CPU, the yardstick
that experiments/bench_train.py's figures are set against (../shared/TARGETS.md).

Not part of the project: no test imports it, it needs torch (which the project does not
install), and it runs in its own virtual environment:

  python3 -m venv /tmp/tv
  /tmp/tv/bin/pip install torch==2.13.0 numpy      # the CPU wheel (a plain `torch` pulls CUDA)
  /tmp/tv/bin/pip install --no-deps wavenet_vocoder  # PyPI 0.1.1 = git tag v0.1.1 (6be7c72)

or, for the git master that the README's earlier figures used (commit a35fff7, version 0.2.0), a
checkout of r9y9/wavenet_vocoder at a35fff7 installed the same way (its package imports only
torch and numpy; `--no-deps` skips setup.py's training-script requirements: librosa, nnmnkwii,
tensorboardX, ...):

  /tmp/tv/bin/pip install --no-deps --no-build-isolation PATH_TO_THE_CHECKOUT

The two configurations the project compares against, each with and without --bf16 (run them
beside ours in one sitting, with tcmalloc preloaded as the Makefile's CPU jobs are: absolute
speed drifts between machines and days):

  export LD_PRELOAD=$(ls /usr/lib/*/libtcmalloc_minimal.so.4 | head -1)
  /tmp/tv/bin/python scripts/bench_pytorch_wavenet.py                  # 7 x 128, cin 128
  /tmp/tv/bin/python scripts/bench_pytorch_wavenet.py --layers=10 --channels=48 --cin_channels=33
`python -m experiments.bench_train --pytorch_python=/tmp/tv/bin/python` (and `make bench
PYTORCH_PYTHON=/tmp/tv/bin/python`) first runs, in fp32, those of the two that its rows compare
against, and prints each row as a multiple of its size's figure (experiments/pytorch_reference.py
reads the result line below).

What one step is: the library's `WaveNet` (weight normalization on, as the library builds it),
`--layers` layers in one stack (dilations 1, 2, ..., 2^(layers-1)), kernel 2, residual channels C,
gate 2C, skip C, 256-way softmax output (one-hot mu-law input, `scalar_input=False`), dropout 0,
local conditioning of `--cin_channels` channels given at audio rate (no upsampling network), no
global conditioning. Input: one-hot (B, 256, T) of random buckets and conditioning (B, cin, T)
of standard normals; target: random buckets (B, T); loss: cross-entropy on the logits
(B, 256, T); Adam, lr 1e-3; zero_grad, forward, loss, backward, optimizer step. `--bf16` runs the
forward and the loss under `torch.autocast("cpu", dtype=torch.bfloat16)` (parameters, gradients
and the optimizer stay float32). No gradient clipping, no input/target shift (r9y9's train.py
clips and scores x[t+1] from x[..t]; neither changes a step's cost materially).

Printed: the median wall time of `--steps` timed steps after `--warmup` untimed ones, as
batch x samples / median seconds, one grep-able line per measurement:

  pytorch_wavenet train layers=7 channels=128 cin=128 batch=8x8000 dtype=fp32 threads=2: \
12,773 samples/s (median 5.01 s of 5 steps)
"""

from __future__ import annotations

import argparse
import importlib.metadata
import inspect
import json
import math
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

QUANTIZE_CHANNELS = 256

# What each released version is in r9y9/wavenet_vocoder's history, for the printed header when pip
# recorded no commit (a PyPI or local-folder install).
KNOWN_VERSIONS = {
    "0.1.1": "PyPI sdist, the sources of git tag v0.1.1 (6be7c72, 2018-10-16)",
    "0.2.0": "git master (last commit a35fff7, 2020-11-02)",
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
      description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--layers", type=int, default=7, help="layers, all in one stack")
  parser.add_argument("--channels", type=int, default=128,
                      help="residual channels C (gate 2C, skip C)")
  parser.add_argument("--cin_channels", type=int, default=128,
                      help="local conditioning channels, at audio rate")
  parser.add_argument("--batch", type=int, default=8, help="clips per step")
  parser.add_argument("--samples", type=int, default=8000, help="samples per clip")
  parser.add_argument("--steps", type=int, default=5, help="timed steps (the median is printed)")
  parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
  parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
  parser.add_argument("--bf16", action="store_true",
                      help="forward and loss under torch.autocast('cpu', dtype=torch.bfloat16)")
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args(argv)
  for name in ("layers", "channels", "cin_channels", "batch", "samples", "steps", "threads"):
    if getattr(args, name) < 1:
      parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
  if args.warmup < 0:
    parser.error(f"--warmup must be at least 0, got {args.warmup}")
  return args


def import_wavenet_vocoder() -> Any:
  """The wavenet_vocoder package, or an exit that says how to install it."""
  try:
    import wavenet_vocoder
  except ImportError as e:
    sys.exit(f"cannot import wavenet_vocoder ({e}); install it into this interpreter's "
             f"environment: {sys.executable} -m pip install --no-deps wavenet_vocoder")
  return wavenet_vocoder


def describe_wavenet_vocoder(module: Any) -> str:
  """Version, commit (pip's record of a git install, else what the version is known to be) and
  the folder it was imported from."""
  version = getattr(module, "__version__", "unknown")
  origin = KNOWN_VERSIONS.get(version, "unknown commit")
  try:
    distribution = importlib.metadata.distribution("wavenet_vocoder")
  except importlib.metadata.PackageNotFoundError:
    distribution = None  # imported from a folder on sys.path, not pip-installed
  direct_url = None
  if distribution is not None and distribution.version == version:
    direct_url = distribution.read_text("direct_url.json")
  if direct_url:
    commit = json.loads(direct_url).get("vcs_info", {}).get("commit_id")
    if commit:
      origin = f"git commit {commit}"
  return f"wavenet_vocoder {version}, {origin}, from {module.__path__[0]}"


def build_model(wavenet_cls: type[torch.nn.Module], layers: int, channels: int,
                cin_channels: int) -> torch.nn.Module:
  """The library's WaveNet of TARGETS.md's shape; arguments a version lacks are left out (0.1.1
  names the upsampling `upsample_scales`, 0.2.0 `upsample_params`: off either way)."""
  kwargs: dict[str, Any] = dict(
      out_channels=QUANTIZE_CHANNELS, layers=layers, stacks=1, residual_channels=channels,
      gate_channels=2 * channels, skip_out_channels=channels, kernel_size=2, dropout=0.0,
      cin_channels=cin_channels, gin_channels=-1, upsample_conditional_features=False,
      scalar_input=False)
  accepted = inspect.signature(wavenet_cls.__init__).parameters
  missing = [name for name in ("out_channels", "layers", "stacks", "residual_channels",
                               "gate_channels", "skip_out_channels", "kernel_size", "dropout",
                               "cin_channels", "gin_channels") if name not in accepted]
  if missing:
    sys.exit(f"this wavenet_vocoder's WaveNet lacks the arguments {missing}")
  return wavenet_cls(**{k: v for k, v in kwargs.items() if k in accepted})


def synthetic_batch(batch: int, samples: int, cin_channels: int,
                    generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
  """One-hot input (B, 256, T) float32, conditioning (B, cin, T), target buckets (B, T) int64."""
  buckets_BxT = torch.randint(QUANTIZE_CHANNELS, (batch, samples), generator=generator)
  onehot_BxQxT = F.one_hot(buckets_BxT, QUANTIZE_CHANNELS).to(torch.float32)
  onehot_BxQxT = onehot_BxQxT.permute(0, 2, 1).contiguous()
  cond_BxCxT = torch.randn(batch, cin_channels, samples, generator=generator)
  target_BxT = torch.randint(QUANTIZE_CHANNELS, (batch, samples), generator=generator)
  return onehot_BxQxT, cond_BxCxT, target_BxT


def time_training(args: argparse.Namespace, wavenet_cls: type[torch.nn.Module]
                  ) -> tuple[float, list[float]]:
  """Median seconds of a training step and every timed step's seconds."""
  torch.manual_seed(args.seed)
  model = build_model(wavenet_cls, args.layers, args.channels, args.cin_channels)
  model.train()
  print(f"# model: {sum(p.numel() for p in model.parameters()):,} parameters, receptive field "
        f"{getattr(model, 'receptive_field', '?')} samples")
  optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
  x, c, target = synthetic_batch(args.batch, args.samples, args.cin_channels,
                                 torch.Generator().manual_seed(args.seed))

  def step() -> float:
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
      logits_BxQxT = model(x, c)
      loss = F.cross_entropy(logits_BxQxT, target)
    loss.backward()
    optimizer.step()
    return loss.item()

  for _ in range(args.warmup):
    step()
  seconds = []
  for _ in range(args.steps):
    start = time.perf_counter()
    loss = step()
    seconds.append(time.perf_counter() - start)
  if not math.isfinite(loss):
    sys.exit(f"the loss is not finite ({loss}) after {args.warmup + args.steps} steps")
  return statistics.median(seconds), seconds


def main(argv: Sequence[str] | None = None) -> None:
  args = parse_args(argv)
  torch.set_num_threads(args.threads)
  # The library's 2018-2020 code uses torch.nn.utils.weight_norm and a module backward hook, both
  # deprecated in torch 2.x; the warnings say nothing about the measurement.
  warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.nn\..*")
  wavenet_vocoder = import_wavenet_vocoder()
  print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads "
        f"({torch.get_num_interop_threads()} inter-op), Python {platform.python_version()}, "
        f"{platform.machine()}")
  print(f"# {describe_wavenet_vocoder(wavenet_vocoder)}")
  median, seconds = time_training(args, wavenet_vocoder.WaveNet)
  print(f"# step seconds: {', '.join(f'{s:.3f}' for s in seconds)}")
  dtype = "bf16" if args.bf16 else "fp32"
  print(f"pytorch_wavenet train layers={args.layers} channels={args.channels} "
        f"cin={args.cin_channels} batch={args.batch}x{args.samples} dtype={dtype} "
        f"threads={args.threads}: {args.batch * args.samples / median:,.0f} samples/s "
        f"(median {median:.{2 if median >= 1 else 3}f} s of {args.steps} steps)", flush=True)


if __name__ == "__main__":
  main()

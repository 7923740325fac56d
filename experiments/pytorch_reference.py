"""The public PyTorch WaveNet's training throughput on this machine, timed in this sitting.

Issue 16's training target is twice the samples/s of r9y9's PyTorch WaveNet at our shapes, run
on the same machine (../shared/TARGETS.md); this VM's speed moves by up to 1.5x within minutes,
so only a figure from the same sitting is a yardstick. The project does not install torch:
`scripts/bench_pytorch_wavenet.py` runs in an interpreter that has it (install lines in its
docstring), and `samples_per_s` runs it there and reads its one result line.
"""

from __future__ import annotations

import pathlib
import re
import subprocess

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "scripts" / "bench_pytorch_wavenet.py"

# The model sizes the project compares against: the script's arguments for the PyTorch WaveNet
# of that size (its conditioning channels ours) ...
SIZES = {
    "7 x 128": ("--layers=7", "--channels=128", "--cin_channels=128"),
    "10 x 48": ("--layers=10", "--channels=48", "--cin_channels=33"),
}
# ... and which one each of experiments/bench_train.py's base config names is.
SIZE_OF = {"l7_c128": "7 x 128", "vocoder": "10 x 48", "vocoder_teacher_forced": "10 x 48"}

_RESULT = re.compile(r"^pytorch_wavenet train .*: ([\d,]+) samples/s", re.MULTILINE)


class PyTorchUnavailable(RuntimeError):
  """The PyTorch WaveNet could not be timed with the interpreter given."""


def samples_per_s(python: str, size: str, *, batch: int, samples: int, steps: int) -> float:
  """Training samples/s of the PyTorch WaveNet of `size` (a key of SIZES), batch x samples,
  the median of `steps` timed steps, run now by `python` (an interpreter with torch and
  wavenet_vocoder). Raises PyTorchUnavailable, naming the command and its last error line, when it
  fails or prints no result."""
  command = [python, str(SCRIPT), *SIZES[size], f"--batch={batch}", f"--samples={samples}",
             f"--steps={steps}"]
  try:
    run = subprocess.run(command, capture_output=True, text=True, check=False)
  except OSError as error:
    raise PyTorchUnavailable(f"{' '.join(command)}: {error}") from None
  result = _RESULT.search(run.stdout)
  if run.returncode != 0 or result is None:
    lines = (run.stderr or run.stdout).strip().splitlines()
    raise PyTorchUnavailable(
        f"{' '.join(command)} exited {run.returncode} without a result line"
        f"{': ' + lines[-1] if lines else ''}; the interpreter needs torch and wavenet_vocoder "
        f"(install lines in {SCRIPT.relative_to(SCRIPT.parents[1])})")
  return float(result.group(1).replace(",", ""))

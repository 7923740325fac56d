"""A quiet console for the binaries: progress and results, not library chatter.

`quiet_library_chatter()` keeps real warnings and errors, and drops the notices that say nothing
to a user: orbax's read-only checkpoint notes (every load of a shipped model prints them), JAX's
"falling back to CPU" notice, XLA's C++ info logs, the os.fork warning of the ffmpeg and
subprocess calls (harmless: those children only run ffmpeg or Python), and absl's INFO lines
(orbax logs every save at INFO) unless `--verbosity` was given.
"""

from __future__ import annotations

import logging
import os
import warnings

from absl import flags
from absl import logging as absl_logging

NOISE = ("read_only=True", "Given directory is read only", "Falling back to cpu",
         "An NVIDIA GPU may be present")


class _Chatter(logging.Filter):
  """Drops records whose message contains one of `NOISE`."""

  def filter(self, record: logging.LogRecord) -> bool:
    return not any(n in record.getMessage() for n in NOISE)


def quiet_library_chatter() -> None:
  """Call at the start of a binary's main (after flags are parsed)."""
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # XLA's C++ notices
  if "verbosity" not in flags.FLAGS or not flags.FLAGS["verbosity"].present:
    absl_logging.set_verbosity(absl_logging.WARNING)
  for name in ("absl", "jax._src.xla_bridge", "orbax"):
    logging.getLogger(name).addFilter(_Chatter())
  warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)

"""A quiet console for the binaries: progress and results, not library chatter.

`quiet_library_chatter()` keeps real warnings and errors, and drops the notices that say nothing
to a user: orbax's read-only checkpoint notes (every load of a shipped model prints them), JAX's
"falling back to CPU" notice, XLA's C++ info logs, the os.fork warning of the ffmpeg and
subprocess calls (harmless: those children only run ffmpeg or Python), and absl's INFO lines
(orbax logs every save at INFO) unless `--verbosity` was given.

`memory_allocator()` names the malloc the process runs on, `cpu_allocator_warning()` says how
to switch to tcmalloc where another would slow a CPU run down, and `release_free_memory()`
hands what tcmalloc keeps of freed memory back to the kernel.
"""

from __future__ import annotations

import ctypes
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


# Allocators `memory_allocator` recognises when preloaded. Only tcmalloc is known to help here:
# jemalloc with its default settings page-faulted as much as glibc's (4.1 million faults).
PRELOADED_ALLOCATORS = ("tcmalloc", "jemalloc")
TCMALLOC_PRELOAD = "LD_PRELOAD=$(ls /usr/lib/*/libtcmalloc_minimal.so.4 | head -1)"


def memory_allocator() -> str:
  """'tcmalloc' or 'jemalloc' when one is loaded into this process (LD_PRELOAD), else 'glibc'
  ('unknown' without /proc)."""
  try:
    with open("/proc/self/maps") as f:
      maps = f.read()
  except OSError:
    return "unknown"
  return next((name for name in PRELOADED_ALLOCATORS if f"lib{name}" in maps), "glibc")


def cpu_allocator_warning(platform: str) -> str | None:
  """A one-line warning when a run on `platform` ('cpu', 'gpu', 'tpu') does not use tcmalloc.

  XLA's CPU runtime allocates a step's large temporaries anew at every step; glibc hands
  allocations above 32 MB to mmap and returns them to the kernel when freed, so every step
  page-faults all of them in again (4 million minor faults in 7 steps of the 7 x 128 WaveNet's
  training step, ~20% of its time on 2 cores). tcmalloc keeps them (`make setup` installs it).
  """
  allocator = memory_allocator()
  if platform != "cpu" or allocator in ("tcmalloc", "unknown"):
    return None
  return (f"running on the CPU with {allocator}'s malloc: XLA's per-step buffers are "
          f"page-faulted in at every step (~20% of a training step). Start the command with "
          f"{TCMALLOC_PRELOAD} (package libtcmalloc-minimal4; `make setup` installs it).")


def release_free_memory() -> bool:
  """Returns the memory a preloaded tcmalloc keeps of freed allocations to the kernel; True if
  it did (False on another malloc, which needs no call: glibc unmaps large blocks when freed).

  tcmalloc keeps freed pages for reuse, which is what makes it fast for XLA's per-step buffers,
  but a process that runs one large computation after another (a benchmark of several models)
  then holds the peak of all of them: `make bench` was killed by the kernel's OOM killer at 24
  GB in the KeySynth's step (2.9 GB alone), after the 7 x 256 WaveNet's had run.
  """
  if memory_allocator() != "tcmalloc":
    return False
  ctypes.CDLL(None).MallocExtension_ReleaseFreeMemory()
  return True

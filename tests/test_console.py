"""The binaries' console helpers: which malloc a process runs on, the warning for glibc's, and
handing tcmalloc's freed memory back."""

from __future__ import annotations

import glob
import os
import subprocess
import sys

import pytest

from deepsynth_jax import console

_PROBE = ("from deepsynth_jax import console; "
          "print(console.memory_allocator(), console.cpu_allocator_warning('cpu'))")


def _probe(env: dict[str, str]) -> str:
  return subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True,
                        check=True, timeout=120).stdout.strip()


def test_glibc_gets_the_warning_with_the_command_and_other_platforms_do_not():
  env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
  allocator, warning = _probe(env).split(" ", 1)
  assert allocator == "glibc"
  assert "LD_PRELOAD=" in warning and "libtcmalloc_minimal.so.4" in warning
  assert console.cpu_allocator_warning("gpu") is None
  assert console.cpu_allocator_warning("tpu") is None


@pytest.mark.skipif(not glob.glob("/usr/lib/*/libtcmalloc_minimal.so.4"),
                    reason="libtcmalloc-minimal4 is not installed (make setup installs it)")
def test_a_preloaded_tcmalloc_is_seen_and_silences_the_warning():
  preload = sorted(glob.glob("/usr/lib/*/libtcmalloc_minimal.so.4"))[0]
  assert _probe({**os.environ, "LD_PRELOAD": preload}) == "tcmalloc None"


# Frees 10 blocks of 50 MiB (as XLA's buffers of a finished step), then asks for them back.
_RELEASE_PROBE = """
import numpy as np
from deepsynth_jax import console
def rss():
  with open("/proc/self/statm") as f:
    return int(f.read().split()[1]) * 4096
blocks = [np.ones(50 * 2 ** 20 // 8) for _ in range(10)]
del blocks
held = rss()
print(console.release_free_memory(), (held - rss()) // 2 ** 20)
"""


def _release_probe(env: dict[str, str]) -> tuple[str, int]:
  out = subprocess.run([sys.executable, "-c", _RELEASE_PROBE], env=env, capture_output=True,
                       text=True, check=True, timeout=120).stdout.split()
  return out[0], int(out[1])


def test_release_free_memory_is_a_no_op_on_glibc():
  env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
  released, mib = _release_probe(env)
  assert released == "False" and abs(mib) < 50  # glibc unmapped the blocks when they were freed


@pytest.mark.skipif(not glob.glob("/usr/lib/*/libtcmalloc_minimal.so.4"),
                    reason="libtcmalloc-minimal4 is not installed (make setup installs it)")
def test_release_free_memory_hands_tcmallocs_freed_blocks_back():
  preload = sorted(glob.glob("/usr/lib/*/libtcmalloc_minimal.so.4"))[0]
  released, mib = _release_probe({**os.environ, "LD_PRELOAD": preload})
  assert released == "True" and mib >= 400  # of the 500 MiB tcmalloc kept after they were freed

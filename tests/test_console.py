"""The binaries' console helpers: which malloc a process runs on, and the warning for glibc's."""

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

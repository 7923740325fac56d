"""The modules the tests import load together in one process.

pytest-xdist's `--dist loadfile` puts whole test files on a worker in an order that changes with
timing, so two test files whose modules define the same absl flag (e.g. two binaries' --workdir)
fail only when they meet on one worker: CI met it, a single file's run does not.
"""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

TESTS = pathlib.Path(__file__).parent
PROJECT_PACKAGES = ("deepsynth_jax", "experiments", "data_gen")


def imported_project_modules() -> list[str]:
  """Every project module named by an import in tests/*.py (`from pkg import mod` -> pkg.mod
  when pkg.mod is a module, else pkg)."""
  root = TESTS.parent
  names = set()
  for path in TESTS.glob("*.py"):
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, ast.Import):
        names.update(a.name for a in node.names if a.name.split(".")[0] in PROJECT_PACKAGES)
      elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        if node.module.split(".")[0] not in PROJECT_PACKAGES:
          continue
        package = root.joinpath(*node.module.split("."))
        for alias in node.names:
          is_module = (package / f"{alias.name}.py").exists() or (package / alias.name).is_dir()
          names.add(f"{node.module}.{alias.name}" if is_module else node.module)
  return sorted(names)


def test_every_module_the_tests_import_loads_in_one_process():
  modules = imported_project_modules()
  assert "experiments.export_run" in modules and "deepsynth_jax.train" in modules
  code = "import importlib, sys\nfor m in sys.argv[1:]: importlib.import_module(m)"
  result = subprocess.run([sys.executable, "-c", code, *modules], cwd=TESTS.parent,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]

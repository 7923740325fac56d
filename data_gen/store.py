"""Atomic, byte-reproducible files: npz archives, JSON, checksums.

`np.savez` stamps each zip member with the current time, so two identical datasets would differ in
bytes. `save_npz` writes the same layout (a zip of `.npy` members readable by `np.load` with
allow_pickle=False) with fixed timestamps and permissions, deflate-compressed. Every write goes to a
temporary file in the destination folder, is fsynced, then renamed over the target (`os.replace`),
so a killed run leaves either the old file or the new one, never a partial file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import zipfile

import numpy as np

_EPOCH = (1980, 1, 1, 0, 0, 0)
# Temporary files of `_atomic` (.<name>.<random>.tmp) and of the music21 export (tmp*.mid.tmp).
_TEMP_FILE = re.compile(r"\..+\.tmp|tmp.*\.mid\.tmp")


def sha256_file(path: str) -> str:
  """Hex sha256 of a file's bytes."""
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
  return hashlib.sha256(data).hexdigest()


def _atomic(path: str, write_fn) -> None:
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
  try:
    with os.fdopen(fd, "wb") as f:
      write_fn(f)
      f.flush()
      os.fsync(f.fileno())
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def remove_temp_files(folder: str) -> list[str]:
  """Deletes the temporary files that a killed writer left in `folder`; returns their names.

  Only for a folder that no other process is writing to at the same time.
  """
  try:
    names = sorted(n for n in os.listdir(folder) if _TEMP_FILE.fullmatch(n))
  except FileNotFoundError:
    return []
  for name in names:
    path = os.path.join(folder, name)
    if os.path.isfile(path):
      os.remove(path)
  return names


def write_bytes(path: str, data: bytes) -> None:
  """Writes bytes atomically."""
  _atomic(path, lambda f: f.write(data))


def write_json(path: str, obj) -> None:
  """Writes JSON atomically (indented, keys in insertion order, trailing newline)."""
  write_bytes(path, (json.dumps(obj, indent=1) + "\n").encode())


def save_npz(path: str, arrays: dict[str, np.ndarray]) -> None:
  """Writes arrays as a deterministic, compressed .npz (same bytes for the same arrays)."""
  def write(f):
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as zf:
      for name, arr in arrays.items():
        info = zipfile.ZipInfo(f"{name}.npy", date_time=_EPOCH)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        with zf.open(info, "w", force_zip64=True) as member:
          np.lib.format.write_array(member, np.ascontiguousarray(arr), allow_pickle=False)
  _atomic(path, write)


def read_manifest(data_dir: str) -> dict:
  """The dataset's manifest.json (see docs/DATA_FORMAT.md); ValueError naming the fix if absent."""
  path = os.path.join(data_dir, "manifest.json")
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError) as e:
    raise ValueError(f"{path} cannot be read ({e}); build the dataset with "
                     f"`python -m data_gen.make_dataset --out_dir={data_dir}`") from None

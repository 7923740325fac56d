"""A run's workdir: orbax checkpoints (latest for resume, best for evaluation) and its run record.

Layout of a workdir:
  run.json          config, dataset facts and code version; written once, atomically
  checkpoints/<step>/  latest train states (orbax; committed directories only are ever loaded)
  best/<step>/         the best state by the selection loss (orbax, best_fn)
  metrics.jsonl     one JSON object per log line; tb/ TensorBoard events

Orbax writes each checkpoint into a temporary directory and renames it when complete, and
`latest_step()` lists committed steps only, so a run killed mid-write never loads a partial
checkpoint. Checkpoints hold the TrainState (params, optimizer state, step) and a JSON `progress`
record (epoch, batch in epoch, best loss, per-epoch history): together with the config's seed
this is everything a resumed run needs (the RNG for step N is derived from (seed, N)).
"""

from __future__ import annotations

import errno
import json
import os
from typing import Any

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

RUN_RECORD = "run.json"
# Config fields that set the learning-rate schedule (its total steps or its shape).
SCHEDULE_FIELDS = ("batch_size", "max_steps", "num_epochs", "optimizer")
# Config fields a resume may change: they do not change what is computed.
RESUME_MAY_CHANGE = ("data_dir", "log_every_steps", "prefetch_batches")


class CheckpointError(ValueError):
  """A workdir cannot be used: missing, foreign, or from a different configuration."""


def _abs(path: str) -> str:
  return os.path.abspath(os.path.expanduser(path))


def _write_json_beside(path: str, obj: Any) -> str:
  """Writes `obj` as JSON to a temporary file beside `path`, synced to disk; returns its path."""
  tmp = f"{path}.tmp-{os.getpid()}"
  with open(tmp, "w") as f:
    json.dump(obj, f, indent=2, sort_keys=True)
    f.flush()
    os.fsync(f.fileno())
  return tmp


def write_json_atomic(path: str, obj: Any) -> None:
  os.replace(_write_json_beside(path, obj), path)


def create_json_exclusive(path: str, obj: Any) -> bool:
  """Writes `obj` to `path` only if no file is there, atomically (a complete temporary file is
  hard-linked into place); False, writing nothing, if `path` exists. On a file system without
  hard links it replaces `path` (`write_json_atomic`) and returns True."""
  tmp = _write_json_beside(path, obj)
  try:
    os.link(tmp, path)
  except FileExistsError:
    return False
  except OSError:  # no hard links here
    os.replace(tmp, path)
    return True
  finally:
    if os.path.exists(tmp):
      os.unlink(tmp)
  return True


def _check_no_foreign_files(workdir: str) -> None:
  """A workdir without run.json must be new or empty: never mix a run into someone's folder.

  run.json is the first file a run writes, so a folder without it holds no part of a run (a
  `run.json.tmp-*` left by a kill and `*.log` files, e.g. from `tee`, are allowed). A run.json
  found here was written since the caller looked: by another process of the same multi-host
  job; `write_run_record` then compares it with its own.
  """
  try:
    names = sorted(os.listdir(workdir))
  except FileNotFoundError:
    return
  except OSError as e:
    raise CheckpointError(f"--workdir {workdir} cannot be used ({e.strerror}); pass a folder "
                          "you can write to") from None
  allowed = lambda n: n == RUN_RECORD or n.startswith(f"{RUN_RECORD}.tmp-") or n.endswith(".log")
  foreign = [n for n in names if not allowed(n)]
  if foreign:
    shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
    raise CheckpointError(f"{workdir} is not empty but holds no DeepSynth run (no {RUN_RECORD}; it "
                          f"has {shown}); pass a new or empty --workdir")


def write_run_record(workdir: str, config: ml_collections.ConfigDict, data_facts: dict,
                     learned_from: dict | None = None) -> dict:
  """Writes run.json, or checks that an existing one matches this config (resume).

  `learned_from` records what the model learned from (see `learned_from`): whether it read the
  simulator's key labels (`uses_key_labels`) and the frame mode of its training video
  (`frame_mode`: "sparse", "fps:N", or several joined by "+").

  A resume may change only `RESUME_MAY_CHANGE`; in particular a changed `max_steps` (or any of
  `SCHEDULE_FIELDS`) would silently change the learning-rate schedule mid-run, so it is refused.

  Raises:
    CheckpointError: the workdir holds a run of another configuration or dataset, holds someone
      else's files, or cannot be created.
  """
  record = {"config": json.loads(config.to_json_best_effort()), "data": data_facts,
            "format": "deepsynth_jax.run/1"}
  if learned_from is not None:
    record["learned_from"] = dict(learned_from)
  path = os.path.join(workdir, RUN_RECORD)
  if not os.path.exists(path):
    if os.path.exists(workdir) and not os.path.isdir(workdir):
      raise CheckpointError(f"--workdir {workdir} is a file, not a folder; pass a new folder")
    _check_no_foreign_files(workdir)
    try:
      os.makedirs(workdir, exist_ok=True)
      if create_json_exclusive(path, record):
        return record
    except OSError as e:
      raise CheckpointError(f"cannot write {path} ({e.strerror}); pass a --workdir you can "
                            "write to, or free disk space") from None
  # A resume, or the processes of one multi-host job starting together: the first wrote it.
  old = read_run_record(workdir)
  diff = sorted(k for k in set(old["config"]) | set(record["config"])
                if k not in RESUME_MAY_CHANGE and old["config"].get(k) != record["config"].get(k))
  if diff:
    raise CheckpointError(_config_diff_message(workdir, old["config"], diff))
  if old["data"] != data_facts:
    raise CheckpointError(f"{workdir} was trained on a dataset with other properties "
                          f"({old['data']} vs {data_facts}); pass a new --workdir")
  return old


def _config_diff_message(workdir: str, recorded: dict, diff: list[str]) -> str:
  """One line naming the changed fields, the schedule when it is affected, and the run's values."""
  schedule = [k for k in diff if k in SCHEDULE_FIELDS]
  why = (f"; changing {', '.join(schedule)} would change the learning-rate schedule mid-run"
         if schedule else "")
  values = " ".join(f"--config.{k}={recorded[k]}" for k in diff
                    if k in recorded and not isinstance(recorded[k], (dict, list)))
  return (f"{workdir} holds a run with a different config (fields: {', '.join(diff)}{why}); "
          f"resume with the same --config{f' ({values})' if values else ''}, or pass a new "
          "--workdir")


def learned_from(record: dict) -> dict:
  """{"uses_key_labels": bool | None, "frame_mode": str} of a run record; None / "unknown" for
  runs recorded before these facts were."""
  facts = record.get("learned_from", {})
  return {"uses_key_labels": facts.get("uses_key_labels"),
          "frame_mode": facts.get("frame_mode", "unknown")}


def read_run_record(workdir: str) -> dict:
  """Reads run.json; CheckpointError with the fix if the workdir is not a DeepSynth run."""
  path = os.path.join(workdir, RUN_RECORD)
  if not os.path.isfile(path):
    raise CheckpointError(
        f"{workdir} is not a DeepSynth run (no {RUN_RECORD}); train one with "
        "`python -m deepsynth_jax.train --config=... --workdir=...` or pass the right --workdir")
  try:
    with open(path) as f:
      record = json.load(f)
    if record.get("format") != "deepsynth_jax.run/1":
      raise ValueError("unknown format")
    record["config"] = upgrade_config_dict(record["config"])
  except (ValueError, OSError) as e:
    raise CheckpointError(f"{path} is unreadable or not a DeepSynth run record ({e})") from None
  return record


def upgrade_config_dict(config: dict) -> dict:
  """A run's config (as JSON) in today's names: runs made before the model registry called
  KeySynth "parallel" (`model` and its section)."""
  config = dict(config)
  if config.get("model") == "parallel":
    config["model"] = "keysynth"
  if "parallel" in config and "keysynth" not in config:
    config["keysynth"] = config.pop("parallel")
  return config


def config_from_record(record: dict) -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict(record["config"])
  config.encoder.channels = tuple(config.encoder.channels)
  return config


class RunCheckpoints:
  """The latest (resume) and best (evaluation) orbax checkpoint managers of one workdir."""

  def __init__(self, workdir: str, *, read_only: bool = False, keep_latest: int = 2):
    self.workdir = _abs(workdir)
    common = dict(create=not read_only, read_only=read_only, enable_async_checkpointing=False)
    self.latest = ocp.CheckpointManager(
        os.path.join(self.workdir, "checkpoints"),
        options=ocp.CheckpointManagerOptions(max_to_keep=keep_latest, **common))
    self.best = ocp.CheckpointManager(
        os.path.join(self.workdir, "best"),
        options=ocp.CheckpointManagerOptions(
            max_to_keep=1, best_fn=lambda m: m["selection_loss"], best_mode="min", **common))

  @staticmethod
  def _save_args(state: Any, progress: dict) -> ocp.args.Composite:
    return ocp.args.Composite(state=ocp.args.StandardSave(state),
                              progress=ocp.args.JsonSave(progress))

  def _save(self, manager: ocp.CheckpointManager, step: int, state: Any, progress: dict,
            **kwargs) -> None:
    """Saves and waits; a failed write (disk full, read-only) becomes one CheckpointError.

    Orbax writes into a temporary directory and renames it only when complete, so a failed
    save leaves the earlier checkpoints as they were.
    """
    try:
      manager.save(step, args=self._save_args(state, progress), force=True, **kwargs)
      manager.wait_until_finished()
    except Exception as e:  # orbax and tensorstore raise OSError, ValueError, RuntimeError, ...
      kept = self.latest.latest_step()
      raise CheckpointError(
          f"cannot save the step {step} checkpoint in {manager.directory} ({_reason(e)}); the "
          f"previous checkpoint ({'none' if kept is None else f'step {kept}'}) is kept. Free disk "
          f"space or make {self.workdir} writable, then re-run the same command to resume"
      ) from e

  def save_latest(self, step: int, state: Any, progress: dict) -> None:
    """Saves host-side `state` (un-replicated) and `progress` at `step` (no-op if present)."""
    if step in self.latest.all_steps():
      return
    self._save(self.latest, step, state, progress)

  def save_best(self, step: int, state: Any, progress: dict, selection_loss: float) -> None:
    if step in self.best.all_steps():
      return
    self._save(self.best, step, state, progress,
               metrics={"selection_loss": float(selection_loss)})

  def _restore(self, manager: ocp.CheckpointManager, step: int, abstract_state: Any = None):
    try:
      return manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract_state), progress=ocp.args.JsonRestore()))
    except Exception as e:  # a damaged or foreign step directory: orbax raises many types
      raise CheckpointError(
          f"checkpoint {manager.directory / str(step)} cannot be restored ({_reason(e)}): it is "
          "damaged or not from this run's config; move it out of the way to use an earlier "
          "checkpoint, or pass a new --workdir") from e

  def restore_latest(self, abstract_state: Any) -> tuple[Any, dict] | None:
    """(state, progress) of the newest committed checkpoint, or None for a fresh run."""
    step = self.latest.latest_step()
    if step is None:
      return None
    restored = self._restore(self.latest, step, abstract_state)
    return restored["state"], restored["progress"]

  def restore_latest_params(self) -> tuple[Any, dict]:
    """(params, progress) of the newest committed checkpoint (the end of training, or where it
    stopped), whatever the selection metric says."""
    restored = self.restore_latest(None)
    if restored is None:
      raise CheckpointError(f"{self.workdir} has no committed checkpoint yet; train first")
    state, progress = restored
    return state["params"], progress

  def restore_best_params(self) -> tuple[Any, dict]:
    """(params, progress) of the best checkpoint (falls back to the latest one)."""
    for manager in (self.best, self.latest):
      step = manager.best_step() if manager is self.best else manager.latest_step()
      if step is not None:
        restored = self._restore(manager, step)
        return restored["state"]["params"], restored["progress"]
    raise CheckpointError(f"{self.workdir} has no committed checkpoint yet; train first (or wait "
                          "for the first epoch to finish)")

  def close(self) -> None:
    self.latest.close()
    self.best.close()


def best_params(run_dir: str) -> Any:
  """The best (else latest) parameters of a run directory, as numpy arrays.

  Raises:
    CheckpointError: it holds no committed checkpoint.
  """
  ckpts = RunCheckpoints(run_dir, read_only=True)
  try:
    params, _ = ckpts.restore_best_params()
  finally:
    ckpts.close()
  return jax.tree.map(np.asarray, params)


def _reason(e: BaseException) -> str:
  """The cause of an orbax error on one line: the first OSError in its chain, e.g. 'No space left
  on device (ENOSPC)', else the error itself."""
  cause: BaseException | None = e
  while cause is not None:
    if isinstance(cause, OSError) and cause.errno:
      name = errno.errorcode.get(cause.errno, cause.errno)
      return f"{cause.strerror or os.strerror(cause.errno)} ({name})"
    cause = cause.__cause__ or cause.__context__
  text = " ".join(str(e).split())
  return f"{type(e).__name__}: {text[:200]}" if text else type(e).__name__


def save_params(directory: str, params: Any, meta: dict) -> None:
  """Writes a params pytree (orbax StandardSave) with a JSON-able `meta` dict to `directory`.

  `meta` is stored in the checkpoint's own orbax metadata, so one atomic commit (orbax writes
  into a temporary folder and renames it when complete) holds both. `directory` must not exist.

  Raises:
    CheckpointError: `directory` exists, or the write failed (disk full, read-only, ...).
  """
  path = _abs(directory)
  if os.path.exists(path):
    raise CheckpointError(f"{path} already exists; save the parameters to a new directory")
  try:
    with ocp.StandardCheckpointer() as checkpointer:
      checkpointer.save(path, params, custom_metadata=dict(meta))
      checkpointer.wait_until_finished()
  except Exception as e:  # orbax and tensorstore raise OSError, ValueError, RuntimeError, ...
    raise CheckpointError(f"cannot save parameters to {path} ({_reason(e)}); free disk space or "
                          "make the folder writable, then save again") from e


def restore_params(directory: str) -> tuple[Any, dict]:
  """(params as numpy arrays, meta) of a `save_params` directory; meta is {} if none was saved.

  Raises:
    CheckpointError: no such directory, or it is damaged or not an orbax params checkpoint.
  """
  path = _abs(directory)
  if not os.path.isdir(path):
    raise CheckpointError(f"{path} holds no saved parameters; pass the folder save_params wrote")
  try:
    with ocp.StandardCheckpointer() as checkpointer:
      params = checkpointer.restore(path)
      meta = checkpointer.metadata(path).custom_metadata
  except Exception as e:  # a damaged or foreign directory: orbax raises many types
    raise CheckpointError(f"parameters in {path} cannot be restored ({_reason(e)}): it is damaged "
                          "or not an orbax params checkpoint; save them again") from e
  return params, dict(meta or {})

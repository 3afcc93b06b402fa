"""A self-describing workdir: the config that made it and the items it scores.

`config.json` holds the full experiment config, `items.npy` the raw item id of
every dense id (str [V], "" for the padding id 0). Anything that reads a
workdir later (fine-tuning, recommendation, export) rebuilds the model from
these two files alone. A run in a workdir whose config differs is refused with
a one-line diff, except for a longer schedule, which continues training.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from typing import Any, Iterator

import jax
import numpy as np
from flax import traverse_util

from seqrec.errors import InputError

CONFIG_FILE = "config.json"
ITEMS_FILE = "items.npy"
RESULTS_FILE = "results.json"
METRICS_FILE = "metrics.jsonl"
LOCK_FILE = ".lock"
# Keys a rerun may change: the schedule may grow; the device count and the
# prefetch depth are how it runs, not what (checkpoints restore on any number
# of devices, and batches do not depend on the prefetch).
GROWABLE = ("num_steps", "num_epochs")
HARDWARE = ("num_devices", "prefetch")
# Keys added after workdirs were written, with the value that does what those
# runs did: an older config.json without the key means that value.
ADDED = {"bucket_lengths": False, "row_shards": 1, "patience": 0, "model.dropout": 0.0,
         "chunk_scores": True, "model.skip_padding": False,
         "model.tie_embedding": False, "model.ffn_dim": 0, "model.activation": "relu",
         "model.norm": "pre"}


def write_json(path: str, value: Any) -> None:
  """Writes `value` to `path` whole or not at all (a temporary file, renamed)."""
  tmp = f"{path}.tmp-{os.getpid()}"
  with open(tmp, "w") as f:
    json.dump(value, f, indent=2, sort_keys=True)
  os.replace(tmp, path)


def _flat(config: dict) -> dict[str, Any]:
  flat = traverse_util.flatten_dict(config, sep=".")
  return {k: list(v) if isinstance(v, tuple) else v for k, v in flat.items()}


def config_diff(old: dict, new: dict) -> list[str]:
  """"key: old -> new" for every setting that makes `new` another experiment."""
  old_flat, new_flat = _flat(old), _flat(new)
  out = []
  for key in sorted(set(old_flat) | set(new_flat)):
    before, after = old_flat.get(key, ADDED.get(key)), new_flat.get(key)
    if before == after or key in HARDWARE:
      continue
    if key in GROWABLE and before is not None and after is not None and after >= before:
      continue
    out.append(f"{key}: {before!r} -> {after!r}")
  return out


def has_run(workdir: str) -> bool:
  """Whether a run has trained (checkpointed) or finished in `workdir`."""
  return (os.path.isdir(os.path.join(workdir, "checkpoints")) and
          bool(os.listdir(os.path.join(workdir, "checkpoints")))) or os.path.exists(
              os.path.join(workdir, RESULTS_FILE))


def check(workdir: str, config: dict) -> None:
  """Refuses `config` in a workdir that holds another experiment, or where a
  file the run writes is something else (a directory), before any work.

  Raises:
    InputError: naming the workdir and the differing settings or the file.
  """
  for name in (CONFIG_FILE, ITEMS_FILE, RESULTS_FILE, METRICS_FILE):
    if os.path.lexists(os.path.join(workdir, name)) and not os.path.isfile(
        os.path.join(workdir, name)):
      raise InputError(f"--workdir={workdir}: {name} there is not a file; move it away "
                       "or use a new --workdir")
  path = os.path.join(workdir, CONFIG_FILE)
  if not has_run(workdir):
    return
  if not os.path.exists(path):
    raise InputError(f"--workdir={workdir} holds another run's results.json or checkpoints "
                     f"but no {CONFIG_FILE}; use a new --workdir")
  with open(path) as f:
    old = json.load(f)
  diff = config_diff(old, config)
  if diff:
    raise InputError(f"--workdir={workdir} holds another experiment ({'; '.join(diff)}); "
                     "use a new --workdir")


@contextlib.contextmanager
def lock(workdir: str) -> Iterator[None]:
  """Owns `workdir` for one run: a second run refuses, naming the holder.

  An advisory lock (fcntl.flock) on WORKDIR/.lock, taken by process 0; the
  kernel drops it when its process dies, so a run killed with SIGKILL never
  blocks the next one.

  Raises:
    InputError: the workdir cannot be created or written, or another run holds it.
  """
  if jax.process_index() != 0:
    yield
    return
  try:
    os.makedirs(workdir, exist_ok=True)
    handle = open(os.path.join(workdir, LOCK_FILE), "a+")
  except OSError as error:
    raise InputError(f"--workdir={workdir}: cannot write there ({error.strerror})") from None
  with handle:
    try:
      fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
      handle.seek(0)
      holder = handle.read().strip() or "another process"
      raise InputError(f"--workdir={workdir} is in use by {holder}; wait for it to end "
                       "or use another --workdir") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
    handle.flush()
    try:
      yield
    finally:
      fcntl.flock(handle, fcntl.LOCK_UN)


def save(workdir: str, config: dict, items: np.ndarray) -> None:
  """Writes config.json and items.npy (process 0 only)."""
  if jax.process_index() != 0:
    return
  os.makedirs(workdir, exist_ok=True)
  tmp = os.path.join(workdir, f"{ITEMS_FILE}.tmp-{os.getpid()}.npy")
  np.save(tmp, np.asarray(items, dtype=str))
  os.replace(tmp, os.path.join(workdir, ITEMS_FILE))
  write_json(os.path.join(workdir, CONFIG_FILE), config)


def load(workdir: str, setting: str = "--workdir") -> tuple[dict, np.ndarray]:
  """(config dict, raw item ids str [V]) of a workdir written by `launch.train`.

  Raises:
    InputError: one line naming `setting` and the missing file.
  """
  for name in (CONFIG_FILE, ITEMS_FILE):
    if not os.path.exists(os.path.join(workdir, name)):
      raise InputError(f"{setting}={workdir}: no {name}; is it a launch.train workdir?")
  with open(os.path.join(workdir, CONFIG_FILE)) as f:
    config = json.load(f)
  return config, np.load(os.path.join(workdir, ITEMS_FILE), allow_pickle=False)

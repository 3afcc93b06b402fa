"""Interactions read once, kept on disk as memory-mapped arrays.

Parsing text is most of the cost of starting a run on a large dataset (25M
lines: about 10 s even with pyarrow), and a sweep reads the same file for
every run. `load` keeps what a reader returned under a key made of the dataset
string and the path, size and modification time of every file the reader
reads, so a changed file is read again and a stale entry is never used.

What is derived from a dataset (its user sequences and splits, `derived`) is
kept beneath the dataset's entry, keyed by the settings that made it, so it
goes stale with it.

Entries are directories of .npy files plus meta.json, written under a
temporary name and renamed, so an entry is whole or absent: two runs filling
the same entry at once both succeed and one of the copies is kept. The large
per-interaction arrays (user, item, time) are opened with `mmap_mode="r"`:
pages are read as they are touched and are the kernel's to drop.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from typing import Callable

import numpy as np
from absl import logging

from seqrec.interactions import Interactions

# Bump when a reader's output changes, so older entries are not reused.
VERSION = 1
_MAPPED = ("user", "item", "time")
_ARRAYS = _MAPPED + ("user_ids", "item_ids", "item_genres", "item_domain")


def _mapped(path: str) -> np.ndarray:
  """A read-only memory map of a .npy file, as a plain ndarray: views of an
  `np.memmap` are memmaps too, and a million per-user views of one cost
  seconds."""
  return np.load(path, mmap_mode="r", allow_pickle=False).view(np.ndarray)


def key(spec: str, files: list[str]) -> str:
  """The entry name of `spec` reading `files`: a hash of their stats."""
  stats = [[os.path.abspath(f), stat.st_size, stat.st_mtime_ns]
           for f, stat in ((f, os.stat(f)) for f in sorted(files))]
  text = json.dumps([VERSION, spec, stats])
  return hashlib.sha256(text.encode()).hexdigest()[:24]


def _store(directory: str, arrays: dict[str, np.ndarray], meta: dict | None = None) -> None:
  """Writes `arrays` (NAME.npy each) and `meta` (meta.json) into `directory`
  whole or not at all: into a temporary directory, then renamed.

  Raises:
    OSError: the entry could not be written (and no other process wrote it).
  """
  tmp = f"{directory}.tmp-{os.getpid()}"
  try:
    os.makedirs(tmp, exist_ok=True)
    for name, values in arrays.items():
      np.save(os.path.join(tmp, f"{name}.npy"), values, allow_pickle=False)
    if meta is not None:
      with open(os.path.join(tmp, "meta.json"), "w") as f:
        json.dump(meta, f)
    os.rename(tmp, directory)
  except OSError:
    shutil.rmtree(tmp, ignore_errors=True)
    if not os.path.isdir(directory):  # else another process stored it first
      raise


def _save(data: Interactions, directory: str) -> None:
  """Writes `data` into `directory` whole or not at all."""
  arrays = {name: getattr(data, name) for name in _ARRAYS if getattr(data, name) is not None}
  arrays.update({f"feature-{name}": values for name, values in data.user_features.items()})
  _store(directory, arrays, {
      "name": data.name, "features": sorted(data.user_features),
      "feature_vocab": data.feature_vocab, "genre_names": data.genre_names,
      "timestamps": data.timestamps})


def _open(directory: str) -> Interactions:
  with open(os.path.join(directory, "meta.json")) as f:
    meta = json.load(f)

  def array(name: str) -> np.ndarray | None:
    path = os.path.join(directory, f"{name}.npy")
    if not os.path.exists(path):
      return None
    return _mapped(path) if name in _MAPPED else np.load(path, allow_pickle=False)

  return Interactions(
      name=meta["name"], cache_entry=directory, **{name: array(name) for name in _ARRAYS},
      user_features={name: array(f"feature-{name}") for name in meta["features"]},
      feature_vocab={k: tuple(v) for k, v in meta["feature_vocab"].items()},
      genre_names=tuple(meta["genre_names"]), timestamps=meta["timestamps"])


def load(cache_dir: str, spec: str, files: list[str],
         read: Callable[[], Interactions]) -> Interactions:
  """The cached `Interactions` of `spec`, or `read()` stored for next time.

  Args:
    cache_dir: where entries live (created on first use).
    spec: the dataset string.
    files: every file `read` reads.
    read: the reader.
  """
  directory = os.path.join(cache_dir, key(spec, files))
  if os.path.isfile(os.path.join(directory, "meta.json")):
    logging.info("dataset %s: from the cache %s", spec, directory)
    return _open(directory)
  data = read()
  try:
    os.makedirs(cache_dir, exist_ok=True)
    _save(data, directory)
  except OSError as error:  # a full disk or read-only cache costs speed, not the run
    logging.warning("dataset %s: not cached in %s (%s)", spec, cache_dir, error)
    return data
  return dataclasses.replace(data, cache_entry=directory)


def derived(entry: str, identity: dict, compute: Callable[[], dict[str, np.ndarray]]
            ) -> dict[str, np.ndarray]:
  """Arrays computed from the cached dataset `entry` (`Interactions.cache_entry`),
  kept beneath it and memory-mapped on reuse.

  Args:
    entry: the dataset's entry directory.
    identity: everything besides the dataset that the arrays depend on (JSON).
    compute: () -> name -> array.
  """
  name = hashlib.sha256(json.dumps([VERSION, identity], sort_keys=True).encode()).hexdigest()
  directory = os.path.join(entry, "derived", name[:24])
  if os.path.isdir(directory):
    return {f[:-len(".npy")]: _mapped(os.path.join(directory, f))
            for f in sorted(os.listdir(directory))}
  arrays = compute()
  try:
    _store(directory, arrays)
  except OSError as error:  # as in `load`: speed, not the run
    logging.warning("%s: derived arrays not cached (%s)", entry, error)
  return arrays

"""Orbax checkpoints of the train state: save every N steps, resume the latest."""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from seqrec.errors import InputError


def manager(workdir: str, max_to_keep: int = 2) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(
      os.path.join(os.path.abspath(workdir), "checkpoints"),
      options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                           multiprocessing_options=_barriers("state")))


def best_manager(workdir: str, metric: str) -> ocp.CheckpointManager:
  """Keeps only the parameters with the highest validation `metric` (a key of
  the metrics dict passed to `save`), in `workdir/best`; survives restarts."""
  return ocp.CheckpointManager(
      os.path.join(os.path.abspath(workdir), "best"),
      options=ocp.CheckpointManagerOptions(
          max_to_keep=1, create=True, best_fn=lambda m: m[metric], best_mode="max",
          multiprocessing_options=_barriers("best")))


def _barriers(prefix: str) -> ocp.options.MultiprocessingOptions:
  # Multi-process saves synchronise on barriers named after the step; two
  # managers saving the same step need distinct names or both hang.
  return ocp.options.MultiprocessingOptions(barrier_sync_key_prefix=prefix)


def save(mngr: ocp.CheckpointManager, step: int, tree: Any,
         metrics: dict[str, float] | None = None) -> None:
  mngr.save(step, args=ocp.args.StandardSave(tree), metrics=metrics)


def restore(mngr: ocp.CheckpointManager, target: Any, step: int | None = None) -> Any:
  """Restores `step` (default: latest) into the structure, dtypes and shardings
  of `target`, so a checkpoint written on 8 devices loads on 1 and back."""
  step = mngr.latest_step() if step is None else step
  abstract = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), target)
  return mngr.restore(step, args=ocp.args.StandardRestore(abstract))


def restore_params(workdir: str) -> Any:
  """The parameters a finished run in `workdir` reports, as host arrays,
  without knowing their structure (for warm-starting another model): the
  best-validation parameters if the run kept them, else its latest state's.
  """
  root = os.path.abspath(workdir)
  best = _restore_on_host(os.path.join(root, "best"))
  if best is not None:
    return best
  state = _restore_on_host(os.path.join(root, "checkpoints"))
  if state is None:
    raise InputError(f"{workdir}: no checkpoint found (expected {workdir}/checkpoints)")
  return state["params"]


def _restore_on_host(directory: str) -> Any:
  """The latest checkpoint in `directory` as numpy arrays (None if none).

  Without a target orbax puts arrays back on the devices that wrote them,
  which fails on another topology (8 devices -> 1, 2 hosts -> 1); a numpy
  target built from the stored shapes loads anywhere.
  """
  if not os.path.isdir(directory):
    return None
  with ocp.CheckpointManager(directory,
                             item_handlers=ocp.StandardCheckpointHandler()) as mngr:
    step = mngr.latest_step()
    if step is None:
      return None
    target = jax.tree.map(lambda m: np.empty(m.shape, m.dtype), mngr.item_metadata(step))
    return mngr.restore(step, args=ocp.args.StandardRestore(target))

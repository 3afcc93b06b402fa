"""Orbax checkpoints of the train state: save every N steps, resume the latest."""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp


def manager(workdir: str, max_to_keep: int = 2) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(
      os.path.join(os.path.abspath(workdir), "checkpoints"),
      options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))


def best_manager(workdir: str, metric: str) -> ocp.CheckpointManager:
  """Keeps only the parameters with the highest validation `metric` (a key of
  the metrics dict passed to `save`), in `workdir/best`; survives restarts."""
  return ocp.CheckpointManager(
      os.path.join(os.path.abspath(workdir), "best"),
      options=ocp.CheckpointManagerOptions(
          max_to_keep=1, create=True, best_fn=lambda m: m[metric], best_mode="max"))


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


def restore_params(directory: str) -> Any:
  """The parameters of the latest checkpoint under `directory`, as host arrays,
  without knowing their structure (for warm-starting a different model)."""
  with manager(directory) as mngr:
    step = mngr.latest_step()
    if step is None:
      return None
    state = mngr.restore(step, args=ocp.args.StandardRestore())
  return state["params"]

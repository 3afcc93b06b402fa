"""Device mesh and shardings: batches split over `data`, tables over `model`.

One code path serves 1 device, many local devices and many hosts: global
batches are assembled with `jax.make_array_from_process_local_data`, so each
process only ever touches its own rows.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

import jax
import numpy as np
from flax import traverse_util
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from seqrec.errors import InputError

DATA, MODEL = "data", "model"


def make_mesh(num_devices: int | None = None, model_parallel: int = 1) -> Mesh:
  """A (data, model) mesh over the first `num_devices` devices (default: all)."""
  devices = jax.devices()
  num_devices = num_devices or len(devices)
  if num_devices > len(devices):
    raise InputError(f"asked for {num_devices} devices but only {len(devices)} exist")
  if jax.process_count() > 1 and num_devices != len(devices):
    # A mesh over the first devices would leave later processes without any.
    raise InputError(f"--num_devices={num_devices}: a run of {jax.process_count()} "
                     f"processes uses all {len(devices)} devices")
  if model_parallel < 1 or num_devices % model_parallel:
    raise InputError(f"--model_parallel={model_parallel} must divide the device "
                     f"count {num_devices}")
  grid = np.asarray(devices[:num_devices]).reshape(-1, model_parallel)
  return Mesh(grid, (DATA, MODEL))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) dimension split over `data`, the rest replicated."""
  return NamedSharding(mesh, P(DATA))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def check_batch_size(batch_size: int, mesh: Mesh, flag: str = "--batch_size") -> None:
  data_size = mesh.shape[DATA]
  if batch_size % data_size:
    raise InputError(f"{flag}={batch_size} is not divisible by the {data_size} "
                     "data-parallel devices")


def param_shardings(params: Any, mesh: Mesh,
                    rules: Sequence[tuple[str, P]] = ()) -> Any:
  """NamedSharding per parameter: the first rule whose regex fullmatches the
  "/"-joined path gives its PartitionSpec; everything else is replicated."""
  flat = traverse_util.flatten_dict(params, sep="/")
  def spec(path: str) -> P:
    for pattern, partition in rules:
      if re.fullmatch(pattern, path):
        return partition
    return P()
  return traverse_util.unflatten_dict(
      {path: NamedSharding(mesh, spec(path)) for path in flat}, sep="/")


def global_batch(local_rows: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """Assembles a global batch, sharded on `data`, from this process's rows."""
  sharding = batch_sharding(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, v)
          for k, v in local_rows.items()}


def process_rows(batch_size: int, mesh: Mesh) -> np.ndarray:
  """The rows of a global batch that this process feeds, in the order
  `global_batch` expects: those its devices hold, whatever the device order."""
  indices = batch_sharding(mesh).addressable_devices_indices_map((batch_size,))
  shards = {range(batch_size)[index[0]] for index in indices.values()}  # dedup replicas
  return np.concatenate([np.arange(s.start, s.stop)
                         for s in sorted(shards, key=lambda s: s.start)])

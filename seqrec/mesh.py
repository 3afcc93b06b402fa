"""Device mesh and shardings: batches split over `data`, tables over `model`.

One code path serves 1 device, many local devices and many hosts: global
batches are assembled with `jax.make_array_from_process_local_data`, so each
process only ever touches its own rows.

Model parallelism splits the item tables: embedding rows and output-layer
columns over `model` (`item_table_rules`). A split must be even, so models pad
their item vocabulary to a multiple (`pad_to_multiple`); padding rows are
never looked up and padding columns are scored -inf (`seqrec.losses`). Scores
over all items stay split over `model` along the item axis
(`constrain_items`), so no device holds a full [.., V] row of logits.
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
    raise InputError(f"config.num_devices={num_devices}: a run of {jax.process_count()} "
                     f"processes uses all {len(devices)} devices")
  if model_parallel < 1 or num_devices % model_parallel:
    raise InputError(f"config.model_parallel={model_parallel} must divide the device "
                     f"count {num_devices}")
  grid = np.asarray(devices[:num_devices]).reshape(-1, model_parallel)
  return Mesh(grid, (DATA, MODEL))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) dimension split over `data`, the rest replicated."""
  return NamedSharding(mesh, P(DATA))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def check_batch_size(batch_size: int, mesh: Mesh, flag: str = "config.batch_size") -> None:
  data_size = mesh.shape[DATA]
  if batch_size % data_size:
    raise InputError(f"{flag}={batch_size} is not divisible by the {data_size} "
                     "data-parallel devices")


def param_shardings(params: Any, mesh: Mesh,
                    rules: Sequence[tuple[str, P]] = ()) -> Any:
  """NamedSharding per parameter: the first rule whose regex fullmatches the
  "/"-joined path gives its PartitionSpec; everything else is replicated.

  Raises:
    InputError: a split dimension does not divide evenly over its mesh axes.
  """
  flat = traverse_util.flatten_dict(params, sep="/")
  def spec(path: str) -> P:
    for pattern, partition in rules:
      if re.fullmatch(pattern, path):
        _check_even(path, tuple(flat[path].shape), partition, mesh)
        return partition
    return P()
  return traverse_util.unflatten_dict(
      {path: NamedSharding(mesh, spec(path)) for path in flat}, sep="/")


def state_shardings(state: Any, params: Any, param_sharding: Any, mesh: Mesh) -> Any:
  """NamedSharding per leaf of a state holding parameter-shaped trees.

  For optimizer state: a leaf whose key path ends with a parameter's path
  (e.g. Adam's ".../mu/params/embed/embedding") and has its shape takes that
  parameter's sharding, so moments are split like their tables; every other
  leaf (step counts) is replicated. XLA cannot propagate this itself: the
  moments start as zeros that do not depend on the parameters.

  Args:
    state: the state's tree of arrays or `jax.ShapeDtypeStruct`s.
    params, param_sharding: the parameter tree (shapes) and its shardings.
  """
  shapes = traverse_util.flatten_dict(params)
  shardings = traverse_util.flatten_dict(param_sharding)

  def leaf_sharding(key_path: tuple, leaf: Any) -> NamedSharding:
    keys = tuple(getattr(k, "key", None) for k in key_path)
    for start in range(len(keys)):
      path = keys[start:]
      if path in shapes and tuple(shapes[path].shape) == tuple(leaf.shape):
        return shardings[path]
    return replicated(mesh)

  return jax.tree_util.tree_map_with_path(leaf_sharding, state)


def _check_even(path: str, shape: tuple[int, ...], partition: P, mesh: Mesh) -> None:
  # jit rejects uneven shards with a message about tiling factors; name the
  # parameter and the fix instead.
  for dim, (size, axes) in enumerate(zip(shape, partition)):
    parts = int(np.prod([mesh.shape[a] for a in jax.tree.leaves(axes)]))
    if size % parts:
      raise InputError(f"parameter {path} has {size} entries along dimension {dim}, "
                       f"not divisible by the {parts} devices of mesh axis {axes}; "
                       "pad the item vocabulary to a multiple of config.model_parallel "
                       "(config.vocab_multiple)")


def pad_to_multiple(size: int, multiple: int) -> int:
  """The smallest multiple of `multiple` that is at least `size`."""
  return -(-size // multiple) * multiple


def item_table_rules(embeddings: Sequence[str] = (), outputs: Sequence[str] = ()
                     ) -> tuple[tuple[str, P], ...]:
  """`TrainConfig.param_rules` splitting item tables over `model`.

  Args:
    embeddings: paths of embedding tables [V, D]: rows split.
    outputs: path prefixes of output layers with "kernel" [D, V] and "bias"
      [V]: item columns split.
  """
  return (*((path, P(MODEL, None)) for path in embeddings),
          *((f"{path}/kernel", P(None, MODEL)) for path in outputs),
          *((f"{path}/bias", P(MODEL)) for path in outputs))


def axis_size(axis: str) -> int:
  """The size of `axis` (DATA or MODEL) of the mesh being traced under (1: none)."""
  mesh = jax.sharding.get_abstract_mesh()
  return 1 if mesh.empty else mesh.shape.get(axis, 1)


def constrain_items(scores: jax.Array) -> jax.Array:
  """`scores` [..., V] kept split over `model` along the item axis V.

  Inside a jitted function traced under `jax.set_mesh` with a `model` axis
  above 1, XLA then computes reductions over items (logsumexp, rank counts)
  shard by shard with a cross-device reduction instead of gathering full rows.
  Elsewhere (one device, no mesh in context) it returns `scores` unchanged.
  """
  if axis_size(MODEL) == 1:
    return scores
  # Leading dims unconstrained: they keep whatever batch split they have.
  spec = P(*[P.UNCONSTRAINED] * (scores.ndim - 1), MODEL)
  return jax.lax.with_sharding_constraint(scores, spec)


def global_batch(local_rows: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """Assembles a global batch, sharded on `data`, from this process's rows."""
  sharding = batch_sharding(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, v)
          for k, v in local_rows.items()}


def every_process_rows(batch_size: int, mesh: Mesh) -> dict[int, np.ndarray]:
  """Process index -> the rows of a global batch that process feeds, in the
  order `global_batch` expects: those its devices hold, whatever the device order."""
  blocks: dict[int, set[range]] = {}
  for device, index in batch_sharding(mesh).devices_indices_map((batch_size,)).items():
    blocks.setdefault(device.process_index, set()).add(range(batch_size)[index[0]])
  return {process: np.concatenate([np.arange(b.start, b.stop)  # replicas deduplicated
                                   for b in sorted(ranges, key=lambda b: b.start)])
          for process, ranges in blocks.items()}


def process_rows(batch_size: int, mesh: Mesh) -> np.ndarray:
  """The rows of a global batch that this process feeds (`every_process_rows`)."""
  return every_process_rows(batch_size, mesh)[jax.process_index()]

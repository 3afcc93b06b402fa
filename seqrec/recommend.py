"""Recommendations out of a trained workdir: top-K items (or a label) per user.

A workdir rebuilds its model from config.json and items.npy (`load`); its
parameters are the ones the run reports (best validation, else latest).
`top_k` is one jitted program over a (data, model) mesh: users split over
`data`; with item tables split over `model`, every item shard takes its own
top-K and only the [B, shards * K] candidates are gathered and merged, never
a [B, V] score matrix. Ties rank by score, then by lower item id, on any
mesh. `stream` walks users in fixed-size batches, so memory does not grow
with their number.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Iterator, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from seqrec import (checkpoint, experiment, mesh as mesh_lib, packing, registry,
                    workdir as workdir_lib)
from seqrec.errors import InputError
from seqrec.task import Experiment, Params


@dataclasses.dataclass(frozen=True)
class Recommender:
  """A workdir's model, ready to score.

  Attributes:
    config: the config that trained it.
    built: its experiment (task, queries for the dataset's users, items).
    params: the reported parameters (host arrays).
    items: str [V'] raw id (or class name) of every scored column.
  """

  config: ml_collections.ConfigDict
  built: Experiment
  params: Params
  items: np.ndarray

  @property
  def input_length(self) -> int:
    return self.built.queries.seq.shape[1]


def load(workdir: str) -> Recommender:
  """The model of a finished or checkpointed `launch.train` workdir.

  Raises:
    InputError: one line for a missing config.json / items.npy / checkpoint,
      a family that cannot recommend, or data that no longer gives the saved
      items.
  """
  config, items = workdir_lib.load(workdir)
  if config.get("family") not in registry.FAMILIES:
    raise InputError(f"--workdir={workdir}: config.json names no known family "
                     f"({config.get('family')!r})")
  config = ml_collections.ConfigDict(config)
  built = registry.build(config, experiment.load_data(config))
  if built.task.score is None or built.queries is None:
    raise InputError(f"--workdir={workdir}: family {config.family!r} cannot recommend")
  if not np.array_equal(built.items, items):
    raise InputError(f"--workdir={workdir}: config.dataset={config.dataset} no longer "
                     "gives the items of items.npy (has the data changed?)")
  return Recommender(config, built, checkpoint.restore_params(workdir), items)


def item_index(items: np.ndarray) -> dict[str, int]:
  """Raw id -> column of every real item (column 0, padding, has none)."""
  return {item: column for column, item in enumerate(items) if column}


def seen_count(columns: np.ndarray, seen: Sequence[np.ndarray]) -> int:
  """How many recommended columns (int [N, K]) are among their row's `seen`
  columns: the slots a top-K with the history left in spends on items the
  user already has."""
  return sum(int(np.isin(top, had).sum()) for top, had in zip(columns, seen))


def encode(histories: list[list[str]], items: np.ndarray, length: int,
           source: str = "--sequences") -> np.ndarray:
  """Raw item histories -> int32 [N, length] left-padded columns.

  Raises:
    InputError: naming the line (1-based) and the unknown item.
  """
  index = item_index(items)
  out = np.zeros((len(histories), length), np.int32)
  for row, history in enumerate(histories):
    unknown = [item for item in history if item not in index]
    if unknown:
      raise InputError(f"{source} line {row + 1}: item {unknown[0]!r} is not in the "
                       "workdir's items.npy")
    tail = [index[item] for item in history][-length:]
    if tail:
      out[row, length - len(tail):] = tail
  return out


def _merge_shards(scores: jax.Array, seen: jax.Array, k: int, exclude_seen: bool,
                  num_items: int) -> tuple[jax.Array, jax.Array]:
  """Per item shard (inside shard_map): mask, take the shard's top k, merge.

  scores [B, V/m] this shard's columns; seen int [B, L] column ids (0: none).
  """
  width = scores.shape[1]
  offset = jax.lax.axis_index(mesh_lib.MODEL) * width
  if exclude_seen:
    local = seen - offset
    mine = (seen != 0) & (local >= 0) & (local < width)
    rows = jnp.arange(scores.shape[0])[:, None]
    scores = scores.at[rows, jnp.where(mine, local, width)].set(-jnp.inf, mode="drop")
  columns = offset + jnp.arange(width)
  scores = jnp.where(columns[None, :] < num_items, scores, -jnp.inf)
  top, at = jax.lax.top_k(scores, min(k, width))
  # Shards in order, each sorted by (score, column): the merge's ties then fall
  # to the lower column, as on one device.
  top = jax.lax.all_gather(top, mesh_lib.MODEL, axis=1, tiled=True)
  at = jax.lax.all_gather(at + offset, mesh_lib.MODEL, axis=1, tiled=True)
  best, pick = jax.lax.top_k(top, k)
  return best, jnp.take_along_axis(at, pick, axis=1)


def top_k_fn(recommender: Recommender, mesh: jax.sharding.Mesh, k: int,
             exclude_seen: bool) -> Any:
  """jit(params, seq [B, L], seen [B, H]) -> (scores float32 [B, k], columns [B, k]).

  `seen` holds each row's columns to leave out with `exclude_seen` (0: none).
  Column ids index `recommender.items`. The scores stay split over `model`
  along the items; `k` must not exceed the number of scored columns.
  """
  task = recommender.built.task
  num_items = len(recommender.items)
  if not 1 <= k <= num_items - (not recommender.built.classes):
    raise InputError(f"--top_k={k}: must be in [1, {num_items - 1}]")
  merge = jax.shard_map(
      functools.partial(_merge_shards, k=k, exclude_seen=exclude_seen, num_items=num_items),
      mesh=mesh, in_specs=(P(mesh_lib.DATA, mesh_lib.MODEL), P(mesh_lib.DATA)),
      out_specs=P(mesh_lib.DATA), check_vma=False)

  def fn(params: Params, seq: jax.Array, seen: jax.Array) -> tuple[jax.Array, jax.Array]:
    scores = task.score(params, {"seq": seq})
    if recommender.built.classes:  # no padding column to mask, no history
      return jax.lax.top_k(scores, k)
    return merge(scores, seen)

  params_sharding = mesh_lib.param_shardings(recommender.params, mesh, task.param_rules)
  batch = NamedSharding(mesh, P(mesh_lib.DATA))
  return jax.jit(fn, in_shardings=(params_sharding, batch, batch), out_shardings=batch)


class Streamer:
  """Top-k of query rows, a batch at a time, with one compiled program.

  Args:
    recommender: the model.
    k: items per row; exclude_seen: leave out each row's `seen` columns.
    batch_size: rows per call (a multiple of the data-parallel devices).
    num_devices, model_parallel: the mesh (None: all devices).
  """

  def __init__(self, recommender: Recommender, *, k: int, exclude_seen: bool = False,
               batch_size: int = 256, num_devices: int | None = None,
               model_parallel: int = 1):
    self.mesh = mesh_lib.make_mesh(num_devices, model_parallel)
    mesh_lib.check_batch_size(batch_size, self.mesh, "--batch_size")
    self.exclude_seen, self.batch_size = exclude_seen, batch_size
    self.fn = top_k_fn(recommender, self.mesh, k, exclude_seen)
    self.params = jax.device_put(recommender.params, mesh_lib.param_shardings(
        recommender.params, self.mesh, recommender.built.task.param_rules))
    self.sharding = NamedSharding(self.mesh, P(mesh_lib.DATA))

  def __call__(self, queries: np.ndarray, seen: Sequence[np.ndarray] | None = None
               ) -> Iterator[tuple[slice, np.ndarray, np.ndarray]]:
    """Top-k of every row of `queries` int32 [N, L].

    Args:
      seen: with `exclude_seen`, every row's columns to leave out (its whole
        history, not only the last L items); padded per batch to one of a few
        widths (`packing.capacity`), so few programs compile.
    Yields:
      (rows of `queries`, scores float32 [n, k], columns int32 [n, k]).
    """
    if self.exclude_seen and seen is None:
      raise InputError("--exclude_seen: this workdir keeps no user histories to exclude")
    size = self.batch_size
    for start in range(0, len(queries), size):
      rows = slice(start, min(start + size, len(queries)))
      n = rows.stop - start
      seq = np.zeros((size, queries.shape[1]), np.int32)
      seq[:n] = queries[rows]
      mine = list(seen[rows]) if self.exclude_seen else []
      history = np.zeros((size, packing.capacity(max((len(h) for h in mine), default=1))),
                         np.int32)
      for row, items in enumerate(mine):
        history[row, :len(items)] = items
      with jax.set_mesh(self.mesh):
        scores, columns = self.fn(self.params, jax.device_put(seq, self.sharding),
                                  jax.device_put(history, self.sharding))
      yield rows, np.asarray(scores)[:n], np.asarray(columns)[:n]


def stream(recommender: Recommender, queries: np.ndarray,
           seen: Sequence[np.ndarray] | None = None, **settings: Any
           ) -> Iterator[tuple[slice, np.ndarray, np.ndarray]]:
  """`Streamer(recommender, **settings)(queries, seen)`."""
  return Streamer(recommender, **settings)(queries, seen)

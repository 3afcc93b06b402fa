"""The contract between a model family and the generic trainer (`seqrec.trainer`).

A model family (CmnRec, NextItNet pretraining, PeterRec fine-tuning, SASRec,
Caser) builds a `Task`: plain pure functions over a parameter pytree and a
batch dict, plus which parameters train, how the item tables split over the
mesh and an optional warm start. The trainer owns everything else: sharding,
jit, optimizer, freezing, checkpoints, logging and the evaluation loop.

A family's `build(config, data)` returns an `Experiment`: the task with its
data splits, the raw item vocabulary a workdir keeps, and what to print.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Sequence

import jax
import numpy as np
from jax.sharding import PartitionSpec

Params = Any  # a nested dict of arrays, as returned by flax `Module.init`
Batch = dict[str, jax.Array]  # every value has the (global) batch as leading dim
Arrays = dict[str, np.ndarray]  # host data: the same rows of every array form an example
ParamRules = tuple[tuple[str, PartitionSpec], ...]


@dataclasses.dataclass(frozen=True)
class Task:
  """Pure functions the trainer jit-compiles.

  Attributes:
    init: rng -> params. Parameter paths ("params/Block_0/conv1/kernel", joined
      with "/") must be stable: freezing and checkpoint restore select by path.
    loss: (params, batch, rng) -> (scalar mean loss, dict of scalar metrics).
      Called on the global batch; must not depend on how it is sharded.
    evaluate: (params, batch) -> dict of per-example metrics, each [B]. The
      trainer averages them over the real (non-padding) examples.
    trainable: regular expressions over parameter paths (`re.fullmatch`); a
      parameter trains iff one matches. The default trains everything.
    param_rules: path regex -> PartitionSpec over the mesh axes; the first
      match lays out a parameter (and its optimizer moments), the rest are
      replicated. With a `model` axis of size 1 they split nothing.
    warm_start: host params -> host params, e.g. pretrained weights restored
      into a fresh init. The trainer applies it once, after `init` and only
      when there is no checkpoint to resume, then lays the result out on the
      parameter shardings.
    score: (params, {"seq": int [B, L] history}) -> float32 [B, V'] scores of
      every item (or class) the model can recommend next; padding columns
      -inf. None: the family cannot recommend.
    loss_positions: host batch -> (int [B], W): how many of the W positions of
      each row the loss covers. With it the trainer adds
      `batch[seqrec.packing.KEY]` where packing pays, whose shape tells `loss`
      how many positions to pack (`seqrec.packing`).
    padding_invariant: the model's outputs at a position do not depend on how
      much left padding precedes the sequence, so batch["seq"] may lose its
      leading all-padding columns (`seqrec.bucketing`; the trainer does so
      with `TrainConfig.bucket_lengths`). Only "seq" is cut.
  """

  init: Callable[[jax.Array], Params]
  loss: Callable[[Params, Batch, jax.Array], tuple[jax.Array, dict[str, jax.Array]]]
  evaluate: Callable[[Params, Batch], dict[str, jax.Array]]
  trainable: tuple[str, ...] = (".*",)
  param_rules: ParamRules = ()
  warm_start: Callable[[Params], Params] | None = None
  loss_positions: Callable[[Arrays], tuple[np.ndarray, int]] | None = None
  score: Callable[[Params, Batch], jax.Array] | None = None
  padding_invariant: bool = False


@dataclasses.dataclass(frozen=True)
class Queries:
  """Every user of a dataset, ready for recommendations.

  Attributes:
    seq: int32 [U, L]: each user's latest history as `Task.score` reads it.
    ids: str [U]: the raw user id of each row.
    seen: one int array per row: every column the user already has (its whole
      history), for recommendations that leave them out; None: not kept.
  """

  seq: np.ndarray
  ids: np.ndarray
  seen: Sequence[np.ndarray] | None = None


@dataclasses.dataclass(frozen=True)
class Experiment:
  """What a family's `build(config, data)` returns.

  Attributes:
    task: the model's functions.
    train: training examples.
    eval: split name ("valid", "test") -> examples; "valid" selects.
    items: str [V]: the raw id of every item the model scores, by dense id
      (entry 0, the padding id, is ""). Saved in the workdir, so a later tool
      maps scores back to raw ids without the data.
    report: metric keys the one-line summary prints.
    info: extra results.json fields (data statistics).
    make_queries: builds the `Queries` of the dataset's users, when
      `queries` is first read. A training run never reads them: at millions
      of users they cost seconds and hundreds of MB.
    classes: `Task.score` scores classes (a profile task), not items; `items`
      then holds the class names.
  """

  task: Task
  train: Arrays
  eval: dict[str, Arrays]
  items: np.ndarray
  report: tuple[str, ...]
  info: dict[str, Any] = dataclasses.field(default_factory=dict)
  make_queries: Callable[[], Queries] | None = None
  classes: bool = False

  @functools.cached_property
  def queries(self) -> Queries | None:
    """The dataset's users as recommendation queries (None: the family has none)."""
    return None if self.make_queries is None else self.make_queries()

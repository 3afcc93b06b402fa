"""The one training loop for every model family.

`train(task, config, train_data, eval_data)` jit-compiles the task's loss into
a data-parallel step over a (data, model) mesh, trains with the trainable
subset of parameters, evaluates, checkpoints with orbax and resumes from the
latest checkpoint in `config.workdir`. Batches are a pure function of
(seed, step), so a resumed run repeats an uninterrupted one exactly.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging
from flax import struct
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from seqrec import (bucketing, checkpoint, mesh as mesh_lib, optim, packing, prefetch,
                    preemption, workdir as workdir_lib)
from seqrec.errors import InputError, TrainingError
from seqrec.task import Arrays, Task
from seqrec.writer import MetricWriter


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Everything the loop needs; binaries build it from flags."""

  workdir: str
  num_steps: int
  batch_size: int
  learning_rate: float = 1e-3
  seed: int = 0
  eval_every: int = 0  # 0: evaluate only at the end
  checkpoint_every: int = 0  # 0: checkpoint only at the end
  log_every: int = 50
  eval_batch_size: int = 256
  adam_b1: float = 0.9
  adam_b2: float = 0.999
  grad_clip: float | None = None
  num_devices: int | None = None  # None: all devices
  model_parallel: int = 1
  select_metric: str | None = None  # e.g. "ndcg@10": report the best-validation step
  eval_all_splits: bool = False  # evaluate every split (not only valid) when validating
  pack_targets: bool = True  # the loss packs its positions where the task can (`packing`)
  # Batches of similar-length rows at the width of their longest (`bucketing`);
  # only for a task whose model allows it (`Task.padding_invariant`).
  bucket_lengths: bool = False
  # Training batches a host thread makes ahead of their step (`prefetch`); 0: none.
  prefetch: int = 1
  # The training rows cut into this many contiguous shards, every batch taking
  # batch_size / row_shards rows of each: a process of a multi-process run then
  # reads only the shards its part of the batch comes from, not rows all over
  # the data. Other batches than row_shards=1, the same for any process count.
  row_shards: int = 1
  # >0: stop once this many validations in a row bring no better select_metric
  # (RecBole's stopping_step); the best step is reported either way.
  patience: int = 0


@struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  opt_state: Any


_COUNTED_ROWS = 1 << 16  # rows `Trainer.row_positions` counts at once: small temporaries


def shard_bounds(num_rows: int, shards: int) -> np.ndarray:
  """int64 [shards + 1]: shard s holds rows bounds[s]..bounds[s+1]-1."""
  return np.arange(shards + 1) * num_rows // shards


@functools.lru_cache(maxsize=2)
def _epoch_orders(num_rows: int, shards: int, seed: int, epoch: int) -> tuple[np.ndarray, ...]:
  """Each shard's rows in the order of epoch `epoch`, made once per epoch, not
  once per step (at 25M rows a permutation costs more than a step)."""
  if shards == 1:
    orders = [np.random.default_rng([seed, epoch]).permutation(num_rows)]
  else:
    bounds = shard_bounds(num_rows, shards)
    orders = [start + np.random.default_rng([seed, epoch, shard]).permutation(stop - start)
              for shard, (start, stop) in enumerate(zip(bounds[:-1], bounds[1:]))]
  for order in orders:
    order.flags.writeable = False  # shared by every step of the epoch
  return tuple(orders)


def steps_per_epoch(num_rows: int, batch_size: int, shards: int = 1) -> int:
  """Full batches in an epoch (the last partial batch of each shard is dropped)."""
  if num_rows < batch_size:
    raise InputError(f"config.batch_size={batch_size} is larger than the {num_rows} "
                     "training sequences")
  return (num_rows // shards) // (batch_size // shards)


def batch_indices(num_rows: int, batch_size: int, seed: int, step: int,
                  shards: int = 1) -> np.ndarray:
  """Rows of the global batch for `step`: batch_size / shards rows of each
  shard in turn, from a fresh permutation of the shard per epoch. A pure
  function of its arguments."""
  epoch, index = divmod(step, steps_per_epoch(num_rows, batch_size, shards))
  per = batch_size // shards
  return np.concatenate([order[index * per:(index + 1) * per]
                         for order in _epoch_orders(num_rows, shards, seed, epoch)])


def check_task(task: Task, config: TrainConfig) -> None:
  """Refuses loop settings the task cannot run with, before any work."""
  if config.bucket_lengths and not task.padding_invariant:
    raise InputError("config.bucket_lengths=True: this model's outputs depend on the amount "
                     "of left padding, so it cannot run at a shorter width (only SASRec and "
                     "Caser can)")
  if config.row_shards < 1 or config.batch_size % config.row_shards:
    raise InputError(f"config.row_shards={config.row_shards}: must be at least 1 and divide "
                     f"config.batch_size={config.batch_size}")
  if config.patience < 0 or (config.patience and not (config.select_metric and
                                                       config.eval_every > 0)):
    raise InputError(f"config.patience={config.patience}: needs config.select_metric and "
                     "config.eval_every > 0 (it counts validations without a better "
                     "select_metric), and must not be negative")
  if config.row_shards > 1 and config.bucket_lengths:
    raise InputError(f"config.row_shards={config.row_shards} with config.bucket_lengths=True: "
                     "a batch takes rows of every shard, so it cannot gather rows of one "
                     "length; use one of them")


def steps_for_epochs(num_rows: int, batch_size: int, num_epochs: float) -> int:
  return max(1, math.ceil(num_epochs * (num_rows // max(batch_size, 1))))


class Trainer:
  """Compiled step functions and state handling for one task and mesh."""

  def __init__(self, task: Task, config: TrainConfig):
    check_task(task, config)
    self.task, self.config = task, config
    # id -> (a "seq" array, its rows' buckets), and (the training "seq", epoch,
    # its order): computed once per array and epoch, not per step. Holding the
    # array itself, so a new array with a reused id never matches a stale
    # entry. Read and replaced whole: the prefetch thread and evaluation share them.
    self._buckets: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    self._positions: tuple[np.ndarray, np.ndarray] | None = None  # (training "seq", counts)
    self._order: tuple[np.ndarray, int, np.ndarray] | None = None
    self.mesh: Mesh = mesh_lib.make_mesh(config.num_devices, config.model_parallel)
    mesh_lib.check_batch_size(config.batch_size, self.mesh)
    mesh_lib.check_batch_size(config.eval_batch_size, self.mesh, "config.eval_batch_size")
    self.rng = jax.random.key(config.seed)
    params_shape = jax.eval_shape(task.init, self.rng)
    self.labels = optim.labels(params_shape, task.trainable)
    if optim.TRAIN not in jax.tree.leaves(self.labels):
      raise InputError(f"no parameter matches the trainable patterns {task.trainable}")
    self.tx = optim.make_optimizer(self.labels, config.learning_rate, config.adam_b1,
                                   config.adam_b2, config.grad_clip)
    self.param_sharding = mesh_lib.param_shardings(params_shape, self.mesh,
                                                   task.param_rules)
    self.replicated = mesh_lib.replicated(self.mesh)
    self.batch_sharding = mesh_lib.batch_sharding(self.mesh)
    self.process_rows = mesh_lib.every_process_rows(config.batch_size, self.mesh)
    self.local_rows = self.process_rows[jax.process_index()]
    self.eval_step = jax.jit(
        self._eval_step, in_shardings=(self.param_sharding, self.batch_sharding,
                                       self.batch_sharding, self.replicated),
        out_shardings=self.replicated)
    self.train_step = None  # compiled by `fresh_state`, once shardings are known

  def _train_step(self, state: TrainState, batch: dict) -> tuple[TrainState, dict]:
    rng = jax.random.fold_in(self.rng, state.step)
    trainable, frozen = optim.split(state.params, self.labels)

    def loss_fn(trainable_params):
      return self.task.loss(optim.merge(trainable_params, frozen), batch, rng)

    # Gradients of the trainable subtree only: no weight gradients for frozen parts.
    (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(trainable)
    zeros = jax.tree.map(jnp.zeros_like, frozen)
    full_grads = optim.merge(grads, zeros)
    updates, opt_state = self.tx.update(full_grads, state.opt_state, state.params)
    new_trainable = optax.apply_updates(trainable, optim.split(updates, self.labels)[0])
    params = optim.merge(new_trainable, frozen)
    # Checked on the host before any save: a step whose update is not finite
    # (an inf learning rate, overflowing weights) never reaches a checkpoint.
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(x))
                                for x in jax.tree.leaves(new_trainable)]))
    metrics = {**metrics, "loss": loss, "grad_norm": optax.tree.norm(grads),
               "params_finite": finite.astype(jnp.float32)}
    return TrainState(step=state.step + 1, params=params, opt_state=opt_state), metrics

  def _eval_step(self, params: Any, batch: dict, valid: jax.Array,
                 totals: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """`totals` plus each metric summed over the valid rows of `batch`: one
    program per batch, rather than a step and one add per metric."""
    per_example = self.task.evaluate(params, batch)
    return {k: totals[k] + jnp.sum(v * valid) for k, v in per_example.items()}

  def check_select_metric(self, eval_data: Arrays) -> None:
    """Refuses a `select_metric` the task's evaluation does not produce, before
    any training (its metric keys come from tracing `evaluate`)."""
    metric = self.config.select_metric
    if metric is None:
      return
    batch = {k: jax.ShapeDtypeStruct((1, *v.shape[1:]), v.dtype) for k, v in eval_data.items()}
    params = jax.eval_shape(self.task.init, self.rng)
    keys = jax.eval_shape(self.task.evaluate, params, batch)
    if metric not in keys:
      raise InputError(f"config.select_metric={metric!r} is not a metric of this task; "
                       f"it reports {sorted(keys)}")

  def fresh_state(self, warm_start: bool = False) -> TrainState:
    """A newly initialised state, laid out on the mesh.

    With `warm_start`, the task's warm start (if any) replaces the initial
    parameters, on the host, before they are placed. Optimizer moments take
    their parameter's sharding, step counts are replicated; the train step is
    then compiled for exactly these shardings.
    """
    params = jax.jit(self.task.init, out_shardings=self.param_sharding)(self.rng)
    if warm_start and self.task.warm_start is not None:
      params = jax.device_put(self.task.warm_start(jax.device_get(params)),
                              self.param_sharding)
    opt_sharding = mesh_lib.state_shardings(jax.eval_shape(self.tx.init, params),
                                            params, self.param_sharding, self.mesh)
    opt_state = jax.jit(self.tx.init, out_shardings=opt_sharding)(params)
    state = TrainState(step=jax.device_put(jnp.zeros((), jnp.int32), self.replicated),
                       params=params, opt_state=opt_state)
    shardings = jax.tree.map(lambda x: x.sharding, state)
    self.train_step = jax.jit(
        self._train_step, in_shardings=(shardings, self.batch_sharding),
        out_shardings=(shardings, self.replicated), donate_argnums=0)
    return state

  def run_step(self, state: TrainState, data: Arrays, step: int
               ) -> tuple[TrainState, dict]:
    """One training step on the batch of `step`.

    The mesh is in context while the step traces, so the tasks' sharding
    constraints (`mesh_lib.constrain_items`) resolve against it.
    """
    return self.run_batch(state, self.train_batch(data, step))

  def run_batch(self, state: TrainState, batch: dict[str, jax.Array]
                ) -> tuple[TrainState, dict]:
    """One training step on `batch` (`train_batch` of its step)."""
    with jax.set_mesh(self.mesh):
      return self.train_step(state, batch)

  def row_buckets(self, seq: np.ndarray) -> np.ndarray:
    """`bucketing.buckets(seq)`, computed once per array (training and
    evaluation arrays each keep theirs)."""
    entry = self._buckets.get(id(seq))
    if entry is None or entry[0] is not seq:
      entry = (seq, bucketing.buckets(seq))
      self._buckets = {**self._buckets, id(seq): entry}
    return entry[1]

  def batch_rows(self, data: Arrays, step: int) -> np.ndarray:
    """Rows of the global batch of `step`: `batch_indices`, or with
    `bucket_lengths` the batches of `bucketing.epoch_order`."""
    num_rows, size = len(next(iter(data.values()))), self.config.batch_size
    if not self.config.bucket_lengths:
      return batch_indices(num_rows, size, self.config.seed, step, self.config.row_shards)
    epoch, index = divmod(step, steps_per_epoch(num_rows, size))
    buckets = self.row_buckets(data["seq"])
    order = self._order
    if order is None or order[0] is not data["seq"] or order[1] != epoch:
      order = (data["seq"], epoch, bucketing.epoch_order(buckets, size, self.config.seed, epoch))
      self._order = order
    return order[2][index * size:(index + 1) * size]

  def cut(self, data: Arrays, rows: np.ndarray, local: np.ndarray) -> Arrays:
    """The `local` positions of the batch of `rows`, read from `data`; with
    `bucket_lengths`, "seq" without the columns that are padding in every row
    of the whole batch (so every process cuts the same width)."""
    batch = {k: v[rows[local]] for k, v in data.items()}
    if self.config.bucket_lengths:
      full = data["seq"].shape[1]
      width = bucketing.width(self.row_buckets(data["seq"])[rows], full)
      batch["seq"] = batch["seq"][:, full - width:]
    return batch

  def row_positions(self, data: Arrays) -> np.ndarray:
    """int [N]: `Task.loss_positions` of every row of the training `data`, made
    once, so a batch's packing shape needs none of the rows other processes read.

    A process counts the rows of the shards its part of the batches comes
    from; with `row_shards` > 1 across processes, one all-gather brings the rest.
    """
    seq = data["seq"]
    cached = self._positions
    if cached is not None and cached[0] is seq:
      return cached[1]
    bounds = shard_bounds(len(seq), self.config.row_shards)
    per = self.config.batch_size // self.config.row_shards
    # Process -> the (start, stop) row spans of the shards it reads.
    spans = {process: [(bounds[s], bounds[s + 1]) for s in np.unique(rows // per)]
             for process, rows in self.process_rows.items()}
    chunks = [(a, min(a + _COUNTED_ROWS, stop)) for start, stop in spans[jax.process_index()]
              for a in range(start, stop, _COUNTED_ROWS)]
    mine = np.concatenate([self.task.loss_positions({k: v[a:b] for k, v in data.items()})[0]
                           for a, b in chunks]).astype(np.int32)
    sizes = [sum(stop - start for start, stop in s) for s in spans.values()]
    if min(sizes) == len(seq):  # the same test on every process: all or none gather
      counts = mine  # every process reads every shard
    else:
      size = max(sizes)
      gathered = multihost_utils.process_allgather(np.pad(mine, (0, size - len(mine))))
      counts = np.zeros(len(seq), np.int32)
      for process, process_spans in spans.items():
        offset = 0
        for start, stop in process_spans:
          counts[start:stop] = gathered[process, offset:offset + stop - start]
          offset += stop - start
    self._positions = (seq, counts)
    return counts

  def packs(self) -> bool:
    """Whether training batches carry a packing shape (`seqrec.packing`)."""
    return self.config.pack_targets and self.task.loss_positions is not None

  def train_batch(self, data: Arrays, step: int) -> dict[str, jax.Array]:
    """The global batch of `step`: this process reads its rows of it and
    places them on its devices.

    With `Task.loss_positions`, also the packing shape [G, C]: from the
    positions of the whole global batch (`row_positions`), so every process
    picks the same C.
    """
    rows = self.batch_rows(data, step)
    local = self.cut(data, rows, self.local_rows)
    if self.packs():
      groups = self.mesh.shape[mesh_lib.DATA]
      # The width the positions are out of: that of this batch's (cut) rows.
      _, width = self.task.loss_positions({"seq": local["seq"][:1]})
      shape = packing.shape(self.row_positions(data)[rows], width, groups)
      if shape is not None:
        mine = len(self.local_rows) * groups // self.config.batch_size
        local[packing.KEY] = np.zeros((mine, shape[1]), np.int8)
    return mesh_lib.global_batch(local, self.mesh)

  def evaluate(self, params: Any, data: Arrays) -> dict[str, float]:
    """Mean of each per-example metric over all rows of `data`.

    With `bucket_lengths` the rows go in order of length, each batch at the
    width of its longest row.
    """
    size = self.config.eval_batch_size
    num_rows = len(next(iter(data.values())))
    order = np.arange(num_rows)
    if self.config.bucket_lengths:
      order = np.argsort(self.row_buckets(data["seq"]), kind="stable")
    local = mesh_lib.process_rows(size, self.mesh)
    totals: dict[str, jax.Array] | None = None
    for start in range(0, num_rows, size):
      index = np.arange(start, start + size)
      valid = (index < num_rows).astype(np.float32)
      # The last batch is filled up with its own first row, masked out.
      rows = order[np.where(index < num_rows, index, start)]
      batch = mesh_lib.global_batch(self.cut(data, rows, local), self.mesh)
      valid = mesh_lib.global_batch({"valid": valid[local]}, self.mesh)["valid"]
      with jax.set_mesh(self.mesh):  # see `run_step`
        if totals is None:  # zero in each metric's sum dtype
          metrics = jax.eval_shape(self.task.evaluate, params, batch)
          totals = jax.device_put({k: jnp.zeros((), jnp.result_type(v.dtype, valid.dtype))
                                   for k, v in metrics.items()}, self.replicated)
        previous, totals = totals, self.eval_step(params, batch, valid, totals)
      # At most two batches in flight, as in training. A host far ahead of the
      # devices left XLA's CPU client waiting forever on an all-reduce that one
      # device never launched (tests/seqrec/many_batches.py).
      jax.block_until_ready(previous)
    return {k: float(v) / num_rows for k, v in (totals or {}).items()}


# Running totals over every run of a workdir, in each train record: seconds
# compiling the first step of each run, seconds and steps timed after it.
TIMINGS = ("compile_seconds", "train_seconds", "timed_steps")
THROUGHPUT = ("steps_per_second", "examples_per_second")


def _check_finite(history: list[dict], first_step: int, mngr: Any, workdir: str) -> None:
  """Stops with one line if a loss in `history` (steps first_step..) is NaN/Inf
  or a step's update made a parameter non-finite; that step is never saved."""
  for offset, metrics in enumerate(history):
    loss_bad = not np.isfinite(metrics["loss"])
    if loss_bad or not metrics["params_finite"]:
      mngr.wait_until_finished()
      kept = mngr.latest_step()
      kept_text = (f"last checkpoint, all parameters finite: step {kept} in {workdir}"
                   if kept is not None else "no checkpoint was written yet")
      what = (f"loss is {metrics['loss']}" if loss_bad
              else "the update made parameters non-finite")
      raise TrainingError(f"{what} at step {first_step + offset}; "
                          f"training stopped ({kept_text})")


def _stop_preempted(done: int, state: TrainState, history: list[dict], mngr: Any,
                    best_mngr: Any, writer: MetricWriter, config: TrainConfig) -> None:
  """Saves step `done` (unless the loss went non-finite since the last check),
  waits for every pending write, and raises `Preempted` naming the step."""
  _check_finite(jax.device_get(history), done - len(history) + 1, mngr, config.workdir)
  if mngr.latest_step() != done:
    checkpoint.save(mngr, done, state)
  mngr.wait_until_finished()
  if best_mngr is not None:
    best_mngr.wait_until_finished()
  writer.close()
  raise preemption.Preempted(
      f"preempted (SIGTERM or SIGINT) after step {done}/{config.num_steps}: checkpoint saved in "
      f"{config.workdir}; rerun the same command to resume")


def _out_of_patience(step: int, best_mngr: Any, config: TrainConfig) -> bool:
  """Whether `config.patience` validations have passed since the best one by `step`.

  Read from the kept best checkpoint, so a resumed run that had stopped stays stopped.
  """
  best = best_mngr.best_step() if best_mngr is not None else None
  return bool(config.patience) and best is not None and (
      (step - best) // config.eval_every >= config.patience)


def _due(step: int, every: int) -> bool:
  return every > 0 and step % every == 0


def train(task: Task, config: TrainConfig, train_data: Arrays,
          eval_data: dict[str, Arrays]) -> tuple[TrainState, dict[str, Any]]:
  """Trains `task` for `config.num_steps`, resuming from the latest checkpoint.

  Args:
    task: the model family's pure functions.
    config: loop settings.
    train_data: name -> array with the training examples as leading dim; a
      batch is the same rows of every array.
    eval_data: split name ("valid", "test", ...) -> arrays like `train_data`.
      "valid" (if present) is evaluated every `config.eval_every` steps; all
      splits at the end.
  Returns:
    The final state and a results dict: metrics per split (of the final step,
    or with `config.select_metric` of the step with the best validation value
    among those evaluated), timings, parameter counts, optimizer-state size.
  """
  trainer = Trainer(task, config)
  if "valid" in eval_data:
    trainer.check_select_metric(eval_data["valid"])
  mngr = checkpoint.manager(config.workdir)
  resume = mngr.latest_step() is not None
  # The warm start's work (reading a pretrained checkpoint) only when it is used.
  state = trainer.fresh_state(warm_start=not resume)
  start = 0
  if resume:
    state = checkpoint.restore(mngr, state)
    start = int(state.step)
    logging.info("resumed from checkpoint at step %d", start)
  writer = MetricWriter(config.workdir, resumed_from=start)
  best_mngr = None
  if config.select_metric and "valid" in eval_data:
    best_mngr = checkpoint.best_manager(config.workdir, config.select_metric)
  history: list[dict] = []
  # Timings cover the whole run: a resumed run continues the totals that the
  # last kept train record of the earlier runs holds.
  totals = {key: 0.0 for key in TIMINGS}
  last_record = writer.last("train")
  totals.update({k: v for k, v in last_record.items() if k in TIMINGS})
  last_metrics = {k: v for k, v in last_record.items()
                  if k not in TIMINGS + THROUGHPUT}
  window_start, window_step = time.perf_counter(), start
  steps = range(start, start if _out_of_patience(start, best_mngr, config)
                 else config.num_steps)
  if trainer.packs():
    # Here, not first on the prefetch thread: it may be a collective across processes.
    trainer.row_positions(train_data)
  batches = prefetch.ahead(functools.partial(trainer.train_batch, train_data), steps,
                           config.prefetch)
  with preemption.notice() as preempted, contextlib.closing(batches):
    for step, batch in zip(steps, batches):
      tick = time.perf_counter()
      state, metrics = trainer.run_batch(state, batch)
      if history:
        # At most two steps in flight: a stop (SIGTERM) waits for one more step,
        # not for however many the host had dispatched ahead.
        jax.block_until_ready(history[-1]["loss"])
      history.append(metrics)
      done = step + 1
      is_last = done == config.num_steps
      if step == start:
        jax.block_until_ready(metrics)
        totals["compile_seconds"] += time.perf_counter() - tick
        window_start, window_step = time.perf_counter(), done
      if _due(done, config.log_every) or _due(done, config.checkpoint_every) or (
          _due(done, config.eval_every) or is_last):
        host = jax.device_get(history)
        _check_finite(host, done - len(host) + 1, mngr, config.workdir)
        history = []
        now = time.perf_counter()
        totals["train_seconds"] += now - window_start
        totals["timed_steps"] += done - window_step
        last_metrics = {k: float(np.mean([m[k] for m in host])) for k in host[0]
                        if k != "params_finite"}
        progress = f"step {done}/{config.num_steps} loss {last_metrics['loss']:.4f}"
        throughput = {}
        if done > window_step:  # not for the compiling first step alone
          rate = (done - window_step) / max(now - window_start, 1e-9)
          throughput = {"steps_per_second": rate,
                        "examples_per_second": rate * config.batch_size}
          progress += (f" | {rate:.2f} steps/s, {rate * config.batch_size:.0f} examples/s,"
                       f" ETA {(config.num_steps - done) / rate:.0f}s")
        writer.write(done, "train", {**last_metrics, **throughput, **totals})
        logging.info(progress)
        if (_due(done, config.eval_every) or is_last) and "valid" in eval_data:
          valid = trainer.evaluate(state.params, eval_data["valid"])
          writer.write(done, "valid", {**valid, "train_seconds": totals["train_seconds"]})
          if best_mngr is not None:
            checkpoint.save(best_mngr, done, state.params, metrics=valid)
          for name in set(eval_data) - {"valid"} if config.eval_all_splits else ():
            # Learning curves only: selection never looks at these splits.
            writer.write(done, name, {**trainer.evaluate(state.params, eval_data[name]),
                                      "train_seconds": totals["train_seconds"]})
        stop = _out_of_patience(done, best_mngr, config)
        if _due(done, config.checkpoint_every) or is_last or stop:
          checkpoint.save(mngr, done, state)
        window_start, window_step = time.perf_counter(), done
        if stop:
          logging.info("no better %s in %d validations: stopped at step %d",
                       config.select_metric, config.patience, done)
          break
      # Every step: several processes agree on the step to stop at through it.
      if preempted(done) and not is_last:
        _stop_preempted(done, state, history, mngr, best_mngr, writer, config)
  mngr.wait_until_finished()
  final_step = int(state.step)
  results: dict[str, Any] = {"evaluated_step": final_step}
  params = state.params
  if best_mngr is not None and best_mngr.best_step() is not None:
    best_mngr.wait_until_finished()
    results["evaluated_step"] = best_mngr.best_step()
    params = checkpoint.restore(best_mngr, params, best_mngr.best_step())
    best_mngr.close()
  for name, data in eval_data.items():
    results[name] = trainer.evaluate(params, data)
    writer.write(results["evaluated_step"], f"final_{name}", results[name])
  writer.close()
  mngr.close()
  trainable, _ = optim.split(state.params, trainer.labels)
  results.update(
      steps=final_step, resumed_from=start, final_train=last_metrics,
      compile_seconds=totals["compile_seconds"], train_seconds=totals["train_seconds"],
      examples_per_second=(totals["timed_steps"] * config.batch_size
                           / max(totals["train_seconds"], 1e-9)),
      stopped_early=final_step < config.num_steps,
      trainable_params=optim.count(trainable), total_params=optim.count(state.params),
      optimizer_state_bytes=optim.nbytes(state.opt_state),
      num_devices=trainer.mesh.size)
  return state, results


def write_results(workdir: str, results: dict[str, Any]) -> str:
  """Writes `workdir/results.json` (process 0) and returns its path."""
  path = os.path.join(workdir, workdir_lib.RESULTS_FILE)
  if jax.process_index() == 0:
    os.makedirs(workdir, exist_ok=True)
    workdir_lib.write_json(path, results)
  return path

"""The benchmark harness, and how training scales with the item catalog.

The harness every benchmark uses: `interleaved_ms` (round-robin timing, so
ratios share the machine load), `TrainStep` (the trainer's own compiled train
step on a fixed batch), `EpochSteps` (that step on the batches the trainer
draws), `xla_memory` (XLA's memory analysis of a compiled
step) and `write_report` (JSON written whole, plus a plot).

`scale` measures the real train step of `seqrec.trainer.Trainer` for a task
over catalogs of growing size on 1..N devices, data parallel (item tables
replicated) against model parallel (item tables split over every device):
median step time, and per-device memory from the arrays' own shards (what
each device holds of the parameters and optimizer state) and from XLA's
`compiled.memory_analysis()`. `launch/bench_scale.py` is the binary.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import re
import statistics
import time
from typing import Any, Callable, Sequence

import jax
import numpy as np
from flax import traverse_util

from seqrec import workdir
from seqrec.task import Arrays, Task
from seqrec.trainer import TrainConfig, Trainer, steps_per_epoch

# The task of a catalog of `num_items` items whose tables are padded to a
# multiple of `vocab_multiple`.
TaskFactory = Callable[[int, int], Task]
_MB = 2.0**20
XLA_MEMORY = ("argument", "output", "alias", "temp", "generated_code", "peak_memory")


def interleaved_ms(fns: dict[Any, Callable[[], Any]], repeats: int) -> dict[Any, float]:
  """Median wall time in ms of each `fns[name]()`, timed round-robin.

  Every function is warmed up (compiled) first; then each round calls each
  function once. A change in machine load during the measurement therefore
  hits every function alike, and ratios between them stay meaningful.
  """
  for fn in fns.values():
    jax.block_until_ready(fn())
  times: dict[str, list[float]] = {name: [] for name in fns}
  for _ in range(repeats):
    for name, fn in fns.items():
      start = time.perf_counter()
      jax.block_until_ready(fn())
      times[name].append(1e3 * (time.perf_counter() - start))
  return {name: statistics.median(values) for name, values in times.items()}


def median_ms(fn: Callable[[], Any], repeats: int) -> float:
  """Median wall time of `fn()` in ms, after one untimed warm-up call (which
  compiles, unless compiled ahead of time)."""
  return interleaved_ms({"fn": fn}, repeats)["fn"]


def xla_memory(compiled: Any) -> dict[str, float | None]:
  """MB of XLA's argument / output / alias / temp / code / peak buffers of a
  compiled program ("xla_<name>_mb"); None where the backend reports nothing."""
  try:
    stats = compiled.memory_analysis()
  except NotImplementedError:  # not every backend implements it
    stats = None
  out = {}
  for name in XLA_MEMORY:
    field = name if name == "peak_memory" else f"{name}_size"
    value = getattr(stats, f"{field}_in_bytes", None)
    out[f"xla_{name}_mb"] = None if value is None else value / _MB
  return out


class TrainStep:
  """The trainer's train step for `task`, compiled ahead of time on one batch.

  Calling it runs one step (the state is donated and rebound) and returns the
  step's metrics, so `interleaved_ms` times exactly what `seqrec.trainer.train`
  runs: gradients of the trainable subset, the freezing optimizer, shardings.
  """

  def __init__(self, task: Task, data: Arrays, *, seed: int = 0, num_devices: int = 1,
               model_parallel: int = 1):
    batch_size = len(next(iter(data.values())))
    self.trainer = Trainer(task, TrainConfig(
        workdir="", num_steps=1, batch_size=batch_size, seed=seed,
        num_devices=num_devices, model_parallel=model_parallel))
    self.state = self.trainer.fresh_state(warm_start=True)
    self.batch = self.trainer.train_batch(data, 0)
    tick = time.perf_counter()
    with jax.set_mesh(self.trainer.mesh):
      self.compiled = self.trainer.train_step.lower(self.state, self.batch).compile()
    self.compile_seconds = time.perf_counter() - tick

  def __call__(self) -> dict[str, jax.Array]:
    self.state, metrics = self.compiled(self.state, self.batch)
    return metrics


def write_report(out_dir: str, name: str, report: dict[str, Any],
                 plot: Callable[[str], None] | None = None) -> dict[str, Any]:
  """Writes out_dir/NAME.json (whole or not at all) and, with `plot`,
  out_dir/NAME.png by calling plot(path). The report gains the device kind."""
  report = {**report, "device": str(jax.devices()[0].device_kind),
            "device_count": jax.device_count(), "jax_version": jax.__version__}
  os.makedirs(out_dir, exist_ok=True)
  workdir.write_json(os.path.join(out_dir, f"{name}.json"), report)
  if plot is not None:
    plot(os.path.join(out_dir, f"{name}.png"))
  return report


@dataclasses.dataclass(frozen=True)
class Case:
  """One measurement: a catalog on a (data, model) mesh."""

  num_items: int
  num_devices: int
  model_parallel: int


def cases(catalogs: Sequence[int], device_counts: Sequence[int]) -> list[Case]:
  """Every catalog on every device count, replicated tables and split ones
  (model_parallel = devices; one device has only the first)."""
  return [Case(items, devices, model)
          for items, devices in itertools.product(catalogs, device_counts)
          for model in sorted({1, devices})]


def device_bytes(tree: Any, device: jax.Device) -> int:
  """Bytes of `tree`'s arrays that live on `device` (its addressable shards)."""
  return sum(shard.data.nbytes for leaf in jax.tree.leaves(tree)
             for shard in leaf.addressable_shards if shard.device == device)


def host_bytes(params: Any, case: Case) -> int:
  """Rough host memory of a case over all its (fake) devices: parameters,
  Adam's two moments and a gradient, each device holding 1/model_parallel of
  them (the item tables dominate)."""
  size = sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree.leaves(params))
  return 4 * size * case.num_devices // case.model_parallel


def measure(make_task: TaskFactory, case: Case, *, batch_size: int, seq_len: int,
            repeats: int, seed: int = 0) -> dict[str, Any]:
  """Times one case's train step and reads its per-device memory.

  Args:
    make_task: builds the task (with its sharding rules).
    case: catalog and mesh.
    batch_size, seq_len: global batch of random item sequences [B, L].
    repeats: timed steps, after the ahead-of-time compile and one warm-up step.
  Returns:
    The case, median step ms, examples/s and MB per device: parameters,
    optimizer state, the item tables among the parameters (those the rules
    split) and XLA's buffers of the step.
  """
  task = make_task(case.num_items, case.model_parallel)
  rng = np.random.default_rng(seed)
  data = {"seq": rng.integers(1, case.num_items + 1, (batch_size, seq_len), np.int32)}
  step = TrainStep(task, data, seed=seed, num_devices=case.num_devices,
                   model_parallel=case.model_parallel)
  device = step.trainer.mesh.devices.flat[0]
  tables = {path: leaf for path, leaf in
            traverse_util.flatten_dict(step.state.params, sep="/").items()
            if any(re.fullmatch(pattern, path) for pattern, _ in task.param_rules)}
  memory = {
      "param_mb": device_bytes(step.state.params, device) / _MB,
      "opt_state_mb": device_bytes(step.state.opt_state, device) / _MB,
      "item_table_param_mb": device_bytes(tables, device) / _MB,
      **xla_memory(step.compiled),
  }
  ms = median_ms(step, repeats)
  return {**dataclasses.asdict(case), "step_ms": ms,
          "examples_per_second": 1e3 * batch_size / ms, **memory}


def scale(make_task: TaskFactory, catalogs: Sequence[int], device_counts: Sequence[int],
          *, batch_size: int, seq_len: int, repeats: int,
          budget_bytes: int, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
  """`measure` for every case of `cases`, skipping those whose state would
  not fit `budget_bytes` of host memory (all fake devices share it)."""
  records = []
  for case in cases(catalogs, device_counts):
    task = make_task(case.num_items, case.model_parallel)
    need = host_bytes(jax.eval_shape(task.init, jax.random.key(0)), case)
    if need > budget_bytes:
      log(f"skip {case}: needs ~{need / 2**30:.1f} GiB > budget")
      records.append({**dataclasses.asdict(case), "skipped": "memory budget"})
      continue
    record = measure(make_task, case, batch_size=batch_size, seq_len=seq_len,
                     repeats=repeats)
    log(table([record], header=False))
    records.append(record)
  return records


def table(records: Sequence[dict[str, Any]], header: bool = True) -> str:
  """Text table, one row per measured case."""
  lines = [f"{'items':>9} {'devices':>7} {'model':>5} {'step ms':>9} {'param MB':>9} "
           f"{'opt MB':>9} {'table MB':>9} {'XLA temp MB':>11}"] if header else []
  for r in records:
    case = f"{r['num_items']:>9} {r['num_devices']:>7} {r['model_parallel']:>5}"
    if "skipped" in r:
      lines.append(f"{case} skipped ({r['skipped']})")
      continue
    temp = r["xla_temp_mb"] if r.get("xla_temp_mb") is not None else float("nan")
    lines.append(f"{case} {r['step_ms']:>9.1f} {r['param_mb']:>9.2f} "
                 f"{r['opt_state_mb']:>9.2f} {r['item_table_param_mb']:>9.2f} {temp:>11.2f}")
  return "\n".join(lines)


def plot(records: Sequence[dict[str, Any]], path: str) -> None:
  """Per-device parameter + optimizer MB and step time against devices: a line
  per catalog and layout (replicated dashed, split solid)."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

  measured = [r for r in records if "skipped" not in r]
  fig, (mem_ax, time_ax) = plt.subplots(1, 2, figsize=(10, 4.4))
  catalogs = sorted({r["num_items"] for r in measured})
  colors = dict(zip(catalogs, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
  for items, split in itertools.product(catalogs, (False, True)):
    mine = sorted((r for r in measured if r["num_items"] == items and
                   (r["model_parallel"] > 1) == split), key=lambda r: r["num_devices"])
    if split:  # one device is both layouts: start the split line there too
      mine = [r for r in measured if r["num_items"] == items and
              r["num_devices"] == 1] + mine
    if not mine:
      continue
    devices = [r["num_devices"] for r in mine]
    style = dict(color=colors[items], marker="o", ls="-" if split else "--",
                 label=f"{items:,} items, {'split' if split else 'replicated'}")
    mem_ax.plot(devices, [r["param_mb"] + r["opt_state_mb"] for r in mine], **style)
    time_ax.plot(devices, [r["step_ms"] for r in mine], **style)
  for ax, label in ((mem_ax, "params + Adam state per device (MB)"),
                    (time_ax, "train step (ms, median)")):
    ax.set(xscale="log", yscale="log", xlabel="devices", ylabel=label)
    ax.minorticks_off()
    devices = sorted({r["num_devices"] for r in measured})
    ax.set_xticks(devices, [str(d) for d in devices])
  fig.legend(*mem_ax.get_legend_handles_labels(), loc="lower center", ncol=3,
             fontsize="small")
  fig.tight_layout(rect=(0, 0.14, 1, 1))
  fig.savefig(path, dpi=90)
  plt.close(fig)


def write_scale_report(out_dir: str, records: list[dict[str, Any]],
                       settings: dict[str, Any]) -> dict[str, Any]:
  """Writes out_dir/bench_scale.json and bench_scale.png; returns the report."""
  return write_report(out_dir, "bench_scale", {"settings": settings, "results": records},
                      lambda path: plot(records, path))


class EpochSteps:
  """The trainer's train step on several batches of epoch 0, as `train` draws
  them (packed and bucketed as `config` says); calling it runs them all."""

  def __init__(self, task: Task, train: Arrays, config: TrainConfig, steps: Sequence[int]):
    self.trainer = Trainer(task, config)
    self.state = self.trainer.fresh_state(warm_start=True)
    self.batches = [self.trainer.train_batch(train, step) for step in steps]

  def __call__(self) -> dict[str, jax.Array]:
    with jax.set_mesh(self.trainer.mesh):
      for batch in self.batches:
        self.state, metrics = self.trainer.train_step(self.state, batch)
    return metrics


# Variant -> (scores whole, packed, bucketed), in the order they are timed:
# the step before packing, before chunked scores, and now.
VARIANTS = {"every position": (True, False, False), "packed, whole scores": (True, True, False),
            "packed": (False, True, False), "packed + bucketed": (False, True, True)}


def throughput(task: Task, whole_scores: Task, train: Arrays, *, batch_size: int,
               repeats: int, steps: int = 8, log: Callable[[str], None] = print
               ) -> list[dict[str, Any]]:
  """Training throughput of `task` on its real data, by variant (VARIANTS):
  every position, packed target positions (`seqrec.packing`) with and
  without chunked scores (`seqrec.losses.score_chunk`) and, where the task
  allows, packed and bucketed by length (`seqrec.bucketing`).

  `whole_scores` is the same task built with config.chunk_scores=False. The
  packed variants run
  `steps` batches spread evenly over epoch 0, as the trainer draws them
  (bucketed batches have different widths). The unpacked step does the same
  work for every batch (full width, every position), so it runs the first
  one. The variants are timed round-robin, after a call that compiles every
  shape; seconds per epoch are steps per epoch times the median step.

  Returns:
    One record per variant: its name, "packed", "bucketed", "chunked", median
    step ms, examples/s, s/epoch, the share of positions with a target and
    the mean batch width.
  """
  rows = len(next(iter(train.values())))
  per_epoch = steps_per_epoch(rows, batch_size)
  spread = sorted({int(s) for s in np.linspace(0, per_epoch - 1, steps)})
  runs = {}
  for name, (whole, pack, bucket) in VARIANTS.items():
    if bucket and not task.padding_invariant:
      continue
    config = TrainConfig(workdir="", num_steps=1, batch_size=batch_size, num_devices=1,
                         pack_targets=pack, bucket_lengths=bucket)
    runs[name] = EpochSteps(whole_scores if whole else task, train, config,
                            spread if pack else spread[:1])
  ms = interleaved_ms(runs, repeats)
  out = []
  for name, run in runs.items():
    whole, pack, bucket = VARIANTS[name]
    median = ms[name] / len(run.batches)
    seqs = [np.asarray(b["seq"]) for b in run.batches]
    share = None
    if task.loss_positions is not None:
      # Out of the positions at full width: a cut batch lost only padding columns.
      full = train["seq"].shape[1]
      counts = [(*task.loss_positions({"seq": s}), s.shape[1]) for s in seqs]
      share = float(sum(c.sum() for c, _, _ in counts)
                    / sum(len(c) * (w + full - cut) for c, w, cut in counts))
    record = {"variant": name, "packed": pack, "bucketed": bucket, "chunked": not whole,
              "step_ms": median,
              "examples_per_second": 1e3 * batch_size / median,
              "seconds_per_epoch": per_epoch * median / 1e3, "target_share": share,
              "mean_width": float(np.mean([s.shape[1] for s in seqs])),
              "batches_timed": len(run.batches)}
    log(f"  {name}: {median:.1f} ms/step, "
        f"{record['examples_per_second']:.0f} examples/s, "
        f"{record['seconds_per_epoch']:.1f} s/epoch, mean width {record['mean_width']:.1f}")
    out.append(record)
  return out

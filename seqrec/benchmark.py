"""Benchmark helpers: step timing, and how training scales with the item catalog.

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
import json
import os
import re
import statistics
import time
from typing import Any, Callable, Sequence

import jax
import numpy as np
from flax import traverse_util
from jax.sharding import PartitionSpec as P

from seqrec.task import Task
from seqrec.trainer import TrainConfig, Trainer

# (task, param_rules) for a catalog of `num_items` items whose tables are
# padded to a multiple of `vocab_multiple`.
TaskFactory = Callable[[int, int], tuple[Task, tuple[tuple[str, P], ...]]]
_MB = 2.0**20


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
    make_task: builds the task and its sharding rules.
    case: catalog and mesh.
    batch_size, seq_len: global batch of random item sequences [B, L].
    repeats: timed steps, after the ahead-of-time compile and one warm-up step.
  Returns:
    The case, median step ms, examples/s and MB per device: parameters,
    optimizer state, the item tables among the parameters (those the rules
    split) and XLA's argument / output / temp buffers of the step.
  """
  task, rules = make_task(case.num_items, case.model_parallel)
  config = TrainConfig(workdir="", num_steps=1, batch_size=batch_size, seed=seed,
                       num_devices=case.num_devices, model_parallel=case.model_parallel,
                       param_rules=rules)
  trainer = Trainer(task, config)
  state = trainer.fresh_state()
  rng = np.random.default_rng(seed)
  data = {"seq": rng.integers(1, case.num_items + 1, (batch_size, seq_len), np.int32)}
  batch = trainer.train_batch(data, 0)
  with jax.set_mesh(trainer.mesh):
    compiled = trainer.train_step.lower(state, batch).compile()
  device = trainer.mesh.devices.flat[0]
  tables = {path: leaf for path, leaf in
            traverse_util.flatten_dict(state.params, sep="/").items()
            if any(re.fullmatch(pattern, path) for pattern, _ in rules)}
  memory = {
      "param_mb": device_bytes(state.params, device) / _MB,
      "opt_state_mb": device_bytes(state.opt_state, device) / _MB,
      "item_table_param_mb": device_bytes(tables, device) / _MB,
  }
  stats = compiled.memory_analysis()
  if stats is not None:  # not every backend reports it
    memory.update(xla_argument_mb=stats.argument_size_in_bytes / _MB,
                  xla_output_mb=stats.output_size_in_bytes / _MB,
                  xla_temp_mb=stats.temp_size_in_bytes / _MB)

  def step():
    nonlocal state
    state, metrics = compiled(state, batch)  # the state is donated
    return metrics

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
    task, _ = make_task(case.num_items, case.model_parallel)
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
    temp = r.get("xla_temp_mb", float("nan"))
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


def write_report(out_dir: str, records: list[dict[str, Any]],
                 settings: dict[str, Any]) -> dict[str, Any]:
  """Writes out_dir/bench_scale.json and bench_scale.png; returns the report."""
  report = {"settings": settings, "device": str(jax.devices()[0].device_kind),
            "results": records}
  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.join(out_dir, "bench_scale.json"), "w") as f:
    json.dump(report, f, indent=1)
  plot(records, os.path.join(out_dir, "bench_scale.png"))
  return report

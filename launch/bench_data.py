r"""Benchmark of the data path: text file to first training step, and host cost per step.

  python -m launch.bench_data --out=/tmp/bench_data
  python -m launch.bench_data --out=/tmp/quick --sizes=1000000 --repeats=1

For every size, generates a `sasrec:` file of that many interactions under
--data_dir (kept and reused): users of 84 interactions on average, each
user's lines together and in time order as in Amazon Beauty, items drawn
Zipf-like from 20,000. Then, in a fresh process per measurement, it reads the
file, builds a GRU4Rec experiment on it (leave-one-out, max_len 51, batch
32, 256 sampled negatives, full-ranking evaluation rows) and runs the first training
step: "cold" with an empty data cache, "warm" with the entry the cold run
wrote (`seqrec.data_cache`); the XLA compilation cache under --data_dir is
warm for all but the first process; "warm_2_processes" is a warm run of two
processes on this machine (one CPU device each, `config.row_shards=2`, so each
reads only its half of the training rows). Each process reports its phases; its
peak RSS comes from `os.wait4` (of two processes, the larger). After the first
step it times, over --steps steps, the host's part of a step
(`Trainer.train_batch`: rows, gather, transfer), the step itself run
synchronously (wait for each step before building the next batch), and the
steps as the trainer runs them (two in flight) without and with the prefetch thread (`seqrec.prefetch`): ms per step and how long
the loop waits for its batch.

Writes OUT/bench_data.json and OUT/bench_data.png and prints a table.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app, flags

_OUT = flags.DEFINE_string("out", None, "Output directory.")
_SIZES = flags.DEFINE_list("sizes", ["1000000", "10000000", "25000000", "100000000"],
                           "Interactions per generated file.")
_DATA_DIR = flags.DEFINE_string("data_dir", "/tmp/seqrec_bench_data",
                                "Where the generated files are kept between runs.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Cold and warm processes per size (medians).")
_STEPS = flags.DEFINE_integer("steps", 20, "Timed steps after the first.")
_CHILD = flags.DEFINE_string("child", None, "Internal: measure this file, print JSON.")
_CHILD_CACHE = flags.DEFINE_string("child_cache", "", "Internal: the child's data cache.")
_CHILD_PROCESSES = flags.DEFINE_integer("child_processes", 1, "Internal: processes of the run.")
_CHILD_ID = flags.DEFINE_integer("child_id", 0, "Internal: this child's process id.")
_CHILD_COORDINATOR = flags.DEFINE_string("child_coordinator", "", "Internal: host:port.")

_USERS_PER = 84  # interactions per user, on average
_ITEMS = 20_000


def _generate(num: int, path: str) -> None:
  """Writes `num` "user item" lines: users in turn, items Zipf-like."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import pyarrow as pa  # pylint: disable=g-import-not-at-top
  import pyarrow.csv as pcsv  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(num)
  lengths = 3 + rng.geometric(1 / (_USERS_PER - 2), max(1, num // _USERS_PER))
  lengths = lengths[:np.searchsorted(np.cumsum(lengths), num) + 1]
  lengths[-1] -= lengths.sum() - num
  lengths = lengths[lengths > 0]
  user = np.repeat(np.arange(1, len(lengths) + 1), lengths)
  item = (rng.zipf(1.1, num) - 1) % _ITEMS + 1
  tmp = f"{path}.tmp-{os.getpid()}"
  pcsv.write_csv(pa.table({"user": user, "item": item}), tmp,
                 write_options=pcsv.WriteOptions(include_header=False, delimiter=" ",
                                                 quoting_style="none"))
  os.replace(tmp, path)


def _rss_mb() -> float:
  with open("/proc/self/status") as f:
    line = next(l for l in f if l.startswith("VmRSS:"))
  return int(line.split()[1]) / 1024


def _child(path: str, cache_dir: str) -> dict:
  """Phases of one process: read, build, first step, then per-step timings."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  from configs import cmnrec  # pylint: disable=g-import-not-at-top
  # pylint: disable-next=g-import-not-at-top
  from seqrec import distributed, experiment, registry, sources
  from seqrec.trainer import Trainer  # pylint: disable=g-import-not-at-top

  distributed.initialize(_CHILD_COORDINATOR.value or None, _CHILD_PROCESSES.value,
                         _CHILD_ID.value)

  # The step's compile is not the data path: every child after the first finds it here.
  jax.config.update("jax_compilation_cache_dir", os.path.join(_DATA_DIR.value, "xla"))
  config = cmnrec.get_config()
  # A cheap step (sampled softmax, small batch): the data path is what is measured.
  config.update(dict(dataset=f"sasrec:{path}", batch_size=32, loss="sampled",
                     num_negatives=256, select_metric="", row_shards=_CHILD_PROCESSES.value))
  config.model.update(dict(kind="gru4rec", embed_dim=64, hidden=128, dropout=0.3))
  baseline = _rss_mb()
  start = time.perf_counter()
  data = sources.load(config.dataset, cache_dir=cache_dir)
  read = time.perf_counter()
  built = registry.build(config, data)
  build = time.perf_counter()
  with tempfile.TemporaryDirectory() as workdir:
    loop = experiment.train_config(config, workdir, len(built.train["seq"]))
  trainer = Trainer(built.task, loop)
  state = trainer.fresh_state()
  state, metrics = trainer.run_step(state, built.train, 0)
  jax.block_until_ready(metrics)
  first = time.perf_counter()
  steps = range(1, 1 + _STEPS.value)
  host = []
  for step in steps:
    tick = time.perf_counter()
    jax.block_until_ready(trainer.train_batch(built.train, step))
    host.append(1e3 * (time.perf_counter() - tick))
  tick = time.perf_counter()
  for step in steps:
    state, metrics = trainer.run_step(state, built.train, step)
    jax.block_until_ready(metrics)
  synchronous = 1e3 * (time.perf_counter() - tick) / len(steps)
  in_loop = {}
  for depth in (0, 1):
    state, in_loop[depth] = _as_trained(trainer, state, built.train, steps, depth)
  arrays = sum(np.asarray(v).nbytes for split in [built.train, *built.eval.values()]
               for v in split.values())
  return {"read_s": read - start, "build_s": build - read, "first_step_s": first - build,
          "to_first_step_s": first - start, "baseline_rss_mb": baseline,
          "interactions_mb": sum(getattr(data, k).nbytes for k in ("user", "item", "time"))
                             / 2**20,
          "experiment_arrays_mb": arrays / 2**20, "train_rows": len(built.train["seq"]),
          "host_ms_per_step": statistics.median(host),
          "step_ms_synchronous": synchronous,
          **{f"{key}_prefetch{depth}": value for depth, timings in in_loop.items()
             for key, value in timings.items()}}


def _as_trained(trainer, state, data, steps: range, depth: int) -> tuple[object, dict]:
  """Steps run as `seqrec.trainer.train` runs them (two in flight, `depth`
  batches made ahead): the state after them, and ms per step and the median ms
  the loop waits for a batch."""
  import contextlib  # pylint: disable=g-import-not-at-top

  import jax  # pylint: disable=g-import-not-at-top

  from seqrec import prefetch  # pylint: disable=g-import-not-at-top

  waits, previous = [], None
  batches = prefetch.ahead(functools.partial(trainer.train_batch, data), steps, depth)
  start = time.perf_counter()
  with contextlib.closing(batches):
    for _ in steps:
      tick = time.perf_counter()
      batch = next(batches)
      waits.append(1e3 * (time.perf_counter() - tick))
      state, metrics = trainer.run_batch(state, batch)
      if previous is not None:
        jax.block_until_ready(previous)
      previous = metrics
  jax.block_until_ready(previous)
  return state, {"step_ms": 1e3 * (time.perf_counter() - start) / len(steps),
                 "host_wait_ms": statistics.median(waits)}


def _measure(path: str, cache_dir: str, processes: int = 1) -> dict:
  """One run of `processes` child processes (one CPU device each, the
  training rows in as many shards, `TrainConfig.row_shards`): process 0's
  report, with the largest peak RSS of the processes."""
  command = [sys.executable, "-m", "launch.bench_data", f"--child={path}",
             f"--child_cache={cache_dir}", f"--steps={_STEPS.value}",
             f"--data_dir={_DATA_DIR.value}", f"--child_processes={processes}"]
  if processes > 1:
    from seqrec import distributed  # pylint: disable=g-import-not-at-top
    command.append(f"--child_coordinator=127.0.0.1:{distributed.free_port()}")
  children = [subprocess.Popen(command + [f"--child_id={i}"], stdout=subprocess.PIPE, text=True)
              for i in range(processes)]
  outs = [child.stdout.read() for child in children]
  peaks = []
  for child in children:
    _, status, usage = os.wait4(child.pid, 0)
    if status:
      raise RuntimeError(f"{' '.join(command)} failed with status {status}")
    peaks.append(usage.ru_maxrss / 1024)
  report = json.loads(outs[0].strip().splitlines()[-1])
  report["peak_rss_mb"] = max(peaks)
  return report


def _plot(rows: list[dict], path: str) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
  sizes = [r["interactions"] for r in rows]
  for cache in ("cold", "warm"):
    left.plot(sizes, [r[cache]["to_first_step_s"] for r in rows], "o-", label=cache)
    right.plot(sizes, [r[cache]["peak_rss_mb"] / 1024 for r in rows], "o-", label=cache)
  right.plot(sizes, [r["cold"]["interactions_mb"] / 1024 for r in rows], "k--",
             label="interactions arrays")
  for axis, label in ((left, "seconds, text to first step"), (right, "peak RSS, GiB")):
    axis.set_xscale("log")
    axis.set_xlabel("interactions")
    axis.set_ylabel(label)
    axis.legend()
  fig.tight_layout()
  fig.savefig(path)


def main(argv: list[str]) -> None:
  del argv
  if _CHILD.value:
    print(json.dumps(_child(_CHILD.value, _CHILD_CACHE.value)))
    return
  if not _OUT.value:
    raise app.UsageError("--out is required")
  os.makedirs(_DATA_DIR.value, exist_ok=True)
  rows = []
  for size in map(int, _SIZES.value):
    path = os.path.join(_DATA_DIR.value, f"sasrec_{size}.txt")
    if not os.path.exists(path):
      _generate(size, path)
    cache_dir = os.path.join(_DATA_DIR.value, "cache")
    runs = {"cold": [], "warm": [], "warm_2_processes": []}
    for _ in range(_REPEATS.value):
      shutil.rmtree(cache_dir, ignore_errors=True)
      runs["cold"].append(_measure(path, cache_dir))
      runs["warm"].append(_measure(path, cache_dir))
      runs["warm_2_processes"].append(_measure(path, cache_dir, processes=2))
    row = {"interactions": size,
           **{cache: {key: statistics.median(r[key] for r in reports) for key in reports[0]}
              for cache, reports in runs.items()}}
    rows.append(row)
    cold, warm = row["cold"], row["warm"]
    print(f"{size:>11,} interactions: cold {cold['to_first_step_s']:6.1f} s "
          f"(read {cold['read_s']:.1f}, build {cold['build_s']:.1f}, first step "
          f"{cold['first_step_s']:.1f}), peak {cold['peak_rss_mb']:7.0f} MB = "
          f"{cold['peak_rss_mb'] / cold['interactions_mb']:.1f}x the interactions; warm "
          f"{warm['to_first_step_s']:5.1f} s, peak {warm['peak_rss_mb']:7.0f} MB; host "
          f"{cold['host_ms_per_step']:.2f} ms/step, the loop waits "
          f"{cold['host_wait_ms_prefetch0']:.2f} "
          f"ms for it without prefetch, {cold['host_wait_ms_prefetch1']:.2f} ms with; step "
          f"{cold['step_ms_synchronous']:.1f} ms synchronous, {cold['step_ms_prefetch0']:.1f} "
          f"ms as trained, {cold['step_ms_prefetch1']:.1f} ms with prefetch; 2 processes, "
          f"warm: peak {row['warm_2_processes']['peak_rss_mb']:.0f} MB per process = "
          f"{row['warm_2_processes']['peak_rss_mb'] / warm['peak_rss_mb']:.2f}x one", flush=True)
  from seqrec import benchmark  # pylint: disable=g-import-not-at-top
  benchmark.write_report(_OUT.value, "bench_data",
                         {"rows": rows, "repeats": _REPEATS.value, "steps": _STEPS.value,
                          "cpus": os.cpu_count()}, plot=lambda path: _plot(rows, path))


if __name__ == "__main__":
  app.run(main)

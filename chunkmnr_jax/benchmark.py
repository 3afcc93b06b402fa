"""Speed of the chunk framework: SRMN against its chunked variants and floors.

Times the trainer's training step (`seqrec.benchmark.TrainStep`: loss,
gradients, the Adam update) and an inference
pass (last-position scores) per model kind and number of slots m, side by side
in one process, and counts FLOPs analytically (XLA's `cost_analysis` counts a
scan body once, not once per iteration). `launch/bench_chunk.py` is the binary.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any, Callable, Sequence

import jax
import numpy as np

from chunkmnr_jax import dnc, family, models, schedule
from seqrec import benchmark, next_item


@dataclasses.dataclass(frozen=True)
class Shape:
  """A dataset's sequence shape: T input steps, |I| items."""

  name: str
  num_steps: int
  num_items: int


SHAPES = {"ml-latest": Shape("ml-latest", 99, 18226),
          "ml-10M": Shape("ml-10M", 49, 10670)}
KINDS = ("srmn", "pec", "tsc", "exc", "lstm4rec", "floor")
SLOTS = (2, 4, 6, 9, 12)
LOSSES = ("full", "sampled")
# Slack of the target bound on TSC's time (see `target_bounds`).
TARGET_SLACK = 1.15


def _matmul(rows: int, inner: int, cols: int) -> int:
  return 2 * rows * inner * cols


def _access_flops(c: models.MnrConfig) -> int:
  """One memory access of one sequence: matmuls and the main elementwise terms."""
  n, w, r = c.memory_slots, c.slot_width, c.read_heads
  content = lambda keys: _matmul(n, w, keys) + 2 * n * w + 2 * w * keys + 3 * n * keys
  return (content(1) + content(r)  # write and read lookups
          + 4 * n * w  # erase and add
          + 6 * n * n  # link and precedence
          + 2 * _matmul(n, n, r) + 5 * n * r  # forward, backward, mode mix
          + _matmul(w, n, r))  # read vectors


def forward_flops(c: models.MnrConfig, num_steps: int, *, last_only: bool,
                  head_columns: int) -> int:
  """Analytic forward FLOPs of one sequence (2 per multiply-add).

  Args:
    c: the model.
    num_steps: T.
    last_only: inference: y and the head at the last step only.
    head_columns: items scored per position (V, or 1 + negatives).
  """
  gates = 4 if c.cell == "lstm" else 3
  width = gates * c.hidden
  steps = c.write_steps(num_steps)
  lengths = schedule.chunk_lengths(steps) if steps else ()
  # A read vector is projected into the controller once per version it holds.
  read_versions = len(steps) if c.has_memory else (1 if c.read_width else 0)
  flops = (_matmul(num_steps, c.embed_dim, width)
           + _matmul(num_steps, c.hidden, width)
           + _matmul(read_versions, c.read_width, width))
  if c.has_memory:
    flops += len(steps) * (
        _matmul(1, c.hidden, dnc.interface_size(c.slot_width, c.read_heads))
        + _access_flops(c))
  if c.kind in models.CHUNKED_KINDS:
    for length in lengths:
      if length > 1:
        flops += (_matmul(length, c.hidden, c.attention_dim)
                  + _matmul(1, c.read_width, c.attention_dim)
                  + _matmul(length, c.attention_dim, 1) + 2 * length * c.hidden)
  positions = 1 if last_only else num_steps
  flops += _matmul(positions, c.hidden, c.hidden) + _matmul(positions, c.hidden,
                                                           head_columns)
  if c.read_width:
    flops += _matmul(1 if last_only else read_versions + 1, c.read_width, c.hidden)
  return flops


def step_flops(c: models.MnrConfig, num_steps: int, batch_size: int,
               loss: str) -> dict[str, int]:
  """Per-batch FLOPs: training (forward + backward ~ 3x forward) and inference."""
  head = c.num_items + 1 if loss == "full" else 1 + num_negatives(c)
  train = 3 * forward_flops(c, num_steps, last_only=False, head_columns=head)
  infer = forward_flops(c, num_steps, last_only=True, head_columns=c.num_items + 1)
  return {"train": batch_size * train, "infer": batch_size * infer}


def num_negatives(config: models.MnrConfig) -> int:
  """The sampled softmax's negatives: the family's default share of the items."""
  return next_item.num_negatives(config.num_items, None, family.NEGATIVE_FRACTION)


def _batch(shape: Shape, batch_size: int, seed: int) -> dict[str, np.ndarray]:
  """Full-length random sequences: padding would not change the work done."""
  rng = np.random.default_rng(seed)
  return {"seq": rng.integers(1, shape.num_items + 1, (batch_size, shape.num_steps + 1),
                              dtype=np.int32)}


def train_step_fn(config: models.MnrConfig, loss: str,
                  batch: dict[str, np.ndarray]) -> benchmark.TrainStep:
  """The trainer's compiled training step of `config` on `batch`, on one device."""
  task = next_item.make_task(family.next_item_model(config), loss=loss,
                             negatives=num_negatives(config))
  return benchmark.TrainStep(task, batch)


def infer_fn(config: models.MnrConfig,
             batch: dict[str, np.ndarray]) -> Callable[[], jax.Array]:
  """A closure computing the jitted last-position scores [B, V]."""
  model = models.MemoryRecommender(config)
  params = family.next_item_model(config).init(jax.random.key(0))
  infer = jax.jit(lambda p, seq: models.last_scores(model, p, seq[:, :-1]))
  seq = jax.device_put(batch["seq"])
  return lambda: infer(params, seq)


def run(shapes: Sequence[Shape], kinds: Sequence[str], slots: Sequence[int],
        losses: Sequence[str], batch_size: int, repeats: int,
        base: models.MnrConfig, log: Callable[[str], None] = print
        ) -> list[dict[str, Any]]:
  """Times every (shape, m, kind, phase): training per loss, and inference.

  All kinds of one (shape, m) are timed together, round-robin
  (`interleaved_ms`), so the speedups and the target bound compare times
  taken under the same machine load. Kinds without memory do not depend on m
  but are timed again beside every m, for the same reason.

  Args:
    shapes, kinds, slots, losses: what to time.
    batch_size: sequences per step.
    repeats: timed rounds per (shape, m) (after a warm-up call each).
    base: sizes shared by every model (its kind and num_items are replaced).
    log: progress sink.
  Returns:
    One record per (shape, kind, m, phase), phase "train/<loss>" or "infer":
    {"shape", "kind", "m", "phase", "ms", "gflops"}.
  """
  records = []
  for shape in shapes:
    batch = _batch(shape, batch_size, seed=0)
    for m in slots:
      fns, flops = {}, {}
      for kind in kinds:
        config = dataclasses.replace(base, kind=kind, num_items=shape.num_items,
                                     memory_slots=m)
        for loss in losses:
          fns[kind, f"train/{loss}"] = train_step_fn(config, loss, batch)
          flops[kind, f"train/{loss}"] = step_flops(config, shape.num_steps,
                                                    batch_size, loss)["train"]
        fns[kind, "infer"] = infer_fn(config, batch)
        flops[kind, "infer"] = step_flops(config, shape.num_steps, batch_size,
                                          "full")["infer"]
      for (kind, phase), ms in benchmark.interleaved_ms(fns, repeats).items():
        log(f"{shape.name} {kind} m={m} {phase}: {ms:.2f} ms")
        records.append({"shape": shape.name, "kind": kind, "m": m, "phase": phase,
                        "ms": ms, "gflops": flops[kind, phase] / 1e9})
  return records


def _index(records: Sequence[dict[str, Any]]) -> dict[tuple, float]:
  return {(r["shape"], r["kind"], r["m"], r["phase"]): r["ms"] for r in records}


def add_speedups(records: list[dict[str, Any]]) -> None:
  """Adds "speedup_over_srmn" (time(srmn) / time(kind), same shape, m, phase)."""
  ms = _index(records)
  for r in records:
    srmn = ms.get((r["shape"], "srmn", r["m"], r["phase"]))
    if srmn is not None:
      r["speedup_over_srmn"] = srmn / r["ms"]


def target_bounds(records: Sequence[dict[str, Any]],
                  num_steps: dict[str, int]) -> list[dict[str, Any]]:
  """The honest target: TSC may skip only the memory work of T - m steps.

  time(tsc) <= 1.15 * [floor + (m / T) * (time(srmn) - floor)], where the floor
  is the controller alone with the same input width and no memory.
  """
  ms = _index(records)
  out = []
  for (shape, kind, m, phase), tsc in sorted(ms.items()):
    if kind != "tsc":
      continue
    srmn = ms.get((shape, "srmn", m, phase))
    floor = ms.get((shape, "floor", m, phase))
    if srmn is None or floor is None:
      continue
    bound = TARGET_SLACK * (floor + m / num_steps[shape] * (srmn - floor))
    out.append({"shape": shape, "m": m, "phase": phase, "tsc_ms": tsc,
                "srmn_ms": srmn, "floor_ms": floor, "bound_ms": bound,
                "holds": tsc <= bound})
  return out


def table(records: Sequence[dict[str, Any]]) -> str:
  """A text table: one row per record."""
  lines = [f"{'shape':10} {'kind':9} {'m':>3} {'phase':14} {'ms':>10} "
           f"{'GFLOP':>9} {'x srmn':>7}"]
  for r in records:
    speedup = r.get("speedup_over_srmn")
    lines.append(f"{r['shape']:10} {r['kind']:9} {r['m']:>3} {r['phase']:14} "
                 f"{r['ms']:>10.2f} {r['gflops']:>9.3f} "
                 f"{'' if speedup is None else f'{speedup:7.2f}'}")
  return "\n".join(lines)


def plot(records: Sequence[dict[str, Any]], path: str) -> None:
  """Speedup over SRMN against m: a row per shape, a column per phase, a line
  per kind."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

  shapes = sorted({r["shape"] for r in records})
  phases = sorted({r["phase"] for r in records})
  fig, axes = plt.subplots(len(shapes), len(phases), squeeze=False,
                           figsize=(4.5 * len(phases), 3.5 * len(shapes)))
  for ax, (shape, phase) in zip(axes.flat, itertools.product(shapes, phases)):
    mine = [r for r in records if (r["shape"], r["phase"]) == (shape, phase)
            and "speedup_over_srmn" in r and r["kind"] != "srmn"]
    for kind in sorted({r["kind"] for r in mine}):
      points = sorted((r["m"], r["speedup_over_srmn"]) for r in mine
                      if r["kind"] == kind)
      ax.plot(*zip(*points), marker="o", label=kind)
    ax.axhline(1.0, color="gray", lw=0.8)
    ax.set(title=f"{shape} {phase}", xlabel="m (slots = chunks)",
           ylabel="speedup over SRMN")
    if mine:  # nothing to compare without SRMN
      ax.legend(fontsize="small")
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def write_report(out_dir: str, records: list[dict[str, Any]],
                 shapes: Sequence[Shape], settings: dict[str, Any]) -> dict[str, Any]:
  """Writes out_dir/bench_chunk.json and bench_chunk.png; returns the report."""
  add_speedups(records)
  return benchmark.write_report(out_dir, "bench_chunk", {
      "settings": settings,
      "flops": "analytic, per batch; training = 3 x forward",
      "results": records,
      "target": target_bounds(records, {s.name: s.num_steps for s in shapes}),
  }, lambda path: plot(records, path))

"""Cost of one fine-tuning step: PeterRec against FineAll / FineCLS (and others).

For every method the step is the trainer's own (`seqrec.benchmark.TrainStep`
around `finetune.make_finetune_task`), on a random backbone of a given size or
a pretrained one. It is compiled ahead of time (which also gives XLA's memory
analysis), run `warmup` times, then timed `repeats` times. `launch/bench_finetune.py`
is the binary.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Any, Callable, Sequence

import jax
import numpy as np

from peterrec_jax import finetune, nextitnet
from seqrec import benchmark, optim
from seqrec.errors import InputError
from seqrec.task import Params

NAME = "bench_finetune"


@dataclasses.dataclass(frozen=True)
class Settings:
  """What `run` measures; `check` raises InputError naming the bad flag."""

  methods: tuple[str, ...]
  patches: tuple[str, ...] = ("serial",)
  kind: str = "recommendation"
  num_labels: int = 1000
  batch_size: int = 64
  max_len: int = 50
  repeats: int = 10
  warmup: int = 2
  seed: int = 0

  def check(self) -> "Settings":
    bad = [m for m in self.methods if m not in finetune.METHODS]
    if bad or not self.methods:
      raise InputError(f"--methods: unknown {bad}; expected {list(finetune.METHODS)}")
    bad = [p for p in self.patches if p not in nextitnet.PATCH_KINDS]
    if bad or ("peterrec" in self.methods and not self.patches):
      raise InputError(f"--patches: unknown {bad}; expected {list(nextitnet.PATCH_KINDS)}")
    for name in ("num_labels", "batch_size", "max_len", "repeats"):
      if getattr(self, name) < (2 if name == "num_labels" else 1):
        raise InputError(f"--{name}={getattr(self, name)} is too small")
    if self.warmup < 0:
      raise InputError(f"--warmup={self.warmup} must be >= 0")
    return self

  def variants(self) -> list[tuple[str, str | None]]:
    """(method, patch) pairs: one per patch kind for peterrec, one otherwise."""
    out = []
    for method in self.methods:
      out += [(method, p) for p in self.patches] if method == "peterrec" else [(method, None)]
    return out


def random_backbone(config: nextitnet.NextItNetConfig, seed: int) -> Params:
  """Parameters of an unpatched trunk (plus an ignored head), as a stand-in for a
  pretrained checkpoint: `restore_pretrained` takes the trunk leaves by path."""
  task = finetune.make_finetune_task(config, "classification", 2, method="scratch")
  return jax.device_get(task.init(jax.random.key(seed)))


def _batch(config: nextitnet.NextItNetConfig, settings: Settings) -> dict[str, np.ndarray]:
  """One batch of random left-padded sequences (lengths 1..max_len) and labels."""
  rng = np.random.default_rng(settings.seed)
  rows, length = settings.batch_size, settings.max_len
  seq = rng.integers(1, config.num_items + 1, (rows, length)).astype(np.int32)
  lengths = rng.integers(1, length + 1, rows)
  seq[np.arange(length)[None, :] < (length - lengths)[:, None]] = 0
  low = 0 if settings.kind == "classification" else 1
  label = rng.integers(low, settings.num_labels + low, rows).astype(np.int32)
  return {"seq": seq, "label": label}


def bench_one(config: nextitnet.NextItNetConfig, pretrained: Callable[[], Params],
              method: str, patch: str | None, settings: Settings) -> dict[str, Any]:
  """Compiles and times the train step of one method; returns its record."""
  config = dataclasses.replace(config, patch=patch, patch_dim=None)
  task = finetune.make_finetune_task(config, settings.kind, settings.num_labels,
                                     method=method, pretrained=pretrained)
  step = benchmark.TrainStep(task, _batch(config, settings), seed=settings.seed)
  trainable, _ = optim.split(step.state.params, step.trainer.labels)
  record = {
      "method": method, "patch": patch,
      "trainable_params": optim.count(trainable),
      "total_params": optim.count(step.state.params),
      "optimizer_state_bytes": optim.nbytes(step.state.opt_state),
      "param_bytes": optim.nbytes(step.state.params),
      "compile_seconds": step.compile_seconds,
      "memory": benchmark.xla_memory(step.compiled),
  }
  for _ in range(settings.warmup):
    jax.block_until_ready(step())
  times = []
  for _ in range(settings.repeats):
    tick = time.perf_counter()
    jax.block_until_ready(step())
    times.append(1e3 * (time.perf_counter() - tick))
  loss = float(step()["loss"])
  if not np.isfinite(loss):
    raise RuntimeError(f"{method}: loss {loss} after the timed steps")
  median = statistics.median(times)
  record.update(step_ms_median=median, step_ms_min=min(times), step_ms_max=max(times),
                examples_per_second=1e3 * settings.batch_size / median, final_loss=loss)
  return record


def add_ratios(records: list[dict], reference: str = "fineall") -> None:
  """Adds each record's time, trainable params and optimizer bytes relative to
  `reference` (when it was measured)."""
  ref = next((r for r in records if r["method"] == reference), None)
  if ref is None:
    return
  for r in records:
    r[f"vs_{reference}"] = {
        "step_time": r["step_ms_median"] / ref["step_ms_median"],
        "trainable_params": r["trainable_params"] / ref["trainable_params"],
        "optimizer_state_bytes": r["optimizer_state_bytes"] / max(
            ref["optimizer_state_bytes"], 1)}


def run(config: nextitnet.NextItNetConfig, pretrained: Callable[[], Params],
        settings: Settings) -> list[dict]:
  records = [bench_one(config, pretrained, m, p, settings) for m, p in settings.variants()]
  add_ratios(records)
  return records


def _size(mb: float | None) -> str:
  """MB as KiB/MiB/GiB text; "-" when unknown."""
  if mb is None:
    return "-"
  for unit, scale in (("GiB", 1024.0), ("MiB", 1.0)):
    if mb >= scale:
      return f"{mb / scale:.1f} {unit}"
  return f"{1024 * mb:.1f} KiB"


def table(records: Sequence[dict]) -> str:
  header = ("| method | trainable params | optimizer state | median step ms | "
            "examples/s | XLA arguments | XLA temp | XLA peak | compile s |")
  lines = [header, "|" + "---|" * 9]
  for r in records:
    name = r["method"] + (f" ({r['patch']})" if r["patch"] else "")
    share = r["trainable_params"] / r["total_params"]
    mem = r["memory"]
    lines.append(
        f"| {name} | {r['trainable_params']:,} ({100 * share:.1f}%) | "
        f"{_size(r['optimizer_state_bytes'] / 2**20)} | {r['step_ms_median']:.1f} | "
        f"{r['examples_per_second']:.0f} | {_size(mem['xla_argument_mb'])} | "
        f"{_size(mem['xla_temp_mb'])} | {_size(mem['xla_peak_memory_mb'])} | "
        f"{r['compile_seconds']:.1f} |")
  return "\n".join(lines)


def write_report(out: str, records: list[dict], config: nextitnet.NextItNetConfig,
                 settings: Settings, pretrained_dir: str | None) -> dict:
  """Writes out/bench_finetune.json; returns the report."""
  return benchmark.write_report(out, NAME, {
      "config": dataclasses.asdict(config), "settings": dataclasses.asdict(settings),
      "pretrained": pretrained_dir, "results": records})

r"""Cost of one fine-tuning step: PeterRec against FineAll / FineCLS (and others).

  python -m launch.bench_finetune --out=/tmp/bench_ft
  python -m launch.bench_finetune --out=/tmp/quick --channels=16 --dilations=1,2 \
      --num_items=200 --num_labels=20 --batch_size=8 --max_len=10 --repeats=2

For every method the jitted train step is the real one: `seqrec.trainer.Trainer`
around `peterrec_jax.finetune.make_finetune_task`, on a randomly initialised
backbone of the given size (or the backbone of a `launch.pretrain` workdir with
--pretrained). The step is compiled once (ahead of time, which also gives
`compiled.memory_analysis()`), run --warmup times, then timed --repeats times
with `jax.block_until_ready`; the median is reported. Writes
OUT/bench_finetune.json (per method: median/min/max step ms, examples/s,
trainable and total parameters, optimizer-state bytes, XLA memory statistics)
and prints a table.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import tempfile
import time
from typing import Any, Sequence

import jax
import numpy as np
from absl import app, flags

from launch import backbone
from peterrec_jax import finetune, nextitnet
from seqrec import checkpoint, optim
from seqrec.errors import InputError
from seqrec.trainer import TrainConfig, Trainer

_OUT = flags.DEFINE_string("out", None, "Output directory.", required=True)
_METHODS = flags.DEFINE_list(
    "methods", ["peterrec", "fineall", "finecls"],
    f"Fine-tuning methods, from {list(finetune.METHODS)}.")
_PATCHES = flags.DEFINE_list(
    "patches", ["serial", "parallel"],
    f"Patch kinds benchmarked for peterrec, from {list(nextitnet.PATCH_KINDS)}.")
_PRETRAINED = flags.DEFINE_string(
    "pretrained", None, "Workdir of `launch.pretrain` whose backbone (config and "
    "parameters) to fine-tune; unset: a random backbone of --num_items, --channels, "
    "--dilations, --kernel_size.")
_NUM_ITEMS = flags.DEFINE_integer("num_items", 20000, "Source catalogue (random backbone).")
_CHANNELS = flags.DEFINE_integer("channels", 256, "C (random backbone).")
_DILATIONS = flags.DEFINE_list("dilations", ["1", "4"] * 4,
                               "Dilation of each residual block (random backbone).")
_KERNEL_SIZE = flags.DEFINE_integer("kernel_size", 3, "Convolution width (random backbone).")
_KIND = flags.DEFINE_enum("kind", "recommendation", list(finetune.KINDS),
                          "Task head: classes, or scores over a target-item table.")
_NUM_LABELS = flags.DEFINE_integer(
    "num_labels", 1000, "Classes (classification) or target items (recommendation).")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 64, "Sequences per step.")
_MAX_LEN = flags.DEFINE_integer("max_len", 50, "Source items per sequence (before [CLS]).")
_REPEATS = flags.DEFINE_integer("repeats", 10, "Timed steps per method.")
_WARMUP = flags.DEFINE_integer("warmup", 2, "Untimed steps after compiling.")
_SEED = flags.DEFINE_integer("seed", 0, "Initialisation and batch contents.")

JSON_NAME = "bench_finetune.json"
MEMORY_FIELDS = ("argument_size_in_bytes", "output_size_in_bytes", "alias_size_in_bytes",
                 "temp_size_in_bytes", "generated_code_size_in_bytes",
                 "peak_memory_in_bytes")


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


def random_backbone(config: nextitnet.NextItNetConfig, seed: int) -> Any:
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


def _memory(compiled: Any) -> dict[str, int | None]:
  try:
    stats = compiled.memory_analysis()
  except Exception:  # not every backend implements it
    stats = None
  return {f: (None if stats is None or getattr(stats, f, None) is None
              else int(getattr(stats, f))) for f in MEMORY_FIELDS}


def bench_one(config: nextitnet.NextItNetConfig, pretrained: Any, method: str,
              patch: str | None, settings: Settings) -> dict[str, Any]:
  """Compiles and times the train step of one method; returns its record."""
  config = dataclasses.replace(config, patch=patch, patch_dim=None)
  task = finetune.make_finetune_task(
      config, settings.kind, settings.num_labels, method=method,
      pretrained=pretrained if finetune.METHODS[method].pretrained else None)
  with tempfile.TemporaryDirectory() as workdir:  # the Trainer never writes to it
    train_config = TrainConfig(workdir=workdir, num_steps=1, batch_size=settings.batch_size,
                               seed=settings.seed, num_devices=1)
    trainer = Trainer(task, train_config)
  state = trainer.fresh_state()
  data = _batch(config, settings)
  batch = trainer.train_batch(data, 0)
  tick = time.perf_counter()
  compiled = trainer.train_step.lower(state, batch).compile()
  compile_seconds = time.perf_counter() - tick
  trainable, _ = optim.split(state.params, trainer.labels)
  record = {
      "method": method, "patch": patch,
      "trainable_params": optim.count(trainable),
      "total_params": optim.count(state.params),
      "optimizer_state_bytes": optim.nbytes(state.opt_state),
      "param_bytes": optim.nbytes(state.params),
      "compile_seconds": compile_seconds,
      "memory": _memory(compiled),
  }
  for _ in range(settings.warmup):
    state, metrics = compiled(state, batch)  # the state is donated: rebind it
    jax.block_until_ready((state, metrics))
  times = []
  for _ in range(settings.repeats):
    tick = time.perf_counter()
    state, metrics = compiled(state, batch)
    jax.block_until_ready((state, metrics))
    times.append(time.perf_counter() - tick)
  loss = float(metrics["loss"])
  if not np.isfinite(loss):
    raise RuntimeError(f"{method}: loss {loss} after the timed steps")
  median = statistics.median(times)
  record.update(step_ms_median=1e3 * median, step_ms_min=1e3 * min(times),
                step_ms_max=1e3 * max(times), examples_per_second=settings.batch_size / median,
                final_loss=loss)
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


def run(config: nextitnet.NextItNetConfig, pretrained: Any, settings: Settings
        ) -> list[dict]:
  records = [bench_one(config, pretrained, m, p, settings) for m, p in settings.variants()]
  add_ratios(records)
  return records


def _size(n: int | None) -> str:
  """Bytes as B/KiB/MiB/GiB text; "-" when unknown."""
  if n is None:
    return "-"
  for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
    if n >= scale:
      return f"{n / scale:.1f} {unit}"
  return f"{n} B"


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
        f"{_size(r['optimizer_state_bytes'])} | {r['step_ms_median']:.1f} | "
        f"{r['examples_per_second']:.0f} | {_size(mem['argument_size_in_bytes'])} | "
        f"{_size(mem['temp_size_in_bytes'])} | {_size(mem['peak_memory_in_bytes'])} | "
        f"{r['compile_seconds']:.1f} |")
  return "\n".join(lines)


def write_report(out: str, records: list[dict], config: nextitnet.NextItNetConfig,
                 settings: Settings, pretrained_dir: str | None) -> dict:
  device = jax.devices()[0]
  report = {
      "config": dataclasses.asdict(config), "settings": dataclasses.asdict(settings),
      "pretrained": pretrained_dir,
      "device": {"platform": device.platform, "kind": device.device_kind,
                 "count": jax.device_count()},
      "jax_version": jax.__version__, "results": records,
  }
  os.makedirs(out, exist_ok=True)
  with open(os.path.join(out, JSON_NAME), "w") as f:
    json.dump(report, f, indent=2)
  return report


def _setup() -> tuple[nextitnet.NextItNetConfig, Any, Settings]:
  settings = Settings(
      methods=tuple(_METHODS.value), patches=tuple(_PATCHES.value), kind=_KIND.value,
      num_labels=_NUM_LABELS.value, batch_size=_BATCH_SIZE.value, max_len=_MAX_LEN.value,
      repeats=_REPEATS.value, warmup=_WARMUP.value, seed=_SEED.value).check()
  if _PRETRAINED.value:
    config, _, _ = backbone.load(_PRETRAINED.value)
    pretrained = checkpoint.restore_params(_PRETRAINED.value)
    return dataclasses.replace(config, patch=None, patch_dim=None), pretrained, settings
  try:
    dilations = tuple(int(d) for d in _DILATIONS.value)
  except ValueError as e:
    raise InputError(f"--dilations: {e}") from None
  config = nextitnet.NextItNetConfig(num_items=_NUM_ITEMS.value, channels=_CHANNELS.value,
                                     dilations=dilations,
                                     kernel_size=_KERNEL_SIZE.value).validate()
  return config, random_backbone(config, settings.seed), settings


def main(argv: list[str]) -> None:
  del argv
  try:
    config, pretrained, settings = _setup()
  except InputError as e:
    raise app.UsageError(str(e)) from None
  records = run(config, pretrained, settings)
  write_report(_OUT.value, records, config, settings, _PRETRAINED.value)
  device = jax.devices()[0]
  print(f"C={config.channels}, {len(config.dilations)} blocks, {config.num_items} items, "
        f"{settings.kind} head with {settings.num_labels} labels, batch "
        f"{settings.batch_size}, L {settings.max_len}, on {device.device_kind}")
  print(table(records))
  print(f"wrote {os.path.join(_OUT.value, JSON_NAME)}")


if __name__ == "__main__":
  app.run(main)

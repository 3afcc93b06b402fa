r"""Benchmark of the chunk framework: training and inference time per model.

  python -m launch.bench_chunk --out=/tmp/bench
  python -m launch.bench_chunk --out=/tmp/quick --shapes=ml-10M --slots=2 \
      --kinds=srmn,tsc,floor --losses=sampled --repeats=2 --batch_size=8

Model sizes come from the CmnRec config (default configs/cmnrec.py: the
paper's E=128, h=256, W=256, R=3), e.g. `--config.model.scan_unroll=2`; its
kind and slots are replaced by --kinds and --slots. Writes OUT/bench_chunk.json
(median ms, analytic FLOPs, speedup over SRMN, the target bound on TSC) and
OUT/bench_chunk.png, and prints a table.
"""

import dataclasses

from absl import app
from absl import flags

from chunkmnr_jax import benchmark
from chunkmnr_jax import models
from launch import common
from seqrec.errors import InputError

_OUT = flags.DEFINE_string("out", None, "Output directory.", required=True)
_SHAPES = flags.DEFINE_list("shapes", list(benchmark.SHAPES),
                            f"Dataset shapes, from {list(benchmark.SHAPES)}.")
_KINDS = flags.DEFINE_list("kinds", list(benchmark.KINDS), "Model kinds.")
_SLOTS = flags.DEFINE_list("slots", [str(m) for m in benchmark.SLOTS],
                           "Numbers of memory slots m.")
_LOSSES = flags.DEFINE_list("losses", list(benchmark.LOSSES), "Training losses.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Sequences per step.")
_REPEATS = flags.DEFINE_integer(
    "repeats", 5, "Timed rounds per (shape, m); each round calls every kind once.")


def _settings() -> dict:
  """Flags -> checked plain values; InputError names the bad flag."""
  unknown = [s for s in _SHAPES.value if s not in benchmark.SHAPES]
  if unknown:
    raise InputError(f"--shapes: unknown {unknown}; expected {list(benchmark.SHAPES)}")
  bad = [k for k in _KINDS.value if k not in benchmark.KINDS]
  if bad:
    raise InputError(f"--kinds: unknown {bad}; expected {list(benchmark.KINDS)}")
  bad = [l for l in _LOSSES.value if l not in benchmark.LOSSES]
  if bad:
    raise InputError(f"--losses: unknown {bad}; expected {list(benchmark.LOSSES)}")
  try:
    slots = sorted({int(m) for m in _SLOTS.value})
  except ValueError as e:
    raise InputError(f"--slots: {e}") from None
  shortest = min(benchmark.SHAPES[s].num_steps for s in _SHAPES.value)
  if not slots or slots[0] < 1 or slots[-1] > shortest:
    raise InputError(f"--slots={_SLOTS.value}: each m must be in 1..{shortest}")
  for flag in (_BATCH_SIZE, _REPEATS):
    if flag.value < 1:
      raise InputError(f"--{flag.name}={flag.value} must be at least 1")
  return {"shapes": _SHAPES.value, "kinds": _KINDS.value, "slots": slots,
          "losses": _LOSSES.value, "batch_size": _BATCH_SIZE.value,
          "repeats": _REPEATS.value}


def main(argv):
  del argv
  try:
    settings = _settings()
    base = models.MnrConfig(num_items=1, **common.CONFIG.value.model.to_dict())
  except InputError as e:
    raise app.UsageError(str(e)) from None
  shapes = [benchmark.SHAPES[s] for s in settings["shapes"]]
  records = benchmark.run(shapes, settings["kinds"], settings["slots"],
                          settings["losses"], settings["batch_size"],
                          settings["repeats"], base)
  report = benchmark.write_report(_OUT.value, records, shapes,
                                  {**settings, "config": dataclasses.asdict(base)})
  print(benchmark.table(report["results"]))
  for t in report["target"]:
    print(f"target {t['shape']} m={t['m']} {t['phase']}: tsc {t['tsc_ms']:.2f} ms "
          f"<= {t['bound_ms']:.2f} ms: {t['holds']}")


if __name__ == "__main__":
  app.run(main)

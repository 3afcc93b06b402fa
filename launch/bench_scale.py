r"""Benchmark of model parallelism: step time and per-device memory vs catalog size.

  python -m launch.bench_scale --out=/tmp/bench_scale
  python -m launch.bench_scale --out=/tmp/quick --catalogs=10000 --devices=1,4 \
      --repeats=2

Trains a small causal NextItNet with the sampled softmax on random sequences,
for every catalog size on 1, 2, 4, 8 (fake CPU) devices, with the item tables
replicated (--model_parallel=1) and split over every device (--model_parallel
= devices). Writes OUT/bench_scale.json and OUT/bench_scale.png and prints a
table (see `seqrec.benchmark`).
"""

import os

# Fake CPU devices must be requested before JAX initialises its backends.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")

from absl import app, flags  # noqa: E402

from peterrec_jax import nextitnet, pretrain  # noqa: E402
from seqrec import benchmark, precision  # noqa: E402
from seqrec.errors import InputError  # noqa: E402

_OUT = flags.DEFINE_string("out", None, "Output directory.", required=True)
_CATALOGS = flags.DEFINE_list("catalogs", ["10000", "100000", "1000000"],
                              "Catalog sizes (number of items).")
_DEVICES = flags.DEFINE_list("devices", ["1", "2", "4", "8"], "Device counts.")
_CHANNELS = flags.DEFINE_integer("channels", 32, "NextItNet width C.")
_DILATIONS = flags.DEFINE_list("dilations", ["1", "2"], "Dilation of each block.")
_NUM_NEGATIVES = flags.DEFINE_integer("num_negatives", 1024,
                                      "Shared negatives of the sampled softmax.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Global batch (sequences).")
_SEQ_LEN = flags.DEFINE_integer("seq_len", 20, "Sequence length L.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed steps per case (after one warm-up).")
_DTYPE = flags.DEFINE_enum("dtype", "float32", list(precision.DTYPES), "Compute dtype.")
_MEMORY_BUDGET_GB = flags.DEFINE_float(
    "memory_budget_gb", 6.0, "Skip cases whose state would need more host memory "
    "(all fake devices share the host's).")


def _ints(flag: flags.FlagHolder, low: int) -> list[int]:
  try:
    values = sorted({int(v) for v in flag.value})
  except ValueError as e:
    raise InputError(f"--{flag.name}: {e}") from None
  if not values or values[0] < low:
    raise InputError(f"--{flag.name}={flag.value}: need integers >= {low}")
  return values


def main(argv):
  del argv
  try:
    catalogs, devices = _ints(_CATALOGS, 2), _ints(_DEVICES, 1)
    dilations = tuple(_ints(_DILATIONS, 1))
    for flag in (_BATCH_SIZE, _SEQ_LEN, _REPEATS, _NUM_NEGATIVES):
      if flag.value < 1:
        raise InputError(f"--{flag.name}={flag.value} must be at least 1")
    if _BATCH_SIZE.value % max(devices):
      raise InputError(f"--batch_size={_BATCH_SIZE.value} must divide over "
                       f"{max(devices)} devices")
  except InputError as e:
    raise app.UsageError(str(e)) from None

  def make_task(num_items: int, vocab_multiple: int):
    config = nextitnet.NextItNetConfig(
        num_items=num_items, channels=_CHANNELS.value, dilations=dilations,
        vocab_multiple=vocab_multiple, dtype=_DTYPE.value)
    return pretrain.make_pretrain_task(config, "causal", "sampled",
                                       negatives=_NUM_NEGATIVES.value)

  records = benchmark.scale(
      make_task, catalogs, devices, batch_size=_BATCH_SIZE.value, seq_len=_SEQ_LEN.value,
      repeats=_REPEATS.value, budget_bytes=int(_MEMORY_BUDGET_GB.value * 2**30))
  settings = {"model": "nextitnet causal, sampled softmax", "catalogs": catalogs,
              "devices": devices, "channels": _CHANNELS.value,
              "dilations": list(dilations), "num_negatives": _NUM_NEGATIVES.value,
              "batch_size": _BATCH_SIZE.value, "seq_len": _SEQ_LEN.value,
              "repeats": _REPEATS.value, "dtype": _DTYPE.value}
  benchmark.write_scale_report(_OUT.value, records, settings)
  print(benchmark.table(records))
  print(f"wrote {os.path.join(_OUT.value, 'bench_scale.json')} and bench_scale.png")


if __name__ == "__main__":
  app.run(main)

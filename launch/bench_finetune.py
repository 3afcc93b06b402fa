r"""Cost of one fine-tuning step: PeterRec against FineAll / FineCLS (and others).

  python -m launch.bench_finetune --out=/tmp/bench_ft
  python -m launch.bench_finetune --out=/tmp/quick --channels=16 --dilations=1,2 \
      --num_items=200 --num_labels=20 --batch_size=8 --max_len=10 --repeats=2

For every method the train step is the trainer's own, on a randomly
initialised backbone of the given size (or the backbone of a nextitnet
pretraining workdir with --pretrained); see `peterrec_jax.benchmark`. Writes
OUT/bench_finetune.json (per method: median/min/max step ms, examples/s,
trainable and total parameters, optimizer-state bytes, XLA memory statistics)
and prints a table.
"""

from __future__ import annotations

import os
from typing import Callable

import jax
import ml_collections
from absl import app, flags

from peterrec_jax import benchmark, finetune, nextitnet, pretrain
from peterrec_jax.benchmark import Settings
from seqrec import checkpoint, workdir
from seqrec.errors import InputError
from seqrec.task import Params

_OUT = flags.DEFINE_string("out", None, "Output directory.", required=True)
_METHODS = flags.DEFINE_list(
    "methods", ["peterrec", "fineall", "finecls"],
    f"Fine-tuning methods, from {list(finetune.METHODS)}.")
_PATCHES = flags.DEFINE_list(
    "patches", ["serial", "parallel"],
    f"Patch kinds benchmarked for peterrec, from {list(nextitnet.PATCH_KINDS)}.")
_PRETRAINED = flags.DEFINE_string(
    "pretrained", None, "Workdir of a nextitnet pretraining run whose backbone (config and "
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


def _setup() -> tuple[nextitnet.NextItNetConfig, Callable[[], Params], Settings]:
  settings = Settings(
      methods=tuple(_METHODS.value), patches=tuple(_PATCHES.value), kind=_KIND.value,
      num_labels=_NUM_LABELS.value, batch_size=_BATCH_SIZE.value, max_len=_MAX_LEN.value,
      repeats=_REPEATS.value, warmup=_WARMUP.value, seed=_SEED.value).check()
  if _PRETRAINED.value:
    config, items = workdir.load(_PRETRAINED.value, "--pretrained")
    network = pretrain.network_config(ml_collections.ConfigDict(config), len(items) - 1)
    return network, lambda: checkpoint.restore_params(_PRETRAINED.value), settings
  try:
    dilations = tuple(int(d) for d in _DILATIONS.value)
  except ValueError as e:
    raise InputError(f"--dilations: {e}") from None
  config = nextitnet.NextItNetConfig(num_items=_NUM_ITEMS.value, channels=_CHANNELS.value,
                                     dilations=dilations,
                                     kernel_size=_KERNEL_SIZE.value).validate()
  return config, lambda: benchmark.random_backbone(config, settings.seed), settings


def main(argv: list[str]) -> None:
  del argv
  try:
    config, pretrained, settings = _setup()
  except InputError as e:
    raise app.UsageError(str(e)) from None
  records = benchmark.run(config, pretrained, settings)
  benchmark.write_report(_OUT.value, records, config, settings, _PRETRAINED.value)
  device = jax.devices()[0]
  print(f"C={config.channels}, {len(config.dilations)} blocks, {config.num_items} items, "
        f"{settings.kind} head with {settings.num_labels} labels, batch "
        f"{settings.batch_size}, L {settings.max_len}, on {device.device_kind}")
  print(benchmark.table(records))
  print(f"wrote {os.path.join(_OUT.value, benchmark.NAME + '.json')}")


if __name__ == "__main__":
  app.run(main)

r"""Training throughput on real data: examples/s and s/epoch, packed loss positions or not.

  python -m launch.bench_throughput --out=docs
  python -m launch.bench_throughput --out=/tmp/q --datasets=ml100k --models=gru4rec \
      --repeats=2

For every (dataset, model) the model's config is built as `launch.train` builds
it, then the trainer's step is timed on the run's first batch with the output
layer at target positions only (`seqrec.packing`, the default) and at every
position (config.pack_targets=False, how every step ran before), round-robin.
Writes OUT/bench_throughput.json and prints a table.
"""

from __future__ import annotations

import importlib

from absl import app, flags

from seqrec import benchmark, experiment, registry, sweep

DATASETS = {"ml100k": "recbole:../shared/data/ml-100k",
            "beauty": "sasrec:../shared/data/amazon-beauty/beauty.txt"}
# model -> (config file, preset, overrides): the sizes of the ML-100k tables.
MODELS = {
    "gru4rec": ("cmnrec", "ml100k", {"model.kind": "gru4rec"}),
    "tsc": ("cmnrec", "ml100k", {"model.kind": "tsc", "model.memory_slots": 2}),
    "nextitnet": ("nextitnet", "ml100k", {}),
    "sasrec": ("sasrec", "ml100k", {}),
}
_OUT = flags.DEFINE_string("out", None, "Output directory.", required=True)
_DATASETS = flags.DEFINE_list("datasets", list(DATASETS), f"From {list(DATASETS)}.")
_MODELS = flags.DEFINE_list("models", list(MODELS), f"From {list(MODELS)}.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 128, "Sequences per step (every model).")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed rounds (each times both variants).")


def config_for(model: str, dataset: str, batch_size: int):
  name, preset, overrides = MODELS[model]
  config = importlib.import_module(f"configs.{name}").get_config(preset)
  config.dataset = DATASETS[dataset]
  config.batch_size = batch_size
  return sweep.apply(config, tuple(overrides.items()), seed=0)


def main(argv):
  del argv
  for name, known in ((_DATASETS, DATASETS), (_MODELS, MODELS)):
    bad = sorted(set(name.value) - set(known))
    if bad:
      raise app.UsageError(f"--{name.name}: unknown {bad}; expected {list(known)}")
  records = []
  for dataset in _DATASETS.value:
    for model in _MODELS.value:
      config = config_for(model, dataset, _BATCH_SIZE.value)
      built = registry.build(config, experiment.load_data(config))
      print(f"{dataset} {model}:")
      for record in benchmark.throughput(built.task, built.train,
                                         batch_size=_BATCH_SIZE.value,
                                         repeats=_REPEATS.value):
        records.append({"dataset": dataset, "model": model, **record})
  benchmark.write_report(_OUT.value, "bench_throughput", {
      "settings": {"batch_size": _BATCH_SIZE.value, "repeats": _REPEATS.value,
                   "models": {m: MODELS[m] for m in _MODELS.value}},
      "results": records})
  print("| dataset | model | target share | packed ex/s | unpacked ex/s | speedup | "
        "packed s/epoch |")
  print("|---|---|---|---|---|---|---|")
  by_key = {(r["dataset"], r["model"], r["packed"]): r for r in records}
  for dataset in _DATASETS.value:
    for model in _MODELS.value:
      on, off = by_key[dataset, model, True], by_key[dataset, model, False]
      print(f"| {dataset} | {model} | {on['target_share']:.3f} | "
            f"{on['examples_per_second']:.0f} | {off['examples_per_second']:.0f} | "
            f"{off['step_ms'] / on['step_ms']:.2f}x | {on['seconds_per_epoch']:.1f} |")


if __name__ == "__main__":
  app.run(main)

r"""Training throughput on real data: examples/s and s/epoch, before and after.

  python -m launch.bench_throughput --out=docs
  python -m launch.bench_throughput --out=/tmp/q --datasets=ml100k --models=gru4rec \
      --repeats=2

For every (dataset, model) the model's config is the dataset's preset, built as
`launch.train` builds it. The trainer's step is then timed round-robin
(`seqrec.benchmark.throughput`) with the output layer at every position (how
every step ran first: config.pack_targets=False, config.chunk_scores=False),
at target positions only (`seqrec.packing`) with the full softmax's scores
formed whole (config.chunk_scores=False) and in chunks (`seqrec.losses`, the
default) and, for the models that allow it, also on length-bucketed batches
(`seqrec.bucketing`, config.bucket_lengths=True).
Writes OUT/bench_throughput.json and OUT/bench_throughput.png and prints a table.
"""

from __future__ import annotations

import importlib

from absl import app, flags

from seqrec import benchmark, experiment, registry, sweep

DATASETS = ("ml100k", "beauty")  # each the name of every model's preset for it
# model -> (config file, overrides); the preset is the dataset's.
MODELS = {
    "gru4rec": ("cmnrec", {"model.kind": "gru4rec"}),
    "tsc": ("cmnrec", {"model.kind": "tsc", "model.memory_slots": 2}),
    "nextitnet": ("nextitnet", {}),
    "sasrec": ("sasrec", {}),
    "caser": ("caser", {}),
}
_OUT = flags.DEFINE_string("out", None, "Output directory.", required=True)
_DATASETS = flags.DEFINE_list("datasets", list(DATASETS), f"From {list(DATASETS)}.")
_MODELS = flags.DEFINE_list("models", list(MODELS), f"From {list(MODELS)}.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 128, "Sequences per step (every model).")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed rounds (each times every variant).")
_STEPS = flags.DEFINE_integer("steps", 8, "Batches of epoch 0 each packed variant runs.")


def config_for(model: str, dataset: str, batch_size: int):
  name, overrides = MODELS[model]
  config = importlib.import_module(f"configs.{name}").get_config(dataset)
  config.batch_size = batch_size
  return sweep.apply(config, tuple(overrides.items()), seed=0)


def plot(records: list[dict], path: str) -> None:
  """Examples/s of every variant, one panel per dataset, a bar group per model."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  datasets = sorted({r["dataset"] for r in records}, key=[*DATASETS].index)
  fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 3.5), squeeze=False)
  for axis, dataset in zip(axes[0], datasets):
    rows = [r for r in records if r["dataset"] == dataset]
    models = list(dict.fromkeys(r["model"] for r in rows))
    width = 0.8 / len(benchmark.VARIANTS)
    for offset, label in enumerate(benchmark.VARIANTS):
      rates = {r["model"]: r["examples_per_second"] for r in rows if r["variant"] == label}
      axis.bar([models.index(m) + width * (offset - 1.5) for m in rates],
               list(rates.values()), width=width, label=label)
    axis.set_xticks(range(len(models)), models)
    axis.set_title(dataset)
    axis.set_ylabel("training examples/s")
  axes[0][0].legend()
  fig.tight_layout()
  fig.savefig(path)


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
      data = experiment.load_data(config)
      built = registry.build(config, data)
      config.chunk_scores = False
      whole = registry.build(config, data)
      print(f"{dataset} {model}:")
      for record in benchmark.throughput(built.task, whole.task, built.train,
                                         batch_size=_BATCH_SIZE.value,
                                         repeats=_REPEATS.value, steps=_STEPS.value):
        records.append({"dataset": dataset, "model": model, **record})
  benchmark.write_report(_OUT.value, "bench_throughput", {
      "settings": {"batch_size": _BATCH_SIZE.value, "repeats": _REPEATS.value,
                   "steps": _STEPS.value, "models": {m: MODELS[m] for m in _MODELS.value}},
      "results": records}, plot=lambda path: plot(records, path))
  print("| dataset | model | positions with a target | every position ex/s "
        "| packed, whole scores ex/s | packed ex/s | packed + bucketed ex/s "
        "| chunked / whole scores | speedup | s/epoch before | s/epoch after |")
  print("|---|---|---|---|---|---|---|---|---|---|---|")
  by_key = {(r["dataset"], r["model"], r["variant"]): r for r in records}
  for dataset in _DATASETS.value:
    for model in _MODELS.value:
      mine = {v: by_key.get((dataset, model, v)) for v in benchmark.VARIANTS}
      before, whole, packed, bucketed = mine.values()
      after = min((packed, bucketed or packed), key=lambda r: r["step_ms"])
      rates = [f"{r['examples_per_second']:.0f}" if r else "–" for r in mine.values()]
      print(f"| {dataset} | {model} | {packed['target_share']:.0%} | {' | '.join(rates)} | "
            f"{whole['step_ms'] / packed['step_ms']:.2f}x | "
            f"{before['step_ms'] / after['step_ms']:.1f}x | "
            f"{before['seconds_per_epoch']:.0f} | {after['seconds_per_epoch']:.0f} |")


if __name__ == "__main__":
  app.run(main)

r"""PeterRec where labels are scarce: every fine-tuning method at several label fractions.

  python -m launch.train --config=configs/nextitnet.py:ml100k_source --workdir=runs/pt_source
  python -m launch.label_study --pretrained=runs/pt_source --workdir=runs/labels

For every task, method, label fraction and fold, one fine-tuning run from the
pretrained workdir, in WORKDIR/TASK/<method,fraction,fold>: the profile tasks
from the preset configs/peterrec.py:ml100k_labels, crossdomain from
:ml100k_labels_crossdomain. Both cross-validate over users (5 folds: each user
is tested once), keep the labels of only `label_fraction` of the training users
(smaller fractions are subsets of larger ones) and train a fixed number of
steps, reporting the validation-selected step. A finished run is skipped, so
the same command resumes (`seqrec.sweep`).

Reports, per task, method and fraction, the mean ± std over folds of the test
metric (accuracy; crossdomain NDCG@10), the reference of the same labelled users
(`peterrec_jax.finetune.reference`: the majority class, or target items ranked by
popularity), and paired differences over folds of PeterRec (serial) against every
other method. Writes WORKDIR/label_study.json, WORKDIR/label_study.png and
prints the tables.
"""

from __future__ import annotations

import os

import numpy as np
from absl import flags

from configs import peterrec as peterrec_config
from launch import common
from seqrec import benchmark, experiment, registry, sweep
from seqrec.errors import InputError

PRETRAINED = flags.DEFINE_string("pretrained", None, "Workdir of a nextitnet pretraining run.",
                                 required=True)
TASKS = flags.DEFINE_list("tasks", ["gender", "age", "occupation", "crossdomain"],
                          "Downstream tasks.")
FRACTIONS = flags.DEFINE_list("fractions", ["0.05", "0.1", "0.25", "0.5", "1.0"],
                              "Label fractions of the training users.")
FOLDS = flags.DEFINE_list("folds", None, "Folds to run (default: every fold of the preset).")
SET = flags.DEFINE_string("set", "", "Overrides of both presets, 'KEY=V;KEY2=V2' (e.g. "
                          "'num_steps=600;eval_every=60' for another step budget).")
METHODS = flags.DEFINE_list(
    "methods", ["peterrec_serial", "peterrec_parallel", "fineall", "finecls", "finelast",
                "scratch"], "Methods; peterrec_serial / peterrec_parallel pick the patch.")

REFERENCE = "peterrec_serial"  # the paired differences are against it


def _overrides(method: str) -> tuple[tuple[str, object], ...]:
  name, _, patch = method.partition("_")
  return (("method", name),) + ((("patch", patch),) if patch else ())


def _task_config(task: str):
  preset = "ml100k_labels_crossdomain" if task == "crossdomain" else "ml100k_labels"
  config = peterrec_config.get_config(preset)
  config.task, config.pretrained = task, os.path.abspath(PRETRAINED.value)
  points = sweep.parse_grid(SET.value, "--set")
  if len(points) != 1:
    raise InputError(f"--set={SET.value}: give one value per key")
  return sweep.apply(config, points[0], config.seed, "--set")


def metric_of(task: str) -> str:
  return "ndcg@10" if task == "crossdomain" else "accuracy"


def run_task(task: str, fractions: list[float], methods: list[str], root: str) -> dict:
  """Every run of one task; per method and fraction its per-fold test values,
  and per fraction the reference's (built from each split, no training)."""
  config = _task_config(task)
  folds = [int(f) for f in FOLDS.value] if FOLDS.value else list(range(config.folds))
  metric = metric_of(task)
  splits = [(("label_fraction", fraction), ("fold", fold))
            for fraction in fractions for fold in folds]
  values: dict[str, dict[str, list[float]]] = {}
  for method in methods:
    points = [(*_overrides(method), *split) for split in splits]
    for entry in sweep.run(config, points, [config.seed], os.path.join(root, task),
                           log=common.report):
      fraction = str(dict(entry["point"])["label_fraction"])
      values.setdefault(method, {}).setdefault(fraction, []).append(
          entry["results"]["test"][metric])
  config = experiment.with_pretraining_data(config)
  data = experiment.load_data(config)
  reference: dict[str, list[float]] = {}
  for split in splits:
    info = registry.build(sweep.apply(config, split, config.seed), data).info["reference"]
    reference.setdefault(str(dict(split)["label_fraction"]), []).append(info["test"][metric])
  return {"metric": metric, "folds": folds, "values": values,
          "reference": {"method": info["method"], "values": reference}}


def _mean_std(values: list[float]) -> tuple[float, float]:
  return float(np.mean(values)), float(np.std(values))


def paired(task: dict) -> dict[str, dict[str, tuple[float, float]]]:
  """Per other method and fraction: mean ± std over folds of REFERENCE − it."""
  values = task["values"]
  if REFERENCE not in values:
    return {}
  return {method: {fraction: _mean_std(np.subtract(values[REFERENCE][fraction], per_fold))
                   for fraction, per_fold in by_fraction.items()}
          for method, by_fraction in values.items() if method != REFERENCE}


def markdown(name: str, task: dict, fractions: list[str]) -> str:
  lines = [f"{name}: test {task['metric']}, mean ± std over folds {task['folds']}",
           "| method | " + " | ".join(fractions) + " |", "|---|" + "---|" * len(fractions)]
  rows = [(method, {f: _mean_std(v) for f, v in by_fraction.items()})
          for method, by_fraction in task["values"].items()]
  reference = task["reference"]
  rows.append((reference["method"], {f: _mean_std(v) for f, v in reference["values"].items()}))
  rows += [(f"{REFERENCE} − {method}", by_fraction)
           for method, by_fraction in paired(task).items()]
  for method, by_fraction in rows:
    cells = [f"{by_fraction[f][0]:.4f} ± {by_fraction[f][1]:.4f}" if f in by_fraction else "–"
             for f in fractions]
    lines.append(f"| {method} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def plot(tasks: dict[str, dict], path: str) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  fig, axes = plt.subplots(1, len(tasks), figsize=(4 * len(tasks), 3.6), squeeze=False)
  for axis, (name, task) in zip(axes[0], tasks.items()):
    reference = task["reference"]
    lines = {**task["values"], reference["method"]: reference["values"]}
    for method, by_fraction in lines.items():
      xs = sorted(by_fraction, key=float)
      stats = [_mean_std(by_fraction[x]) for x in xs]
      axis.errorbar([float(x) for x in xs], [m for m, _ in stats], yerr=[s for _, s in stats],
                    label=method, marker="o", markersize=3, capsize=2,
                    linestyle="--" if method == reference["method"] else "-")
    axis.set_xscale("log")
    axis.set_title(name)
    axis.set_xlabel("fraction of training users labelled")
    axis.set_ylabel(f"test {task['metric']}")
    axis.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=80)


def main(argv: list[str]) -> None:
  del argv
  root = common.WORKDIR.value
  fractions = [float(f) for f in FRACTIONS.value]
  tasks = {task: run_task(task, fractions, METHODS.value, root) for task in TASKS.value}
  names = [str(f) for f in fractions]
  benchmark.write_report(root, "label_study", {"tasks": tasks, "paired": {
      name: paired(task) for name, task in tasks.items()}},
                         plot=lambda path: plot(tasks, path))
  common.report(*(markdown(name, task, names) + "\n" for name, task in tasks.items()))


if __name__ == "__main__":
  common.run(main)

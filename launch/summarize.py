r"""Aggregates results.json files into a markdown table: mean ± std over seeds.

  python -m launch.summarize --runs='/tmp/sweep/*' --group=model.kind,model.memory_slots \
      --metrics=test/mrr@5,test/hr@5,test/ndcg@5,test/mrr@20

Runs are grouped by the values of the --group keys recorded in each
results.json: config keys, dotted ("model.kind"), or top-level keys ("method");
every other difference (seed, workdir) is what the spread is over.
"""

from __future__ import annotations

import glob
import json
import os

import numpy as np
from absl import app, flags

RUNS = flags.DEFINE_string("runs", None, "Glob of run workdirs.", required=True)
GROUP = flags.DEFINE_list("group", ["model.kind"],
                          "Config keys that identify a configuration.")
METRICS = flags.DEFINE_list("metrics", ["test/mrr@5", "test/hr@5", "test/ndcg@5"],
                            "split/metric or top-level keys to report.")
OUT = flags.DEFINE_string("out", None, "Also write the aggregated rows as JSON here.")


def _value(results: dict, key: str):
  node = results
  for part in key.split("/"):
    node = node[part]
  return tuple(node) if isinstance(node, list) else node


def _group_value(results: dict, name: str):
  node = results.get("config", {})
  for part in name.split("."):
    if not isinstance(node, dict) or part not in node:
      return results.get(name)
    node = node[part]
  return tuple(node) if isinstance(node, list) else node


def summarize(paths: list[str], group: list[str], metrics: list[str]) -> list[dict]:
  """One row per configuration: its group values, run count, and per metric
  (mean, std) over its runs. Rows keep the order configurations first appear."""
  groups: dict[tuple, list[dict]] = {}
  for path in paths:
    with open(path) as f:
      results = json.load(f)
    key = tuple(_group_value(results, name) for name in group)
    groups.setdefault(key, []).append(results)
  rows = []
  for key, runs in groups.items():
    row = {"config": dict(zip(group, key)), "runs": len(runs)}
    for metric in metrics:
      values = np.array([_value(r, metric) for r in runs], float)
      row[metric] = (float(values.mean()), float(values.std()))
    rows.append(row)
  return rows


def markdown(rows: list[dict], group: list[str], metrics: list[str]) -> str:
  header = "| " + " | ".join(group + ["runs"] + metrics) + " |"
  lines = [header, "|" + "---|" * (len(group) + 1 + len(metrics))]
  for row in rows:
    cells = [str(row["config"][g]) for g in group] + [str(row["runs"])]
    cells += [f"{row[m][0]:.4f} ± {row[m][1]:.4f}" for m in metrics]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def main(argv: list[str]) -> None:
  del argv
  paths = sorted(p for d in glob.glob(RUNS.value)
                 if os.path.exists(p := os.path.join(d, "results.json")))
  if not paths:
    raise app.UsageError(f"--runs={RUNS.value}: no results.json found")
  rows = summarize(paths, GROUP.value, METRICS.value)
  print(markdown(rows, GROUP.value, METRICS.value))
  if OUT.value:
    with open(OUT.value, "w") as f:
      json.dump(rows, f, indent=2)


if __name__ == "__main__":
  app.run(main)

"""Sweeps: a grid of config overrides times seeds, run one after another.

Each run gets its own workdir under a root, named after its overrides, and is
skipped when its results.json exists, so an interrupted sweep resumes where it
stopped (a half-trained run resumes from its checkpoint). Aggregates are mean
± std over seeds of the validation-selected runs: every run reports all splits
at its best validation step (config.select_metric), and `best` picks the grid
point by mean validation value, never by test. `tune` picks it on a few seeds
and then runs the chosen point on more, so a budget of many points costs one
seed each and the reported row still has all of them.
"""

from __future__ import annotations

import ast
import itertools
import json
import os
from typing import Any, Callable, Sequence

import ml_collections
import numpy as np

from seqrec import experiment
from seqrec.errors import InputError

Point = tuple[tuple[str, Any], ...]  # (key, value) overrides of one grid point


def parse_grid(spec: str, flag: str = "--grid") -> list[Point]:
  """'model.kind=tsc,srmn;learning_rate=1e-3,3e-3' -> the product of the axes.

  Values are Python literals where they parse as one (3, 0.5, True, (1, 2)),
  strings otherwise. An empty spec is one point without overrides.
  """
  axes = []
  for axis in filter(None, (a.strip() for a in spec.split(";"))):
    key, sep, values = axis.partition("=")
    if not sep or not key or not values:
      raise InputError(f"{flag}: {axis!r} is not KEY=V1,V2,...")
    axes.append([(key.strip(), _literal(v.strip())) for v in values.split(",")])
  return [tuple(point) for point in itertools.product(*axes)]


def _literal(text: str) -> Any:
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def name(point: Point, seed: int) -> str:
  """The workdir name of a run: its overrides and seed."""
  parts = [f"{key}={value}" for key, value in point] + [f"seed={seed}"]
  return ",".join(parts).replace("/", "_").replace(" ", "")


def apply(config: ml_collections.ConfigDict, point: Point, seed: int,
          flag: str = "--grid") -> ml_collections.ConfigDict:
  """A copy of `config` with the point's overrides and the seed.

  Raises:
    InputError: an override names a key the config lacks.
  """
  config = config.copy_and_resolve_references()
  for key, value in (*point, ("seed", seed)):
    *parents, leaf = key.split(".")
    node = config
    for part in parents:
      node = node.get(part) if isinstance(node, ml_collections.ConfigDict) else None
    if not isinstance(node, ml_collections.ConfigDict) or leaf not in node:
      raise InputError(f"{flag}: the config has no key {key!r}")
    node[leaf] = tuple(value) if isinstance(node[leaf], tuple) else value
  return config


def run(config: ml_collections.ConfigDict, points: Sequence[Point], seeds: Sequence[int],
        root: str, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
  """Runs every (point, seed) not yet finished under `root`; returns all results."""
  out = []
  for point, seed in itertools.product(points, seeds):
    workdir = os.path.join(root, name(point, seed))
    path = os.path.join(workdir, "results.json")
    if not os.path.exists(path):
      _, summary = experiment.run(apply(config, point, seed), workdir)
      log(f"{name(point, seed)}: {summary}")
    with open(path) as f:
      out.append({"point": point, "seed": seed, "results": json.load(f)})
  return out


def tune(config: ml_collections.ConfigDict, points: Sequence[Point], seeds: Sequence[int],
         more_seeds: Sequence[int], root: str, select: str,
         log: Callable[[str], None] = print) -> tuple[list[dict[str, Any]], Point]:
  """`run` over `seeds`, then the point with the best mean validation `select`
  over `more_seeds` as well; returns every run and that point."""
  runs = run(config, points, seeds, root, log)
  chosen = tuple(best(aggregate(runs, [select]), select)["point"].items())
  return runs + run(config, [chosen], [s for s in more_seeds if s not in seeds], root,
                    log), chosen


def aggregate(runs: Sequence[dict[str, Any]], metrics: Sequence[str]) -> list[dict[str, Any]]:
  """Per grid point: run count and (mean, std) of valid and test values of each metric."""
  rows: dict[Point, list[dict]] = {}
  for entry in runs:
    rows.setdefault(entry["point"], []).append(entry["results"])
  table = []
  for point, results in rows.items():
    row = {"point": dict(point), "runs": len(results)}
    for split, metric in itertools.product(("valid", "test"), metrics):
      values = np.array([r[split][metric] for r in results if metric in r.get(split, {})])
      if len(values):
        row[f"{split}/{metric}"] = (float(values.mean()), float(values.std()))
    table.append(row)
  return table


def best(table: Sequence[dict[str, Any]], metric: str) -> dict[str, Any]:
  """The row with the highest mean validation `metric`."""
  return max(table, key=lambda row: row.get(f"valid/{metric}", (-np.inf,))[0])


def markdown(table: Sequence[dict[str, Any]], metrics: Sequence[str], chosen: Point) -> str:
  """A markdown table, the row of point `chosen` (the validation-selected one) marked *."""
  keys = sorted({k for row in table for k in row["point"]})
  columns = [f"{s}/{m}" for s in ("valid", "test") for m in metrics]
  lines = ["| " + " | ".join(keys + ["runs"] + columns) + " |",
           "|" + "---|" * (len(keys) + 1 + len(columns))]
  for row in table:
    cells = [str(row["point"].get(k, "")) for k in keys] + [str(row["runs"])]
    cells += [f"{row[c][0]:.4f} ± {row[c][1]:.4f}" if c in row else "–" for c in columns]
    mark = " *" if row["point"] == dict(chosen) else ""
    lines.append("| " + " | ".join(cells) + mark + " |")
  return "\n".join(lines)

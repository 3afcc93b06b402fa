r"""Runs a grid of config overrides times seeds, resumably, and prints mean ± std.

  python -m launch.sweep --config=configs/cmnrec.py:ml100k \
      --grid='model.kind=gru4rec,tsc;model.dropout=0.2,0.3' --seeds=0,1,2 \
      --workdir=runs/cmnrec_ml100k --metrics=ndcg@10,hr@10

  # The tuning budget of the config file (its `tuning(config)`) on seed 0, then
  # the point with the best validation NDCG@10 on seeds 1 and 2 as well:
  python -m launch.sweep --config=configs/sasrec.py:ml100k --grid=@tuning --seeds=0 \
      --best_seeds=1,2 --workdir=runs/tune/sasrec

Every run trains in WORKDIR/<overrides,seed>; a finished run (results.json) is
skipped, so the same command resumes an interrupted sweep. The table shows
validation and test (at each run's best validation step) over seeds; the row
with the best mean validation --select metric over --seeds is marked *. Writes
WORKDIR/sweep.json: the rows, the selected point and the metric that chose it.
"""

from __future__ import annotations

import importlib.util
import os

import ml_collections
from absl import flags
from ml_collections import config_flags

from launch import common
from seqrec import sweep, workdir
from seqrec.errors import InputError

TUNING = "@tuning"
GRID = flags.DEFINE_string("grid", "", "Axes 'KEY=V1,V2;KEY2=...' (empty: the config alone), "
                           f"or {TUNING!r}: the grid of the config file's tuning(config).")
SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "config.seed of each run.")
BEST_SEEDS = flags.DEFINE_list(
    "best_seeds", [], "Seeds run afterwards for the point selected over --seeds only.")
METRICS = flags.DEFINE_list("metrics", ["ndcg@10", "hr@10", "mrr@10"], "Metrics to show.")
SELECT = flags.DEFINE_string("select", "ndcg@10", "Validation metric that picks the row.")


def points(config: ml_collections.ConfigDict) -> list[sweep.Point]:
  """The grid of --grid; for @tuning, asked of the --config file."""
  if GRID.value != TUNING:
    return sweep.parse_grid(GRID.value)
  # The flag's value is FILE[:PRESET]; ml_collections splits it at the first colon.
  path = config_flags.get_config_filename(flags.FLAGS["config"]).split(":", 1)[0]
  spec = importlib.util.spec_from_file_location("tuned_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  if not hasattr(module, "tuning"):
    raise InputError(f"--grid={TUNING}: {path} defines no tuning(config)")
  return module.tuning(config)


def main(argv: list[str]) -> None:
  del argv
  common.init_distributed()
  config = common.CONFIG.value
  runs, chosen = sweep.tune(config, points(config), [int(s) for s in SEEDS.value],
                            [int(s) for s in BEST_SEEDS.value], common.WORKDIR.value,
                            SELECT.value, log=common.report)
  table = sweep.aggregate(runs, METRICS.value)
  workdir.write_json(os.path.join(common.WORKDIR.value, "sweep.json"),
                     {"rows": table, "selected": dict(chosen), "select": SELECT.value})
  common.report(sweep.markdown(table, METRICS.value, chosen))


if __name__ == "__main__":
  common.run(main)

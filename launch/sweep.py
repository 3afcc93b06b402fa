r"""Runs a grid of config overrides times seeds, resumably, and prints mean ± std.

  python -m launch.sweep --config=configs/cmnrec.py:ml100k \
      --grid='model.kind=gru4rec,tsc;model.dropout=0.2,0.3' --seeds=0,1,2 \
      --workdir=runs/cmnrec_ml100k --metrics=ndcg@10,hr@10

Every run trains in WORKDIR/<overrides,seed>; a finished run (results.json) is
skipped, so the same command resumes an interrupted sweep. The table shows
validation and test (at each run's best validation step) over seeds; the row
with the best mean validation --select metric is marked *. Writes
WORKDIR/sweep.json.
"""

from __future__ import annotations

import os

from absl import flags

from launch import common
from seqrec import sweep, workdir

GRID = flags.DEFINE_string("grid", "", "Axes 'KEY=V1,V2;KEY2=...' (empty: the config alone).")
SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "config.seed of each run.")
METRICS = flags.DEFINE_list("metrics", ["ndcg@10", "hr@10", "mrr@10"], "Metrics to show.")
SELECT = flags.DEFINE_string("select", "ndcg@10", "Validation metric that picks the row.")


def main(argv: list[str]) -> None:
  del argv
  common.init_distributed()
  seeds = [int(s) for s in SEEDS.value]
  runs = sweep.run(common.CONFIG.value, sweep.parse_grid(GRID.value), seeds,
                   common.WORKDIR.value, log=common.report)
  table = sweep.aggregate(runs, METRICS.value)
  workdir.write_json(os.path.join(common.WORKDIR.value, "sweep.json"), table)
  common.report(sweep.markdown(table, METRICS.value, SELECT.value))


if __name__ == "__main__":
  common.run(main)

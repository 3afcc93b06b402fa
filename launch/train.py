r"""Trains any model family from an experiment config.

  python -m launch.train                              # TSC on synthetic data
  python -m launch.train --config=configs/cmnrec.py:ml100k --config.model.kind=gru4rec \
      --workdir=/tmp/gru4rec
  python -m launch.train --config=configs/peterrec.py --config.pretrained=/tmp/nextitnet \
      --config.task=gender --workdir=/tmp/peterrec_gender

Writes WORKDIR/config.json (the full config that ran), WORKDIR/items.npy (the
raw item ids), checkpoints, metrics.jsonl and results.json. Rerunning the same
command resumes; a different config in the same workdir is refused.
"""

from __future__ import annotations

from launch import common
from seqrec import experiment


def main(argv: list[str]) -> None:
  del argv
  common.init_distributed()
  _, summary = experiment.run(common.CONFIG.value, common.WORKDIR.value)
  common.report(summary)


if __name__ == "__main__":
  common.run(main)

"""Prints dataset statistics in the style of Table 1 of the CmnRec paper.

  python -m launch.data_stats --config.dataset=recbole:../shared/data/ml-100k
  python -m launch.data_stats --config.synthetic.num_users=10000

Reads the data of an experiment config (`--config`, default configs/cmnrec.py):
config.dataset and, for synthetic data, config.synthetic.
"""

from __future__ import annotations

import numpy as np

from launch import common
from seqrec import experiment
from seqrec.interactions import Interactions


def statistics(data: Interactions) -> dict[str, int | float]:
  """Users, items, interactions and per-user sequence lengths of `data`.

  With two item domains, also the number of items in each.
  """
  lengths = np.bincount(data.user, minlength=data.num_users)
  stats = {
      "users": data.num_users,
      "items": data.num_items,
      "interactions": len(data),
      "avg length": float(lengths.mean()),
      "max length": int(lengths.max()),
  }
  if data.item_domain is not None:
    source, target = np.bincount(data.item_domain, minlength=2)[:2]
    stats["source items"], stats["target items"] = int(source), int(target)
  return stats


def main(argv: list[str]) -> None:
  del argv
  data = experiment.load_data(common.CONFIG.value)
  print(f"{'dataset':<14}{data.name}")
  for name, value in statistics(data).items():
    print(f"{name:<14}{value:.2f}" if isinstance(value, float)
          else f"{name:<14}{value}")


if __name__ == "__main__":
  common.run(main)

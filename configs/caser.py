r"""Caser (Tang & Wang, WSDM 2018): horizontal and vertical convolutions over the last L items.

  python -m launch.train --config=configs/caser.py:ml100k --config.seed=0 --workdir=W

Presets:
  (none)   L=5, 16 horizontal filters per height, 4 vertical, d=64, on synthetic data.
  ml100k   ML-100k leave-one-out, full softmax, batch 32, 10 epochs, best NDCG@10.
  beauty   Amazon Beauty (`base.beauty`), batch 128, 20 epochs.
  tiny     seconds-long settings for tests.
"""

import ml_collections

from configs import base


def get_config(arg: str | None = None):
  c = base.base("caser")
  c.model = ml_collections.ConfigDict(dict(
      embed_dim=64, window=5, horizontal=16, vertical=4, hidden=64, dropout=0.5))
  c.batch_size = 32
  c.num_epochs = 2.0
  if arg == "ml100k":
    base.ml100k(c)
    c.num_epochs = 10.0
    c.eval_every = 75  # one epoch
  elif arg == "beauty":
    base.beauty(c)
    c.num_epochs = 20.0
    c.bucket_lengths = True  # 8.8 items per user: most of a window is padding
  elif arg == "tiny":
    base.tiny(c)
    c.model.update(dict(embed_dim=8, window=3, horizontal=4, vertical=2, hidden=8,
                        dropout=0.1))
  elif arg:
    raise ValueError(f"configs/caser.py: unknown preset {arg!r} (ml100k, beauty, tiny)")
  return c


def tuning(c: ml_collections.ConfigDict) -> list:
  """`base.tuning` with embedding and fully connected widths as the width."""
  return base.tuning(c, ("model.embed_dim", "model.hidden"))

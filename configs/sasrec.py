r"""SASRec (Kang & McAuley, ICDM 2018) with full-softmax CE ("SASRec+").

  python -m launch.train --config=configs/sasrec.py:ml100k --config.seed=0 --workdir=W
  python -m launch.train --config=configs/sasrec.py:ml100k --config.loss=bce --workdir=W

Presets:
  (none)   2 blocks, 1 head, D=64, dropout 0.2, on synthetic data.
  ml100k   ML-100k leave-one-out, 50 input items, batch 128, 200 epochs, best NDCG@10.
  beauty   Amazon Beauty as in "Turning Dross Into Gold Loss" (`base.beauty`), 40 epochs,
           length-bucketed batches (config.bucket_lengths);
           --config.loss=sampled --config.num_negatives=3000 for their CE-3000 row.
  tiny     seconds-long settings for tests.
"""

import ml_collections

from configs import base


def get_config(arg: str | None = None):
  c = base.base("sasrec")
  # ffn_dim=0: the feed-forward net is `hidden` wide (the paper's). norm: "pre" (the
  # paper's layout) or "post" (RecBole's: LayerNorm after each residual).
  c.model = ml_collections.ConfigDict(dict(hidden=64, num_blocks=2, num_heads=1,
                                           dropout=0.2, ffn_dim=0, activation="relu",
                                           norm="pre"))
  c.batch_size = 128
  c.num_epochs = 20.0
  if arg == "ml100k":
    base.ml100k(c)
    c.num_epochs = 200.0
    c.eval_every = 190  # ten epochs: 2,399 training windows / 128 = 18 steps each
  elif arg == "beauty":
    base.beauty(c)
    c.num_epochs = 40.0
    c.bucket_lengths = True  # 8.8 items per user: most of a window is padding
  elif arg == "tiny":
    base.tiny(c)
    c.model.update(dict(hidden=8, num_heads=2, dropout=0.1))
  elif arg:
    raise ValueError(f"configs/sasrec.py: unknown preset {arg!r} (ml100k, beauty, tiny)")
  return c


def tuning(c: ml_collections.ConfigDict) -> list:
  """`base.tuning` with the model width D (FFN width follows it) as the width."""
  return base.tuning(c, ("model.hidden",))

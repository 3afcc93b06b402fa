r"""NextItNet pretraining (PeterRec stage 1), causal or masked.

  python -m launch.train --config=configs/nextitnet.py:ml100k --config.seed=0 --workdir=W

Presets:
  (none)          the paper's trunk (C=256, dilations [1,4] x 4) on synthetic data.
  ml100k          the README's table against RecBole's NextItNet: C=64, dilations
                  [1,4] x 5, every item pretrained on, batch 64, 20 epochs.
  ml100k_source   the same, without the Horror and Film-Noir items: the backbone
                  of the fine-tuning table (configs/peterrec.py:ml100k).
  beauty          Amazon Beauty (`base.beauty`) at the ml100k sizes, 20 epochs.
  tiny            seconds-long settings for tests.
"""

import ml_collections

from configs import base


def get_config(arg: str | None = None):
  c = base.base("nextitnet")
  c.model = ml_collections.ConfigDict(dict(
      channels=256, dilations=(1, 4) * 4, kernel_size=3,
      dropout=0.0))  # the paper's: none (a tuning axis, `tuning`)
  c.mode = "causal"  # or "masked" (GRec-style, 30% of positions)
  c.mask_prob = 0.3
  c.max_masked = 30
  # Their items become the cross-domain target domain, never pretrained on;
  # empty: pretrain on every item.
  c.held_out_genres = ("Horror", "Film-Noir")
  if arg in ("ml100k", "ml100k_source"):
    base.ml100k(c)
    c.model.update(dict(channels=64, dilations=(1, 4) * 5))
    c.batch_size = 64
    c.num_epochs = 20.0
    c.eval_every = 37  # about two per epoch
    if arg == "ml100k":
      c.held_out_genres = ()
      c.eval_all_splits = True  # the learning curve of the table
  elif arg == "beauty":
    base.beauty(c)
    c.held_out_genres = ()
    c.model.update(dict(channels=64, dilations=(1, 4) * 5))
    c.num_epochs = 20.0
  elif arg == "tiny":
    base.tiny(c)
    c.max_len = 10
    c.model.update(dict(channels=8, dilations=(1, 2)))
  elif arg:
    raise ValueError(f"configs/nextitnet.py: unknown preset {arg!r} "
                     "(ml100k, ml100k_source, beauty, tiny)")
  return c


def tuning(c: ml_collections.ConfigDict) -> list:
  """`base.tuning` with the channels C as the width."""
  return base.tuning(c, ("model.channels",))

r"""CmnRec (PEC, TSC, EXC), SRMN and the controller baselines.

  python -m launch.train --config=configs/cmnrec.py:ml100k \
      --config.model.kind=tsc --config.model.memory_slots=6 --config.seed=0 --workdir=W

Presets:
  (none)   TSC at the paper's sizes on synthetic data, 2 epochs (the quick start).
  ml100k   the README's ML-100k table: E=64, h=128, W=128, dropout 0.3, batch 32,
           10 epochs, validation every epoch, best NDCG@10 reported.
  beauty   Amazon Beauty (`base.beauty`) at the ml100k sizes, batch 128, 20 epochs.
  tiny     seconds-long settings for tests.
"""

import ml_collections

from configs import base


def get_config(arg: str | None = None):
  c = base.base("cmnrec")
  c.model = ml_collections.ConfigDict(dict(
      kind="tsc",  # srmn pec tsc exc lstm4rec gru4rec floor
      embed_dim=128, hidden=256, memory_slots=6, slot_width=256, read_heads=3,
      attention_dim=64, controller="lstm", dropout=0.5,
      attention_variant="code",  # or "paper" (Algorithm 1's order)
      scan_unroll=1,
      skip_padding=False,  # lstm4rec/gru4rec/floor: True allows bucket_lengths
      tie_embedding=False))  # True: y scored against the item embedding (RecBole's GRU4Rec)
  # Each sequence already carries up to max_len-1 targets: small batches.
  c.batch_size = 32
  c.num_epochs = 2.0
  if arg == "ml100k":
    base.ml100k(c)
    c.model.update(dict(embed_dim=64, hidden=128, slot_width=128, dropout=0.3))
    c.num_epochs = 10.0
    c.eval_every = 75  # one epoch: 2,399 training windows / 32
  elif arg == "beauty":
    base.beauty(c)
    c.model.update(dict(embed_dim=64, hidden=128, slot_width=128, dropout=0.3))
    c.num_epochs = 20.0
  elif arg == "tiny":
    base.tiny(c)
    c.model.update(dict(embed_dim=8, hidden=8, memory_slots=3, slot_width=8,
                        read_heads=2, attention_dim=4, dropout=0.1))
  elif arg:
    raise ValueError(f"configs/cmnrec.py: unknown preset {arg!r} (ml100k, beauty, tiny)")
  return c


def tuning(c: ml_collections.ConfigDict) -> list:
  """`base.tuning` with embedding, controller and memory widths as the width."""
  return base.tuning(c, ("model.embed_dim", "model.hidden", "model.slot_width"))

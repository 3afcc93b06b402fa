r"""PeterRec fine-tuning (stage 2) and its baselines, from a pretraining workdir.

  python -m launch.train --config=configs/peterrec.py:ml100k \
      --config.pretrained=W1 --config.task=gender --config.method=peterrec --workdir=W

The data defaults to the pretraining run's (config.dataset empty).

Presets:
  (none)   PeterRec (serial patches) on gender.
  ml100k   the README's fine-tuning table: batch 32, lr 1e-3, 10 epochs, the
           best validation epoch reported; select by accuracy on the profile
           tasks and set --config.select_metric=ndcg@10 for crossdomain.
  tiny     seconds-long settings for tests.
"""

import ml_collections
from ml_collections import config_dict

from configs import base


def get_config(arg: str | None = None):
  c = base.base("peterrec")
  c.dataset = ""  # "": the pretraining run's data
  c.pretrained = ""  # workdir of a configs/nextitnet.py run
  c.allow_unfinished = False  # fine-tune from a pretraining run that did not finish
  c.task = "gender"  # gender age occupation crossdomain
  c.method = "peterrec"  # peterrec fineall finecls finelast scratch
  c.patch = "serial"  # or "parallel"; peterrec only
  c.patch_dim = config_dict.placeholder(int)  # None: C/4
  c.pooling = "cls"  # or "mean"
  c.loss = "softmax"  # crossdomain: or "bce", the reference's one-negative loss
  c.min_source_len = 5
  c.select_metric = "accuracy"
  c.model = ml_collections.ConfigDict()  # the backbone comes from config.pretrained
  if arg == "ml100k":
    c.batch_size = 32
    c.num_epochs = 10.0
    c.eval_every = 23  # one epoch of the profile tasks (754 training users)
  elif arg == "tiny":
    base.tiny(c)
    c.max_len = 10
    c.select_metric = ""
  elif arg:
    raise ValueError(f"configs/peterrec.py: unknown preset {arg!r} (ml100k, tiny)")
  return c

r"""PeterRec fine-tuning (stage 2) and its baselines, from a pretraining workdir.

  python -m launch.train --config=configs/peterrec.py:ml100k \
      --config.pretrained=W1 --config.task=gender --config.method=peterrec --workdir=W

The data defaults to the pretraining run's (config.dataset empty).

Presets:
  (none)   PeterRec (serial patches) on gender.
  ml100k               the README's fine-tuning table on the profile tasks: batch 32,
                       lr 1e-3, 10 epochs, the best validation accuracy (every epoch).
  ml100k_crossdomain   the same on crossdomain, selected by NDCG@10 (every ~epoch),
                       full ranking over the 116 target items only: the reference's
                       99 uniform negatives cannot be drawn outside the history of a
                       user with more than 17 target items (ML-100k has such users).
  ml100k_labels        the label-fraction study (`launch.label_study`), profile tasks:
                       5-fold cross-validation over users, batch 16, a fixed 150
                       steps whatever the fraction (4 epochs of all labels),
                       validated every 15.
  ml100k_labels_crossdomain   the same on crossdomain: batch 32, 400 steps (3
                       epochs of all labels), validated every 40, selected by NDCG@10.
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
  # Users: 80/10/10 at random by config.seed, or with folds=k the fold-th of k
  # folds as test (the next as validation); label_fraction of the training
  # users keep their labels (nested: 5% of them are among the 10%).
  c.folds = 0
  c.fold = 0
  c.label_fraction = 1.0
  c.select_metric = "accuracy"
  c.model = ml_collections.ConfigDict()  # the backbone comes from config.pretrained
  if arg in ("ml100k", "ml100k_crossdomain"):
    c.batch_size = 32
    c.num_epochs = 10.0
    c.eval_every = 23  # one epoch of the profile tasks (754 training users)
    if arg == "ml100k_crossdomain":
      c.task = "crossdomain"
      c.select_metric = "ndcg@10"
      c.eval_every = 178  # about one epoch (5,700 training examples / 32)
  elif arg in ("ml100k_labels", "ml100k_labels_crossdomain"):
    # A fixed step budget, not epochs: 5% of the labels would otherwise get 20x
    # fewer updates than all of them; validation picks the step either way.
    c.folds = 5
    c.batch_size, c.num_steps, c.eval_every = 16, 150, 15
    c.checkpoint_every = 0
    if arg == "ml100k_labels_crossdomain":
      c.task = "crossdomain"
      c.select_metric = "ndcg@10"
      c.batch_size, c.num_steps, c.eval_every = 32, 400, 40
  elif arg == "tiny":
    base.tiny(c)
    c.max_len = 10
    c.select_metric = ""
  elif arg:
    raise ValueError(f"configs/peterrec.py: unknown preset {arg!r} (ml100k, ml100k_crossdomain, "
                     "ml100k_labels, ml100k_labels_crossdomain, tiny)")
  return c

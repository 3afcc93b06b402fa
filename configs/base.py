"""The keys every family's config shares (read by `seqrec.experiment`).

A config file builds on `base(family)` and adds `config.model` and its task
keys. `None` means "not set" where a key says so; override any key with
`--config.KEY=VALUE`.
"""

import itertools
from typing import Any, Sequence

import ml_collections
from ml_collections import config_dict

ML100K = "recbole:../shared/data/ml-100k"
BEAUTY = "sasrec:../shared/data/amazon-beauty/beauty.txt"


def base(family: str) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.family = family
  # Data: a --dataset string of seqrec.sources; synthetic data has its own seed,
  # so changing config.seed changes initialisation and batches, not the data.
  c.dataset = "synthetic"
  c.synthetic = ml_collections.ConfigDict(
      dict(num_users=2000, num_items=1000, num_target_items=300, mean_length=60.0,
           seed=0))
  c.min_item_count = 1
  c.min_user_count = 1
  c.max_len = 51  # L: L-1 input steps and the target (RecBole's 50-item history)
  c.min_len = 2
  # "leave_one_out", "random" (CmnRec's 80/2/18 split of windows) or
  # "global_time" (cut at the time_cuts quantiles of all timestamps).
  c.split = "leave_one_out"
  c.time_cuts = (0.9, 0.95)
  # None: training windows overlap by one item (each target once, the first of
  # a window with no context). s: a window ends every s items and trains its
  # last s targets only, so every target keeps at least L - s items of context
  # (1: each at full context, as RecBole's prefixes; about (L - 1) / s times
  # the training work). Causal next-item training, not config.split=random.
  c.train_stride = config_dict.placeholder(int)
  # Training.
  c.seed = 0
  c.num_epochs = 10.0
  c.num_steps = config_dict.placeholder(int)  # set: overrides num_epochs
  c.batch_size = 256
  c.learning_rate = 1e-3
  c.grad_clip = config_dict.placeholder(float)  # set: clip the global gradient norm to it
  c.loss = "full"
  c.num_negatives = config_dict.placeholder(int)  # sampled loss; None: the family's share
  # The output layer and loss only at positions with a target (seqrec.packing);
  # False computes them at every position: the same loss, more work.
  c.pack_targets = True
  # The full softmax scores items in cache-sized chunks (seqrec.losses.score_chunk);
  # False forms the [targets, items] scores whole: the same loss, slower.
  c.chunk_scores = True
  # Batches of similar-length windows at the width of their longest
  # (seqrec.bucketing): only for models that do not see the amount of left
  # padding (SASRec, Caser; refused for the others). Changes which rows share a
  # batch, so it is off where the published tables were made without it.
  c.bucket_lengths = False
  # Evaluation (seqrec.protocols): full ranking always; exclude_seen adds
  # "unseen_" metrics, sampled ("uniform:100,popularity:100") "uniform100_" ...
  # against negatives fixed by (protocol.seed, user, split).
  c.protocol = ml_collections.ConfigDict(dict(exclude_seen=False, sampled="", seed=0))
  c.eval_every = 0  # 0: at the end only
  c.eval_batch_size = 256
  c.eval_all_splits = False
  c.select_metric = "ndcg@10"  # "": report the last step
  c.patience = 0  # >0: stop after this many validations without a better select_metric
  c.checkpoint_every = 500
  c.prefetch = 1  # training batches a host thread makes ahead (seqrec.prefetch); 0: none
  # >1: the training rows in this many contiguous shards, each batch taking
  # batch_size/row_shards rows of each, so each process of a multi-process run
  # reads only its shards (set a multiple of the process count). Other batches
  # than 1, the same ones on any number of processes.
  c.row_shards = 1
  c.log_every = 50
  # Devices: None = all. Item tables are padded to a multiple of vocab_multiple
  # (None: model_parallel) so they split evenly over `model_parallel` devices.
  c.num_devices = config_dict.placeholder(int)
  c.model_parallel = 1
  c.vocab_multiple = config_dict.placeholder(int)
  c.dtype = "float32"
  return c


# The tuning budget of the results tables, the same for every next-item family
# (`launch.sweep --grid=@tuning`): 4 dropouts (every preset's own among them)
# x 2 learning rates x 2 widths, the widths scaling all of a family's width keys
# together from its preset, so a point with scale 1 is the preset itself.
DROPOUTS = (0.0, 0.2, 0.3, 0.5)
LEARNING_RATES = (1e-3, 3e-3)
WIDTH_SCALES = (1, 2)


def tuning(c: ml_collections.ConfigDict,
           width_keys: Sequence[str]) -> list[tuple[tuple[str, Any], ...]]:
  """The budget's grid points for config `c`, as (key, value) overrides:
  model.dropout, learning_rate and each of `width_keys` ("model.hidden", ...)
  times the scale."""
  return [(("model.dropout", dropout), ("learning_rate", rate),
           *((key, c[key] * scale) for key in width_keys))
          for dropout, rate, scale in itertools.product(DROPOUTS, LEARNING_RATES,
                                                        WIDTH_SCALES)]


def ml100k(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """ML-100k, leave-one-out: full ranking with the history in (selected on it,
  as the README tables) and out, and 100 uniform negatives beside."""
  c.dataset = ML100K
  c.protocol.update(dict(exclude_seen=True, sampled="uniform:100"))
  return c


def beauty(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Amazon Beauty as in Klenitskiy & Vasilev (RecSys 2023): leave-one-out, 50
  input items, full ranking with the history excluded (selected on it), and
  100 uniform and 100 popularity negatives beside. 40,493 training windows:
  an epoch is 316 steps of 128."""
  c.dataset = BEAUTY
  c.max_len = 51
  c.batch_size = 128
  c.protocol.update(dict(exclude_seen=True, sampled="uniform:100,popularity:100"))
  c.select_metric = "unseen_ndcg@10"
  c.eval_every = 632  # two epochs
  return c


def tiny(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Seconds-long settings for tests: small synthetic data, a few steps."""
  c.synthetic.update(dict(num_users=64, num_items=60, num_target_items=20,
                         mean_length=15.0))
  c.max_len = 12
  c.batch_size = 16
  c.eval_batch_size = 16
  c.num_steps = 4
  c.eval_every = 2
  c.log_every = 2
  return c

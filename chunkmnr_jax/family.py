"""CmnRec and its baselines as a model family: `build(config, data)`.

Config keys (see configs/cmnrec.py): config.model holds every `MnrConfig`
field but num_items, vocab_multiple and dtype; config.loss is "full",
"sampled" (config.num_negatives, default |I|/10 as in the reference) or
"bce"; config.split is "leave_one_out" or CmnRec's "random".
"""

from __future__ import annotations

from typing import Any

from chunkmnr_jax import models
from seqrec import next_item
from seqrec.errors import InputError
from seqrec.interactions import Interactions
from seqrec.task import Experiment

NEGATIVE_FRACTION = 0.1


def model_config(config: Any, num_items: int) -> models.MnrConfig:
  """The `MnrConfig` of an experiment config over `num_items` items."""
  return models.MnrConfig(num_items=num_items,
                          vocab_multiple=config.vocab_multiple or config.model_parallel,
                          dtype=config.dtype, **config.model.to_dict())


def next_item_model(config: models.MnrConfig) -> next_item.NextItemModel:
  model = models.MemoryRecommender(config)
  return next_item.NextItemModel(
      init=lambda rng: model.init(rng, method=models.MemoryRecommender.declare),
      hidden=lambda params, inputs, train, rng: model.apply(
          params, inputs, train=train, rngs={"dropout": rng}),
      head=models.head_weights, vocab_size=config.vocab_size,
      last_hidden=lambda params, inputs: model.apply(
          params, inputs, method=models.MemoryRecommender.last_hidden))


def build(config: Any, data: Interactions) -> Experiment:
  seqs, splits = next_item.prepared(config, data)
  mnr = model_config(config, seqs.num_items)
  if mnr.has_memory and not 1 <= mnr.memory_slots <= config.max_len - 1:
    raise InputError(f"config.model.memory_slots={mnr.memory_slots}: must be in "
                     f"[1, config.max_len - 1 = {config.max_len - 1}] (one write per chunk)")
  task = next_item.make_task(
      next_item_model(mnr), loss=config.loss,
      negatives=next_item.num_negatives(mnr.num_items, config.num_negatives,
                                        NEGATIVE_FRACTION),
      param_rules=models.PARAM_RULES, padding_invariant=mnr.skip_padding,
      chunk_scores=config.chunk_scores)
  return next_item.experiment(task, data, seqs, splits, config)


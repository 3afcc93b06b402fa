"""CmnRec as a `seqrec.task.Task`: next-item prediction at every position."""

from __future__ import annotations

import jax

from chunkmnr_jax import models
from seqrec import losses
from seqrec import metrics
from seqrec.errors import InputError
from seqrec.task import Batch, Params, Task

LOSSES = ("full", "sampled")
EVAL_KS = (5, 10, 20)


def _split(seq: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """[B, L] left-padded sequences -> inputs, targets [B, L-1] and loss weights."""
  inputs, targets = seq[:, :-1], seq[:, 1:]
  return inputs, targets, (inputs != 0) & (targets != 0)


def make_task(config: models.MnrConfig, loss: str = "full") -> Task:
  """The training and evaluation functions of one CmnRec model.

  Batches are {"seq": int32 [B, L]}, left-padded with 0; the model reads
  seq[:, :-1] (T = L - 1 steps) and predicts seq[:, 1:].

  Args:
    config: the model.
    loss: "full" (softmax over every item) or "sampled" (the target against
      num_items // 10 shared uniform negatives, the reference's default).
  Returns:
    The task; `evaluate` ranks seq[:, -1] against every item after the last
    step (MRR, HR, NDCG at 5, 10, 20).
  """
  if loss not in LOSSES:
    raise InputError(f"loss={loss!r} is unknown; expected one of {LOSSES}")
  model = models.MemoryRecommender(config)
  num_negatives = max(1, config.num_items // 10)

  def init(rng: jax.Array) -> Params:
    return model.init(rng, method=models.MemoryRecommender.declare)

  def loss_fn(params: Params, batch: Batch, rng: jax.Array
              ) -> tuple[jax.Array, dict[str, jax.Array]]:
    inputs, targets, weights = _split(batch["seq"])
    dropout_rng, sample_rng = jax.random.split(rng)
    hidden = model.apply(params, inputs, train=True, rngs={"dropout": dropout_rng})
    kernel, bias = models.head_weights(params)
    if loss == "full":
      value = losses.softmax_cross_entropy(hidden, kernel, bias, targets, weights,
                                           config.vocab_size)
    else:
      value = losses.sampled_softmax_cross_entropy(
          hidden, kernel, bias, targets, weights, num_negatives, sample_rng,
          config.vocab_size)
    return value, {"loss": value}

  def evaluate(params: Params, batch: Batch) -> dict[str, jax.Array]:
    seq = batch["seq"]
    scores = models.last_scores(model, params, seq[:, :-1])
    return metrics.full_ranking(scores, seq[:, -1], EVAL_KS)

  return Task(init=init, loss=loss_fn, evaluate=evaluate)

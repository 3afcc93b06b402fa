"""Ranking metrics, computed on device, one value per example.

Ranks are pessimistic: the target ranks after every other item whose score is
greater *or equal*, so a constant scorer ranks the target last, not first.
Item 0 (padding) is never ranked.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

DEFAULT_KS = (5, 10, 20)


def ranks_from_counts(num_above: jax.Array) -> jax.Array:
  """1-based rank from the number of candidates scored >= the target."""
  return num_above + 1


def metrics_from_ranks(ranks: jax.Array, ks: Sequence[int] = DEFAULT_KS,
                       prefix: str = "") -> dict[str, jax.Array]:
  """MRR@k, HR@k and NDCG@k from 1-based ranks [B]; each output is float32 [B]."""
  ranks = ranks.astype(jnp.float32)
  out = {}
  for k in ks:
    hit = ranks <= k
    out[f"{prefix}mrr@{k}"] = jnp.where(hit, 1.0 / ranks, 0.0)
    out[f"{prefix}hr@{k}"] = hit.astype(jnp.float32)
    out[f"{prefix}ndcg@{k}"] = jnp.where(hit, 1.0 / jnp.log2(ranks + 1.0), 0.0)
  return out


def target_ranks(scores: jax.Array, targets: jax.Array, *,
                 has_padding: bool = True) -> jax.Array:
  """Pessimistic 1-based rank of each target among all candidates.

  Args:
    scores: [B, V] scores. With `has_padding`, column 0 is the padding item and
      is ignored whatever its value (items); without, every column is a
      candidate (classes).
    targets: int [B] column of the target.
  Returns:
    int32 [B].
  """
  scores = scores.astype(jnp.float32)
  target_score = jnp.take_along_axis(scores, targets[:, None], axis=1)
  column = jnp.arange(scores.shape[1])[None, :]
  rivals = (scores >= target_score) & (column != targets[:, None])
  if has_padding:
    rivals &= column != 0
  return ranks_from_counts(jnp.sum(rivals, axis=1, dtype=jnp.int32))


def full_ranking(scores: jax.Array, targets: jax.Array,
                 ks: Sequence[int] = DEFAULT_KS) -> dict[str, jax.Array]:
  """Full-ranking metrics: the target against every item. Values [B]."""
  return metrics_from_ranks(target_ranks(scores, targets), ks)


def accuracy(logits: jax.Array, labels: jax.Array) -> dict[str, jax.Array]:
  """Top-1 accuracy for classification, [B] float32 (ties count as wrong)."""
  ranks = target_ranks(logits, labels, has_padding=False)
  return {"accuracy": (ranks == 1).astype(jnp.float32)}

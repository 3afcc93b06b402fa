"""Next-item losses shared by every model family.

Both take the final hidden states and the output layer (kernel [D, V], bias [V])
rather than logits, so the sampled loss never forms the [.., V] logits at all.
Item id 0 is padding: it is never a target and never a candidate.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _weighted_mean(values: jax.Array, weights: jax.Array) -> jax.Array:
  # `where`, not a product: a padding target (id 0) has an infinite loss and
  # inf * 0 would be NaN.
  weights = weights.astype(values.dtype)
  values = jnp.where(weights > 0, values, 0.0)
  return jnp.sum(values * weights) / jnp.maximum(jnp.sum(weights), 1.0)


def logits(hidden: jax.Array, kernel: jax.Array, bias: jax.Array | None) -> jax.Array:
  """Scores of every item: [..., D] x [D, V] -> [..., V], padding column at -inf."""
  out = jnp.einsum("...d,dv->...v", hidden, kernel.astype(hidden.dtype))
  if bias is not None:
    out = out + bias.astype(out.dtype)
  return out.at[..., 0].set(-jnp.inf)


def softmax_cross_entropy(hidden: jax.Array, kernel: jax.Array, bias: jax.Array | None,
                          targets: jax.Array, weights: jax.Array) -> jax.Array:
  """Full-softmax cross-entropy over all items.

  Args:
    hidden: [..., D] final hidden states.
    kernel: [D, V] output embedding; bias: [V] or None.
    targets: int [...] item ids in 1..V-1 (anything where weights is 0).
    weights: [...] 1 for real positions, 0 for padding.
  Returns:
    scalar weighted mean loss (float32).
  """
  scores = logits(hidden, kernel, bias).astype(jnp.float32)
  log_z = jax.nn.logsumexp(scores, axis=-1)
  target_score = jnp.take_along_axis(scores, targets[..., None], axis=-1)[..., 0]
  return _weighted_mean(log_z - target_score, weights)


def sampled_softmax_cross_entropy(hidden: jax.Array, kernel: jax.Array,
                                  bias: jax.Array | None, targets: jax.Array,
                                  weights: jax.Array, num_negatives: int,
                                  rng: jax.Array) -> jax.Array:
  """Sampled softmax: the target against `num_negatives` shared negatives.

  One set of negatives is drawn uniformly from 1..V-1 per call and shared by
  every position (as TensorFlow's `sampled_softmax_loss`, used by both reference
  implementations, does). A uniform proposal makes the log-Q correction a
  constant that cancels. Accidental hits (a negative equal to the target) are
  removed from that position's softmax.

  Shapes as in `softmax_cross_entropy`; returns the scalar weighted mean loss.
  """
  num_items = kernel.shape[1]
  negatives = jax.random.randint(rng, (num_negatives,), 1, num_items)
  neg_kernel = jnp.take(kernel, negatives, axis=1).astype(hidden.dtype)  # [D, S]
  pos_kernel = jnp.take(kernel.T, targets, axis=0).astype(hidden.dtype)  # [..., D]
  neg_scores = jnp.einsum("...d,ds->...s", hidden, neg_kernel).astype(jnp.float32)
  pos_scores = jnp.sum(hidden * pos_kernel, axis=-1).astype(jnp.float32)
  if bias is not None:
    neg_scores = neg_scores + jnp.take(bias, negatives).astype(jnp.float32)
    pos_scores = pos_scores + jnp.take(bias, targets).astype(jnp.float32)
  neg_scores = jnp.where(negatives == targets[..., None], -jnp.inf, neg_scores)
  all_scores = jnp.concatenate([pos_scores[..., None], neg_scores], axis=-1)
  return _weighted_mean(jax.nn.logsumexp(all_scores, axis=-1) - pos_scores, weights)

"""Next-item losses shared by every model family.

Both take the final hidden states and the output layer (kernel [D, V], bias [V])
rather than logits, so the sampled loss never forms the [.., V] logits at all.
Item id 0 is padding: it is never a target and never a candidate. An output
layer may be wider than the item vocabulary, padded so that it splits evenly
over the mesh's `model` axis: `vocab_size` gives the real V, and columns past
it score -inf and are never sampled.

Hidden states may be bfloat16 (mixed precision): the scores come out of the
matmul in float32 and every loss is computed in float32.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from seqrec import mesh

# Scores each device forms at once in the full softmax (float32 elements), by
# backend. On CPU a chunk of [targets, columns] scores that stays in the L2
# cache (1 MiB per core on this machine) beats writing all of them to memory:
# loss and gradients of 800 targets x 54,784 items took 0.30-0.39 s in chunks
# against 0.60-0.67 s whole; at ML-100k's 1,684 items and 6,400 targets the
# two were level (throwaway micro-benchmark, 2 cores; the trainer's step:
# README "Throughput"). Elsewhere the bound only caps memory; it is unmeasured there.
SCORE_BUDGET = {"cpu": 2**18}
DEFAULT_SCORE_BUDGET = 2**28
MIN_CHUNK = 128  # columns: narrower chunks only add scan steps


def score_chunk(rows: int) -> int:
  """Item columns per chunk for `rows` targets on one device: the backend's
  SCORE_BUDGET over `rows`, a power of two, at least MIN_CHUNK."""
  budget = SCORE_BUDGET.get(jax.default_backend(), DEFAULT_SCORE_BUDGET)
  return max(MIN_CHUNK, 2 ** int(math.log2(max(budget // max(rows, 1), 1))))

def _weighted_mean(values: jax.Array, weights: jax.Array) -> jax.Array:
  # `where`, not a product: a padding target (id 0) has an infinite loss and
  # inf * 0 would be NaN.
  weights = weights.astype(values.dtype)
  values = jnp.where(weights > 0, values, 0.0)
  return jnp.sum(values * weights) / jnp.maximum(jnp.sum(weights), 1.0)


def logits(hidden: jax.Array, kernel: jax.Array, bias: jax.Array | None,
           vocab_size: int | None = None) -> jax.Array:
  """Scores of every item: [..., D] x [D, V] -> float32 [..., V].

  The padding column 0 and the columns from `vocab_size` on (None: the
  kernel's width) are -inf. Under a mesh with a `model` axis the scores stay
  split along V (`mesh.constrain_items`).
  """
  out = jnp.einsum("...d,dv->...v", hidden, kernel.astype(hidden.dtype),
                   preferred_element_type=jnp.float32)
  if bias is not None:
    out = out + bias.astype(jnp.float32)
  out = mesh.constrain_items(out)
  # A mask from the column index, not a scatter into column 0: elementwise, so
  # it runs on every item shard without moving data.
  column = jnp.arange(out.shape[-1])
  padding = (column == 0) | (column >= (vocab_size or out.shape[-1]))
  return jnp.where(padding, -jnp.inf, out)


def softmax_cross_entropy(hidden: jax.Array, kernel: jax.Array, bias: jax.Array | None,
                          targets: jax.Array, weights: jax.Array,
                          vocab_size: int | None = None, chunk: int | None = None
                          ) -> jax.Array:
  """Full-softmax cross-entropy over all items.

  Args:
    hidden: [..., D] final hidden states.
    kernel: [D, V] output embedding; bias: [V] or None.
    targets: int [...] item ids in 1..vocab_size-1 (anything where weights is 0).
    weights: [...] 1 for real positions, 0 for padding.
    vocab_size: the real V when the output layer is padded wider.
    chunk: item columns per model shard scored at once (None: `score_chunk`
      of the targets per data shard); a wider layer goes through
      `_chunked_log_z`. The layer's width scores it whole.
  Returns:
    scalar weighted mean loss (float32).
  """
  if chunk is None:
    chunk = score_chunk(math.prod(targets.shape) // mesh.axis_size(mesh.DATA))
  if kernel.shape[1] // mesh.axis_size(mesh.MODEL) <= chunk:
    scores = logits(hidden, kernel, bias, vocab_size)
    log_z = jax.nn.logsumexp(scores, axis=-1)
    target_score = jnp.take_along_axis(scores, targets[..., None], axis=-1)[..., 0]
  else:
    flat = hidden.reshape(-1, hidden.shape[-1])
    log_z = _chunked_log_z(flat, kernel, bias, vocab_size or kernel.shape[1],
                           chunk).reshape(targets.shape)
    target_score = _column_scores(hidden, kernel, bias, targets)
  return _weighted_mean(log_z - target_score, weights)


def _column_scores(hidden: jax.Array, kernel: jax.Array, bias: jax.Array | None,
                   columns: jax.Array) -> jax.Array:
  """float32 [...] scores of one gathered column per position: hidden [..., D]
  against kernel[:, columns[...]] (+ bias). From a kernel split over `model`,
  each device contributes the columns it holds."""
  vectors = jnp.take(kernel.T, columns, axis=0).astype(hidden.dtype)  # [..., D]
  scores = jnp.einsum("...d,...d->...", hidden, vectors,
                      preferred_element_type=jnp.float32)
  if bias is not None:
    scores = scores + jnp.take(bias, columns).astype(jnp.float32)
  return scores


def _chunked_log_z(hidden: jax.Array, kernel: jax.Array, bias: jax.Array | None,
                   vocab_size: int, chunk: int) -> jax.Array:
  """log-sum-exp of the scores over items 1..vocab_size-1: [N, D] -> float32 [N].

  A `lax.scan` over chunks of `chunk` columns with a running maximum and sum,
  each chunk's scores recomputed in the backward pass (`jax.checkpoint`), so
  no [N, V] array is formed. Chunk c holds columns c * chunk... of every model
  shard at once: each device scores its own columns, and only [N] partial
  sums cross devices.
  """
  shards = mesh.axis_size(mesh.MODEL)
  per_shard = kernel.shape[1] // shards
  chunks = -(-per_shard // chunk)

  def blocks(x: jax.Array) -> jax.Array:
    # [..., V] -> [chunks, ..., shards, chunk]; zero-padded to whole chunks.
    x = x.reshape(*x.shape[:-1], shards, per_shard)
    x = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, chunks * chunk - per_shard)])
    return jnp.moveaxis(x.reshape(*x.shape[:-1], chunks, chunk), -2, 0)

  # Padding (zero-filled) columns read as item 0, which is masked anyway.
  column = blocks(jnp.arange(kernel.shape[1]))
  bias = jnp.zeros(kernel.shape[1], jnp.float32) if bias is None else bias

  @jax.checkpoint
  def step(carry, block):
    top, total = carry
    kernel_c, bias_c, column_c = block  # [D, S, C], [S, C], [S, C]
    scores = jnp.einsum("nd,dsc->nsc", hidden, kernel_c.astype(hidden.dtype),
                        preferred_element_type=jnp.float32) + bias_c.astype(jnp.float32)
    scores = jnp.where((column_c != 0) & (column_c < vocab_size), scores, -jnp.inf)
    # The shift cancels in the result, so it needs no gradient; chunk 0 always
    # holds real items, so `top` is finite from the first step on.
    new_top = jnp.maximum(top, jax.lax.stop_gradient(scores.max(axis=(1, 2))))
    total = (total * jnp.exp(top - new_top)
             + jnp.exp(scores - new_top[:, None, None]).sum(axis=(1, 2)))
    return (new_top, total), None

  start = (jnp.full(hidden.shape[:1], -jnp.inf), jnp.zeros(hidden.shape[:1]))
  (top, total), _ = jax.lax.scan(step, start, (blocks(kernel), blocks(bias), column))
  return top + jnp.log(total)


def sampled_softmax_cross_entropy(hidden: jax.Array, kernel: jax.Array,
                                  bias: jax.Array | None, targets: jax.Array,
                                  weights: jax.Array, num_negatives: int,
                                  rng: jax.Array, vocab_size: int | None = None
                                  ) -> jax.Array:
  """Sampled softmax: the target against `num_negatives` shared negatives.

  One set of negatives is drawn uniformly from 1..vocab_size-1 per call and
  shared by every position (as TensorFlow's `sampled_softmax_loss`, used by
  both reference implementations, does). A uniform proposal makes the log-Q
  correction a constant that cancels. Accidental hits (a negative equal to the
  target) are removed from that position's softmax. Only the sampled and the
  target columns of the output layer are gathered: from a kernel split over
  `model`, each device contributes the columns it holds.

  Shapes as in `softmax_cross_entropy`; returns the scalar weighted mean loss.
  """
  negatives = jax.random.randint(rng, (num_negatives,), 1,
                                 vocab_size or kernel.shape[1])
  neg_kernel = jnp.take(kernel, negatives, axis=1).astype(hidden.dtype)  # [D, S]
  neg_scores = jnp.einsum("...d,ds->...s", hidden, neg_kernel,
                          preferred_element_type=jnp.float32)
  if bias is not None:
    neg_scores = neg_scores + jnp.take(bias, negatives).astype(jnp.float32)
  pos_scores = _column_scores(hidden, kernel, bias, targets)
  neg_scores = jnp.where(negatives == targets[..., None], -jnp.inf, neg_scores)
  all_scores = jnp.concatenate([pos_scores[..., None], neg_scores], axis=-1)
  return _weighted_mean(jax.nn.logsumexp(all_scores, axis=-1) - pos_scores, weights)


def bce_negatives(rng: jax.Array, targets: jax.Array, vocab_size: int) -> jax.Array:
  """One negative per position for `binary_cross_entropy`: uniform over the
  items 1..vocab_size-1 other than the position's target, int like `targets`."""
  draws = jax.random.randint(rng, targets.shape, 1, vocab_size - 1)
  return draws + (draws >= targets)  # skips the target, no rejection loop


def binary_cross_entropy(hidden: jax.Array, kernel: jax.Array, bias: jax.Array | None,
                         targets: jax.Array, negatives: jax.Array,
                         weights: jax.Array) -> jax.Array:
  """SASRec's original loss: each target against one negative, binary CE.

  Only the two gathered columns are scored. Shapes as in
  `softmax_cross_entropy`, with `negatives` like `targets` (`bce_negatives`);
  returns the scalar weighted mean loss.
  """
  columns = jnp.stack([targets, negatives], axis=-1)  # [..., 2]
  vectors = jnp.take(kernel.T, columns, axis=0).astype(hidden.dtype)  # [..., 2, D]
  scores = jnp.einsum("...d,...kd->...k", hidden, vectors,
                      preferred_element_type=jnp.float32)
  if bias is not None:
    scores = scores + jnp.take(bias, columns).astype(jnp.float32)
  values = jax.nn.softplus(-scores[..., 0]) + jax.nn.softplus(scores[..., 1])
  return _weighted_mean(values, weights)

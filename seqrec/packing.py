"""Loss positions packed into a static capacity, so no logits are formed for padding.

Left-padded windows carry a target at only some positions (11.5% of them on
Amazon Beauty at max length 50). The output layer over all items dominates a
step, so the loss gathers the positions that carry a target before it.

The capacity is chosen on the host from the batch (`Task.loss_positions`
counts each row's loss positions) and reaches the jitted step as the shape of
`batch[KEY]`, int8 [G, C]: G the data-parallel groups (one row per data
shard, so every device packs its own rows and nothing moves between them), C
the positions per group rounded up to a multiple of 1/8 of the group's
positions (few distinct shapes to compile: recompiling for every new count
cost more than packing saved). A batch that is nearly all
targets (long sequences) is not packed at all (`PAY_OFF`).
"""

from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

KEY = "packing"
# Pack only up to this share of positions. Measured on CPU: at 82% (ML-100k windows)
# packing was 5-13% slower for GRU4Rec and TSC (bench_throughput at commit 766af22), at 64%
# (the quick start's synthetic data, 1,300 items) TSC was 17% slower; at 12% (Beauty,
# 54k items) 6.5-9.2x faster.
PAY_OFF = 1 / 2
SIZES = 8  # capacities are multiples of 1/SIZES of a group's positions


def capacity(count: int) -> int:
  """`count` rounded up to m * 2**e with m in 8..15 (and at least 1): few
  distinct widths for arrays whose length varies widely (histories)."""
  if count <= 8:
    return max(count, 1)
  unit = 2 ** (int(math.log2(count)) - 3)
  return -(-count // unit) * unit


def shape(positions: np.ndarray, width: int, groups: int) -> tuple[int, int] | None:
  """[G, C] for a global batch whose rows have `positions` int [B] loss
  positions out of `width`, split into `groups` contiguous blocks of rows.

  C is the fullest group's count rounded up to a multiple of 1/8 of a group's
  positions, so a run compiles at most a handful of step programs (counts
  move in a narrow band from batch to batch). None when C would exceed
  PAY_OFF of the positions: the sort and gather then cost more than the
  padded logits they save.
  """
  full = (len(positions) // groups) * width
  unit = -(-full // SIZES)
  size = -(-int(positions.reshape(groups, -1).sum(axis=1).max()) // unit) * unit
  if size > PAY_OFF * full:
    return None
  return groups, max(size, 1)


def pack(weights: jax.Array, arrays: Sequence[jax.Array], groups: int,
         size: int) -> tuple[jax.Array, list[jax.Array]]:
  """The weighted positions of each group first, cut to `size` per group.

  Args:
    weights: [B, T] loss weights; B a multiple of `groups`.
    arrays: per-position arrays [B, T, ...] (hidden states, targets, ...).
    groups, size: the [G, C] of `batch[KEY]`; C must hold every group's
      weighted positions (`shape` makes sure).
  Returns:
    weights [G, C] and each array as [G, C, ...]: a weighted mean over them
    equals the one over the unpacked arrays.
  """
  def grouped(x):
    return x.reshape(groups, -1, *x.shape[2:])

  # A stable sort of "no weight" keys: the weighted positions first, in order.
  order = jnp.argsort(grouped(weights) == 0, axis=1, stable=True)[:, :size]

  def take(x):
    x = grouped(x)
    index = order.reshape(order.shape + (1,) * (x.ndim - 2))
    return jnp.take_along_axis(x, index, axis=1)

  return take(weights), [take(x) for x in arrays]

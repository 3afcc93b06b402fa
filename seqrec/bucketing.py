"""Length buckets: batches of short windows run at a short width.

Windows are left-padded to the run's width L. On short-sequence data (Amazon
Beauty: 8.8 items per user, L = 51) most columns of a batch are padding, and
the trunk (attention, convolutions) runs over all of them. A model whose
outputs at a position do not depend on how much padding precedes the sequence
(`Task.padding_invariant`: SASRec and Caser, `tests/seqrec/test_padding.py`)
may drop a batch's leading all-padding columns. For those widths to be short,
the epoch order puts rows of similar length into the same batches.

Widths are multiples of 1/SIZES of L, so a run compiles a handful of step
programs, and the order stays a pure function of (seed, epoch): a resumed run
repeats an uninterrupted one exactly.
"""

from __future__ import annotations

import numpy as np

SIZES = 8  # widths are multiples of 1/SIZES of the full width


def buckets(seq: np.ndarray) -> np.ndarray:
  """int [N]: the bucket of each left-padded row of seq [N, L], i.e. the width
  (in units of ceil(L / SIZES) columns) that holds every non-padding token."""
  width = seq.shape[1]
  nonzero = seq != 0
  length = np.where(nonzero.any(axis=1), width - np.argmax(nonzero, axis=1), 0)
  return -(-length // _unit(width))


def width(bucket_of_rows: np.ndarray, full: int) -> int:
  """Columns a batch needs: the fullest row's bucket, as columns, at least 2
  (an input and a target) and at most `full`."""
  return int(min(full, max(2, int(bucket_of_rows.max()) * _unit(full))))


def epoch_order(bucket_of_rows: np.ndarray, batch_size: int, seed: int,
                epoch: int) -> np.ndarray:
  """Rows of epoch `epoch`, batch after batch: int [steps * batch_size].

  A random permutation loses its last partial batch (as without buckets),
  the rest is sorted by bucket (stably, so rows within a bucket stay shuffled)
  and cut into batches, and the batches are shuffled. Every batch but the few
  that straddle two buckets holds rows of one bucket.
  """
  rng = np.random.default_rng([seed, epoch])
  steps = len(bucket_of_rows) // batch_size
  kept = rng.permutation(len(bucket_of_rows))[:steps * batch_size]
  grouped = kept[np.argsort(bucket_of_rows[kept], kind="stable")]
  return grouped.reshape(steps, batch_size)[rng.permutation(steps)].reshape(-1)


def _unit(full: int) -> int:
  return -(-full // SIZES)

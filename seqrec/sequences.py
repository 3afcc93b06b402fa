"""From interactions to fixed-length, left-padded item sequences and splits.

Item ids are dense, 1..num_items, with 0 reserved for padding. Every split is a
`Split`: an int32 [N, L] array of left-padded windows (for evaluation splits the
last column is the target and the rest is the input) plus the user of each row.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from seqrec.errors import InputError
from seqrec.interactions import Interactions


@dataclasses.dataclass(frozen=True)
class UserSequences:
  """Chronological per-user sequences with dense item ids.

  Attributes:
    items: one int32 array per kept user, dense ids in 1..num_items, in time order.
    users: int64 [U'], index into `Interactions.user_ids` of each sequence.
    item_index: int64 [num_items + 1], dense id -> `Interactions` item index
      (-1 for the padding id 0); use it to look up genres or domains.
    num_items: number of distinct items kept.
  """

  items: list[np.ndarray]
  users: np.ndarray
  item_index: np.ndarray
  num_items: int


@dataclasses.dataclass(frozen=True)
class Split:
  """seqs: int32 [N, L] left-padded windows; users: int64 [N] user of each row."""

  seqs: np.ndarray
  users: np.ndarray

  def __len__(self) -> int:
    return len(self.seqs)


@dataclasses.dataclass(frozen=True)
class Splits:
  train: Split
  valid: Split
  test: Split
  num_items: int


def _filter_counts(user: np.ndarray, item: np.ndarray, min_user_count: int,
                   min_item_count: int, num_users: int, num_items: int) -> np.ndarray:
  """Boolean keep-mask after iterating both count filters until stable."""
  keep = np.ones(len(user), bool)
  while True:
    item_counts = np.bincount(item[keep], minlength=num_items)
    user_counts = np.bincount(user[keep], minlength=num_users)
    new_keep = keep & (item_counts[item] >= min_item_count) & (
        user_counts[user] >= min_user_count)
    if new_keep.sum() == keep.sum():
      return keep
    keep = new_keep


def build_user_sequences(data: Interactions, *, min_item_count: int = 1,
                         min_user_count: int = 1,
                         item_mask: np.ndarray | None = None) -> UserSequences:
  """Groups interactions into chronological per-user sequences.

  Args:
    data: the interactions.
    min_item_count: drop items with fewer interactions (applied together with
      `min_user_count` until neither removes anything, i.e. a k-core).
    min_user_count: drop users with fewer interactions.
    item_mask: optional bool [I]; only these items are kept (e.g. the source
      domain for pretraining).
  Returns:
    The sequences; ties in time keep the source's order.
  """
  keep = np.ones(len(data), bool) if item_mask is None else item_mask[data.item]
  user, item, time = data.user[keep], data.item[keep], data.time[keep]
  counts_keep = _filter_counts(user, item, min_user_count, min_item_count,
                               data.num_users, data.num_items)
  user, item, time = user[counts_keep], item[counts_keep], time[counts_keep]
  if len(user) == 0:
    raise InputError(
        f"{data.name}: no interactions left after filtering (min_item_count="
        f"{min_item_count}, min_user_count={min_user_count})")
  item_index, dense = np.unique(item, return_inverse=True)
  order = np.lexsort((np.arange(len(user)), time, user))
  user, dense = user[order], (dense[order] + 1).astype(np.int32)
  users, starts = np.unique(user, return_index=True)
  return UserSequences(
      items=np.split(dense, starts[1:]),
      users=users.astype(np.int64),
      item_index=np.concatenate([[-1], item_index]).astype(np.int64),
      num_items=len(item_index))


def left_pad(seqs: Sequence[np.ndarray], length: int) -> np.ndarray:
  """int32 [N, length]: the last `length` items of each sequence, 0 on the left."""
  out = np.zeros((len(seqs), length), np.int32)
  for row, seq in enumerate(seqs):
    tail = seq[-length:]
    if len(tail):
      out[row, length - len(tail):] = tail
  return out


def windows(seq: np.ndarray, max_len: int, min_len: int) -> list[np.ndarray]:
  """Cuts a sequence into windows of at most `max_len`, newest first.

  Consecutive windows overlap by one item, so with next-item training at every
  position each item is a target exactly once (the first item of a window is
  only an input). Windows shorter than `min_len` are dropped.
  """
  out = []
  end = len(seq)
  while end >= min_len:
    out.append(seq[max(0, end - max_len):end])
    end -= max_len - 1
  return out


def _check_lengths(max_len: int, min_len: int) -> None:
  if max_len < 2:
    raise InputError(f"config.max_len={max_len}: must be at least 2 (one input and one target)")
  if not 2 <= min_len <= max_len:
    raise InputError(f"config.min_len={min_len}: must be in [2, config.max_len={max_len}]")


def _split(rows: list[np.ndarray], users: list[int], max_len: int) -> Split:
  return Split(left_pad(rows, max_len), np.asarray(users, np.int64))


def leave_one_out(seqs: UserSequences, max_len: int, min_len: int = 2) -> Splits:
  """RecBole's standard split by time: last item test, second-to-last valid.

  Each user with n items gives a test row (items[:n], target items[n-1]), a
  validation row (items[:n-1]) and training windows cut from items[:n-2].
  Users too short for a row are left out of that split.
  """
  _check_lengths(max_len, min_len)
  train, valid, test = ([], []), ([], []), ([], [])
  for user, items in zip(seqs.users, seqs.items):
    n = len(items)
    if n >= 2:
      test[0].append(items)
      test[1].append(user)
    if n >= 3:
      valid[0].append(items[:-1])
      valid[1].append(user)
    for window in windows(items[:-2], max_len, min_len):
      train[0].append(window)
      train[1].append(user)
  splits = [_split(rows, users, max_len) for rows, users in (train, valid, test)]
  if not len(splits[0]):
    raise InputError(f"no training sequences of at least {min_len} items")
  return Splits(*splits, num_items=seqs.num_items)


def random_split(seqs: UserSequences, max_len: int, min_len: int,
                 fractions: tuple[float, float, float] = (0.8, 0.02, 0.18),
                 seed: int = 0) -> Splits:
  """The CmnRec protocol: windows of length max_len split at random.

  Every user's history is cut into windows (`windows`), windows shorter than
  `min_len` are dropped, and the windows are shuffled by `seed` into
  train/valid/test by `fractions`. Evaluation targets are each window's last item.
  """
  _check_lengths(max_len, min_len)
  if not np.isclose(sum(fractions), 1.0) or min(fractions) < 0:
    raise InputError(f"split fractions {fractions} must be non-negative and sum to 1")
  rows, users = [], []
  for user, items in zip(seqs.users, seqs.items):
    for window in windows(items, max_len, min_len):
      rows.append(window)
      users.append(user)
  if not rows:
    raise InputError(f"no sequences of at least {min_len} items")
  order = np.random.default_rng(seed).permutation(len(rows))
  n_train = int(round(fractions[0] * len(rows)))
  n_valid = int(round(fractions[1] * len(rows)))
  parts = np.split(order, [n_train, n_train + n_valid])
  splits = [_split([rows[i] for i in part], [users[i] for i in part], max_len)
            for part in parts]
  return Splits(*splits, num_items=seqs.num_items)

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
    times: float64 timestamps matching `items`.
    timestamps: the times are real (False: file positions).
  """

  items: list[np.ndarray]
  users: np.ndarray
  item_index: np.ndarray
  num_items: int
  times: list[np.ndarray]
  timestamps: bool = True

  def position(self, users: np.ndarray) -> np.ndarray:
    """int64: the index into `items` of each `Interactions` user index."""
    return np.searchsorted(self.users, users)


@dataclasses.dataclass(frozen=True)
class Split:
  """Left-padded windows of user sequences.

  Attributes:
    seqs: int32 [N, L] windows.
    users: int64 [N] user (`Interactions` index) of each row.
    ends: int64 [N] where each window ends in its user's sequence
      (`UserSequences.items`): the window is items[end - L:end], so for an
      evaluation row items[:end - 1] is everything the user had before the
      target.
  """

  seqs: np.ndarray
  users: np.ndarray
  ends: np.ndarray

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
  user, dense, time = user[order], (dense[order] + 1).astype(np.int32), time[order]
  users, starts = np.unique(user, return_index=True)
  return UserSequences(
      items=np.split(dense, starts[1:]),
      users=users.astype(np.int64),
      item_index=np.concatenate([[-1], item_index]).astype(np.int64),
      num_items=len(item_index), times=np.split(time, starts[1:]),
      timestamps=data.timestamps)


def left_pad(seqs: Sequence[np.ndarray], length: int) -> np.ndarray:
  """int32 [N, length]: the last `length` items of each sequence, 0 on the left."""
  out = np.zeros((len(seqs), length), np.int32)
  for row, seq in enumerate(seqs):
    tail = seq[-length:]
    if len(tail):
      out[row, length - len(tail):] = tail
  return out


def window_ends(length: int, max_len: int, min_len: int) -> list[int]:
  """Ends of the windows a sequence of `length` items is cut into, newest first.

  Window `end` is items[max(0, end - max_len):end]. Consecutive windows overlap
  by one item, so with next-item training at every position each item is a
  target exactly once (the first item of a window is only an input). Windows
  shorter than `min_len` are dropped.
  """
  return list(range(length, min_len - 1, -(max_len - 1)))


def _check_lengths(max_len: int, min_len: int) -> None:
  if max_len < 2:
    raise InputError(f"config.max_len={max_len}: must be at least 2 (one input and one target)")
  if not 2 <= min_len <= max_len:
    raise InputError(f"config.min_len={min_len}: must be in [2, config.max_len={max_len}]")


class _Rows:
  """Collects the windows of one split."""

  def __init__(self, seqs: UserSequences):
    self.seqs, self.positions, self.ends = seqs, [], []

  def add(self, position: int, end: int) -> None:
    """The window of user `position` (index into seqs.items) ending at `end`."""
    self.positions.append(position)
    self.ends.append(end)

  def split(self, max_len: int, order: np.ndarray | None = None) -> Split:
    positions, ends = np.asarray(self.positions, np.int64), np.asarray(self.ends, np.int64)
    if order is not None:
      positions, ends = positions[order], ends[order]
    rows = [self.seqs.items[p][max(0, e - max_len):e] for p, e in zip(positions, ends)]
    return Split(left_pad(rows, max_len), self.seqs.users[positions], ends)


def leave_one_out(seqs: UserSequences, max_len: int, min_len: int = 2) -> Splits:
  """RecBole's standard split by time: last item test, second-to-last valid.

  Each user with n items gives a test row (items[:n], target items[n-1]), a
  validation row (items[:n-1]) and training windows cut from items[:n-2].
  Users too short for a row are left out of that split.
  """
  _check_lengths(max_len, min_len)
  train, valid, test = _Rows(seqs), _Rows(seqs), _Rows(seqs)
  for position, items in enumerate(seqs.items):
    n = len(items)
    if n >= 2:
      test.add(position, n)
    if n >= 3:
      valid.add(position, n - 1)
    for end in window_ends(n - 2, max_len, min_len):
      train.add(position, end)
  splits = [rows.split(max_len) for rows in (train, valid, test)]
  if not len(splits[0]):
    raise InputError(f"no training sequences of at least {min_len} items")
  return Splits(*splits, num_items=seqs.num_items)


def random_split(seqs: UserSequences, max_len: int, min_len: int,
                 fractions: tuple[float, float, float] = (0.8, 0.02, 0.18),
                 seed: int = 0) -> Splits:
  """The CmnRec protocol: windows of length max_len split at random.

  Every user's history is cut into windows (`window_ends`), windows shorter
  than `min_len` are dropped, and the windows are shuffled by `seed` into
  train/valid/test by `fractions`. Evaluation targets are each window's last item.
  """
  _check_lengths(max_len, min_len)
  if not np.isclose(sum(fractions), 1.0) or min(fractions) < 0:
    raise InputError(f"split fractions {fractions} must be non-negative and sum to 1")
  rows = _Rows(seqs)
  for position, items in enumerate(seqs.items):
    for end in window_ends(len(items), max_len, min_len):
      rows.add(position, end)
  if not rows.ends:
    raise InputError(f"no sequences of at least {min_len} items")
  order = np.random.default_rng(seed).permutation(len(rows.ends))
  n_train = int(round(fractions[0] * len(order)))
  n_valid = int(round(fractions[1] * len(order)))
  parts = np.split(order, [n_train, n_train + n_valid])
  return Splits(*(rows.split(max_len, part) for part in parts), num_items=seqs.num_items)


def global_time(seqs: UserSequences, max_len: int, min_len: int,
                cuts: tuple[float, float] = (0.9, 0.95)) -> Splits:
  """A leakage-free split at two global times.

  The cut times are the `cuts` quantiles of all event times. Training windows
  are cut from the events before the first cut only, so nothing at or after it
  is ever a training input or target. A user's first event in [cut 1, cut 2)
  is their validation target, their first event at or after cut 2 the test
  target; each is predicted from everything the user had before it (events
  between the cuts are test inputs, never training data).
  """
  _check_lengths(max_len, min_len)
  if not seqs.timestamps:
    raise InputError("config.split=global_time needs timestamps; this source has "
                     "only the file order")
  if not 0 < cuts[0] < cuts[1] < 1:
    raise InputError(f"config.time_cuts={cuts}: must be two quantiles with "
                     "0 < first < second < 1")
  valid_time, test_time = np.quantile(np.concatenate(seqs.times), cuts)
  train, valid, test = _Rows(seqs), _Rows(seqs), _Rows(seqs)
  for position, times in enumerate(seqs.times):
    first_valid, first_test = np.searchsorted(times, (valid_time, test_time))
    if 0 < first_valid < first_test:
      valid.add(position, first_valid + 1)
    if 0 < first_test < len(times):
      test.add(position, first_test + 1)
    for end in window_ends(first_valid, max_len, min_len):
      train.add(position, end)
  splits = [rows.split(max_len) for rows in (train, valid, test)]
  for name, part in zip(("training", "validation", "test"), splits):
    if not len(part):
      raise InputError(f"config.split=global_time with config.time_cuts={cuts}: no "
                       f"{name} rows")
  return Splits(*splits, num_items=seqs.num_items)

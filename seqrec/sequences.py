"""From interactions to fixed-length, left-padded item sequences and splits.

Item ids are dense, 1..num_items, with 0 reserved for padding. Every split is a
`Split`: an int32 [N, L] array of left-padded windows (for evaluation splits the
last column is the target and the rest is the input) plus the user of each row.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import numpy as np

from seqrec.errors import InputError
from seqrec.interactions import Interactions, by_user_time


def _views(flat: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
  # Slices, not np.split, which costs ~5 us a piece: seconds for a million users.
  bounds = offsets.tolist()
  return [flat[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


@dataclasses.dataclass(frozen=True)
class UserSequences:
  """Chronological per-user sequences with dense item ids.

  Attributes:
    flat: int32 [n] every kept user's items, dense ids in 1..num_items, in time
      order, one user after another.
    offsets: int64 [U' + 1]: user position p has flat[offsets[p]:offsets[p + 1]].
    flat_times: float64 [n] the timestamp of each of `flat`.
    users: int64 [U'], index into `Interactions.user_ids` of each sequence.
    item_index: int64 [num_items + 1], dense id -> `Interactions` item index
      (-1 for the padding id 0); use it to look up genres or domains.
    num_items: number of distinct items kept.
    timestamps: the times are real (False: file positions).
  """

  flat: np.ndarray
  offsets: np.ndarray
  flat_times: np.ndarray
  users: np.ndarray
  item_index: np.ndarray
  num_items: int
  timestamps: bool = True

  @functools.cached_property
  def items(self) -> list[np.ndarray]:
    """One int32 array (a view into `flat`) per user."""
    return _views(self.flat, self.offsets)

  @functools.cached_property
  def times(self) -> list[np.ndarray]:
    """One float64 array of timestamps (a view into `flat_times`) per user."""
    return _views(self.flat_times, self.offsets)

  def tails(self, length: int) -> np.ndarray:
    """int32 [U', length]: `left_pad(items, length)` without the per-user arrays."""
    return _tails(self.flat, self.offsets[:-1], self.offsets[1:], length)

  @property
  def lengths(self) -> np.ndarray:
    """int64 [U'] items per user."""
    return np.diff(self.offsets)

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


def _select(mask: np.ndarray, *arrays: np.ndarray) -> list[np.ndarray]:
  """Each array at `mask`; the arrays themselves, not copies, when it keeps
  everything (at 25M events each copy is 200 MB)."""
  if mask.all():
    return list(arrays)
  return [a[mask] for a in arrays]


def _filter_counts(user: np.ndarray, item: np.ndarray, min_user_count: int,
                   min_item_count: int, num_users: int, num_items: int) -> np.ndarray:
  """Boolean keep-mask after iterating both count filters until stable."""
  keep = np.ones(len(user), bool)
  while True:
    kept_user, kept_item = _select(keep, user, item)
    item_counts = np.bincount(kept_item, minlength=num_items)
    user_counts = np.bincount(kept_user, minlength=num_users)
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
  user, item, time = _select(keep, data.user, data.item, data.time)
  counts_keep = _filter_counts(user, item, min_user_count, min_item_count,
                               data.num_users, data.num_items)
  user, item, time = _select(counts_keep, user, item, time)
  if len(user) == 0:
    raise InputError(
        f"{data.name}: no interactions left after filtering (min_item_count="
        f"{min_item_count}, min_user_count={min_user_count})")
  # Item indices are dense: count them instead of sorting (np.unique).
  present = np.zeros(data.num_items, bool)
  present[item] = True
  item_index = np.flatnonzero(present)
  dense = np.cumsum(present, dtype=np.int32)[item]
  order = by_user_time(user, time)
  if order is not None:
    user, dense, time = user[order], dense[order], time[order]
  starts = np.flatnonzero(np.concatenate([[True], user[1:] != user[:-1]]))
  return UserSequences(
      flat=dense, offsets=np.append(starts, len(user)).astype(np.int64), flat_times=time,
      users=user[starts].astype(np.int64),
      item_index=np.concatenate([[-1], item_index]).astype(np.int64),
      num_items=len(item_index), timestamps=data.timestamps)


# Rows gathered at once: bounds the [rows, length] int64 index array
# (27 MB at length 51).
_CHUNK = 1 << 16


def _tails(flat: np.ndarray, begin: np.ndarray, end: np.ndarray, length: int) -> np.ndarray:
  """int32 [N, length]: row r is flat[max(begin[r], end[r] - length):end[r]],
  0 on the left."""
  out = np.zeros((len(end), length), np.int32)
  columns = np.arange(length)
  for start in range(0, len(end), _CHUNK):
    part = slice(start, start + _CHUNK)
    index = end[part, None] - length + columns
    out[part] = np.where(index >= begin[part, None], flat[np.maximum(index, 0)], 0)
  return out


def left_pad(seqs: Sequence[np.ndarray], length: int) -> np.ndarray:
  """int32 [N, length]: the last `length` items of each sequence, 0 on the left."""
  lengths = np.fromiter(map(len, seqs), np.int64, len(seqs))
  if not lengths.sum():
    return np.zeros((len(seqs), length), np.int32)
  end = np.cumsum(lengths)
  return _tails(np.concatenate(seqs), end - lengths, end, length)


def window_ends(lengths: np.ndarray, max_len: int, min_len: int,
                stride: int | None = None) -> tuple[np.ndarray, np.ndarray]:
  """The windows sequences of these lengths are cut into, newest first.

  Window `end` of a sequence is items[max(0, end - max_len):end], for `end` in
  range(length, min_len - 1, -stride). The default stride, max_len - 1, has
  consecutive windows overlap by one item, so with next-item training at every
  position each item is a target exactly once (the first item of a window is
  only an input). A shorter stride overlaps them more; each item is then a
  target once when a window trains only its last min(stride, end - 1) targets
  (`train_targets`). Windows shorter than `min_len` are dropped.

  Args:
    lengths: int [S] sequence lengths (may be below min_len, or negative).
    stride: items between consecutive window ends, in [1, max_len - 1].
  Returns:
    (int64 [W] the sequence of each window, int64 [W] its end), by sequence,
    then newest first.
  """
  lengths = np.asarray(lengths, np.int64)
  step = max_len - 1 if stride is None else stride
  count = np.where(lengths >= min_len, (lengths - min_len) // step + 1, 0)
  sequence = np.repeat(np.arange(len(lengths)), count)
  within = np.arange(len(sequence)) - np.repeat(np.cumsum(count) - count, count)
  return sequence, lengths[sequence] - within * step


def train_targets(ends: np.ndarray, stride: int) -> np.ndarray:
  """int64 [W]: how many of the last positions of each training window ending
  at `ends` (`window_ends` with `stride`) carry a target, so that every item
  is a target once and each has at least max_len - stride items before it in
  its window (or all it has)."""
  return np.minimum(stride, np.asarray(ends, np.int64) - 1)


def _check_lengths(max_len: int, min_len: int, stride: int | None = None) -> None:
  if max_len < 2:
    raise InputError(f"config.max_len={max_len}: must be at least 2 (one input and one target)")
  if not 2 <= min_len <= max_len:
    raise InputError(f"config.min_len={min_len}: must be in [2, config.max_len={max_len}]")
  if stride is not None and not 1 <= stride <= max_len - 1:
    raise InputError(f"config.train_stride={stride}: must be in [1, config.max_len - 1 = "
                     f"{max_len - 1}] (or None)")


def _rows(seqs: UserSequences, positions: np.ndarray, ends: np.ndarray,
          max_len: int) -> Split:
  """The split of the windows of users `positions` (into `seqs.items`) ending
  at `ends` (int64 [N] each)."""
  begin = seqs.offsets[positions]
  return Split(_tails(seqs.flat, begin, begin + ends, max_len), seqs.users[positions],
               np.asarray(ends, np.int64))


def leave_one_out(seqs: UserSequences, max_len: int, min_len: int = 2,
                  stride: int | None = None) -> Splits:
  """RecBole's standard split by time: last item test, second-to-last valid.

  Each user with n items gives a test row (items[:n], target items[n-1]), a
  validation row (items[:n-1]) and training windows cut from items[:n-2]
  (`window_ends` with `stride`). Users too short for a row are left out of
  that split.
  """
  _check_lengths(max_len, min_len, stride)
  n = seqs.lengths
  test, valid = np.flatnonzero(n >= 2), np.flatnonzero(n >= 3)
  train = _rows(seqs, *window_ends(n - 2, max_len, min_len, stride), max_len)
  if not len(train):
    raise InputError(f"no training sequences of at least {min_len} items")
  return Splits(train, _rows(seqs, valid, n[valid] - 1, max_len),
                _rows(seqs, test, n[test], max_len), num_items=seqs.num_items)


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
  positions, ends = window_ends(seqs.lengths, max_len, min_len)
  if not len(ends):
    raise InputError(f"no sequences of at least {min_len} items")
  order = np.random.default_rng(seed).permutation(len(ends))
  n_train = int(round(fractions[0] * len(order)))
  n_valid = int(round(fractions[1] * len(order)))
  parts = np.split(order, [n_train, n_train + n_valid])
  return Splits(*(_rows(seqs, positions[part], ends[part], max_len) for part in parts),
                num_items=seqs.num_items)


def global_time(seqs: UserSequences, max_len: int, min_len: int,
                cuts: tuple[float, float] = (0.9, 0.95), stride: int | None = None) -> Splits:
  """A leakage-free split at two global times.

  The cut times are the `cuts` quantiles of all event times. Training windows
  are cut from the events before the first cut only, so nothing at or after it
  is ever a training input or target. A user's first event in [cut 1, cut 2)
  is their validation target, their first event at or after cut 2 the test
  target; each is predicted from everything the user had before it (events
  between the cuts are test inputs, never training data). `stride` as in
  `window_ends`.
  """
  _check_lengths(max_len, min_len, stride)
  if not seqs.timestamps:
    raise InputError("config.split=global_time needs timestamps; this source has "
                     "only the file order")
  if not 0 < cuts[0] < cuts[1] < 1:
    raise InputError(f"config.time_cuts={cuts}: must be two quantiles with "
                     "0 < first < second < 1")
  valid_time, test_time = np.quantile(seqs.flat_times, cuts)
  # Each user's times are sorted: events before a cut are a prefix.
  first_valid, first_test = (np.add.reduceat(seqs.flat_times < cut, seqs.offsets[:-1])
                             for cut in (valid_time, test_time))
  valid = np.flatnonzero((0 < first_valid) & (first_valid < first_test))
  test = np.flatnonzero((0 < first_test) & (first_test < seqs.lengths))
  splits = [_rows(seqs, *window_ends(first_valid, max_len, min_len, stride), max_len),
            _rows(seqs, valid, first_valid[valid] + 1, max_len),
            _rows(seqs, test, first_test[test] + 1, max_len)]
  for name, part in zip(("training", "validation", "test"), splits):
    if not len(part):
      raise InputError(f"config.split=global_time with config.time_cuts={cuts}: no "
                       f"{name} rows")
  return Splits(*splits, num_items=seqs.num_items)

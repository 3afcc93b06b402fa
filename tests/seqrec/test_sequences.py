import dataclasses

import numpy as np
import pytest

from seqrec import sequences
from seqrec.errors import InputError
from seqrec.interactions import Interactions, by_user_time
from tests.paths import ML100K, needs_ml100k


def _data(user, item, time=None, num_items=None):
  user, item = np.asarray(user), np.asarray(item)
  time = np.arange(len(user), dtype=float) if time is None else np.asarray(time, float)
  num_users = int(user.max()) + 1
  num_items = num_items or int(item.max()) + 1
  return Interactions(name="test", user=user, item=item, time=time,
                      user_ids=np.array([f"u{i}" for i in range(num_users)]),
                      item_ids=np.array([f"i{i}" for i in range(num_items)])).validate()


def test_sequences_are_chronological_with_dense_ids():
  # User 1's events arrive out of time order; item 5 is never used.
  data = _data(user=[1, 0, 1, 0, 1], item=[3, 2, 0, 6, 2], time=[5, 1, 2, 2, 9],
               num_items=7)
  seqs = sequences.build_user_sequences(data)
  assert seqs.num_items == 4  # items 0, 2, 3, 6 -> dense 1..4
  np.testing.assert_array_equal(seqs.item_index, [-1, 0, 2, 3, 6])
  np.testing.assert_array_equal(seqs.users, [0, 1])
  np.testing.assert_array_equal(seqs.items[0], [2, 4])  # items 2, 6
  np.testing.assert_array_equal(seqs.items[1], [1, 3, 2])  # items 0 (t=2), 3 (t=5), 2 (t=9)


def test_count_filters_iterate_to_a_core():
  # Item 9 appears once; dropping it leaves user 2 with one event, then dropped.
  data = _data(user=[0, 0, 1, 1, 2, 2], item=[1, 2, 1, 2, 1, 9])
  seqs = sequences.build_user_sequences(data, min_item_count=2, min_user_count=2)
  np.testing.assert_array_equal(seqs.users, [0, 1])
  assert seqs.num_items == 2


def test_filtering_everything_is_a_clear_error():
  data = _data(user=[0, 1], item=[1, 2])
  with pytest.raises(InputError, match="no interactions left after filtering"):
    sequences.build_user_sequences(data, min_item_count=5)


def _windows(seq, max_len, min_len):
  which, ends = sequences.window_ends([len(seq)], max_len, min_len)
  assert not which.any()
  return [seq[max(0, end - max_len):end].tolist() for end in ends]


def test_windows_cover_every_target_once_and_drop_short_ones():
  seq = np.arange(1, 11)
  got = _windows(seq, max_len=4, min_len=3)
  assert got == [[7, 8, 9, 10], [4, 5, 6, 7], [1, 2, 3, 4]]
  targets = np.concatenate([w[1:] for w in got])
  assert sorted(targets.tolist()) == list(range(2, 11))
  assert _windows(np.arange(1, 7), 4, 3) == [[3, 4, 5, 6], [1, 2, 3]]
  assert _windows(np.arange(1, 7), 4, 4) == [[3, 4, 5, 6]]


@pytest.mark.parametrize("length, max_len, stride", [
    (10, 4, 1), (10, 4, 2), (10, 4, 3), (23, 6, 4), (5, 6, 3), (2, 6, 1)])
def test_strided_windows_train_every_target_once_with_context(length, max_len, stride):
  _, ends = sequences.window_ends([length], max_len, 2, stride)
  trained = []
  for end, count in zip(ends, sequences.train_targets(ends, stride)):
    start = max(0, end - max_len)
    for target in range(end - count, end):  # index of a trained item in the sequence
      assert target - start >= min(target, max_len - stride)  # its context in the window
      trained.append(target)
  assert sorted(trained) == list(range(1, length))


def test_leave_one_out_with_a_stride_trains_each_item_before_validation_once():
  data = _data(user=[0] * 9 + [1] * 4, item=[1, 2, 3, 4, 5, 6, 7, 8, 9, 1, 3, 5, 7])
  seqs = sequences.build_user_sequences(data)
  splits = sequences.leave_one_out(seqs, max_len=4, stride=2)
  np.testing.assert_array_equal(splits.train.seqs, [[4, 5, 6, 7], [2, 3, 4, 5],
                                                    [0, 1, 2, 3], [0, 0, 1, 3]])
  np.testing.assert_array_equal(sequences.train_targets(splits.train.ends, 2), [2, 2, 2, 1])
  # Validation and test rows are those of disjoint windows.
  plain = sequences.leave_one_out(seqs, max_len=4)
  np.testing.assert_array_equal(splits.valid.seqs, plain.valid.seqs)
  np.testing.assert_array_equal(splits.test.seqs, plain.test.seqs)
  with pytest.raises(InputError, match=r"config.train_stride=4: must be in \[1, config.max_len"):
    sequences.leave_one_out(seqs, max_len=4, stride=4)


def test_left_pad_keeps_the_latest_items():
  out = sequences.left_pad([np.array([1, 2, 3, 4, 5]), np.array([7])], 3)
  np.testing.assert_array_equal(out, [[3, 4, 5], [0, 0, 7]])
  assert out.dtype == np.int32


def test_leave_one_out_matches_recbole_protocol():
  data = _data(user=[0] * 6 + [1] * 2, item=[1, 2, 3, 4, 5, 6, 7, 8])
  splits = sequences.leave_one_out(sequences.build_user_sequences(data), max_len=4)
  np.testing.assert_array_equal(splits.test.seqs, [[3, 4, 5, 6], [0, 0, 7, 8]])
  np.testing.assert_array_equal(splits.test.users, [0, 1])
  np.testing.assert_array_equal(splits.valid.seqs, [[2, 3, 4, 5]])  # user 1 too short
  np.testing.assert_array_equal(splits.train.seqs, [[1, 2, 3, 4]])
  # No test or validation target is ever a training target of the same user.
  assert 6 not in splits.train.seqs and 5 not in splits.train.seqs
  np.testing.assert_array_equal(splits.test.ends, [6, 2])
  np.testing.assert_array_equal(splits.valid.ends, [5])


def test_global_time_split_never_trains_on_events_after_the_cut():
  rng = np.random.default_rng(0)
  user = np.repeat(np.arange(40), 25)
  time = rng.uniform(0, 1000, len(user))
  data = _data(user=user, item=rng.integers(0, 30, len(user)), time=time)
  seqs = sequences.build_user_sequences(data)
  splits = sequences.global_time(seqs, max_len=8, min_len=2, cuts=(0.8, 0.9))
  valid_cut, test_cut = np.quantile(time, (0.8, 0.9))

  def times(split, row):
    position = seqs.position(split.users[row:row + 1])[0]
    end = split.ends[row]
    return seqs.times[position][max(0, end - 8):end]

  # Every training window, inputs and targets, lies strictly before the cut.
  assert len(splits.train) and all(times(splits.train, r).max() < valid_cut
                                   for r in range(len(splits.train)))
  for split, low, high in ((splits.valid, valid_cut, test_cut),
                           (splits.test, test_cut, np.inf)):
    assert len(split)
    for row in range(len(split)):
      window = times(split, row)
      assert low <= window[-1] < high  # the target is the first event past the cut
      assert np.all(window[:-1] < low)
      np.testing.assert_array_equal(  # the window is the user's own items
          split.seqs[row][-len(window):],
          seqs.items[seqs.position(split.users[row:row + 1])[0]][
              split.ends[row] - len(window):split.ends[row]])


def test_global_time_split_needs_timestamps():
  data = _data(user=[0, 0, 0], item=[1, 2, 3])
  seqs = sequences.build_user_sequences(dataclasses.replace(data, timestamps=False))
  with pytest.raises(InputError, match="global_time needs timestamps"):
    sequences.global_time(seqs, max_len=4, min_len=2)


def test_random_split_is_deterministic_and_partitions_windows():
  rng = np.random.default_rng(0)
  data = _data(user=np.repeat(np.arange(50), 30), item=rng.integers(0, 40, 1500))
  seqs = sequences.build_user_sequences(data)
  a = sequences.random_split(seqs, max_len=10, min_len=5, seed=3)
  b = sequences.random_split(seqs, max_len=10, min_len=5, seed=3)
  c = sequences.random_split(seqs, max_len=10, min_len=5, seed=4)
  np.testing.assert_array_equal(a.test.seqs, b.test.seqs)
  assert not np.array_equal(a.test.seqs, c.test.seqs)
  total = len(a.train) + len(a.valid) + len(a.test)
  assert total == len(sequences.window_ends(seqs.lengths, 10, 5)[1])
  assert len(a.train) == round(0.8 * total) and len(a.valid) == round(0.02 * total)
  assert np.all((a.test.seqs != 0).sum(1) >= 5)


@pytest.mark.parametrize("max_len, min_len, message", [
    (1, 2, "config.max_len=1: must be at least 2"),
    (5, 6, "min_len=6: must be in"),
])
def test_bad_lengths(max_len, min_len, message):
  seqs = sequences.build_user_sequences(_data(user=[0, 0, 0], item=[1, 2, 3]))
  with pytest.raises(InputError, match=message):
    sequences.random_split(seqs, max_len=max_len, min_len=min_len)


@needs_ml100k
def test_ml100k_leave_one_out_sizes():
  from seqrec import sources
  data = sources.load(f"recbole:{ML100K}")
  seqs = sequences.build_user_sequences(data)
  assert len(seqs.items) == 943 and seqs.num_items == 1682
  splits = sequences.leave_one_out(seqs, max_len=51)
  assert len(splits.test) == len(splits.valid) == 943
  # Every interaction but the two held out per user is a training target once.
  train_targets = int(((splits.train.seqs[:, :-1] != 0) & (splits.train.seqs[:, 1:] != 0)).sum())
  assert train_targets == 100_000 - 2 * 943 - 943  # first item of each user is no target


@pytest.mark.parametrize("num_users, time_kind", [
    (50, "file order"), (50, "timestamps with ties"), (70_000, "file order"),
    (70_000, "timestamps with ties"), (50, "already ordered")])
def test_ordering_by_user_and_time_is_lexsort(num_users, time_kind):
  rng = np.random.default_rng(num_users)
  user = rng.integers(0, num_users, 200_000)
  time = {"file order": np.arange(len(user), dtype=np.float64),
          "timestamps with ties": rng.integers(0, 30, len(user)).astype(np.float64)}.get(
              time_kind)
  if time is None:  # users grouped, times rising within each
    user, time = np.sort(user), np.arange(len(user), dtype=np.float64)
  order = by_user_time(user, time)
  expected = np.lexsort((time, user))
  if time_kind == "already ordered":
    assert order is None
  else:
    np.testing.assert_array_equal(order, expected)  # the same permutation, ties included

"""Downstream datasets on a hand-made Interactions and on MovieLens-100k."""

import numpy as np
import pytest

from peterrec_jax import downstream
from seqrec import sources
from seqrec.errors import InputError
from seqrec.interactions import Interactions
from seqrec.sequences import build_user_sequences
from tests.paths import ML100K, needs_ml100k

GENRES = ("Comedy", "Horror", "Noir")


def hand_made() -> Interactions:
  """6 users, items 0-5 source (Comedy), 6 Horror, 7 Comedy+Noir (target).

  user 0: 4 source items, 2 target interactions; user 1: 3 source, 1 target;
  user 2: 1 source item (short), 1 target; user 3: only targets (no source);
  user 4: 5 source, no target, gender missing; user 5: 2 source, 1 target.
  """
  events = [(0, 0), (0, 6), (0, 1), (0, 2), (0, 7), (0, 3),
            (1, 4), (1, 5), (1, 7), (1, 0),
            (2, 1), (2, 6),
            (3, 6), (3, 7),
            (4, 0), (4, 1), (4, 2), (4, 3), (4, 4),
            (5, 5), (5, 6), (5, 4)]
  user, item = np.array(events).T
  genres = np.zeros((8, 3), bool)
  genres[:6, 0] = genres[7, 0] = genres[6, 1] = genres[7, 2] = True
  return Interactions(
      name="hand", user=user.astype(np.int64), item=item.astype(np.int64),
      time=np.arange(len(user), dtype=np.float64),
      user_ids=np.array([f"u{i}" for i in range(6)]),
      item_ids=np.array([f"i{i}" for i in range(8)]),
      user_features={"age": np.array([17, 18, 30, 56, 49, -1]),
                     "gender": np.array([0, 1, 0, 1, -1, 0])},
      feature_vocab={"gender": ("F", "M")},
      item_genres=genres, genre_names=GENRES).validate()


def test_age_buckets():
  ages = np.array([-1, 1, 17, 18, 24, 25, 34, 35, 44, 45, 49, 50, 55, 56, 90])
  np.testing.assert_array_equal(downstream.age_bucket(ages),
                                [-1, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6])


def test_target_domain_by_genre_or_domain():
  data = hand_made()
  np.testing.assert_array_equal(downstream.target_item_mask(data, ("Horror", "Noir")),
                                [0, 0, 0, 0, 0, 0, 1, 1])
  np.testing.assert_array_equal(downstream.target_item_mask(data, ("Noir",)),
                                [0, 0, 0, 0, 0, 0, 0, 1])
  with pytest.raises(InputError, match="Western"):
    downstream.target_item_mask(data, ("Western",))
  domain = np.array([0, 1, 0, 0, 0, 0, 0, 0], np.int8)
  with_domain = Interactions(**{**vars(data), "item_domain": domain})
  np.testing.assert_array_equal(downstream.target_item_mask(with_domain, ("Horror",)),
                                domain == 1)


def test_source_sequences_leave_out_target_items_unless_none_are_held_out():
  data = hand_made()
  source = downstream.source_sequences(data, ("Horror", "Noir"))
  assert source.num_items == 6 and set(source.item_index[1:]) == set(range(6))
  every_item = downstream.source_sequences(data, ())
  assert every_item.num_items == 8 and set(every_item.item_index[1:]) == set(range(8))


def test_crossdomain_on_hand_made_data():
  data = hand_made()
  source = downstream.source_sequences(data, ("Horror", "Noir"))
  assert source.num_items == 6
  out = downstream.build_downstream(data, source, "crossdomain", max_len=3,
                                    min_source_len=2, held_out_genres=("Horror", "Noir"),
                                    fractions=(0.34, 0.33, 0.33), seed=0)
  assert out.kind == "recommendation" and out.num_labels == 2
  assert out.label_names == ("", "i6", "i7")
  # Users 2 (1 source item) and 3 (none) are skipped; 0, 1, 5 kept.
  examples = {k: out.stats.pop(f"examples_{k}") for k in ("train", "valid", "test")}
  assert out.stats == {"target_items": 2, "target_interactions": 7,
                       "skipped_short_source": 2, "users": 3}
  assert sum(examples.values()) == 4 and min(examples.values()) == 1
  parts = (out.train, out.valid, out.test)
  assert sorted(np.concatenate([p.users for p in parts])) == [0, 0, 1, 5]
  assert len({int(u) for p in parts for u in set(p.users)}) == 3  # users are disjoint
  by_user = {int(u): (s, l) for p in parts for u, s, l in zip(p.users, p.seq, p.label)}
  # User 0: source items 0,1,2,3 (dense 1..4), the last 3 kept; its last target is i7.
  np.testing.assert_array_equal(by_user[0][0], [2, 3, 4])
  np.testing.assert_array_equal(by_user[5][0], [0, 6, 5])
  assert by_user[5][1] == 1 and by_user[1][1] == 2
  # Source sequences that still hold target items are refused.
  with pytest.raises(InputError, match="source_sequences"):
    downstream.build_downstream(data, build_user_sequences(data), "crossdomain", max_len=3,
                                held_out_genres=("Horror", "Noir"))


def test_profile_tasks_skip_and_count():
  data = hand_made()
  source = downstream.source_sequences(data, ("Horror", "Noir"))
  out = downstream.build_downstream(data, source, "gender", max_len=4, min_source_len=2,
                                    fractions=(0.34, 0.33, 0.33))
  # Missing gender: user 4; short source: users 2 and 3.
  assert out.stats["skipped_missing_label"] == 1 and out.stats["skipped_short_source"] == 2
  assert out.stats["users"] == 3 and out.num_labels == 2
  age = downstream.build_downstream(data, source, "age", max_len=4, min_source_len=2,
                                    fractions=(0.34, 0.33, 0.33))
  labels = {int(u): int(l) for p in (age.train, age.valid, age.test)
            for u, l in zip(p.users, p.label)}
  assert labels == {0: 0, 1: 1, 4: 4}
  with pytest.raises(InputError, match="occupation"):
    downstream.build_downstream(data, source, "occupation", max_len=4)
  with pytest.raises(InputError, match="usable users"):
    downstream.build_downstream(data, source, "gender", max_len=4, min_source_len=4)


@needs_ml100k
def test_movielens_100k():
  data = sources.load(f"recbole:{ML100K}")
  source = downstream.source_sequences(data)
  target = downstream.target_item_mask(data)
  assert not target[source.item_index[1:]].any()
  stats = {}
  for task in downstream.TASKS:
    out = downstream.build_downstream(data, source, task, max_len=20)
    print(task, out.num_labels, out.stats)
    stats[task] = out.stats
    parts = (out.train, out.valid, out.test)
    users = [set(p.users.tolist()) for p in parts]
    assert not (users[0] & users[1] or users[0] & users[2] or users[1] & users[2])
    for p in parts:
      assert p.seq.shape == (len(p), 20) and p.seq.max() <= source.num_items
      low = 1 if out.kind == "recommendation" else 0
      assert p.label.min() >= low and p.label.max() < low + out.num_labels
  assert stats["gender"]["users"] == 943
  assert (downstream.build_downstream(data, source, "occupation", max_len=20).num_labels
          == 21)
  assert stats["crossdomain"]["target_items"] == 116
  assert stats["crossdomain"]["users"] == 841
  assert sum(stats["crossdomain"][f"examples_{s}"] for s in ("train", "valid", "test")) == 7050


@needs_ml100k
def test_k_folds_test_every_user_once_and_label_fractions_are_nested():
  data = sources.load(f"recbole:{ML100K}")
  source = downstream.source_sequences(data)
  tested, everyone = [], None
  for fold in range(5):
    out = downstream.build_downstream(data, source, "gender", max_len=20, folds=5, fold=fold)
    parts = [set(p.users.tolist()) for p in (out.train, out.valid, out.test)]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    everyone = everyone or set.union(*parts)
    assert set.union(*parts) == everyone  # every fold uses every user
    tested.extend(parts[2])
  assert sorted(tested) == sorted(everyone)  # each user is tested exactly once
  assert len(everyone) == out.stats["users"] == 943
  train = {}
  for fraction in (0.05, 0.25, 1.0):
    out = downstream.build_downstream(data, source, "gender", max_len=20, folds=5, fold=2,
                                      label_fraction=fraction)
    train[fraction] = set(out.train.users.tolist())
    assert len(out.test) == len(downstream.build_downstream(
        data, source, "gender", max_len=20, folds=5, fold=2).test)  # same test users
  assert train[0.05] < train[0.25] < train[1.0]
  assert len(train[0.05]) == round(0.05 * len(train[1.0]))


@pytest.mark.parametrize("settings, message", [
    (dict(folds=2), "config.folds=2, config.fold=0: need folds >= 3"),
    (dict(folds=5, fold=5), "config.folds=5, config.fold=5"),
    (dict(label_fraction=0.0), "config.label_fraction=0.0: must be in"),
])
def test_bad_folds_and_fractions_are_one_line(settings, message):
  data = hand_made()
  with pytest.raises(InputError, match=message.replace("(", r"\(")):
    downstream.build_downstream(data, build_user_sequences(data), "gender", max_len=4,
                                min_source_len=1, **settings)

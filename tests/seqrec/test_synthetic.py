"""Tests for the synthetic dataset: sizes, determinism and learnable structure."""

import dataclasses

import numpy as np
import pytest

from seqrec.errors import InputError
from seqrec.synthetic import GENRES, SyntheticConfig, generate

SMALL = SyntheticConfig(num_users=300, num_items=400, num_target_items=100,
                        num_interests=10)


@pytest.fixture(scope="module")
def data():
  return generate(SMALL)


def _positions(user: np.ndarray) -> np.ndarray:
  """int64 [n] index of each event within its user (events user-major)."""
  first = np.flatnonzero(np.r_[True, user[1:] != user[:-1]])
  return np.arange(len(user)) - np.repeat(first, np.diff(np.r_[first, len(user)]))


def _long_range_repeat_rate(config: SyntheticConfig) -> float:
  """Share of late source events whose item the user had repeat_gap+ ago."""
  d = generate(config)
  source = d.item_domain[d.item] == 0
  user, item = d.user[source], d.item[source]
  position = _positions(user)
  _, first, inverse = np.unique(user * d.num_items + item, return_index=True,
                                return_inverse=True)
  late = position >= config.repeat_gap
  return np.mean((position[first][inverse] <= position - config.repeat_gap)[late])


def test_deterministic_by_seed(data):
  again = generate(SMALL)
  for field in ("user", "item", "time", "item_genres", "item_domain"):
    np.testing.assert_array_equal(getattr(data, field), getattr(again, field))
  for key, values in data.user_features.items():
    np.testing.assert_array_equal(values, again.user_features[key])
  other = generate(dataclasses.replace(SMALL, seed=1))
  assert not np.array_equal(other.item[:100], data.item[:100])


def test_sizes_and_types(data):
  assert data.num_users == 300
  assert data.num_items == 500
  np.testing.assert_array_equal(np.bincount(data.item_domain), [400, 100])
  assert data.item_ids[0] == "i0" and data.item_ids[400] == "t0"
  assert data.user.dtype == data.item.dtype == np.int64
  assert data.time.dtype == np.float64
  assert data.item_genres.shape == (500, len(GENRES))
  assert data.item_genres.any(axis=1).all()
  assert set(data.user_features) == {"age", "gender", "occupation"}
  assert data.feature_vocab["gender"] == ("F", "M")
  for key in ("gender", "occupation"):
    values = data.user_features[key]
    assert 0 <= values.min() and values.max() < len(data.feature_vocab[key])
  source = np.bincount(data.user[data.item_domain[data.item] == 0],
                       minlength=300)
  assert source.min() >= 5
  assert abs(source.mean() - SMALL.mean_length) < 0.15 * SMALL.mean_length


def test_time_increases_and_targets_follow_sources(data):
  same_user = np.diff(data.user) == 0
  assert (np.diff(data.user) >= 0).all()
  assert (np.diff(data.time)[same_user] > 0).all()
  # Within each user the domain never goes from target back to source.
  assert (np.diff(data.item_domain[data.item].astype(int))[same_user] >= 0).all()
  assert np.bincount(data.user[data.item_domain[data.item] == 1],
                     minlength=300).min() >= 1


def test_popularity_is_zipf_like(data):
  counts = np.sort(np.bincount(data.item, minlength=data.num_items)[:400])[::-1]
  assert counts[:40].sum() > 0.4 * counts.sum()  # top 10% of items
  rank = np.arange(1, 401)
  slope = np.polyfit(np.log(rank[10:300]), np.log(counts[10:300] + 1), 1)[0]
  assert -2.0 < slope < -0.5


def test_long_range_repeats():
  base = _long_range_repeat_rate(dataclasses.replace(SMALL, repeat_prob=0.0))
  assert _long_range_repeat_rate(SMALL) > base + 0.05
  assert _long_range_repeat_rate(
      dataclasses.replace(SMALL, repeat_prob=1.0)) > 0.75


def test_attributes_predictable_from_top_genre():
  d = generate(SyntheticConfig(num_users=600))
  source = d.item_domain[d.item] == 0
  counts = np.zeros((d.num_users, len(d.genre_names)))
  np.add.at(counts, d.user[source], d.item_genres[d.item[source]])
  top = counts.argmax(axis=1)
  fit, held = slice(0, 300), slice(300, None)
  for key in ("gender", "occupation"):
    label = d.user_features[key]
    majority = np.bincount(label[fit]).argmax()
    by_genre = np.full(len(d.genre_names), majority)
    for genre in np.unique(top[fit]):
      by_genre[genre] = np.bincount(label[fit][top[fit] == genre]).argmax()
    accuracy = np.mean(by_genre[top[held]] == label[held])
    assert accuracy > np.mean(label[held] == majority) + 0.1, key


def test_target_items_follow_source_interests(data):
  source = data.item_domain[data.item] == 0
  profile = np.zeros((data.num_users, len(data.genre_names)))
  np.add.at(profile, data.user[source], data.item_genres[data.item[source]])
  target_user, target_item = data.user[~source], data.item[~source]
  score = (profile[target_user] * data.item_genres[target_item]).sum(axis=1)
  shuffled = np.random.default_rng(0).permutation(target_user)
  chance = (profile[shuffled] * data.item_genres[target_item]).sum(axis=1)
  assert score.mean() > 2 * chance.mean()


def test_single_domain():
  d = generate(SyntheticConfig(num_users=20, num_target_items=0))
  assert d.item_domain is None and d.num_items == 1000


@pytest.mark.parametrize("change, field", [
    ({"interests_per_user": 30}, "interests_per_user"),
    ({"num_items": 5}, "num_items"),
    ({"mean_length": 2}, "mean_length"),
    ({"repeat_prob": 1.5}, "repeat_prob"),
])
def test_bad_config(change, field):
  with pytest.raises(InputError, match=field) as error:
    generate(SyntheticConfig(**change))
  assert "\n" not in str(error.value)


def test_million_interactions_shapes():
  d = generate(SyntheticConfig(num_users=16_700))
  assert len(d) > 1_000_000
  assert d.user.shape == d.item.shape == d.time.shape == (len(d),)

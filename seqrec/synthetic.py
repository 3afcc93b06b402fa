"""A synthetic dataset with structure that sequential recommenders can learn.

The generative story, per user:
  * the user holds `interests_per_user` interests (clusters of items), the
    first one dominant;
  * the source-domain history alternates among them in runs, each item drawn
    from its cluster with Zipf popularity;
  * with `repeat_prob`, an item is instead a re-consumption of an item of the
    same interest seen at least `repeat_gap` steps earlier, which only a model
    that remembers far back can predict;
  * after the source history come a few target-domain items (a second item
    vocabulary, `item_domain` = 1) drawn from the same interests, so that
    transfer from the source domain pays off;
  * age, gender and occupation depend (noisily) on the dominant interest, and
    item genres are a function of the cluster, so profiles are predictable from
    behaviour.

Everything is vectorised numpy: a million interactions take about a second.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from seqrec.errors import InputError
from seqrec.interactions import Interactions

GENRES = ("Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
          "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical",
          "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western")
OCCUPATIONS = ("artist", "educator", "engineer", "executive", "healthcare",
               "programmer", "student", "writer")
GENDERS = ("F", "M")

# Sequence building splits each history into train/valid/test targets, so a
# history needs a few items.
_MIN_LENGTH = 5
# Probability that an attribute ignores the dominant interest: the signal must
# be learnable but not a lookup table.
_ATTRIBUTE_NOISE = 0.25
# Probability that an item also carries its cluster's secondary genre.
_SECONDARY_GENRE_PROB = 0.3
# Mean seconds between consecutive events of one user.
_MEAN_GAP_SECONDS = 3600.0
_START_TIME = 883_612_800.0  # 1998-01-01, in the era of MovieLens timestamps


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
  """Sizes and knobs of the synthetic dataset (see the module docstring).

  Attributes:
    num_users: number of users.
    num_items: source-domain items.
    num_target_items: second-domain items consumed after the source history; 0
      gives a single-domain dataset (`item_domain` None).
    num_interests: item clusters; each cluster spans both domains.
    interests_per_user: clusters a user draws from.
    mean_length: mean source-history length (geometric, at least 5).
    zipf_exponent: popularity of the r-th item in a cluster is ~ r**-exponent.
    repeat_prob: probability that an event re-consumes an earlier item.
    seed: everything is a function of the config, this included.
    mean_run_length: mean number of consecutive events on one interest.
    repeat_gap: a repeat copies an item at least this many steps back.
    mean_target_length: mean number of target-domain items per user (>= 1).
  """

  num_users: int = 2000
  num_items: int = 1000
  num_target_items: int = 300
  num_interests: int = 20
  interests_per_user: int = 3
  mean_length: float = 60
  zipf_exponent: float = 1.1
  repeat_prob: float = 0.25
  seed: int = 0
  mean_run_length: float = 6.0
  repeat_gap: int = 20
  mean_target_length: float = 5.0


def generate(config: SyntheticConfig = SyntheticConfig()) -> Interactions:
  """Generates the dataset described by `config`.

  Returns:
    `Interactions` with users "u0".., source items "i0".. (indices
    [0, num_items)) followed by target items "t0".. (indices from num_items),
    events ordered by user then time, user features age/gender/occupation,
    multi-hot `item_genres` over `GENRES`, and `item_domain`.

  Raises:
    InputError: the config is inconsistent (one line naming the field).
  """
  _check(config)
  rng = np.random.default_rng(config.seed)
  k, m = config.num_interests, config.interests_per_user
  item_cluster = rng.permutation(np.arange(config.num_items) % k)
  target_cluster = rng.permutation(np.arange(config.num_target_items) % k)
  # Without-replacement draw of m clusters per user; column 0 is dominant.
  interests = np.argsort(rng.random((config.num_users, k)), axis=1)[:, :m]

  lengths = _MIN_LENGTH - 1 + rng.geometric(
      1.0 / (config.mean_length - _MIN_LENGTH + 1), size=config.num_users)
  user, item = _source_history(rng, config, interests, lengths, item_cluster)
  item_ids = np.strings.add("i", np.arange(config.num_items).astype(str))
  clusters, domain = item_cluster, None

  if config.num_target_items:
    target_lengths = rng.poisson(config.mean_target_length - 1,
                                 size=config.num_users) + 1
    target_user = np.repeat(np.arange(config.num_users), target_lengths)
    slot = rng.integers(m, size=len(target_user))
    target_item = config.num_items + _zipf_draw(
        rng, interests[target_user, slot], target_cluster,
        config.zipf_exponent)
    # Stable sort keeps each user's source events before their target events.
    order = np.argsort(np.concatenate([user, target_user]), kind="stable")
    user = np.concatenate([user, target_user])[order]
    item = np.concatenate([item, target_item])[order]
    lengths = lengths + target_lengths
    item_ids = np.concatenate([item_ids, np.strings.add(
        "t", np.arange(config.num_target_items).astype(str))])
    clusters = np.concatenate([item_cluster, target_cluster])
    domain = np.repeat(np.array([0, 1], np.int8),
                       [config.num_items, config.num_target_items])

  return Interactions(
      name="synthetic",
      user=user.astype(np.int64),
      item=item.astype(np.int64),
      time=_times(rng, lengths),
      user_ids=np.strings.add("u", np.arange(config.num_users).astype(str)),
      item_ids=item_ids,
      user_features=_user_features(rng, interests[:, 0], k),
      feature_vocab={"gender": GENDERS, "occupation": OCCUPATIONS},
      item_genres=_item_genres(rng, clusters, k),
      genre_names=GENRES,
      item_domain=domain,
  ).validate()


def _check(config: SyntheticConfig) -> None:
  """Raises InputError naming the first field that makes no sense."""
  c = config
  k = f"num_interests={c.num_interests}"
  rules = [
      ("num_users", c.num_users >= 1, ">= 1"),
      ("num_interests", c.num_interests >= 1, ">= 1"),
      ("num_items", c.num_items >= c.num_interests, f">= {k}"),
      ("num_target_items",
       c.num_target_items == 0 or c.num_target_items >= c.num_interests,
       f"0 or >= {k}"),
      ("interests_per_user", 1 <= c.interests_per_user <= c.num_interests,
       f"in [1, {k}]"),
      ("mean_length", c.mean_length >= _MIN_LENGTH, f">= {_MIN_LENGTH}"),
      ("zipf_exponent", c.zipf_exponent >= 0, ">= 0"),
      ("repeat_prob", 0 <= c.repeat_prob <= 1, "in [0, 1]"),
      ("mean_run_length", c.mean_run_length >= 1, ">= 1"),
      ("repeat_gap", c.repeat_gap >= 1, ">= 1"),
      ("mean_target_length", c.mean_target_length >= 1, ">= 1"),
  ]
  for field, ok, requirement in rules:
    if not ok:
      raise InputError(
          f"synthetic: {field}={getattr(c, field)} must be {requirement}")


def _source_history(rng: np.random.Generator, config: SyntheticConfig,
                    interests: np.ndarray, lengths: np.ndarray,
                    item_cluster: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Source-domain events, user-major and in time order.

  Args:
    rng: the generator.
    config: the dataset config.
    interests: int [U, m] clusters of each user, column 0 dominant.
    lengths: int [U] events per user.
    item_cluster: int [num_items] cluster of each source item.

  Returns:
    (user, item): int64 [n] each, n = lengths.sum().
  """
  n = int(lengths.sum())
  m = interests.shape[1]
  user = np.repeat(np.arange(len(lengths)), lengths)
  first = np.cumsum(lengths) - lengths
  position = np.arange(n) - first[user]

  # Runs: at a switch the user picks a slot (possibly the same one again), with
  # weights halving per slot so the first interest dominates.
  switch = rng.random(n) < 1.0 / config.mean_run_length
  switch[first] = True
  weights = 0.5 ** np.arange(m)
  drawn = rng.choice(m, size=n, p=weights / weights.sum())
  run_start = np.maximum.accumulate(np.where(switch, np.arange(n), 0))
  slot = drawn[run_start]
  item = _zipf_draw(rng, interests[user, slot], item_cluster,
                    config.zipf_exponent)

  # Long-range repeats: copy the item of a uniformly chosen earlier event of
  # the same user and slot, at least `repeat_gap` steps back. Sorting by
  # (group, position) makes "earlier events of my group" a contiguous range.
  group = user * m + slot
  span = int(position.max()) + 1
  key = group * span + position
  by_key = np.argsort(key, kind="stable")
  sorted_key = key[by_key]
  lo = np.searchsorted(sorted_key, group * span, side="left")
  hi = np.searchsorted(sorted_key, key - config.repeat_gap, side="right")
  count = np.where(position >= config.repeat_gap, hi - lo, 0)
  repeat = (rng.random(n) < config.repeat_prob) & (count > 0)
  pick = lo + (rng.random(n) * count).astype(np.int64)
  source = np.where(repeat, by_key[np.minimum(pick, n - 1)], np.arange(n))
  # A repeat may copy a repeat: follow the pointers to the original event by
  # doubling (log of the longest chain many gathers).
  while True:
    followed = source[source]
    if np.array_equal(followed, source):
      break
    source = followed
  return user, item[source]


def _zipf_draw(rng: np.random.Generator, cluster: np.ndarray,
               item_cluster: np.ndarray, exponent: float) -> np.ndarray:
  """Draws one item per event from its cluster with Zipf popularity.

  Args:
    rng: the generator.
    cluster: int [n] the cluster of each event.
    item_cluster: int [I] the cluster of each item (every cluster non-empty).
    exponent: the r-th most popular item of a cluster has weight r**-exponent.

  Returns:
    int64 [n] item indices into `item_cluster`.
  """
  # Random within-cluster popularity ranks, so popularity is unrelated to ids.
  shuffled = rng.permutation(len(item_cluster))
  order = shuffled[np.argsort(item_cluster[shuffled], kind="stable")]
  sorted_cluster = item_cluster[order]
  sizes = np.bincount(sorted_cluster)
  starts = np.cumsum(sizes) - sizes
  rank = np.arange(len(order)) - starts[sorted_cluster]
  weight = (rank + 1.0) ** -exponent
  cumulative = np.cumsum(weight)
  within = cumulative - (cumulative[starts] - weight[starts])[sorted_cluster]
  cdf = within / np.bincount(sorted_cluster, weight)[sorted_cluster]
  cdf[starts + sizes - 1] = 1.0  # exact, so a draw never leaks to the next
  # cluster + cdf is increasing across all clusters: one searchsorted samples
  # every event from its own cluster's distribution.
  index = np.searchsorted(sorted_cluster + cdf, cluster + rng.random(len(cluster)),
                          side="right")
  return order[index]


def _times(rng: np.random.Generator, lengths: np.ndarray) -> np.ndarray:
  """float64 [sum(lengths)] whole-second timestamps, increasing per user."""
  n = int(lengths.sum())
  user = np.repeat(np.arange(len(lengths)), lengths)
  gap = 1.0 + np.floor(rng.exponential(_MEAN_GAP_SECONDS, size=n))
  elapsed = np.cumsum(gap)
  first = np.cumsum(lengths) - lengths
  start = _START_TIME + np.floor(rng.uniform(0, 365 * 86400, size=len(lengths)))
  return start[user] + elapsed - elapsed[first][user]


def _user_features(rng: np.random.Generator, dominant: np.ndarray,
                   num_interests: int) -> dict[str, np.ndarray]:
  """Age, gender and occupation (int64 [U]) driven by the dominant interest."""
  num_users = len(dominant)
  noisy = lambda: rng.random(num_users) < _ATTRIBUTE_NOISE
  occupation_of = rng.permutation(np.arange(num_interests) % len(OCCUPATIONS))
  occupation = np.where(noisy(), rng.integers(len(OCCUPATIONS), size=num_users),
                        occupation_of[dominant])
  male_share_of = np.where(rng.permutation(np.arange(num_interests) % 2), 0.8, 0.2)
  gender = rng.random(num_users) < male_share_of[dominant]
  age_of = rng.integers(18, 60, size=num_interests)
  age = np.clip(np.rint(rng.normal(age_of[dominant], 5.0)), 10, 80)
  return {"age": age.astype(np.int64), "gender": gender.astype(np.int64),
          "occupation": occupation.astype(np.int64)}


def _item_genres(rng: np.random.Generator, clusters: np.ndarray,
                 num_interests: int) -> np.ndarray:
  """bool [I, len(GENRES)]: the cluster's main genre, sometimes a second one."""
  g = len(GENRES)
  primary = rng.permutation(np.arange(num_interests) % g)
  secondary = (primary + 1 + rng.integers(g - 1, size=num_interests)) % g
  genres = np.zeros((len(clusters), g), bool)
  rows = np.arange(len(clusters))
  genres[rows, primary[clusters]] = True
  genres[rows, secondary[clusters]] = (
      rng.random(len(clusters)) < _SECONDARY_GENRE_PROB)
  return genres

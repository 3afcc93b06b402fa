"""PeterRec's downstream datasets, built from `Interactions`.

Tasks: "gender", "age" (MovieLens-1M buckets), "occupation" (one example per
user, label = class id) and "crossdomain" (one example per (user, target-domain
item) interaction, label = target item id in its own vocabulary 1..T). The
input of every example is the user's source-domain sequence, with the item ids
of the pretraining vocabulary (`source_sequences`). Users are split into
train/valid/test, so test users are never fine-tuned on.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from seqrec.errors import InputError, require_choice
from seqrec.interactions import Interactions
from seqrec.sequences import UserSequences, build_user_sequences, left_pad

PROFILE_TASKS = ("gender", "age", "occupation")
TASKS = PROFILE_TASKS + ("crossdomain",)
AGE_BUCKETS = ("under 18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+")
_AGE_BUCKET_STARTS = np.array([18, 25, 35, 45, 50, 56])
# On MovieLens-100k: 116 target items, 841 users with 7050 target interactions.
DEFAULT_HELD_OUT_GENRES = ("Horror", "Film-Noir")


@dataclasses.dataclass(frozen=True)
class Examples:
  """seq: int32 [N, L] left-padded source items; label: int32 [N]; users: int64 [N]."""

  seq: np.ndarray
  label: np.ndarray
  users: np.ndarray

  def __len__(self) -> int:
    return len(self.label)

  def batch(self) -> dict[str, np.ndarray]:
    """The arrays the fine-tuning task reads: {"seq", "label"}."""
    return {"seq": self.seq, "label": self.label}


@dataclasses.dataclass(frozen=True)
class Downstream:
  """A downstream dataset.

  Attributes:
    train, valid, test: examples of disjoint sets of users.
    kind: "classification" or "recommendation" (`finetune.make_finetune_task`).
    num_labels: classes K (labels 0..K-1) or target items T (labels 1..T).
    label_names: name of every label id: class names, or for recommendation
      "" for the unused id 0 followed by the raw ids of the target items.
    stats: counts for logging: users kept and skipped (and why), examples
      per split, target items.
  """

  train: Examples
  valid: Examples
  test: Examples
  kind: str
  num_labels: int
  label_names: tuple[str, ...]
  stats: dict[str, int]


def age_bucket(age: np.ndarray) -> np.ndarray:
  """Age in years -> MovieLens-1M bucket index (see AGE_BUCKETS); -1 stays -1."""
  age = np.asarray(age)
  return np.where(age < 0, -1, np.searchsorted(_AGE_BUCKET_STARTS, age, side="right"))


def target_item_mask(data: Interactions,
                     held_out_genres: Sequence[str] = DEFAULT_HELD_OUT_GENRES) -> np.ndarray:
  """bool [I]: the target-domain items.

  `data.item_domain == 1` where the source has domains (the genres are then
  ignored); otherwise every item with ANY of `held_out_genres`.
  """
  if data.item_domain is not None:
    mask = data.item_domain == 1
  else:
    if data.item_genres is None:
      raise InputError(f"{data.name}: has neither item domains nor item genres, "
                       "so no target domain can be formed")
    unknown = [g for g in held_out_genres if g not in data.genre_names]
    if unknown or not held_out_genres:
      raise InputError(f"config.held_out_genres={','.join(held_out_genres)}: unknown "
                       f"genre(s) {unknown}; {data.name} has {list(data.genre_names)}")
    columns = [data.genre_names.index(g) for g in held_out_genres]
    mask = data.item_genres[:, columns].any(axis=1)
  if not mask.any() or mask.all():
    raise InputError(f"{data.name}: the target domain holds {int(mask.sum())} of "
                     f"{data.num_items} items; both domains need items")
  return mask


def source_sequences(data: Interactions,
                     held_out_genres: Sequence[str] = DEFAULT_HELD_OUT_GENRES, *,
                     min_item_count: int = 1, min_user_count: int = 1) -> UserSequences:
  """Source-domain sequences: pretrain on these and give them to
  `build_downstream`, so both use one item vocabulary and pretraining never
  sees a target item. No held-out genres keeps every item (no target domain,
  so no cross-domain task can follow)."""
  item_mask = ~target_item_mask(data, held_out_genres) if held_out_genres else None
  return build_user_sequences(data, min_item_count=min_item_count,
                              min_user_count=min_user_count, item_mask=item_mask)


def _profile_labels(data: Interactions, task: str) -> tuple[np.ndarray, tuple[str, ...]]:
  """int64 [U] labels (-1 missing) and the class names."""
  if task not in data.user_features:
    raise InputError(f"config.task={task}: {data.name} has no user feature {task!r}")
  values = data.user_features[task]
  if task == "age":
    return age_bucket(values), AGE_BUCKETS
  return values, tuple(data.feature_vocab[task])


def _split_users(users: np.ndarray, fractions: Sequence[float], seed: int,
                 task: str, folds: int = 0, fold: int = 0,
                 label_fraction: float = 1.0) -> list[np.ndarray]:
  """Train, valid and test users: by `fractions` of a permutation of `seed`,
  or with `folds` > 0 the fold-th of k folds of it as test and the next fold as
  validation, so over the k folds every user is tested once. Only the first
  `label_fraction` of the training users (in permutation order, so smaller
  fractions are subsets of larger ones) keep their labels."""
  if not 0 < label_fraction <= 1:
    raise InputError(f"config.label_fraction={label_fraction}: must be in (0, 1]")
  order = np.random.default_rng(seed).permutation(users)
  if folds:
    if folds < 3 or not 0 <= fold < folds:
      raise InputError(f"config.folds={folds}, config.fold={fold}: need folds >= 3 and "
                       "0 <= fold < folds")
    chunks = np.array_split(order, folds)
    test, valid = chunks[fold], chunks[(fold + 1) % folds]
    train = np.concatenate([c for i, c in enumerate(chunks)
                            if i not in (fold, (fold + 1) % folds)])
    parts = [train, valid, test]
  else:
    if len(fractions) != 3 or min(fractions) < 0 or not np.isclose(sum(fractions), 1.0):
      raise InputError(f"split fractions {tuple(fractions)} must be three "
                       "non-negative numbers summing to 1")
    n_train = int(round(fractions[0] * len(users)))
    n_valid = int(round(fractions[1] * len(users)))
    parts = np.split(order, [n_train, n_train + n_valid])
  parts[0] = parts[0][:max(1, int(round(label_fraction * len(parts[0]))))]
  if any(len(p) == 0 for p in parts):
    raise InputError(f"config.task={task}: {len(users)} usable users cannot fill "
                     f"train/valid/test with fractions {tuple(fractions)}")
  return parts


def build_downstream(data: Interactions, source: UserSequences, task: str, *,
                     max_len: int, min_source_len: int = 5,
                     held_out_genres: Sequence[str] = DEFAULT_HELD_OUT_GENRES,
                     fractions: Sequence[float] = (0.8, 0.1, 0.1),
                     seed: int = 0, folds: int = 0, fold: int = 0,
                     label_fraction: float = 1.0) -> Downstream:
  """Builds one downstream task.

  Args:
    data: the interactions, with user features / genres or domains.
    source: the users' source sequences in the pretraining vocabulary
      (`source_sequences`, or all items for profile tasks on one domain).
    task: one of TASKS.
    max_len: length L of every source sequence (the last L items are kept).
    min_source_len: users with fewer source items are skipped.
    held_out_genres: the target domain of "crossdomain" when `data` has no
      item domains.
    fractions: train/valid/test shares of the users (without `folds`).
    seed: the user split.
    folds, fold: k-fold cross-validation over users: fold `fold` of `folds`
      is the test set, the next one validation (0 folds: `fractions`).
    label_fraction: the share of the training users whose labels are used.
  Returns:
    The dataset. Skipped users (missing label, short source sequence) are
    counted in `stats`, not errors.
  """
  require_choice(task, TASKS, "config.task")
  if max_len < 1 or min_source_len < 1:
    raise InputError(f"config.max_len={max_len}, config.min_source_len={min_source_len}: "
                     "must be positive")
  source_len = np.zeros(data.num_users, np.int64)
  source_len[source.users] = [len(s) for s in source.items]
  row_of_user = np.full(data.num_users, -1, np.int64)
  row_of_user[source.users] = np.arange(len(source.users))
  if task == "crossdomain":
    example_user, label, label_names, stats = _crossdomain_examples(
        data, source, held_out_genres)
  else:
    label, label_names = _profile_labels(data, task)
    example_user = np.arange(data.num_users)
    stats = {"skipped_missing_label": int(np.sum(label < 0))}
    example_user, label = example_user[label >= 0], label[label >= 0]
  candidates = np.unique(example_user)
  short = candidates[source_len[candidates] < min_source_len]
  stats["skipped_short_source"] = len(short)
  keep = ~np.isin(example_user, short)
  example_user, label = example_user[keep], label[keep]
  kept_users = np.unique(example_user)
  stats["users"] = len(kept_users)
  splits = []
  for name, users in zip(("train", "valid", "test"),
                         _split_users(kept_users, fractions, seed, task, folds, fold,
                                      label_fraction)):
    rows = np.flatnonzero(np.isin(example_user, users))
    seqs = [source.items[row_of_user[u]] for u in example_user[rows]]
    splits.append(Examples(left_pad(seqs, max_len), label[rows].astype(np.int32),
                           example_user[rows]))
    stats[f"examples_{name}"] = len(rows)
  kind = "recommendation" if task == "crossdomain" else "classification"
  num_labels = len(label_names) - (kind == "recommendation")
  return Downstream(*splits, kind=kind, num_labels=num_labels,
                    label_names=label_names, stats=stats)


def _crossdomain_examples(data: Interactions, source: UserSequences,
                          held_out_genres: Sequence[str]
                          ) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], dict[str, int]]:
  """Every target-domain interaction as (user, target id), in time order per user."""
  target = target_item_mask(data, held_out_genres)
  if target[source.item_index[1:]].any():
    raise InputError(f"{data.name}: the source sequences contain target-domain "
                     "items; build them with downstream.source_sequences")
  rows = np.flatnonzero(target[data.item])
  rows = rows[np.lexsort((rows, data.time[rows], data.user[rows]))]
  target_items, dense = np.unique(data.item[rows], return_inverse=True)
  label_names = ("",) + tuple(str(i) for i in data.item_ids[target_items])
  stats = {"target_items": len(target_items), "target_interactions": len(rows)}
  return data.user[rows], (dense + 1).astype(np.int64), label_names, stats

"""Evaluation protocols: what each target is ranked against (`config.protocol`).

- Full ranking against every item, the user's history left in: plain metric
  keys ("ndcg@10"). Always reported.
- `exclude_seen`: full ranking with the items the user had before the target
  masked out, as most recent papers do. A target the user had before (a
  repeat) stays a candidate. Keys "unseen_ndcg@10".
- `sampled`: the target against N negatives from the items the user never
  interacted with (in any split), drawn without replacement uniformly (as in
  SASRec) or by popularity (as in BERT4Rec). Keys "uniform100_ndcg@10".

Both travel in the evaluation rows, built once on the host: "history" int32
[N, H] (the items before the target, 0-padded) and "negatives_NAME" int32
[N, n]. The negatives are a pure function of (protocol seed, user, split), so
every model is scored against the same ones and comparisons are paired.
"""

from __future__ import annotations

import dataclasses
import zlib
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from seqrec import metrics
from seqrec.errors import InputError
from seqrec.task import Arrays, Batch

SAMPLERS = ("uniform", "popularity")
HISTORY = "history"
NEGATIVES = "negatives_"
UNSEEN = "unseen_"


@dataclasses.dataclass(frozen=True)
class Sampled:
  """A sampled protocol: `size` negatives drawn by `sampler`."""

  sampler: str
  size: int

  @property
  def name(self) -> str:
    return f"{self.sampler}{self.size}"


def parse_sampled(spec: str) -> tuple[Sampled, ...]:
  """"uniform:100,popularity:100" -> the sampled protocols ("" -> none)."""
  out = []
  for part in filter(None, (p.strip() for p in spec.split(","))):
    sampler, _, size = part.partition(":")
    if sampler not in SAMPLERS or not size.isdigit() or int(size) < 1:
      raise InputError(f"config.protocol.sampled={spec!r}: each entry must be "
                       f"SAMPLER:N with SAMPLER one of {SAMPLERS} and N >= 1")
    out.append(Sampled(sampler, int(size)))
  return tuple(out)


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(x: np.ndarray) -> np.ndarray:
  """splitmix64's finaliser: uint64 -> well-mixed uint64, elementwise."""
  with np.errstate(over="ignore"):  # multiplication modulo 2**64 is the point
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
  return x ^ (x >> np.uint64(31))


def _candidates(row_keys: np.ndarray, count: int, cdf: np.ndarray | None,
                num_candidates: int) -> np.ndarray:
  """int64 [N, count]: the first `count` draws of each row's stream, in
  1..num_candidates, uniform (cdf None) or by the weights summed in `cdf`.
  Draw j of a row depends only on its key and j, so more draws extend a row's
  stream and never change its start."""
  bits = _mix(row_keys[:, None] + _GOLDEN * np.arange(1, count + 1, dtype=np.uint64))
  if cdf is None:
    return (1 + bits % np.uint64(num_candidates)).astype(np.int64)
  uniform = (bits >> np.uint64(11)).astype(np.float64) / 2.0**53
  return 1 + np.searchsorted(cdf, uniform * cdf[-1], side="right")


def negatives(sampled: Sampled, seed: int, split: str, users: np.ndarray,
              interacted: Sequence[np.ndarray], counts: np.ndarray) -> np.ndarray:
  """The negatives of every row: int32 [N, sampled.size].

  Each row takes, in order, the first `sampled.size` distinct draws of its
  own random stream that the user never had. The stream is a counter-based
  hash of (seed, split, user), so a row's negatives do not depend on the
  other rows, and all rows are drawn at once.

  Args:
    sampled: the protocol.
    seed: the protocol seed (config.protocol.seed).
    split: the split's name; part of each row's random stream.
    users: int64 [N] user of each row (`Interactions` index).
    interacted: per row, every candidate the user ever had (never drawn).
    counts: float [C + 1] interactions of every candidate (entry 0, padding,
      ignored); the popularity weights, and C the number of candidates.
  """
  num_rows, num_candidates, size = len(users), len(counts) - 1, sampled.size
  popular = sampled.sampler == "popularity"
  cdf = np.cumsum(counts[1:], dtype=np.float64) if popular else None
  drawable = np.concatenate([[False], counts[1:] > 0 if popular else
                             np.ones(num_candidates, bool)])
  stride = np.int64(num_candidates + 1)
  rows = np.repeat(np.arange(num_rows), [len(i) for i in interacted])
  had = np.unique(rows * stride + np.concatenate([np.zeros(0, np.int64), *interacted]))
  left = drawable.sum() - np.bincount(had // stride, weights=drawable[had % stride],
                                      minlength=num_rows)
  short = np.flatnonzero(left < size)
  if short.size:
    raise InputError(f"config.protocol.sampled={sampled.sampler}:{size}: user "
                     f"{users[short[0]]} ({split}) leaves only {int(left[short[0]])} "
                     "candidates to draw")
  stream = np.uint64(zlib.crc32(split.encode()))
  row_keys = _mix(_mix(_mix(np.asarray(seed, np.uint64) + _GOLDEN) ^ stream)
                  ^ np.asarray(users, np.uint64))
  out = np.zeros((num_rows, size), np.int32)
  todo, count = np.arange(num_rows), 2 * size
  while todo.size:
    draws = _candidates(row_keys[todo], count, cdf, num_candidates)
    keys = todo[:, None] * stride + draws
    _, first = np.unique(keys, return_index=True)  # a row's repeats are dropped
    keep = np.zeros(keys.size, bool)
    keep[first] = True
    keep = keep.reshape(keys.shape) & ~np.isin(keys, had)
    done = keep.sum(axis=1) >= size
    take = keep & (np.cumsum(keep, axis=1) <= size)
    out[todo[done]] = draws[done][take[done]].reshape(-1, size)
    todo, count = todo[~done], 2 * count
  return out


def pad_rows(rows: Sequence[np.ndarray]) -> np.ndarray:
  """int32 [N, H]: each row's items, right-padded with 0 (H >= 1)."""
  out = np.zeros((len(rows), max([1, *map(len, rows)])), np.int32)
  for row, items in enumerate(rows):
    out[row, :len(items)] = items
  return out


def eval_arrays(protocol: Any, split: str, users: np.ndarray,
                history: Sequence[np.ndarray], interacted: Sequence[np.ndarray],
                counts: np.ndarray) -> Arrays:
  """The arrays config.protocol adds to the evaluation rows of `split`.

  Args:
    protocol: config.protocol (exclude_seen, sampled, seed).
    split: "valid" or "test".
    users: int64 [N] user of each row.
    history: per row, the candidates the user had before the target.
    interacted: per row, every candidate the user ever had.
    counts: [C + 1] interactions per candidate (`negatives`).
  """
  out = {HISTORY: pad_rows(history)} if protocol.exclude_seen else {}
  for sampled in parse_sampled(protocol.sampled):
    out[NEGATIVES + sampled.name] = negatives(sampled, protocol.seed, split, users,
                                              interacted, counts)
  return out


def adds_arrays(protocol: Any) -> bool:
  """Whether config.protocol adds arrays to the evaluation rows (`eval_arrays`)."""
  return bool(protocol.exclude_seen or parse_sampled(protocol.sampled))


def check(protocol: Any, ranks_items: bool, setting: str) -> None:
  """Refuses a protocol on a task that does not rank items (`setting` names it)."""
  if not ranks_items and adds_arrays(protocol):
    raise InputError(f"config.protocol ranks items; {setting} classifies users: "
                     "leave config.protocol.exclude_seen and .sampled unset")


def ranking(scores: jax.Array, targets: jax.Array, batch: Batch,
            ks: Sequence[int] = metrics.DEFAULT_KS) -> dict[str, jax.Array]:
  """Metrics of every protocol whose arrays `batch` carries; values [B].

  Args:
    scores: float [B, V'] scores of every candidate, column 0 padding.
    targets: int [B] the target column.
    batch: the evaluation batch, with the arrays of `eval_arrays`.
    ks: cut-offs.
  """
  out = metrics.full_ranking(scores, targets, ks)
  scores = scores.astype(jnp.float32)
  target_score = jnp.take_along_axis(scores, targets[:, None], axis=1)
  if HISTORY in batch:
    rows = jnp.arange(scores.shape[0])[:, None]
    unseen = scores.at[rows, batch[HISTORY]].set(-jnp.inf)
    unseen = unseen.at[rows, targets[:, None]].set(target_score)
    out.update(metrics.metrics_from_ranks(metrics.target_ranks(unseen, targets), ks,
                                          prefix=UNSEEN))
  for key in sorted(k for k in batch if k.startswith(NEGATIVES)):
    negative_scores = jnp.take_along_axis(scores, batch[key], axis=1)
    above = jnp.sum(negative_scores >= target_score, axis=1, dtype=jnp.int32)
    out.update(metrics.metrics_from_ranks(metrics.ranks_from_counts(above), ks,
                                          prefix=key[len(NEGATIVES):] + "_"))
  return out

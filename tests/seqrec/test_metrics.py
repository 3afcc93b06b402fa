import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqrec import metrics


def brute_force(scores: np.ndarray, targets: np.ndarray, k: int) -> dict[str, np.ndarray]:
  """Reference: sort candidates with the target placed after every equal score."""
  out = {"mrr": [], "hr": [], "ndcg": []}
  for row, target in zip(scores, targets):
    candidates = [(s, i != target, i) for i, s in enumerate(row) if i != 0]
    # Descending score; among equal scores the target (key False) sorts last.
    ordered = sorted(candidates, key=lambda c: (-c[0], not c[1]))
    rank = [c[2] for c in ordered].index(target) + 1
    out["mrr"].append(1 / rank if rank <= k else 0.0)
    out["hr"].append(float(rank <= k))
    out["ndcg"].append(1 / np.log2(rank + 1) if rank <= k else 0.0)
  return {key: np.asarray(v) for key, v in out.items()}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_full_ranking_matches_brute_force_with_ties(seed):
  rng = np.random.default_rng(seed)
  scores = rng.integers(0, 6, size=(40, 25)).astype(np.float32)  # many ties
  targets = rng.integers(1, 25, size=40)
  got = metrics.full_ranking(jnp.asarray(scores), jnp.asarray(targets))
  for k in metrics.DEFAULT_KS:
    want = brute_force(scores, targets, k)
    for name in ("mrr", "hr", "ndcg"):
      np.testing.assert_allclose(got[f"{name}@{k}"], want[name], rtol=1e-6)


def test_hand_worked_cases():
  # Target 2 scores 5; item 1 scores 9 (above), item 3 ties (counts above),
  # padding column 0 scores 100 but is never ranked -> rank 3.
  scores = jnp.array([[100.0, 9.0, 5.0, 5.0, 1.0]])
  ranks = metrics.target_ranks(scores, jnp.array([2]))
  assert int(ranks[0]) == 3
  got = metrics.full_ranking(scores, jnp.array([2]), ks=(2, 5))
  assert float(got["hr@2"][0]) == 0.0
  assert float(got["mrr@5"][0]) == pytest.approx(1 / 3)
  assert float(got["ndcg@5"][0]) == pytest.approx(0.5)


def test_constant_scores_rank_last():
  scores = jnp.zeros((3, 11))
  ranks = metrics.target_ranks(scores, jnp.array([1, 5, 10]))
  np.testing.assert_array_equal(ranks, [10, 10, 10])


def test_accuracy_counts_ties_as_wrong():
  logits = jnp.array([[0.0, 2.0, 1.0], [1.0, 1.0, 0.0], [3.0, 0.0, 0.0]])
  got = metrics.accuracy(logits, jnp.array([1, 0, 0]))
  np.testing.assert_array_equal(got["accuracy"], [1.0, 0.0, 1.0])

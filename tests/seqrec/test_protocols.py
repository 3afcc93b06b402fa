"""Evaluation protocols against a brute-force numpy reference; paired negatives."""

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import caser, sasrec
from seqrec import experiment, protocols, registry
from seqrec.errors import InputError


def _numpy_rank(scores, target, candidates):
  """Pessimistic 1-based rank of `target` among `candidates` (a list of columns)."""
  return 1 + sum(scores[c] >= scores[target] for c in candidates if c != target)


def _reference(scores, targets, history, negatives, k=10):
  """NDCG@k of each row: full ranking, history excluded, sampled."""
  def ndcg(rank):
    return 1 / np.log2(rank + 1) if rank <= k else 0.0
  num_columns = scores.shape[1]
  out = {"full": [], "unseen": [], "sampled": []}
  for row, target in enumerate(targets):
    everything = range(1, num_columns)
    seen = set(history[row]) - {0}
    out["full"].append(ndcg(_numpy_rank(scores[row], target, everything)))
    out["unseen"].append(ndcg(_numpy_rank(
        scores[row], target, [c for c in everything if c not in seen])))
    out["sampled"].append(ndcg(_numpy_rank(scores[row], target, negatives[row])))
  return out


def test_protocols_match_a_brute_force_reference():
  rng = np.random.default_rng(0)
  num_rows, num_columns = 12, 40
  # Few distinct values, so ties (counted pessimistically) occur.
  scores = rng.integers(0, 6, (num_rows, num_columns)).astype(np.float32)
  targets = rng.integers(1, num_columns, num_rows)
  history = [rng.choice(np.arange(1, num_columns), rng.integers(0, 15), replace=False)
             for _ in range(num_rows)]
  history[0] = np.append(history[0], targets[0])  # a repeat stays a candidate
  interacted = [np.append(h, t) for h, t in zip(history, targets)]
  users = np.arange(num_rows) * 3
  counts = rng.integers(0, 5, num_columns).astype(float)
  for sampler in ("uniform", "popularity"):
    protocol = dict(exclude_seen=True, sampled=f"{sampler}:7", seed=1)
    arrays = protocols.eval_arrays(ml_collections.ConfigDict(protocol), "test", users, history,
                                   interacted, counts)
    batch = {key: jnp.asarray(value) for key, value in arrays.items()}
    got = protocols.ranking(jnp.asarray(scores), jnp.asarray(targets), batch, ks=(10,))
    negatives = arrays[f"negatives_{sampler}7"]
    want = _reference(scores, targets, arrays["history"], negatives)
    np.testing.assert_allclose(got["ndcg@10"], want["full"], rtol=1e-6)
    np.testing.assert_allclose(got["unseen_ndcg@10"], want["unseen"], rtol=1e-6)
    np.testing.assert_allclose(got[f"{sampler}7_ndcg@10"], want["sampled"], rtol=1e-6)
    for row in range(num_rows):
      assert len(set(negatives[row])) == 7 and not set(negatives[row]) & set(interacted[row])
      assert negatives[row].min() >= 1 and negatives[row].max() < num_columns
      if sampler == "popularity":
        assert np.all(counts[negatives[row]] > 0)  # never an item nobody had


def test_negatives_depend_only_on_seed_user_and_split():
  interacted = [np.array([1, 2]), np.array([3]), np.array([4, 5, 6])]
  counts = np.ones(30)
  spec = protocols.Sampled("uniform", 5)
  first = protocols.negatives(spec, 0, "test", np.array([10, 11, 12]), interacted, counts)
  # The same users in another order, beside another user: the same rows.
  again = protocols.negatives(spec, 0, "test", np.array([12, 99, 10]),
                              [interacted[2], np.array([7]), interacted[0]], counts)
  np.testing.assert_array_equal(again[[2, 0]], first[[0, 2]])
  assert not np.array_equal(
      protocols.negatives(spec, 0, "valid", np.array([10, 11, 12]), interacted, counts), first)
  assert not np.array_equal(
      protocols.negatives(spec, 1, "test", np.array([10, 11, 12]), interacted, counts), first)


def _experiment(module):
  config = module.get_config("tiny")
  config.protocol.update(dict(exclude_seen=True, sampled="uniform:20,popularity:10"))
  return config, registry.build(config, experiment.load_data(config))


def test_every_model_is_scored_against_the_same_negatives_outside_the_history():
  (_, first), (_, second) = _experiment(sasrec), _experiment(caser)
  for split in ("valid", "test"):
    for key in ("negatives_uniform20", "negatives_popularity10", "history"):
      np.testing.assert_array_equal(first.eval[split][key], second.eval[split][key])
  # Test rows are the users in order (every synthetic user has >= 2 items).
  test = first.eval["test"]
  assert len(test["seq"]) == len(first.queries.seen)
  for row, items in enumerate(first.queries.seen):
    for key in ("negatives_uniform20", "negatives_popularity10"):
      assert not set(test[key][row]) & set(items)  # never anything the user had
    history = test["history"][row]
    np.testing.assert_array_equal(history[history > 0], items[:-1])
    assert test["seq"][row, -1] == items[-1]


@pytest.mark.parametrize("spec", ["uniform", "uniform:0", "random:10", "uniform:x"])
def test_bad_sampled_protocol_is_one_line(spec):
  with pytest.raises(InputError, match="config.protocol.sampled="):
    protocols.parse_sampled(spec)


def test_a_protocol_on_a_profile_task_is_refused():
  with pytest.raises(InputError, match="config.task=gender classifies users"):
    protocols.check(ml_collections.ConfigDict(dict(exclude_seen=True, sampled="", seed=0)), False, "config.task=gender")
  protocols.check(ml_collections.ConfigDict(dict(exclude_seen=False, sampled="", seed=0)), False, "config.task=gender")


def test_a_user_without_enough_unseen_items_is_one_line():
  counts = np.ones(6)  # 5 candidates
  with pytest.raises(InputError, match=r"uniform:3: user 7 \(valid\) leaves only 2 "):
    protocols.negatives(protocols.Sampled("uniform", 3), 0, "valid", np.array([1, 7]),
                        [np.array([1]), np.array([1, 2, 3])], counts)

"""The shared next-item chain: inputs and weights, the BCE loss, negatives."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqrec import losses, next_item
from seqrec.errors import InputError


def test_shift_weights_only_targets_with_a_real_input():
  seq = jnp.array([[0, 0, 3, 4, 5], [1, 2, 3, 4, 5]])
  inputs, targets, weights = next_item.shift(seq)
  np.testing.assert_array_equal(inputs, seq[:, :-1])
  np.testing.assert_array_equal(targets, seq[:, 1:])
  np.testing.assert_array_equal(weights, [[0, 0, 1, 1], [1, 1, 1, 1]])


def test_train_targets_weight_only_the_last_targets_of_a_row():
  seq = jnp.array([[0, 0, 3, 4, 5], [1, 2, 3, 4, 5], [1, 2, 3, 4, 5]])
  last = jnp.array([3, 2, 4])
  _, _, weights = next_item.shift(seq, last)
  np.testing.assert_array_equal(weights, [[0, 0, 1, 1], [0, 0, 1, 1], [1, 1, 1, 1]])
  # Cutting leading padding columns (length buckets) keeps the same targets.
  np.testing.assert_array_equal(next_item.shift(seq[:, 1:], last)[2], weights[:, 1:])
  # The host count that sizes the packed loss agrees.
  positions, width = next_item.shift_positions(
      {"seq": np.asarray(seq), next_item.TRAIN_TARGETS: np.asarray(last)})
  np.testing.assert_array_equal(positions, weights.sum(axis=1))
  assert width == 4


def test_binary_cross_entropy_matches_numpy():
  rng = np.random.default_rng(0)
  hidden = rng.normal(size=(2, 3, 4)).astype(np.float32)
  kernel = rng.normal(size=(4, 12)).astype(np.float32)
  bias = rng.normal(size=(12,)).astype(np.float32)
  targets = rng.integers(1, 9, (2, 3))
  weights = np.array([[1, 1, 0], [1, 0, 1]], np.float32)
  key = jax.random.key(3)
  negatives = np.asarray(losses.bce_negatives(key, jnp.asarray(targets), 9))
  got = losses.binary_cross_entropy(hidden, kernel, bias, targets, negatives, weights)
  assert np.all(negatives != targets) and negatives.max() < 9 and negatives.min() >= 1
  def scores(items):
    return np.einsum("btd,dbt->bt", hidden, kernel[:, items]) + bias[items]

  values = np.logaddexp(0, -scores(targets)) + np.logaddexp(0, scores(negatives))
  np.testing.assert_allclose(got, (values * weights).sum() / weights.sum(), rtol=1e-5)


def test_number_of_negatives_is_configured_or_a_share_of_the_items():
  assert next_item.num_negatives(1682, None, 0.1) == 168
  assert next_item.num_negatives(1682, 3000, 0.1) == 3000
  assert next_item.num_negatives(3, None, 0.1) == 1
  with pytest.raises(InputError, match="config.num_negatives=0"):
    next_item.num_negatives(100, 0, 0.1)


def test_unknown_loss_names_the_setting():
  model = next_item.NextItemModel(init=None, hidden=None, head=None, vocab_size=3)
  with pytest.raises(InputError, match="config.loss='hinge'"):
    next_item.make_task(model, loss="hinge")

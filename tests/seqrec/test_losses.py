import jax
import jax.numpy as jnp
import numpy as np

from seqrec import losses


def _setup(seed=0, num_items=12, dim=5):
  rng = np.random.default_rng(seed)
  hidden = rng.normal(size=(3, 4, dim)).astype(np.float32)
  kernel = rng.normal(size=(dim, num_items)).astype(np.float32)
  bias = rng.normal(size=(num_items,)).astype(np.float32)
  targets = rng.integers(1, num_items, size=(3, 4))
  weights = (rng.random((3, 4)) < 0.7).astype(np.float32)
  return hidden, kernel, bias, targets, weights


def test_full_softmax_matches_numpy_and_ignores_padding_item():
  hidden, kernel, bias, targets, weights = _setup()
  got = losses.softmax_cross_entropy(hidden, kernel, bias, targets, weights)
  logits = hidden @ kernel[:, 1:] + bias[1:]  # padding column excluded
  log_z = np.log(np.exp(logits).sum(-1))
  ce = log_z - np.take_along_axis(logits, targets[..., None] - 1, -1)[..., 0]
  np.testing.assert_allclose(got, (ce * weights).sum() / weights.sum(), rtol=1e-5)


def test_sampled_softmax_is_an_underestimate_and_removes_accidental_hits():
  hidden, kernel, bias, targets, weights = _setup(1)
  full = losses.softmax_cross_entropy(hidden, kernel, bias, targets, weights)
  sampled = losses.sampled_softmax_cross_entropy(
      hidden, kernel, bias, targets, weights, 4, jax.random.key(0))
  assert 0 < float(sampled) < float(full)
  # With every item drawn many times, each distinct non-target item counts once
  # per draw; a loss without accidental-hit removal would count the target too.
  one_target = jnp.ones((1, 1), jnp.int32)
  h, k = jnp.zeros((1, 1, 5)), jnp.zeros((5, 12))
  sampled = losses.sampled_softmax_cross_entropy(
      h, k, None, one_target, jnp.ones((1, 1)), 1000, jax.random.key(1))
  negatives = jax.random.randint(jax.random.key(1), (1000,), 1, 12)
  expected = np.log(1 + np.sum(np.asarray(negatives) != 1))
  np.testing.assert_allclose(sampled, expected, rtol=1e-5)


def test_zero_weights_give_zero_loss_not_nan():
  hidden, kernel, bias, targets, _ = _setup(2)
  got = losses.softmax_cross_entropy(hidden, kernel, bias, targets, np.zeros((3, 4)))
  assert float(got) == 0.0


def test_padding_targets_with_zero_weight_do_not_poison_the_loss():
  hidden, kernel, bias, targets, weights = _setup(3)
  targets = np.where(weights > 0, targets, 0)  # padding positions hold id 0
  full = losses.softmax_cross_entropy(hidden, kernel, bias, targets, weights)
  sampled = losses.sampled_softmax_cross_entropy(
      hidden, kernel, bias, targets, weights, 4, jax.random.key(0))
  assert np.isfinite(float(full)) and np.isfinite(float(sampled))

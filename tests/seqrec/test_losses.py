import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from seqrec import losses, mesh


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


def _loss_and_grads(hidden, kernel, bias, targets, weights, vocab_size, chunk):
  def loss(hidden, kernel, bias):
    return losses.softmax_cross_entropy(hidden, kernel, bias, targets, weights, vocab_size,
                                        chunk=chunk)
  argnums = (0, 1) if bias is None else (0, 1, 2)
  return jax.jit(jax.value_and_grad(loss, argnums=argnums))(hidden, kernel, bias)


def _assert_same(got, want):
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-6)


def test_chunked_scores_give_the_whole_softmax_loss_and_gradients():
  # 37 columns, 33 of them real items, in chunks of 8 (the last one partly
  # padding); padding targets (id 0) at zero weight.
  hidden, kernel, bias, targets, weights = _setup(4, num_items=37)
  targets = np.where(weights > 0, targets % 33, 0)
  for b in (bias, None):
    whole = _loss_and_grads(hidden, kernel, b, targets, weights, 33, chunk=37)
    chunked = _loss_and_grads(hidden, kernel, b, targets, weights, 33, chunk=8)
    assert np.isfinite(float(whole[0]))
    _assert_same(chunked, whole)


def largest_array(fn, *args) -> int:
  """Elements of the largest array that `fn(*args)` forms, in any sub-jaxpr."""
  def sizes(jaxpr):
    for eqn in jaxpr.eqns:
      yield from (v.aval.size for v in eqn.outvars if hasattr(v.aval, "size"))
      for sub in jax.extend.core.jaxprs_in_params(eqn.params):
        yield from sizes(sub)

  return max(sizes(jax.make_jaxpr(fn)(*args).jaxpr))


def test_chunked_scores_never_form_a_targets_by_items_array():
  hidden, kernel, bias, targets, weights = _setup(5, num_items=64)

  def largest(chunk):
    return largest_array(jax.grad(lambda h, k, b: losses.softmax_cross_entropy(
        h, k, b, targets, weights, chunk=chunk), argnums=(0, 1, 2)), hidden, kernel, bias)

  scores = targets.size * 64
  assert largest(chunk=64) >= scores  # the whole softmax does form them
  assert largest(chunk=8) < scores / 2


def test_chunked_scores_split_over_model_match_one_device():
  # (2 data x 4 model): each device scores its own columns of every chunk.
  hidden, kernel, bias, targets, weights = _setup(6, num_items=96)
  want = _loss_and_grads(hidden, kernel, bias, targets, weights, 90, chunk=96)
  grid = mesh.make_mesh(8, model_parallel=4)
  with jax.set_mesh(grid):
    placed = [jax.device_put(x, NamedSharding(grid, spec)) for x, spec in (
        (hidden.reshape(-1, 5), P(mesh.DATA, None)), (kernel, P(None, mesh.MODEL)),
        (bias, P(mesh.MODEL)))]
    got = _loss_and_grads(*placed, targets.reshape(-1), weights.reshape(-1), 90, chunk=8)
  assert got[1][1].sharding.spec == P(None, mesh.MODEL)  # the kernel's gradient stays split
  _assert_same((got[0], got[1][0].reshape(hidden.shape), *got[1][1:]), want)


def test_score_chunk_fits_the_backend_budget():
  budget = losses.SCORE_BUDGET.get(jax.default_backend(), losses.DEFAULT_SCORE_BUDGET)
  for rows in (1, 100, 800, 6400, 10**7):
    chunk = losses.score_chunk(rows)
    assert chunk & (chunk - 1) == 0 and chunk >= losses.MIN_CHUNK
    assert chunk == losses.MIN_CHUNK or chunk * rows <= budget < 2 * chunk * rows

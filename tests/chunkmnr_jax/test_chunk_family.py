"""CmnRec as a next-item family: batch contract, sharding, and a short training run."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from chunkmnr_jax import family
from chunkmnr_jax import models
from seqrec import next_item, metrics
from seqrec.errors import InputError


def family_task(config, loss="full"):
  """CmnRec's next-item task, as the family builds it."""
  return next_item.make_task(family.next_item_model(config), loss=loss)


NUM_ITEMS = 20


def _config(**overrides):
  sizes = dict(kind="tsc", num_items=NUM_ITEMS, embed_dim=8, hidden=16,
               memory_slots=3, slot_width=8, read_heads=2, attention_dim=4,
               dropout=0.1)
  return models.MnrConfig(**{**sizes, **overrides})


def _progressions(rng, batch, length=10):
  """Sequences that count up by one from a random item (wrapping around),
  left-padded by 0 to 4: a pattern to learn, with flat item popularity."""
  start = rng.integers(0, NUM_ITEMS, (batch, 1))
  seq = (start + np.arange(length)[None, :]) % NUM_ITEMS + 1
  pad = np.arange(length)[None, :] < rng.integers(0, 5, (batch, 1))
  return jnp.asarray(np.where(pad, 0, seq), jnp.int32)


def test_unknown_loss_is_rejected():
  with pytest.raises(InputError, match="loss"):
    family_task(_config(), loss="bpr")


def test_evaluate_ranks_the_last_item_among_all_items():
  task = family_task(_config())
  params = task.init(jax.random.key(0))
  seq = _progressions(np.random.default_rng(0), 4)
  out = jax.jit(task.evaluate)(params, {"seq": seq})
  assert set(out) == {f"{m}@{k}" for m in ("mrr", "hr", "ndcg") for k in (5, 10, 20)}
  for value in out.values():
    assert value.shape == (4,) and np.all((value >= 0.0) & (value <= 1.0))
  # 20 items: every target ranks within the top 20 unless padding were ranked.
  np.testing.assert_array_equal(out["hr@20"], 1.0)


def test_loss_does_not_depend_on_sharding():
  # The sampled loss: its shared negatives and the dropout masks must not
  # depend on how the batch is split over devices.
  task = family_task(_config(), loss="sampled")
  params = task.init(jax.random.key(0))
  batch = {"seq": _progressions(np.random.default_rng(1), 8)}
  loss_fn = jax.jit(lambda p, b: task.loss(p, b, jax.random.key(2))[0])
  mesh = Mesh(np.array(jax.devices()), ("data",))
  sharded = jax.device_put(batch, NamedSharding(mesh, PartitionSpec("data")))
  value = loss_fn(params, batch)
  assert np.isfinite(value)
  np.testing.assert_allclose(loss_fn(params, sharded), value, rtol=1e-5)


@pytest.mark.parametrize("overrides", [{}, {"kind": "gru4rec", "tie_embedding": True}])
def test_short_training_run_learns_and_beats_popularity(overrides):
  rng = np.random.default_rng(0)
  task = family_task(_config(**overrides), loss="full")
  params = task.init(jax.random.key(0))
  optimizer = optax.adam(1e-2)

  @jax.jit
  def train_step(params, opt_state, batch, key):
    (loss, _), grads = jax.value_and_grad(task.loss, has_aux=True)(params, batch, key)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  opt_state = optimizer.init(params)
  train = [_progressions(rng, 32) for _ in range(100)]
  losses = []
  for step, seq in enumerate(train):
    params, opt_state, loss = train_step(params, opt_state, {"seq": seq},
                                         jax.random.key(step))
    losses.append(float(loss))
  assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])

  test = _progressions(rng, 256)
  hr5 = float(jnp.mean(jax.jit(task.evaluate)(params, {"seq": test})["hr@5"]))
  # Popularity: every test target scored by its count in the training data.
  counts = np.bincount(np.concatenate([np.asarray(s).ravel() for s in train]),
                       minlength=NUM_ITEMS + 1).astype(np.float32)
  popular = jnp.broadcast_to(jnp.asarray(counts), (test.shape[0], NUM_ITEMS + 1))
  popular_hr5 = float(jnp.mean(metrics.full_ranking(popular, test[:, -1])["hr@5"]))
  assert hr5 > 0.9, hr5
  assert hr5 > popular_hr5 + 0.5, (hr5, popular_hr5)

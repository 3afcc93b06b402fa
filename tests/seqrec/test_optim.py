"""The optimizer: a gradient-norm clip inside the trainable branch only."""

import jax.numpy as jnp
import numpy as np

from seqrec import optim

PARAMS = {"w": jnp.zeros(3), "frozen": jnp.zeros(2)}
LABELS = {"w": optim.TRAIN, "frozen": optim.FREEZE}
UNIT = jnp.array([0.6, 0.8, 0.0])  # global norm 1


def _updates(tx, grads_w):
  """The "w" update of each step when `tx` sees the gradients `grads_w` in turn."""
  state, out = tx.init(PARAMS), []
  for g in grads_w:
    updates, state = tx.update({"w": g, "frozen": jnp.full(2, 1e3)}, state, PARAMS)
    assert not np.any(updates["frozen"])
    out.append(np.asarray(updates["w"]))
  return out


def test_grad_clip_bounds_a_spike_for_the_steps_after_it():
  """Adam's first step ignores scale, so the spike shows in the second step's
  update: clipped, the spike counts as a unit gradient."""
  clipped = optim.make_optimizer(LABELS, 1e-2, grad_clip=1.0)
  plain = optim.make_optimizer(LABELS, 1e-2)
  got = _updates(clipped, [100 * UNIT, UNIT])
  np.testing.assert_allclose(got[1], _updates(plain, [UNIT, UNIT])[1], rtol=1e-6)
  unclipped = _updates(plain, [100 * UNIT, UNIT])[1]
  assert np.abs(unclipped - got[1]).max() > 1e-3, (unclipped, got[1])


def test_grad_clip_leaves_gradients_below_the_bound_alone():
  grads = [0.5 * UNIT, -0.2 * UNIT, 0.7 * UNIT]
  for a, b in zip(_updates(optim.make_optimizer(LABELS, 1e-2, grad_clip=1.0), grads),
                  _updates(optim.make_optimizer(LABELS, 1e-2), grads)):
    np.testing.assert_array_equal(a, b)

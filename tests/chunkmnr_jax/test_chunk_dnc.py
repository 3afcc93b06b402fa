"""The DNC memory: hand-computed cases and invariants under random orders."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from chunkmnr_jax import dnc

SLOTS, WIDTH, HEADS = 3, 4, 2


def test_interface_split_sizes_and_ranges():
  size = dnc.interface_size(WIDTH, HEADS)
  assert size == HEADS * WIDTH + 3 * WIDTH + 5 * HEADS + 3
  orders = dnc.split_interface(
      5.0 * jax.random.normal(jax.random.key(0), (size,)), WIDTH, HEADS)
  assert orders.read_keys.shape == (HEADS, WIDTH)
  assert orders.read_modes.shape == (HEADS, 3)
  assert np.all(orders.read_strengths >= 1.0) and orders.write_strength >= 1.0
  for gate in (orders.erase, orders.free_gates, orders.allocation_gate,
               orders.write_gate):
    assert np.all((gate >= 0.0) & (gate <= 1.0))
  np.testing.assert_allclose(orders.read_modes.sum(axis=1), 1.0, rtol=1e-6)


def test_initial_state():
  state = dnc.initial_state(SLOTS, WIDTH, HEADS)
  np.testing.assert_array_equal(state.memory, np.full((SLOTS, WIDTH), 1e-6, np.float32))
  np.testing.assert_array_equal(state.read_vectors, np.full((WIDTH, HEADS), 1e-6,
                                                            np.float32))
  assert not np.any(state.usage) and not np.any(state.link)


def test_content_weights_pick_the_matching_slot():
  memory = jnp.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
  weights = dnc.content_weights(memory, jnp.array([[0.0, 3.0]]), jnp.array([50.0]))
  assert weights.shape == (3, 1)
  np.testing.assert_allclose(weights.sum(), 1.0, rtol=1e-6)
  assert weights[1, 0] > 0.99


def test_allocation_by_hand():
  # Order of freeness: slot 1 (0.1), slot 0 (0.5), slot 2 (0.9).
  allocation = dnc.allocation_weights(jnp.array([0.5, 0.1, 0.9]))
  np.testing.assert_allclose(allocation, [0.5 * 0.1, 0.9, 0.1 * 0.1 * 0.5], rtol=1e-6)


def test_allocation_gradient_flows_through_sorted_usage():
  grad = jax.grad(lambda u: dnc.allocation_weights(u)[2])(jnp.array([0.5, 0.1, 0.9]))
  # a[2] = (1 - u2) u1 u0.
  np.testing.assert_allclose(grad, [0.1 * 0.1, 0.1 * 0.5, -0.1 * 0.5], rtol=1e-5)


def test_usage_by_hand():
  usage = dnc.update_usage(jnp.array([0.5, 0.0]), jnp.array([0.5, 1.0]),
                           jnp.array([1.0]), jnp.array([[0.0], [0.5]]))
  # (u + w - u w) = [0.75, 1.0]; retention [1, 0.5].
  np.testing.assert_allclose(usage, [0.75, 0.5], rtol=1e-6)


def test_link_records_write_order():
  link, precedence = jnp.zeros((2, 2)), jnp.zeros(2)
  link, precedence = dnc.update_link(link, precedence, jnp.array([1.0, 0.0]))
  np.testing.assert_allclose(precedence, [1.0, 0.0])
  link, precedence = dnc.update_link(link, precedence, jnp.array([0.0, 1.0]))
  # Slot 1 was written right after slot 0.
  np.testing.assert_allclose(link, [[0.0, 0.0], [1.0, 0.0]])
  np.testing.assert_allclose(precedence, [0.0, 1.0])


def _orders(read_mode: int, write_slot_hint: float) -> jax.Array:
  """A raw interface that writes fully and reads in one mode only."""
  xi = np.zeros(dnc.interface_size(WIDTH, HEADS), np.float32)
  offsets = np.cumsum([0, HEADS * WIDTH, HEADS, WIDTH, 1, WIDTH, WIDTH, HEADS, 1, 1])
  xi[offsets[4]:offsets[5]] = 10.0 * write_slot_hint  # erase
  xi[offsets[5]:offsets[6]] = write_slot_hint  # write vector
  xi[offsets[6]:offsets[7]] = -10.0  # free gates closed
  xi[offsets[7]] = 10.0  # allocate
  xi[offsets[8]] = 10.0  # write
  modes = np.full((HEADS, 3), -20.0, np.float32)
  modes[:, read_mode] = 20.0
  xi[offsets[9]:] = modes.reshape(-1)
  return jnp.asarray(xi)


def test_forward_and_backward_reads_follow_links():
  state = dnc.initial_state(SLOTS, WIDTH, HEADS)
  state = dnc.access(state, _orders(dnc.CONTENT, 1.0))
  state = dnc.access(state, _orders(dnc.CONTENT, 2.0))
  before = state.read_weights
  forward = dnc.access(state, _orders(dnc.FORWARD, 3.0))
  backward = dnc.access(state, _orders(dnc.BACKWARD, 3.0))
  np.testing.assert_allclose(forward.read_weights, forward.link @ before, atol=1e-6)
  np.testing.assert_allclose(backward.read_weights, backward.link.T @ before, atol=1e-6)
  np.testing.assert_allclose(forward.read_vectors,
                             forward.memory.T @ forward.read_weights, atol=1e-6)


@pytest.mark.parametrize("scale", [0.5, 4.0])
def test_invariants_under_random_orders(scale):
  size = dnc.interface_size(WIDTH, HEADS)
  orders = scale * jax.random.normal(jax.random.key(1), (16, 12, size))

  @jax.jit
  def run(xi):
    def body(state, xi):
      state = dnc.access(state, xi)
      return state, state
    _, states = jax.lax.scan(body, dnc.initial_state(SLOTS, WIDTH, HEADS), xi)
    return states

  states = jax.vmap(run)(orders)  # every leaf [16 sequences, 12 steps, ...]
  tol = 1e-5
  for weights, axis in ((states.write_weights, -1), (states.read_weights, -2),
                        (states.precedence, -1)):
    assert np.all(weights >= 0.0)
    assert np.all(weights.sum(axis=axis) <= 1.0 + tol)
  assert np.all((states.usage >= 0.0) & (states.usage <= 1.0 + tol))
  assert np.all((states.link >= 0.0) & (states.link <= 1.0 + tol))
  assert not np.any(np.diagonal(states.link, axis1=-2, axis2=-1))
  assert np.all(np.isfinite(states.memory))

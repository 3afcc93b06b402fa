"""The DNC memory (Graves et al., 2016) as pure functions of one example.

Every function here sees a single sequence: memory [N, W], weightings [N] or
[N, R]. The model batches them with `jax.vmap`, which keeps the formulas as
they read in the paper and lets XLA emit the same batched ops as hand-written
[B, ...] code. There are no parameters: the interface vector comes from the
controller (a Dense in `models.py`).

Shapes: N memory slots, W slot width, R read heads.
"""

from __future__ import annotations

from typing import NamedTuple

import flax.struct
import jax
import jax.numpy as jnp

# Guards the cosine similarity against empty slots (the memory starts at 1e-6).
_NORM_EPSILON = 1e-6
# Initial fill of the memory, the weightings and the read vectors, as in the
# reference implementation.
_INITIAL_FILL = 1e-6
# Read modes, in the order of the interface's three logits per head.
BACKWARD, CONTENT, FORWARD = range(3)


@flax.struct.dataclass
class MemoryState:
  """The memory of one sequence.

  Attributes:
    memory: [N, W] slot contents M.
    usage: [N] usage u in [0, 1].
    precedence: [N] precedence p: how much each slot was the last written.
    link: [N, N] temporal link L; L[i, j] ~ slot i was written right after j.
    write_weights: [N] the last write weighting w_w.
    read_weights: [N, R] the last read weightings w_r, one column per head.
    read_vectors: [W, R] the last read vectors r, one column per head.
  """

  memory: jax.Array
  usage: jax.Array
  precedence: jax.Array
  link: jax.Array
  write_weights: jax.Array
  read_weights: jax.Array
  read_vectors: jax.Array


class Interface(NamedTuple):
  """The controller's orders for one access, already activated.

  Attributes:
    read_keys: [R, W]; read_strengths: [R] >= 1.
    write_key: [W]; write_strength: [] >= 1.
    erase: [W] in (0, 1); write_vector: [W].
    free_gates: [R] in (0, 1); allocation_gate, write_gate: [] in (0, 1).
    read_modes: [R, 3] rows sum to 1, columns [backward, content, forward].
  """

  read_keys: jax.Array
  read_strengths: jax.Array
  write_key: jax.Array
  write_strength: jax.Array
  erase: jax.Array
  write_vector: jax.Array
  free_gates: jax.Array
  allocation_gate: jax.Array
  write_gate: jax.Array
  read_modes: jax.Array


def interface_size(width: int, heads: int) -> int:
  """Length of the raw interface vector: R*W + 3W + 5R + 3."""
  return heads * width + 3 * width + 5 * heads + 3


def initial_state(num_slots: int, width: int, heads: int,
                  dtype: jnp.dtype = jnp.float32) -> MemoryState:
  """The empty memory: contents and weightings at 1e-6, usage and links zero."""
  fill = lambda *shape: jnp.full(shape, _INITIAL_FILL, dtype)
  zeros = lambda *shape: jnp.zeros(shape, dtype)
  return MemoryState(
      memory=fill(num_slots, width), usage=zeros(num_slots),
      precedence=zeros(num_slots), link=zeros(num_slots, num_slots),
      write_weights=fill(num_slots), read_weights=fill(num_slots, heads),
      read_vectors=fill(width, heads))


def split_interface(xi: jax.Array, width: int, heads: int) -> Interface:
  """Cuts the raw interface vector [R*W + 3W + 5R + 3] and applies activations."""
  sizes = (heads * width, heads, width, 1, width, width, heads, 1, 1, 3 * heads)
  assert xi.shape == (sum(sizes),), (xi.shape, sizes)
  offsets = [sum(sizes[:i]) for i in range(len(sizes) + 1)]
  (read_keys, read_strengths, write_key, write_strength, erase, write_vector,
   free_gates, allocation_gate, write_gate, read_modes) = (
       xi[start:end] for start, end in zip(offsets[:-1], offsets[1:]))
  strength = lambda x: 1.0 + jax.nn.softplus(x)
  return Interface(
      read_keys=read_keys.reshape(heads, width),
      read_strengths=strength(read_strengths),
      write_key=write_key,
      write_strength=strength(write_strength[0]),
      erase=jax.nn.sigmoid(erase),
      write_vector=write_vector,
      free_gates=jax.nn.sigmoid(free_gates),
      allocation_gate=jax.nn.sigmoid(allocation_gate[0]),
      write_gate=jax.nn.sigmoid(write_gate[0]),
      read_modes=jax.nn.softmax(read_modes.reshape(heads, 3), axis=-1))


def _norm(x: jax.Array) -> jax.Array:
  """Row norms [K] of [K, W], smoothed so a zero row has a finite gradient."""
  return jnp.sqrt(jnp.sum(x * x, axis=-1) + _NORM_EPSILON**2)


def content_weights(memory: jax.Array, keys: jax.Array,
                    strengths: jax.Array) -> jax.Array:
  """C(M, k, beta): softmax over slots of beta * cosine(M_i, k).

  Args:
    memory: [N, W]; keys: [K, W]; strengths: [K].
  Returns:
    [N, K], each column sums to 1.
  """
  cosine = (memory @ keys.T) / (_norm(memory)[:, None] * _norm(keys)[None, :])
  return jax.nn.softmax(cosine * strengths[None, :], axis=0)


def update_usage(usage: jax.Array, write_weights: jax.Array,
                 free_gates: jax.Array, read_weights: jax.Array) -> jax.Array:
  """u = (u + w_w - u * w_w) * prod_r (1 - f_r * w_r[:, r]), all from the last step.

  Args:
    usage, write_weights: [N]; free_gates: [R]; read_weights: [N, R].
  Returns:
    [N] in [0, 1].
  """
  retention = jnp.prod(1.0 - free_gates[None, :] * read_weights, axis=1)
  return (usage + write_weights - usage * write_weights) * retention


def allocation_weights(usage: jax.Array) -> jax.Array:
  """a[phi_j] = (1 - u[phi_j]) * prod_{i<j} u[phi_i], phi = argsort(u) ascending.

  Gradients flow through the sorted usages; the permutation itself is integer
  (piecewise constant), as in the DNC.

  Args:
    usage: [N].
  Returns:
    [N], non-negative, sums to at most 1.
  """
  order = jax.lax.stop_gradient(jnp.argsort(usage))
  sorted_usage = usage[order]
  # Exclusive cumulative product: the chance that every freer slot is taken.
  taken_before = jnp.concatenate(
      [jnp.ones((1,), usage.dtype), jnp.cumprod(sorted_usage)[:-1]])
  sorted_allocation = (1.0 - sorted_usage) * taken_before
  return jnp.zeros_like(usage).at[order].set(sorted_allocation)


def update_link(link: jax.Array, precedence: jax.Array,
                write_weights: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Temporal link and precedence after a write.

  L[i, j] = (1 - w[i] - w[j]) * L[i, j] + w[i] * p[j] with the previous p, and a
  zero diagonal; then p = (1 - sum(w)) * p + w.

  Args:
    link: [N, N]; precedence, write_weights: [N] (the new write weighting).
  Returns:
    (link [N, N], precedence [N]).
  """
  w = write_weights
  link = (1.0 - w[:, None] - w[None, :]) * link + w[:, None] * precedence[None, :]
  link = link * (1.0 - jnp.eye(link.shape[0], dtype=link.dtype))
  precedence = (1.0 - jnp.sum(w)) * precedence + w
  return link, precedence


def access(state: MemoryState, xi: jax.Array) -> MemoryState:
  """One memory access: the write, then the read, in the reference order.

  Write-key lookup on the old memory, usage, allocation, write weighting, link,
  precedence, memory erase/add; then the read on the new memory and links with
  the previous read weightings.

  Args:
    state: the memory of one sequence (shapes in `MemoryState`).
    xi: [R*W + 3W + 5R + 3] raw interface vector (after dropout).
  Returns:
    The new state; its `read_vectors` [W, R] are r_t.
  """
  width, heads = state.read_vectors.shape
  orders = split_interface(xi, width, heads)

  write_content = content_weights(
      state.memory, orders.write_key[None, :], orders.write_strength[None])[:, 0]
  usage = update_usage(state.usage, state.write_weights, orders.free_gates,
                       state.read_weights)
  allocation = allocation_weights(usage)
  write_weights = orders.write_gate * (
      orders.allocation_gate * allocation +
      (1.0 - orders.allocation_gate) * write_content)
  link, precedence = update_link(state.link, state.precedence, write_weights)
  memory = (state.memory * (1.0 - write_weights[:, None] * orders.erase[None, :]) +
            write_weights[:, None] * orders.write_vector[None, :])

  forward = link @ state.read_weights
  backward = link.T @ state.read_weights
  read_content = content_weights(memory, orders.read_keys, orders.read_strengths)
  modes = orders.read_modes.T  # [3, R]
  read_weights = (modes[BACKWARD] * backward + modes[CONTENT] * read_content +
                  modes[FORWARD] * forward)
  return MemoryState(
      memory=memory, usage=usage, precedence=precedence, link=link,
      write_weights=write_weights, read_weights=read_weights,
      read_vectors=memory.T @ read_weights)

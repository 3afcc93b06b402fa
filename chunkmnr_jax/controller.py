"""LSTM and GRU controllers whose input projection is split by source.

The controller's input is [emb(x_t); flat(r_{t-1})], so its gate
pre-activation is a sum of three matmuls with fused gates (one [., G*h] kernel
each, G = 4 for LSTM and 3 for GRU):

  emb(x_t) @ W_x + b    depends on the items only: computed for all steps at once;
  flat(r) @ W_r         constant while the memory is untouched: once per chunk;
  h_{t-1} @ W_h         the recurrence: the only matmul inside the scan.

The weights are declared by a Flax module (stable parameter paths) and used by
pure functions, so the scans close over plain arrays.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

GATES = {"lstm": 4, "gru": 3}

# A controller state is a tuple whose last entry is the hidden output h:
# (c, h) for the LSTM, (h,) for the GRU. The chunk attention replaces that entry.
State = tuple[jax.Array, ...]


class ControllerWeights(NamedTuple):
  """Fused-gate weights. G*h columns, gate blocks in the order of `step`.

  Attributes:
    item_kernel: [E, G*h]; read_kernel: [R*W, G*h] or None (no memory input);
    hidden_kernel: [h, G*h]; bias: [G*h].
  """

  item_kernel: jax.Array
  read_kernel: jax.Array | None
  hidden_kernel: jax.Array
  bias: jax.Array


class Controller(nn.Module):
  """Declares the controller weights; returns them as `ControllerWeights`.

  Attributes:
    cell: "lstm" or "gru".
    hidden: h, the state width.
    item_width: E, the item embedding width.
    read_width: R*W, the flattened read vector width; 0 for no memory input.
    kernel_init: initializer of the three kernels.
    dtype: compute dtype the weights are returned in (stored float32).
  """

  cell: str
  hidden: int
  item_width: int
  read_width: int
  kernel_init: Callable = nn.initializers.normal(0.1)
  dtype: jnp.dtype = jnp.float32

  def _bias_init(self, key: jax.Array, shape: tuple[int, ...],
                 dtype: jnp.dtype = jnp.float32) -> jax.Array:
    del key
    bias = jnp.zeros(shape, dtype)
    if self.cell == "lstm":
      # Forget gate open at the start (the +1 of TF's LSTM cells), so early
      # training does not wash the state out every step.
      bias = bias.at[self.hidden:2 * self.hidden].set(1.0)
    return bias

  @nn.compact
  def __call__(self) -> ControllerWeights:
    width = GATES[self.cell] * self.hidden
    read_kernel = None
    if self.read_width:
      read_kernel = self.param("read_kernel", self.kernel_init,
                               (self.read_width, width))
    weights = ControllerWeights(
        item_kernel=self.param("item_kernel", self.kernel_init,
                               (self.item_width, width)),
        read_kernel=read_kernel,
        hidden_kernel=self.param("hidden_kernel", self.kernel_init,
                                 (self.hidden, width)),
        bias=self.param("bias", self._bias_init, (width,)))
    return jax.tree.map(lambda w: w.astype(self.dtype), weights)


def initial_state(cell: str, batch: int, hidden: int,
                  dtype: jnp.dtype = jnp.float32) -> State:
  """Zero state: ([B, h], [B, h]) for the LSTM, ([B, h],) for the GRU."""
  entries = 2 if cell == "lstm" else 1
  return tuple(jnp.zeros((batch, hidden), dtype) for _ in range(entries))


def with_hidden(state: State, hidden: jax.Array) -> State:
  """The state with its hidden output h [B, h] replaced (cell state kept)."""
  return (*state[:-1], hidden)


def step(cell: str, hidden_kernel: jax.Array, state: State,
         inputs: jax.Array) -> tuple[State, jax.Array]:
  """One recurrence step.

  Args:
    cell: "lstm" or "gru".
    hidden_kernel: [h, G*h].
    state: the previous state (see `State`).
    inputs: [B, G*h] the input part of the gate pre-activation (bias included).
  Returns:
    (new state, output h_t [B, h]).
  """
  recurrent = state[-1] @ hidden_kernel
  if cell == "lstm":
    cell_state, _ = state
    in_gate, forget_gate, candidate, out_gate = jnp.split(inputs + recurrent, 4, -1)
    cell_state = (jax.nn.sigmoid(forget_gate) * cell_state +
                  jax.nn.sigmoid(in_gate) * jnp.tanh(candidate))
    hidden = jax.nn.sigmoid(out_gate) * jnp.tanh(cell_state)
    return (cell_state, hidden), hidden
  reset_in, update_in, candidate_in = jnp.split(inputs, 3, -1)
  reset_h, update_h, candidate_h = jnp.split(recurrent, 3, -1)
  reset = jax.nn.sigmoid(reset_in + reset_h)
  update = jax.nn.sigmoid(update_in + update_h)
  candidate = jnp.tanh(candidate_in + reset * candidate_h)
  hidden = (1.0 - update) * candidate + update * state[0]
  return (hidden,), hidden


def run(cell: str, hidden_kernel: jax.Array, state: State, inputs: jax.Array,
        offset: jax.Array | None = None, unroll: int = 1,
        keep: jax.Array | None = None) -> tuple[State, jax.Array]:
  """The controller over a run of steps with `lax.scan`.

  Args:
    cell, hidden_kernel, state: as in `step`.
    inputs: [L, B, G*h] per-step input pre-activations (time-major).
    offset: [B, G*h] a pre-activation shared by every step (the read vector's
      projection, constant inside a chunk), or None.
    unroll: `lax.scan` unroll factor.
    keep: bool [L, B], the steps that update the state; elsewhere the state
      passes through unchanged (padding skipped). None: every step.
  Returns:
    (final state, outputs [L, B, h]).
  """
  def body(state, xs):
    pre, kept = xs
    if offset is not None:
      pre = pre + offset
    new_state, out = step(cell, hidden_kernel, state, pre)
    if kept is not None:
      new_state = tuple(jnp.where(kept[:, None], new, old)
                        for new, old in zip(new_state, state))
    return new_state, out

  return jax.lax.scan(body, state, (inputs, keep), unroll=unroll)

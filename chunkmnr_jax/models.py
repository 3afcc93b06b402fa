"""CmnRec models: SRMN, its chunked variants (PEC, TSC, EXC) and the baselines.

One Flax module, `MemoryRecommender`, covers every kind; `MnrConfig.kind`
selects the layout:

  srmn              DNC memory accessed at every step: one `lax.scan` whose
                    body runs the controller and the memory.
  pec, tsc, exc     the chunk framework: the write schedule is static, so the
                    computation is laid out at trace time. Each chunk scans the
                    controller over its steps (memory untouched, read vector
                    held), then accesses the memory once at its last step and
                    summarises the chunk's outputs by attention. Consecutive
                    chunks of equal length share one `lax.scan` over chunks.
  lstm4rec, gru4rec the controller alone (input E), no memory.
  floor             the controller alone with the memory models' input width
                    E + R*W and output, the read vector fixed at its initial
                    value: the speed floor no chunked model can beat.

Every kind predicts with y_t = o_t @ W_y + flat(r_t) @ W_r (size h; no read term
without memory) followed by the item head [h, V], V = num_items + 1 with item 0
as padding. With `MnrConfig.tie_embedding` y has width E instead and the head
is the item embedding itself ([E, V], no bias), as in RecBole's GRU4Rec and in
SASRec. The module returns the hidden states y; logits are formed by the loss
(`seqrec.losses`) or by `last_scores`, only where needed.

For model parallelism (`PARAM_RULES`) the item embedding and the head are
padded to a multiple of `MnrConfig.vocab_multiple` items. With `dtype`
"bfloat16" the recurrence, attention and projections compute in bfloat16 from
float32 parameters; the DNC memory itself stays float32.

Dropout (rate `MnrConfig.dropout`) hits o_t where it feeds y and the interface,
and the interface itself, as in the reference; the recurrence and the chunk
attention see the undropped outputs. All masks are drawn before the scans.

Inside the module the time axis leads ([T, B, ...]), as `lax.scan` wants it.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from chunkmnr_jax import controller as ctrl
from chunkmnr_jax import dnc
from chunkmnr_jax import schedule
from seqrec import errors, losses, mesh, precision
from seqrec.errors import InputError

MEMORY_KINDS = schedule.KINDS
CHUNKED_KINDS = ("pec", "tsc", "exc")
CONTROLLER_KINDS = ("lstm4rec", "gru4rec", "floor")
KINDS = MEMORY_KINDS + CONTROLLER_KINDS
# Weights ~ N(0, 0.1), as in the reference implementation.
_INIT = nn.initializers.normal(0.1)
# Item embedding rows and head columns split over the mesh's `model` axis.
PARAM_RULES = mesh.item_table_rules(["params/embed/embedding"], ["params/head"])


@dataclasses.dataclass(frozen=True)
class MnrConfig:
  """Hyper-parameters of a memory-based recommender.

  Attributes:
    kind: one of KINDS.
    num_items: number of real items; ids are 1..num_items, 0 is padding.
    embed_dim: E, the item embedding width.
    hidden: h, the controller width (also the width of y, but see tie_embedding).
    memory_slots: N = m, the number of memory slots and of chunks.
    slot_width: W, the width of a memory slot.
    read_heads: R, the number of read heads.
    attention_dim: b, the width of the chunk attention.
    controller: "lstm" or "gru" (lstm4rec and gru4rec fix their own).
    dropout: drop rate on the controller output and on the interface
      (0.5 = the reference's keep-prob 0.5).
    attention_variant: "code" (memory access from o_t's interface, then the
      chunk summary a_t replaces h) or "paper" (summary first, then the access
      from a_t's interface, a_t replaces h).
    scan_unroll: unroll factor of every `lax.scan`.
    tie_embedding: y has width E and is scored against the item embedding
      (no separate head, no bias): a third of the item parameters and half the
      output layer's work at E = h/2. Off by default: the paper's head is [h, V].
    skip_padding: controller kinds only: padding steps leave the state at its
      initial value, so a step's output does not depend on how much left
      padding precedes the history (length bucketing allowed). RecBole's
      GRU4Rec computes the same over right-padded sequences. Off by default:
      the memory models' write schedule counts the padding steps.
    vocab_multiple: pad the item embedding rows and head columns to a multiple
      of this, so they split evenly over `vocab_multiple` (or a divisor)
      model-parallel devices.
    dtype: compute dtype, one of `precision.DTYPES`; parameters stay float32.
  """

  kind: str
  num_items: int
  embed_dim: int = 128
  hidden: int = 256
  memory_slots: int = 6
  slot_width: int = 256
  read_heads: int = 3
  attention_dim: int = 64
  controller: str = "lstm"
  dropout: float = 0.5
  attention_variant: str = "code"
  scan_unroll: int = 1
  skip_padding: bool = False
  tie_embedding: bool = False
  vocab_multiple: int = 1
  dtype: str = "float32"

  def __post_init__(self):
    # Named as the experiment config spells them (`chunkmnr_jax.family`).
    for name, allowed in (("kind", KINDS), ("controller", ctrl.GATES),
                          ("attention_variant", ("code", "paper"))):
      errors.require_choice(getattr(self, name), allowed, f"config.model.{name}")
    errors.require_choice(self.dtype, precision.DTYPES, "config.dtype")
    errors.require_at_least_one(self, ("embed_dim", "hidden", "memory_slots", "slot_width",
                                       "read_heads", "attention_dim", "scan_unroll"),
                                "config.model.")
    errors.require_at_least_one(self, ("num_items", "vocab_multiple"), "")
    errors.require_rate(self.dropout, "config.model.dropout")
    if self.skip_padding and self.has_memory:
      raise InputError(f"skip_padding=True with kind={self.kind!r}: only the controller "
                       f"kinds {CONTROLLER_KINDS} can skip padding (the memory's chunk "
                       "boundaries count padding steps)")

  @property
  def vocab_size(self) -> int:
    """V = num_items + 1: the padding item 0 and the real items."""
    return self.num_items + 1

  @property
  def table_size(self) -> int:
    """Rows of the item embedding and columns of the head: V padded."""
    return mesh.pad_to_multiple(self.vocab_size, self.vocab_multiple)

  @property
  def compute_dtype(self) -> jnp.dtype:
    return precision.compute_dtype(self.dtype)

  @property
  def cell(self) -> str:
    """The controller cell actually used."""
    return {"lstm4rec": "lstm", "gru4rec": "gru"}.get(self.kind, self.controller)

  @property
  def has_memory(self) -> bool:
    return self.kind in MEMORY_KINDS

  @property
  def output_width(self) -> int:
    """The width of y: E with a tied embedding, else h."""
    return self.embed_dim if self.tie_embedding else self.hidden

  @property
  def read_width(self) -> int:
    """R*W, the flattened read vector feeding the controller and y; 0 if none."""
    if self.kind in ("lstm4rec", "gru4rec"):
      return 0
    return self.read_heads * self.slot_width

  def write_steps(self, num_steps: int) -> tuple[int, ...]:
    """1-based memory-access steps for T = num_steps (empty without memory)."""
    if not self.has_memory:
      return ()
    return schedule.write_steps(self.kind, num_steps, self.memory_slots)


class _Kernel(nn.Module):
  """A bias-free weight matrix, declared here and applied by pure code.

  Stored float32, returned cast to the compute dtype `dtype`.
  """

  shape: tuple[int, ...]
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self) -> jax.Array:
    return self.param("kernel", _INIT, self.shape).astype(self.dtype)


class _Head(nn.Module):
  """The item head: kernel [h, V] and bias [V] for `seqrec.losses`."""

  features: int
  num_classes: int

  @nn.compact
  def __call__(self) -> tuple[jax.Array, jax.Array]:
    return (self.param("kernel", _INIT, (self.features, self.num_classes)),
            self.param("bias", nn.initializers.zeros, (self.num_classes,)))


class AttentionWeights(NamedTuple):
  """Additive chunk attention: hidden [h, b], read [R*W, b], score [b, 1]."""

  hidden: jax.Array
  read: jax.Array
  score: jax.Array


def attend(weights: AttentionWeights, cache: jax.Array, held: jax.Array) -> jax.Array:
  """a = sum_j alpha_j c_j, alpha = softmax_j v^T tanh(U^T c_j + V^T flat(r)).

  Args:
    weights: the attention weights.
    cache: [L, B, h] the controller outputs of one chunk.
    held: [B, R*W] the read vector held during the chunk, r_{t-1}.
  Returns:
    [B, h] the chunk summary.
  """
  energy = jnp.tanh(cache @ weights.hidden + (held @ weights.read)[None])
  alpha = jax.nn.softmax((energy @ weights.score)[..., 0], axis=0)  # [L, B]
  return jnp.sum(alpha[..., None] * cache, axis=0)


class _Weights(NamedTuple):
  """Every array the recurrence needs, gathered once per call."""

  controller: ctrl.ControllerWeights
  interface: jax.Array | None
  attention: AttentionWeights | None


def _fold(x: jax.Array, count: int) -> jax.Array:
  """[count * L, ...] -> [count, L, ...]: a run of equal chunks, chunk-major."""
  return x.reshape(count, x.shape[0] // count, *x.shape[1:])


def _split_optional(x: jax.Array | None, ends: list[int],
                    pieces: int) -> list[jax.Array | None]:
  """`jnp.split(x, ends)` along axis 0, or `pieces` Nones for no array."""
  return [None] * pieces if x is None else jnp.split(x, ends)


def _per_step(values: jax.Array, versions: tuple[int, ...]) -> jax.Array:
  """values[versions] along axis 0, for static non-decreasing versions.

  Built from broadcasts and slices rather than a gather, whose gradient would
  be a scatter-add over all T steps.
  """
  if versions == tuple(range(1, len(versions) + 1)):  # a new read every step
    return values[1:]
  return jnp.concatenate([
      jnp.broadcast_to(values[version], (len(list(steps)), *values.shape[1:]))
      for version, steps in itertools.groupby(versions)])


def _flat_reads(memory: dnc.MemoryState, dtype: jnp.dtype) -> jax.Array:
  """[B, W, R] float32 read vectors -> [B, W*R] in the compute dtype: the
  flat(r) of the brief."""
  return memory.read_vectors.reshape(memory.read_vectors.shape[0], -1).astype(dtype)


class MemoryRecommender(nn.Module):
  """Next-item model; see the module docstring for the kinds.

  `__call__` gives the hidden states y of every step, `last_hidden` only the
  last step's (inference).
  """

  config: MnrConfig

  def setup(self):
    c = self.config
    dtype = c.compute_dtype
    self.embed = nn.Embed(c.table_size, c.embed_dim, embedding_init=_INIT, dtype=dtype)
    self.controller = ctrl.Controller(c.cell, c.hidden, c.embed_dim, c.read_width,
                                      kernel_init=_INIT, dtype=dtype)
    if c.has_memory:
      self.interface = _Kernel(
          (c.hidden, dnc.interface_size(c.slot_width, c.read_heads)), dtype)
    if c.kind in CHUNKED_KINDS:
      self.attention_hidden = _Kernel((c.hidden, c.attention_dim), dtype)
      self.attention_read = _Kernel((c.read_width, c.attention_dim), dtype)
      self.attention_score = _Kernel((c.attention_dim, 1), dtype)
    self.output_hidden = _Kernel((c.hidden, c.output_width), dtype)
    if c.read_width:
      self.output_read = _Kernel((c.read_width, c.output_width), dtype)
    if not c.tie_embedding:
      # Float32 and applied by `seqrec.losses`, which computes scores in float32.
      self.head = _Head(c.hidden, c.table_size)

  def __call__(self, inputs: jax.Array, train: bool = False) -> jax.Array:
    """Hidden states y of every step.

    Args:
      inputs: int [B, T] item ids, 0 = padding (left-padded).
      train: apply dropout (needs the "dropout" rng).
    Returns:
      [B, T, h] ([B, T, E] with a tied embedding).
    """
    outputs, reads, versions = self._encode(inputs, train)
    hidden = outputs @ self.output_hidden()
    if reads is not None:
      hidden = hidden + _per_step(reads @ self.output_read(), versions)
    if not self.config.tie_embedding:
      self.head()  # declared here for `init`; the loss applies it
    return jnp.transpose(hidden, (1, 0, 2))

  def declare(self) -> None:
    """Creates every parameter without running the recurrence: a cheap `init`."""
    self._weights()
    self.embed(jnp.zeros((1,), jnp.int32))
    self.output_hidden()
    if self.config.read_width:
      self.output_read()
    if not self.config.tie_embedding:
      self.head()

  def last_hidden(self, inputs: jax.Array) -> jax.Array:
    """Hidden state y of the last step only, without dropout: [B, T] -> [B, h]
    ([B, E] with a tied embedding)."""
    outputs, reads, versions = self._encode(inputs, train=False)
    hidden = outputs[-1] @ self.output_hidden()
    if reads is not None:
      hidden = hidden + reads[versions[-1]] @ self.output_read()
    return hidden

  def _weights(self) -> _Weights:
    c = self.config
    interface = self.interface() if c.has_memory else None
    attention = None
    if c.kind in CHUNKED_KINDS:
      attention = AttentionWeights(self.attention_hidden(), self.attention_read(),
                                   self.attention_score())
    return _Weights(self.controller(), interface, attention)

  def _dropout_masks(self, train: bool, shape: tuple[int, ...]) -> jax.Array | None:
    """Scaled keep-masks drawn up front, so no rng is threaded through scans."""
    rate = self.config.dropout
    if not train or rate == 0.0:
      return None
    keep = jax.random.bernoulli(self.make_rng("dropout"), 1.0 - rate, shape)
    return keep.astype(self.config.compute_dtype) / (1.0 - rate)

  def _encode(self, inputs: jax.Array, train: bool
              ) -> tuple[jax.Array, jax.Array | None, tuple[int, ...]]:
    """Runs the recurrence.

    Returns:
      outputs: [T, B, h] controller outputs o_t (after dropout).
      reads: [K, B, R*W] every read vector the steps see (version 0 is the
        initial one), or None without a read input.
      versions: static [T], the index into `reads` each step sees.
    """
    c = self.config
    batch, num_steps = inputs.shape
    weights = self._weights()
    cw = weights.controller
    # Item part of the gate pre-activation, for all steps at once: [T, B, G*h].
    items = self.embed(inputs.T) @ cw.item_kernel + cw.bias
    state = ctrl.initial_state(c.cell, batch, c.hidden, c.compute_dtype)
    output_mask = self._dropout_masks(train, (num_steps, batch, c.hidden))

    if not c.has_memory:
      reads = offset = None
      if c.read_width:  # floor: the initial read vector, forever
        initial = dnc.initial_state(c.memory_slots, c.slot_width, c.read_heads)
        reads = jnp.broadcast_to(initial.read_vectors.reshape(1, 1, -1),
                                 (1, batch, c.read_width)).astype(c.compute_dtype)
        offset = reads[0] @ cw.read_kernel
      keep = inputs.T != 0 if c.skip_padding else None
      _, outputs = ctrl.run(c.cell, cw.hidden_kernel, state, items, offset,
                            c.scan_unroll, keep)
      if output_mask is not None:
        outputs = outputs * output_mask
      return outputs, reads, (0,) * num_steps

    steps = c.write_steps(num_steps)
    interface_mask = self._dropout_masks(
        train, (len(steps), batch, weights.interface.shape[1]))
    memory = jax.tree.map(
        lambda x: jnp.broadcast_to(x, (batch, *x.shape)),
        dnc.initial_state(c.memory_slots, c.slot_width, c.read_heads))
    outputs, reads = self._chunks(weights, schedule.chunk_lengths(steps),
                                  (state, memory), items, output_mask,
                                  interface_mask)
    return outputs, reads, schedule.read_versions(steps, num_steps)

  def _chunks(self, weights: _Weights, lengths: tuple[int, ...], carry: Any,
              items: jax.Array, output_mask: jax.Array | None,
              interface_mask: jax.Array | None) -> tuple[jax.Array, jax.Array]:
    """Lays the chunks out at trace time: runs of equal chunks share a scan.

    Args:
      weights: from `_weights`.
      lengths: static chunk lengths (all 1 for SRMN).
      carry: (controller state, batched `dnc.MemoryState`) at step 0.
      items: [T, B, G*h] item pre-activations.
      output_mask: [T, B, h] or None; interface_mask: [m, B, I] or None.
    Returns:
      outputs [T, B, h] and reads [m + 1, B, R*W] (see `_encode`).
    """
    chunk = self._chunk_fn(weights)
    runs = schedule.chunk_runs(lengths)
    # Split, not slice: the gradient of a split is one concatenation, that of
    # each slice a pad to the full [T, B, G*h] plus a sum.
    step_ends = list(itertools.accumulate(length * count for length, count in runs))
    access_ends = list(itertools.accumulate(count for _, count in runs))
    per_run = zip(
        runs, jnp.split(items, step_ends[:-1]),
        _split_optional(output_mask, step_ends[:-1], len(runs)),
        _split_optional(interface_mask, access_ends[:-1], len(runs)))
    outputs, reads = [], [_flat_reads(carry[1], self.config.compute_dtype)[None]]
    for (length, count), run_items, run_output_mask, run_interface_mask in per_run:
      if count == 1:
        carry, (out, read) = chunk(carry, (
            run_items, run_output_mask,
            jax.tree.map(lambda x: x[0], run_interface_mask)))
        read = read[None]
      else:
        fold = functools.partial(_fold, count=count)
        carry, (out, read) = jax.lax.scan(
            chunk, carry,
            (fold(run_items), jax.tree.map(fold, run_output_mask), run_interface_mask),
            unroll=self.config.scan_unroll)
        out = out.reshape(count * length, *out.shape[2:])
      outputs.append(out)
      reads.append(read)
    return jnp.concatenate(outputs), jnp.concatenate(reads)

  def _chunk_fn(self, weights: _Weights) -> Callable[[Any, Any], tuple[Any, Any]]:
    """The pure function of one chunk: controller scan, then one memory access."""
    c = self.config
    cw = weights.controller
    access = jax.vmap(dnc.access)

    def chunk(carry, xs):
      state, memory = carry
      items, output_mask, interface_mask = xs  # [L, B, G*h], [L, B, h], [B, I]
      held = _flat_reads(memory, c.compute_dtype)  # r_{t-1}, constant in the chunk
      offset = held @ cw.read_kernel
      if items.shape[0] == 1:
        state, out = ctrl.step(c.cell, cw.hidden_kernel, state, items[0] + offset)
        cache = out[None]
      else:
        state, cache = ctrl.run(c.cell, cw.hidden_kernel, state, items, offset,
                                c.scan_unroll)
      dropped = cache if output_mask is None else cache * output_mask
      # A one-step chunk is its own summary; skip the attention statically.
      summary = cache[-1] if cache.shape[0] == 1 else attend(
          weights.attention, cache, held)
      if c.attention_variant == "code":
        source = dropped[-1]
      else:  # the summary takes o_t's place, dropout included
        source = summary if output_mask is None else summary * output_mask[-1]
      xi = source @ weights.interface
      if interface_mask is not None:
        xi = xi * interface_mask
      # The memory stays float32: usage, allocation (a cumulative product) and
      # the content softmax lose too much in bfloat16.
      memory = access(memory, xi.astype(jnp.float32))
      state = ctrl.with_hidden(state, summary)
      return (state, memory), (dropped, _flat_reads(memory, c.compute_dtype))

    return chunk


def head_weights(params: Any) -> tuple[jax.Array, jax.Array | None]:
  """The item head from `MemoryRecommender` variables: kernel [h, V] and bias
  [V], or the transposed item embedding [E, V] and None when it is tied (the
  variables have no head)."""
  if "head" not in params["params"]:
    return params["params"]["embed"]["embedding"].T, None
  head = params["params"]["head"]
  return head["kernel"], head["bias"]


def last_scores(model: MemoryRecommender, params: Any, inputs: jax.Array) -> jax.Array:
  """Scores of every item after the last step: [B, T] -> float32 [B, table_size]
  (column 0 and the table padding -inf).

  Forms no logits for the other steps.
  """
  hidden = model.apply(params, inputs, method=MemoryRecommender.last_hidden)
  kernel, bias = head_weights(params)
  return losses.logits(hidden, kernel, bias, model.config.vocab_size)

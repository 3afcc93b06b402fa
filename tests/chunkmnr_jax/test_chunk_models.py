"""CmnRec models: the chunked layout against per-step semantics, memory access
counts in the traced program, and finite gradients for every kind."""

import dataclasses
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from chunkmnr_jax import controller as ctrl
from chunkmnr_jax import dnc
from chunkmnr_jax import family
from chunkmnr_jax import models
from seqrec import next_item
from seqrec.errors import InputError


def family_task(config, loss="full"):
  """CmnRec's next-item task, as the family builds it."""
  return next_item.make_task(family.next_item_model(config), loss=loss)


NUM_STEPS = 9
TINY = dict(num_items=20, embed_dim=8, hidden=8, memory_slots=3, slot_width=8,
            read_heads=2, attention_dim=4, dropout=0.5)


def _config(kind, **overrides):
  return models.MnrConfig(kind=kind, **{**TINY, **overrides})


def _inputs(batch=4, num_steps=NUM_STEPS, seed=0):
  """Random items, left-padded to random lengths (some rows fully real)."""
  rng = np.random.default_rng(seed)
  items = rng.integers(1, TINY["num_items"] + 1, (batch, num_steps))
  lengths = rng.integers(1, num_steps + 1, batch)
  lengths[0] = num_steps
  pad = np.arange(num_steps)[None, :] < (num_steps - lengths)[:, None]
  return jnp.asarray(np.where(pad, 0, items), jnp.int32)


def _init(config):
  return family_task(config).init(jax.random.key(1))


def _hidden(config, params, inputs, train=False):
  model = models.MemoryRecommender(config)
  return jax.jit(lambda p, x: model.apply(p, x, train=train,
                                          rngs={"dropout": jax.random.key(7)}))(
                                              params, inputs)


def _per_step_reference(config, params, inputs):
  """The chunk framework one step at a time, as the reference code runs it:
  a Python `if` on the step number, a growing cache, no layout tricks."""
  p = params["params"]
  weights = ctrl.ControllerWeights(**p["controller"])
  attention = models.AttentionWeights(p["attention_hidden"]["kernel"],
                                      p["attention_read"]["kernel"],
                                      p["attention_score"]["kernel"])
  batch, num_steps = inputs.shape
  writes = set(config.write_steps(num_steps))
  state = ctrl.initial_state(config.cell, batch, config.hidden)
  memory = jax.tree.map(
      lambda x: jnp.stack([x] * batch),
      dnc.initial_state(config.memory_slots, config.slot_width, config.read_heads))
  read = memory.read_vectors.reshape(batch, -1)
  cache, ys = [], []
  for t in range(num_steps):
    held = read
    x = jnp.concatenate([p["embed"]["embedding"][inputs[:, t]], held], axis=1)
    kernel = jnp.concatenate([weights.item_kernel, weights.read_kernel])
    state, out = ctrl.step(config.cell, weights.hidden_kernel, state,
                           x @ kernel + weights.bias)
    cache.append(out)
    if t + 1 in writes:
      summary = out if len(cache) == 1 else models.attend(
          attention, jnp.stack(cache), held)
      source = out if config.attention_variant == "code" else summary
      memory = jax.vmap(dnc.access)(memory, source @ p["interface"]["kernel"])
      state = ctrl.with_hidden(state, summary)
      read = memory.read_vectors.reshape(batch, -1)
      cache = []
    ys.append(out @ p["output_hidden"]["kernel"] + read @ p["output_read"]["kernel"])
  return jnp.stack(ys, axis=1)


@pytest.mark.parametrize("kind,variant,cell", [
    ("tsc", "code", "lstm"), ("pec", "paper", "gru"), ("exc", "code", "lstm")])
def test_chunked_layout_matches_per_step_reference(kind, variant, cell):
  config = _config(kind, attention_variant=variant, controller=cell)
  inputs = _inputs()
  params = _init(config)
  np.testing.assert_allclose(_hidden(config, params, inputs),
                             _per_step_reference(config, params, inputs),
                             atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("train", [False, True])
def test_chunked_model_writing_every_step_is_srmn(train):
  # PEC with m = T writes at every step, so every chunk holds one step.
  chunked = _config("pec", memory_slots=NUM_STEPS)
  srmn = dataclasses.replace(chunked, kind="srmn")
  inputs = _inputs()
  params = _init(chunked)
  np.testing.assert_allclose(_hidden(chunked, params, inputs, train),
                             _hidden(srmn, params, inputs, train), atol=1e-6)


def _count(jaxpr, primitive, per_iteration=True):
  """How often `primitive` runs (scan bodies count once per iteration), or with
  `per_iteration=False` how many copies of it the program holds."""
  total = 0
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == primitive:
      total += 1
    repeat = 1
    if per_iteration and eqn.primitive.name == "scan":
      repeat = eqn.params["length"]
    assert eqn.primitive.name != "while", "a loop with unknown trip count"
    for value in eqn.params.values():
      for sub in value if isinstance(value, (tuple, list)) else (value,):
        if isinstance(sub, jax.extend.core.ClosedJaxpr):
          total += repeat * _count(sub.jaxpr, primitive, per_iteration)
        elif isinstance(sub, jax.extend.core.Jaxpr):
          total += repeat * _count(sub, primitive, per_iteration)
  return total


@pytest.mark.parametrize("kind,accesses,bodies", [
    ("srmn", NUM_STEPS, 1), ("pec", 3, 1), ("tsc", 3, 3), ("exc", 3, 2),
    ("floor", 0, 0), ("lstm4rec", 0, 0)])
def test_memory_accesses_in_the_traced_program(kind, accesses, bodies):
  # Allocation sorts the usage once per access: count the `sort`s executed.
  config = _config(kind)
  inputs = _inputs()
  params = _init(config)
  model = models.MemoryRecommender(config)
  for method in (None, models.MemoryRecommender.last_hidden):
    traced = jax.make_jaxpr(lambda p: model.apply(p, inputs, method=method))(params)
    assert _count(traced.jaxpr, "sort") == accesses
  # Static copies: PEC's equal chunks share one scan body; SRMN has one body.
  assert _count(traced.jaxpr, "sort", per_iteration=False) == bodies


def test_last_hidden_is_the_last_step_of_call():
  config = _config("tsc")
  inputs = _inputs()
  params = _init(config)
  model = models.MemoryRecommender(config)
  last, scores = jax.jit(lambda p, x: (
      model.apply(p, x, method=models.MemoryRecommender.last_hidden),
      models.last_scores(model, p, x)))(params, inputs)
  np.testing.assert_allclose(last, _hidden(config, params, inputs)[:, -1], atol=1e-6)
  assert scores.shape == (4, TINY["num_items"] + 1) and scores[0, 0] == -jnp.inf


@pytest.mark.parametrize("kind,overrides", [
    ("srmn", {}), ("pec", {}), ("tsc", {}), ("exc", {}), ("lstm4rec", {}),
    ("gru4rec", {}), ("floor", {}), ("gru4rec", {"tie_embedding": True}),
    ("tsc", {"controller": "gru", "attention_variant": "paper"})])
def test_gradients_are_finite(kind, overrides):
  # Two slots and five steps: every layout feature, a smaller program to compile.
  config = _config(kind, memory_slots=2, **overrides)
  task = family_task(config, loss="sampled" if kind == "tsc" else "full")
  params = task.init(jax.random.key(0))
  batch = {"seq": _inputs(num_steps=6)}
  grads = jax.jit(jax.grad(lambda p: task.loss(p, batch, jax.random.key(3))[0]))(
      params)
  leaves = jax.tree.leaves(grads)
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
  # The recurrence is trained, not just the head.
  assert float(jnp.abs(grads["params"]["controller"]["hidden_kernel"]).sum()) > 0
  if overrides.get("tie_embedding"):
    # The tied table learns as the output layer too: rows of items that are
    # never an input get gradients through the softmax.
    unseen = np.setdiff1d(np.arange(1, TINY["num_items"] + 1), batch["seq"][:, :-1])
    assert unseen.size and bool(jnp.all(jnp.abs(
        grads["params"]["embed"]["embedding"][unseen]).sum(axis=1) > 0))


def test_lstm_step_matches_flax_lstm_cell():
  hidden, width = 4, 3
  cell = nn.LSTMCell(hidden)
  x = jax.random.normal(jax.random.key(0), (2, width))
  carry = (jax.random.normal(jax.random.key(1), (2, hidden)),
           jax.random.normal(jax.random.key(2), (2, hidden)))
  variables = cell.init(jax.random.key(3), carry, x)
  p = variables["params"]
  gates = ("i", "f", "g", "o")  # flax's names, in our block order
  item_kernel = jnp.concatenate([p[f"i{g}"]["kernel"] for g in gates], axis=1)
  hidden_kernel = jnp.concatenate([p[f"h{g}"]["kernel"] for g in gates], axis=1)
  bias = jnp.concatenate([p[f"h{g}"]["bias"] for g in gates])
  (c, h), out = ctrl.step("lstm", hidden_kernel, carry, x @ item_kernel + bias)
  (want_c, want_h), want_out = cell.apply(variables, carry, x)
  np.testing.assert_allclose(c, want_c, atol=1e-6)
  np.testing.assert_allclose(out, want_out, atol=1e-6)


def test_gru_step_matches_flax_gru_cell():
  hidden, width = 4, 3
  cell = nn.GRUCell(hidden, bias_init=nn.initializers.zeros)
  x = jax.random.normal(jax.random.key(0), (2, width))
  h = jax.random.normal(jax.random.key(1), (2, hidden))
  variables = cell.init(jax.random.key(3), h, x)
  p = variables["params"]
  gates = ("r", "z", "n")
  item_kernel = jnp.concatenate([p[f"i{g}"]["kernel"] for g in gates], axis=1)
  hidden_kernel = jnp.concatenate([p[f"h{g}"]["kernel"] for g in gates], axis=1)
  (new_h,), out = ctrl.step("gru", hidden_kernel, (h,), x @ item_kernel)
  _, want = cell.apply(variables, h, x)
  np.testing.assert_allclose(out, want, atol=1e-6)
  np.testing.assert_allclose(new_h, want, atol=1e-6)


@pytest.mark.parametrize("field,value", [
    ("kind", "dnc"), ("controller", "rnn"), ("attention_variant", "both"),
    ("memory_slots", 0), ("hidden", 0), ("dropout", 1.0), ("scan_unroll", 0)])
def test_bad_config_names_the_setting(field, value):
  with pytest.raises(InputError, match=re.escape(f"config.model.{field}={value!r}: must")):
    models.MnrConfig(**{**TINY, "kind": "tsc", field: value})


def test_skip_padding_is_for_the_controller_kinds_only():
  with pytest.raises(InputError, match="skip_padding=True with kind='tsc'"):
    _config("tsc", skip_padding=True)


@pytest.mark.parametrize("kind", ["lstm4rec", "gru4rec"])
def test_skip_padding_changes_nothing_after_a_real_item_of_a_full_row(kind):
  """Skipping padding only holds the state over padding steps: a row without
  padding computes exactly what it did, a padded row another function."""
  inputs = _inputs()
  plain, skipping = _config(kind), _config(kind, skip_padding=True)
  params = _init(plain)
  want, got = _hidden(plain, params, inputs), _hidden(skipping, params, inputs)
  got, want = np.asarray(got), np.asarray(want)
  full_row = np.abs(got[0] - want[0]).max()  # row 0 has no padding
  padded = np.abs(got[1:] - want[1:])[np.asarray(inputs)[1:] != 0].max()
  assert full_row < 1e-8 and padded > 1e3 * full_row, (full_row, padded)


def test_more_slots_than_steps_is_rejected_at_trace_time():
  config = _config("tsc", memory_slots=NUM_STEPS + 1)
  with pytest.raises(InputError, match="num_slots"):
    _hidden(config, _init(config), _inputs())


@pytest.mark.parametrize("tie_embedding", [False, True])
@pytest.mark.parametrize("kind", models.KINDS)
def test_cheap_init_declares_what_the_model_uses(kind, tie_embedding):
  config = _config(kind, tie_embedding=tie_embedding)
  model = models.MemoryRecommender(config)
  shapes = lambda tree: jax.tree.map(jnp.shape, tree)
  declared = jax.eval_shape(lambda: _init(config))
  traced = jax.eval_shape(lambda: model.init(jax.random.key(1), _inputs()))
  assert shapes(declared) == shapes(traced)


@pytest.mark.parametrize("kind", ["gru4rec", "tsc"])
def test_tied_embedding_scores_items_with_their_input_embedding(kind):
  config = _config(kind, tie_embedding=True, embed_dim=6)
  params = _init(config)
  assert "head" not in params["params"]
  model = models.MemoryRecommender(config)
  inputs = _inputs()
  last, scores = jax.jit(lambda p, x: (
      model.apply(p, x, method=models.MemoryRecommender.last_hidden),
      models.last_scores(model, p, x)))(params, inputs)
  assert last.shape == (4, 6)
  expected = np.array(last @ params["params"]["embed"]["embedding"].T)
  expected[:, 0] = -np.inf
  np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)

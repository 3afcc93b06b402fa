"""Pretraining tasks: masked corruption statistics, causal/masked losses, evaluation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from peterrec_jax import pretrain
from peterrec_jax.nextitnet import NextItNetConfig
from seqrec import losses, metrics
from seqrec.errors import InputError
from seqrec.sequences import left_pad

NUM_ITEMS = 30


def tiny(**overrides) -> NextItNetConfig:
  return NextItNetConfig(**{"num_items": NUM_ITEMS, "channels": 8, "dilations": (1, 2),
                            **overrides})


def padded_batch(num_rows: int, length: int, seed: int = 0) -> np.ndarray:
  """Left-padded rows of every length 0..length."""
  rng = np.random.default_rng(seed)
  lengths = np.arange(num_rows) % (length + 1)
  return left_pad([rng.integers(1, NUM_ITEMS + 1, n) for n in lengths], length)


def test_corruption_statistics():
  config = tiny()
  rng = np.random.default_rng(0)
  # Short rows (0..40 items) and long ones (100..149), where the cap of 30 binds.
  lengths = np.concatenate([np.arange(2000) % 41, 100 + np.arange(50)])
  seq = left_pad([rng.integers(1, NUM_ITEMS + 1, n) for n in lengths], 150)
  inputs, chosen = jax.jit(pretrain.corrupt, static_argnums=2)(
      jax.random.key(0), jnp.asarray(seq), config)
  inputs, chosen = np.asarray(inputs), np.asarray(chosen)
  real = seq != 0
  num_real = real.sum(1)
  expected = np.minimum(num_real, np.clip(np.round(0.3 * num_real), 1, 30))
  np.testing.assert_array_equal(chosen.sum(1), expected)
  assert chosen.sum(1).max() == 30  # the cap binds on the long rows
  assert not (chosen & ~real).any(), "padding was chosen"
  np.testing.assert_array_equal(inputs[~chosen], seq[~chosen])
  masked = inputs[chosen] == config.mask_id
  kept = inputs[chosen] == seq[chosen]
  replaced = ~masked & ~kept
  # 10% random items, of which 1/30 hit the original item and count as kept.
  assert abs(masked.mean() - 0.8) < 0.02
  assert abs(kept.mean() - (0.1 + 0.1 / NUM_ITEMS)) < 0.015
  assert abs(replaced.mean() - 0.1 * (1 - 1 / NUM_ITEMS)) < 0.015
  assert inputs[chosen][replaced].min() >= 1 and inputs[chosen][replaced].max() <= NUM_ITEMS


@pytest.mark.parametrize("mode,loss", [("causal", "full"), ("causal", "sampled"),
                                       ("masked", "full"), ("masked", "sampled")])
def test_losses_are_finite_and_train(mode, loss):
  task = pretrain.make_pretrain_task(tiny(causal=mode == "causal"), mode, loss)
  params = task.init(jax.random.key(0))
  batch = {"seq": jnp.asarray(padded_batch(8, 12))}

  @jax.jit
  def step(params, rng):
    (value, aux), grads = jax.value_and_grad(task.loss, has_aux=True)(params, batch, rng)
    return jax.tree.map(lambda p, g: p - 0.05 * g, params, grads), value, aux

  values = []
  for _ in range(5):
    params, value, aux = step(params, jax.random.key(1))  # same corruption each step
    values.append(float(value))
  assert np.isfinite(values).all()
  assert values[-1] < values[0]
  assert float(aux["targets_per_row"]) > 0


def test_the_training_loss_drops_out_and_evaluation_does_not():
  batch = {"seq": jnp.asarray(padded_batch(8, 12))}
  plain = pretrain.make_pretrain_task(tiny(), "causal", "full")
  dropped = pretrain.make_pretrain_task(tiny(dropout=0.5), "causal", "full")
  params = plain.init(jax.random.key(0))
  loss = lambda task, seed: float(task.loss(params, batch, jax.random.key(seed))[0])
  assert loss(plain, 1) == loss(plain, 2)
  assert loss(dropped, 1) != loss(dropped, 2)
  evaluated = plain.evaluate(params, batch), dropped.evaluate(params, batch)
  for key in evaluated[0]:
    np.testing.assert_array_equal(evaluated[0][key], evaluated[1][key], err_msg=key)


@pytest.mark.parametrize("mode", ["causal", "masked"])
def test_evaluate_ranks_the_hidden_last_item(mode):
  config = tiny(causal=mode == "causal")
  task = pretrain.make_pretrain_task(config, mode)
  params = jax.jit(task.init)(jax.random.key(0))
  seq = jnp.asarray(padded_batch(6, 12)[1:])  # rows of 1..5 items
  evaluate = jax.jit(task.evaluate)
  out = evaluate(params, {"seq": seq})
  assert set(out) == {f"{m}@{k}" for m in ("mrr", "hr", "ndcg") for k in (5, 10, 20)}
  assert all(v.shape == (len(seq),) for v in out.values())
  # The scores never see the target: with other targets, evaluate ranks them
  # under the scores computed for the original sequences.
  inputs = seq[:, :-1] if mode == "causal" else seq.at[:, -1].set(config.mask_id)
  hidden = pretrain.NextItNetLM(config).apply(params, inputs)[:, -1]
  output = params["params"]["output"]
  scores = losses.logits(hidden, output["kernel"], output["bias"])
  other = seq.at[:, -1].set(seq[:, -1] % NUM_ITEMS + 1)
  expected = metrics.full_ranking(scores, other[:, -1])
  got = evaluate(params, {"seq": other})
  for key in expected:
    np.testing.assert_allclose(got[key], expected[key], rtol=1e-6, err_msg=key)


def test_mode_must_match_convolutions():
  with pytest.raises(InputError, match="causal"):
    pretrain.make_pretrain_task(tiny(causal=True), "masked")
  with pytest.raises(InputError, match="causal"):
    pretrain.make_pretrain_task(tiny(causal=False), "causal")
  with pytest.raises(InputError, match="config.loss"):
    pretrain.make_pretrain_task(tiny(), "causal", "hinge")

"""Fine-tuning: methods as trainable sets, frozen backbone stays bit-identical, restore."""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import traverse_util

from peterrec_jax import downstream, finetune, pretrain
from peterrec_jax.nextitnet import NextItNetConfig
from seqrec import optim
from seqrec.errors import InputError
from seqrec.sequences import left_pad

NUM_ITEMS, NUM_TARGETS, LENGTH = 30, 12, 10


def tiny(**overrides) -> NextItNetConfig:
  return NextItNetConfig(**{"num_items": NUM_ITEMS, "channels": 8, "dilations": (1, 2),
                            **overrides})


def flat(params) -> dict:
  return traverse_util.flatten_dict(params, sep="/")


@functools.cache
def pretrained_params(causal: bool = True):
  mode = "causal" if causal else "masked"
  task = pretrain.make_pretrain_task(tiny(causal=causal), mode)
  return jax.jit(task.init)(jax.random.key(7))


def initial(task, rng):
  """The parameters a fresh training run starts from: init, then the warm start."""
  return task.warm_start(jax.device_get(jax.jit(task.init)(rng)))


def batch(num_rows: int = 8, seed: int = 0) -> dict:
  rng = np.random.default_rng(seed)
  seqs = [rng.integers(1, NUM_ITEMS + 1, n) for n in 2 + np.arange(num_rows) % (LENGTH - 1)]
  return {"seq": jnp.asarray(left_pad(seqs, LENGTH)),
          "label": jnp.asarray(rng.integers(1, NUM_TARGETS + 1, num_rows), jnp.int32)}


def trainable_paths(task, params) -> set[str]:
  labels = flat(optim.labels(params, task.trainable))
  return {path for path, label in labels.items() if label == optim.TRAIN}


def test_methods_select_expected_parameters():
  config = tiny(patch="serial")
  pretrained = pretrained_params()
  params = jax.eval_shape(finetune.make_finetune_task(
      config, "classification", 3, method="scratch").init, jax.random.key(0))
  every = set(flat(params))
  head = {"params/head/kernel", "params/head/bias"}
  patches = {p for p in every if re.search(r"/patch[12]/", p)}
  ln2 = {f"params/block_{b}/ln2/{leaf}" for b in (0, 1) for leaf in ("scale", "bias")}
  expected = {
      "peterrec": patches | ln2 | head,
      "fineall": every,
      "finecls": head,
      "finelast": {p for p in every if p.startswith("params/block_1/")} | head,
      "scratch": every,
  }
  assert set(expected) == set(finetune.METHODS)
  for method, paths in expected.items():
    task = finetune.make_finetune_task(config, "classification", 3, method=method,
                                       pretrained=lambda: pretrained)
    got = trainable_paths(task, params)
    print(method, sorted(got))
    assert got == paths, method
  assert len(patches) == 16  # 2 blocks x 2 patches x (down, up) x (kernel, bias)


@pytest.mark.parametrize("patch,causal,pooling,kind,loss", [
    ("serial", True, "cls", "recommendation", "softmax"),
    ("parallel", False, "cls", "recommendation", "bce"),
    ("parallel", True, "mean", "classification", "softmax"),
])
def test_peterrec_trains_patches_and_keeps_backbone_bit_identical(patch, causal, pooling,
                                                                 kind, loss):
  pretrained = pretrained_params(causal)
  num_labels = NUM_TARGETS if kind == "recommendation" else 3
  task = finetune.make_finetune_task(tiny(patch=patch, causal=causal), kind, num_labels,
                                     pretrained=lambda: pretrained, pooling=pooling,
                                     loss=loss)
  params = initial(task, jax.random.key(0))
  for path, value in flat(pretrained).items():
    if not path.startswith("params/output/"):
      np.testing.assert_array_equal(flat(params)[path], value, err_msg=path)

  labels = optim.labels(params, task.trainable)
  tx = optax.multi_transform({optim.TRAIN: optax.adam(1e-2),
                              optim.FREEZE: optax.set_to_zero()}, labels)
  opt_state = tx.init(params)
  trainable, frozen = optim.split(params, labels)
  # Frozen leaves hold no optimizer state: Adam's mu and nu cover the trainable
  # leaves only, plus scalar step counts.
  state_sizes = [np.size(x) for x in jax.tree.leaves(opt_state)]
  assert sum(state_sizes) == 2 * optim.count(trainable) + state_sizes.count(1)
  assert optim.count(frozen) > optim.count(trainable)

  data = batch() if kind == "recommendation" else {**batch(), "label": batch()["label"] % 3}

  @jax.jit
  def step(params, opt_state, rng):
    trainable, frozen = optim.split(params, labels)
    loss_fn = lambda t: task.loss(optim.merge(t, frozen), data, rng)  # noqa: E731
    (value, _), grads = jax.value_and_grad(loss_fn, has_aux=True)(trainable)
    full_grads = optim.merge(grads, jax.tree.map(jnp.zeros_like, frozen))
    updates, opt_state = tx.update(full_grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, value

  values = []
  for i in range(4):
    params, opt_state, value = step(params, opt_state, jax.random.key(i))
    values.append(float(value))
  assert values[-1] < values[0]
  before, after = flat(initial(task, jax.random.key(0))), flat(params)
  trains = trainable_paths(task, params)
  for path in after:
    if path in trains:
      assert not np.array_equal(before[path], after[path]), f"{path} did not train"
    else:
      np.testing.assert_array_equal(before[path], after[path], err_msg=path)
  assert any("/patch2/down/" in p for p in trains) and any("/ln2/" in p for p in trains)


def test_add_cls():
  config = tiny()
  seq = jnp.array([[0, 0, 5, 6], [1, 2, 3, 4], [0, 0, 0, 0]], jnp.int32)
  tokens, last = finetune.add_cls(seq, config)
  cls = config.cls_id
  np.testing.assert_array_equal(tokens[0], [0, 0, 5, 6, cls])
  np.testing.assert_array_equal(last, [4, 4, 4])
  tokens, first = finetune.add_cls(seq, tiny(causal=False))
  np.testing.assert_array_equal(tokens, [[0, 0, cls, 5, 6, cls], [cls, 1, 2, 3, 4, cls],
                                         [0, 0, 0, 0, cls, cls]])
  np.testing.assert_array_equal(first, [2, 0, 4])


def test_recommendation_metrics_do_not_depend_on_the_batch():
  task = finetune.make_finetune_task(tiny(patch="parallel"), "recommendation", NUM_TARGETS,
                                     pretrained=pretrained_params)
  params = initial(task, jax.random.key(0))
  evaluate = jax.jit(task.evaluate)
  data = batch()
  full = evaluate(params, data)
  assert set(full) == {f"{m}@{k}" for m in ("mrr", "hr", "ndcg") for k in (5, 10)}
  # The same examples in another order and beside other rows: same values.
  order = np.array([3, 1, 0, 2, 7, 6, 5, 4])
  mixed = evaluate(params, jax.tree.map(lambda x: x[order], data))
  for key in full:
    np.testing.assert_array_equal(np.asarray(full[key])[order], mixed[key], err_msg=key)


def test_classification_accuracy():
  task = finetune.make_finetune_task(tiny(), "classification", 3, method="finecls",
                                     pretrained=pretrained_params)
  data = {**batch(), "label": batch()["label"] % 3}
  out = jax.jit(task.evaluate)(initial(task, jax.random.key(0)), data)
  assert set(out) == {"accuracy"} and out["accuracy"].shape == (8,)


def test_restore_pretrained_reports_missing_path_and_shape_mismatch():
  task = finetune.make_finetune_task(tiny(patch="serial"), "classification", 3,
                                     method="scratch")
  params = jax.eval_shape(task.init, jax.random.key(0))
  pretrained = flat(pretrained_params())
  missing = {k: v for k, v in pretrained.items() if k != "params/block_1/ln1/scale"}
  with pytest.raises(InputError, match=r"params/block_1/ln1/scale .*\(8,\)"):
    finetune.restore_pretrained(params, traverse_util.unflatten_dict(missing, sep="/"))
  wrong = {**pretrained, "params/embed/embedding": jnp.zeros((40, 8))}
  with pytest.raises(InputError, match=r"params/embed/embedding .*\(40, 8\).*\(33, 8\)"):
    finetune.restore_pretrained(params, traverse_util.unflatten_dict(wrong, sep="/"))


def test_task_arguments_are_checked():
  with pytest.raises(InputError, match="patch"):
    finetune.make_finetune_task(tiny(), "classification", 3, pretrained=dict)
  with pytest.raises(InputError, match="config.pretrained"):
    finetune.make_finetune_task(tiny(patch="serial"), "classification", 3)
  with pytest.raises(InputError, match="config.method"):
    finetune.make_finetune_task(tiny(), "classification", 3, method="finemost")
  with pytest.raises(InputError, match="config.pooling"):
    finetune.make_finetune_task(tiny(), "classification", 3, method="scratch",
                                pooling="max")


def _split(train, test, kind, num_labels):
  def examples(labels):
    labels = np.asarray(labels, np.int32)
    return downstream.Examples(np.ones((len(labels), 3), np.int32), labels,
                               np.arange(len(labels)))
  return downstream.Downstream(examples(train), examples(test), examples(test), kind,
                               num_labels, (), {})


def test_reference_is_the_majority_class_or_the_popularity_ranking():
  majority = finetune.reference(_split([0, 0, 1], [0, 1, 1], "classification", 2))
  assert majority["method"] == "majority class"
  assert majority["test"] == {"accuracy": pytest.approx(1 / 3)}
  # Label counts 2, 1, 1, 0 for items 1..4; ties count against (rank 3 for 2 and 3).
  popular = finetune.reference(_split([1, 1, 2, 3], [1, 2, 3, 4], "recommendation", 4))
  assert popular["method"] == "popularity"
  assert popular["test"]["mrr@5"] == pytest.approx((1 + 1 / 3 + 1 / 3 + 1 / 4) / 4)
  assert popular["valid"] == popular["test"]

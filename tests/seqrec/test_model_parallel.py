"""Model parallelism and mixed precision across the model families.

On a (2 data x 4 model) mesh of fake CPU devices the item tables are split by
rows / columns and training matches one device; bfloat16 compute trains to
the float32 loss.
"""

import json
import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util
from jax.sharding import PartitionSpec as P

from chunkmnr_jax import models, task as mnr_task
from peterrec_jax import finetune, pretrain
from peterrec_jax.nextitnet import NextItNetConfig
from seqrec import losses, mesh, trainer
from seqrec.errors import InputError
from tests.seqrec import tiny

MODEL_PARALLEL = 4
NUM_TARGETS = 13  # target items of the cross-domain task: head [C, 16] once padded


def _mnr_config(**overrides):
  return models.MnrConfig(**{
      "kind": "tsc", "num_items": tiny.NUM_ITEMS, "embed_dim": 8, "hidden": 16,
      "memory_slots": 3, "slot_width": 8, "read_heads": 2, "attention_dim": 4,
      "dropout": 0.1, "vocab_multiple": MODEL_PARALLEL, **overrides})


def _nextitnet_config(**overrides):
  return NextItNetConfig(**{"num_items": tiny.NUM_ITEMS, "channels": 8,
                            "dilations": (1, 2), "vocab_multiple": MODEL_PARALLEL,
                            **overrides})


def _cmnrec():
  """CmnRec TSC with the sampled softmax: (task, rules, data, item tables)."""
  config = _mnr_config()
  return (mnr_task.make_task(config, "sampled"), models.PARAM_RULES,
          {"seq": tiny.make_data()},
          {"params/embed/embedding": 0, "params/head/kernel": 1})


def _pretraining():
  """Causal NextItNet pretraining with the full softmax."""
  return (pretrain.make_pretrain_task(_nextitnet_config(), "causal", "full"),
          pretrain.PARAM_RULES, {"seq": tiny.make_data()},
          {"params/embed/embedding": 0, "params/output/kernel": 1})


def _crossdomain():
  """PeterRec fine-tuning on cross-domain recommendation (frozen embedding)."""
  pretrained = pretrain.make_pretrain_task(_nextitnet_config(), "causal").init(
      jax.random.key(3))
  task = finetune.make_finetune_task(
      _nextitnet_config(patch="serial"), "recommendation", NUM_TARGETS,
      method="peterrec", pretrained=pretrained)
  seqs = tiny.make_data()
  labels = np.random.default_rng(0).integers(1, NUM_TARGETS + 1, len(seqs))
  return (task, finetune.param_rules("recommendation"),
          {"seq": seqs, "label": labels.astype(np.int32)},
          {"params/embed/embedding": 0, "params/head/kernel": 1})


FAMILIES = {"cmnrec_tsc": _cmnrec, "nextitnet_causal": _pretraining,
            "peterrec_crossdomain": _crossdomain}


def _config(workdir, **overrides):
  return trainer.TrainConfig(**{
      "workdir": str(workdir), "num_steps": 4, "batch_size": 8, "log_every": 1,
      "eval_batch_size": 16, "learning_rate": 1e-2, **overrides})


def _losses(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [r["loss"] for r in map(json.loads, f) if r["split"] == "train"]


def _flat(tree):
  return traverse_util.flatten_dict(tree, sep="/")


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_model_parallel_matches_one_device_with_split_item_tables(tmp_path, family):
  task, rules, data, tables = FAMILIES[family]()
  eval_data = {"valid": {k: v[:16] for k, v in data.items()}}
  sharded, results = trainer.train(
      task, _config(tmp_path / "mp", model_parallel=MODEL_PARALLEL, param_rules=rules),
      data, eval_data)
  single, reference = trainer.train(task, _config(tmp_path / "one", num_devices=1),
                                    data, eval_data)
  assert results["num_devices"] == 8
  np.testing.assert_allclose(_losses(tmp_path / "mp"), _losses(tmp_path / "one"),
                             atol=1e-5)
  ref = _flat(single.params)
  for path, value in _flat(sharded.params).items():
    np.testing.assert_allclose(np.asarray(value), np.asarray(ref[path]), atol=1e-5,
                               err_msg=path)
  for key, value in reference["valid"].items():
    assert results["valid"][key] == pytest.approx(value, abs=1e-6), key

  params = _flat(sharded.params)
  for path, axis in tables.items():
    table = params[path]
    expected = [None, None]
    expected[axis] = mesh.MODEL
    assert table.sharding.spec == P(*expected), path
    shard = list(table.shape)
    shard[axis] //= MODEL_PARALLEL
    assert {s.data.shape for s in table.addressable_shards} == {tuple(shard)}, path
  # Adam's moments of a trainable table are split like the table.
  moments = [x for x in jax.tree.leaves(sharded.opt_state)
             if x.shape == params[list(tables)[-1]].shape]
  assert moments and all(m.sharding.spec == P(None, mesh.MODEL) for m in moments)


@pytest.mark.parametrize("family", ["cmnrec_tsc", "nextitnet_causal"])
def test_compiled_step_never_gathers_the_output_layer(tmp_path, family):
  task, rules, data, tables = FAMILIES[family]()
  step = trainer.Trainer(task, _config(tmp_path, model_parallel=MODEL_PARALLEL,
                                       param_rules=rules))
  state = step.fresh_state()
  with jax.set_mesh(step.mesh):
    hlo = step.train_step.lower(state, step.train_batch(data, 0)).compile().as_text()
  width, vocab = _flat(state.params)[list(tables)[-1]].shape
  full = {f"[{width},{vocab}]", f"[{vocab},{width}]"}
  assert "all-reduce" in hlo  # the step really is split over devices
  gathers = [line for line in hlo.splitlines() if re.search(r"= \S+ all-gather", line)]
  assert not [g for g in gathers if any(shape in g for shape in full)], gathers


def test_padded_output_columns_are_never_scored_or_sampled():
  rng = np.random.default_rng(0)
  hidden = rng.normal(size=(3, 4, 5)).astype(np.float32)
  kernel = rng.normal(size=(5, 12)).astype(np.float32)
  bias = rng.normal(size=(12,)).astype(np.float32)
  targets = rng.integers(1, 9, size=(3, 4))
  weights = np.ones((3, 4), np.float32)
  scores = losses.logits(hidden, kernel, bias, vocab_size=9)
  assert np.all(np.isneginf(scores[..., 9:])) and np.all(np.isneginf(scores[..., 0]))
  np.testing.assert_allclose(
      losses.softmax_cross_entropy(hidden, kernel, bias, targets, weights, 9),
      losses.softmax_cross_entropy(hidden, kernel[:, :9], bias[:9], targets, weights),
      rtol=1e-6)
  key = jax.random.key(1)
  np.testing.assert_allclose(
      losses.sampled_softmax_cross_entropy(hidden, kernel, bias, targets, weights, 4,
                                           key, 9),
      losses.sampled_softmax_cross_entropy(hidden, kernel[:, :9], bias[:9], targets,
                                           weights, 4, key), rtol=1e-6)


def test_uneven_item_table_is_a_one_line_error(tmp_path):
  task = mnr_task.make_task(_mnr_config(vocab_multiple=1))  # 31 rows over 4 devices
  with pytest.raises(InputError, match=r"params/embed/embedding has 31 entries.*"
                                       r"--vocab_multiple"):
    trainer.Trainer(task, _config(tmp_path, model_parallel=MODEL_PARALLEL,
                                  param_rules=models.PARAM_RULES))


def test_constraint_is_a_no_op_without_a_model_axis():
  scores = jnp.ones((2, 8))
  assert mesh.constrain_items(scores) is scores
  with jax.set_mesh(mesh.make_mesh(8, 1)):
    assert mesh.constrain_items(scores) is scores


@pytest.mark.parametrize("make_task", [
    lambda dtype: mnr_task.make_task(_mnr_config(dtype=dtype, dropout=0.0)),
    lambda dtype: pretrain.make_pretrain_task(_nextitnet_config(dtype=dtype), "causal"),
], ids=["cmnrec_tsc", "nextitnet_causal"])
def test_bfloat16_compute_trains_to_the_float32_loss(tmp_path, make_task):
  data = {"seq": tiny.make_data()}
  final = {}
  for dtype in ("float32", "bfloat16"):
    state, results = trainer.train(
        make_task(dtype), _config(tmp_path / dtype, num_steps=40, log_every=5,
                                  num_devices=1), data, {})
    final[dtype] = results["final_train"]["loss"]
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(state.params))
  assert final["bfloat16"] == pytest.approx(final["float32"], rel=0.03), final
  assert final["float32"] < 0.8 * np.log(tiny.NUM_ITEMS)  # it did learn

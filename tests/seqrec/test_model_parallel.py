"""Model parallelism and mixed precision across the model families.

On a (2 data x 4 model) mesh of fake CPU devices the item tables are split by
rows / columns and training matches one device; bfloat16 compute trains to
the float32 loss.
"""

import importlib
import json
import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util
from jax.sharding import PartitionSpec as P

from chunkmnr_jax import family as mnr_family, models
from seqrec import experiment, losses, mesh, next_item, registry, trainer
from seqrec.errors import InputError
from tests.seqrec import tiny

MODEL_PARALLEL = 4
# Every family in the registry; fine-tuning starts from a pretraining workdir.
NEXT_ITEM = sorted(set(registry.FAMILIES) - {"peterrec"})


def _mnr_config(**overrides):
  return models.MnrConfig(**{
      "kind": "tsc", "num_items": tiny.NUM_ITEMS, "embed_dim": 8, "hidden": 16,
      "memory_slots": 3, "slot_width": 8, "read_heads": 2, "attention_dim": 4,
      "dropout": 0.1, "vocab_multiple": MODEL_PARALLEL, **overrides})


def _mnr_task(config, loss="full"):
  return next_item.make_task(mnr_family.next_item_model(config), loss=loss,
                             param_rules=models.PARAM_RULES)


def family_config(family, **overrides):
  """configs/FAMILY.py:tiny with item tables padded for 4-way splits."""
  config = importlib.import_module(f"configs.{family}").get_config("tiny")
  config.vocab_multiple = MODEL_PARALLEL
  config.update(overrides)
  return config


@pytest.fixture(scope="session")
def pretrained(tmp_path_factory):
  """A finished tiny pretraining workdir with 4-way padded tables."""
  workdir = str(tmp_path_factory.mktemp("pretrained"))
  experiment.run(family_config("nextitnet", num_steps=1, select_metric=""), workdir)
  return workdir


def _experiment(family, pretrained_dir, **overrides):
  """(task, train data, item tables: path -> split axis) of a family through its build."""
  if family == "cmnrec":
    overrides.setdefault("loss", "sampled")
  if family == "peterrec":
    overrides.update(pretrained=pretrained_dir, task="crossdomain")
  config = experiment.with_pretraining_data(family_config(family, **overrides))
  if "dropout" in config.model and overrides.get("dtype"):
    config.model.dropout = 0.0  # compare the two dtypes on the same function
  built = registry.build(config, experiment.load_data(config))
  shapes = _flat(jax.eval_shape(built.task.init, jax.random.key(0)))
  tables = {}
  for path in shapes:
    spec = next((spec for pattern, spec in built.task.param_rules
                 if re.fullmatch(pattern, path)), P())
    if mesh.MODEL in spec:
      tables[path] = list(spec).index(mesh.MODEL)
  assert tables, family
  return built.task, built.train, tables


def _config(workdir, **overrides):
  return trainer.TrainConfig(**{
      "workdir": str(workdir), "num_steps": 4, "batch_size": 8, "log_every": 1,
      "eval_batch_size": 16, "learning_rate": 1e-2, **overrides})


def _losses(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [r["loss"] for r in map(json.loads, f) if r["split"] == "train"]


def _flat(tree):
  return traverse_util.flatten_dict(tree, sep="/")


@pytest.mark.parametrize("family", sorted(registry.FAMILIES))
def test_model_parallel_matches_one_device_with_split_item_tables(tmp_path, family,
                                                                  pretrained):
  task, data, tables = _experiment(family, pretrained)
  eval_data = {"valid": {k: v[:16] for k, v in data.items()}}
  sharded, results = trainer.train(
      task, _config(tmp_path / "mp", model_parallel=MODEL_PARALLEL), data, eval_data)
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
    shard = list(table.shape)
    shard[axis] //= MODEL_PARALLEL
    assert {s.data.shape for s in table.addressable_shards} == {tuple(shard)}, path
  # Adam's moments of a trainable table are split like the table.
  trained = [path for path in tables if any(re.fullmatch(p, path) for p in task.trainable)]
  for path in trained:
    moments = [x for x in jax.tree.leaves(sharded.opt_state) if x.shape == params[path].shape]
    assert moments and all(m.sharding.spec == params[path].sharding.spec
                           for m in moments), path


@pytest.mark.parametrize("family", NEXT_ITEM)
def test_compiled_step_never_gathers_an_item_table(tmp_path, family):
  task, data, tables = _experiment(family, None)
  step = trainer.Trainer(task, _config(tmp_path, model_parallel=MODEL_PARALLEL))
  state = step.fresh_state()
  with jax.set_mesh(step.mesh):
    hlo = step.train_step.lower(state, step.train_batch(data, 0)).compile().as_text()
  shapes = [_flat(state.params)[path].shape for path in tables]
  shapes = [shape for shape in shapes if len(shape) == 2]  # embeddings, kernels
  full = {f"[{a},{b}]" for a, b in shapes} | {f"[{b},{a}]" for a, b in shapes}
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
  task = _mnr_task(_mnr_config(vocab_multiple=1))  # 31 rows over 4 devices
  with pytest.raises(InputError, match=r"params/embed/embedding has 31 entries.*"
                                       r"config.vocab_multiple"):
    trainer.Trainer(task, _config(tmp_path, model_parallel=MODEL_PARALLEL))


def test_constraint_is_a_no_op_without_a_model_axis():
  scores = jnp.ones((2, 8))
  assert mesh.constrain_items(scores) is scores
  with jax.set_mesh(mesh.make_mesh(8, 1)):
    assert mesh.constrain_items(scores) is scores


@pytest.mark.parametrize("family", NEXT_ITEM)
def test_bfloat16_compute_trains_to_the_float32_loss(tmp_path, family):
  final = {}
  for dtype in ("float32", "bfloat16"):
    task, data, _ = _experiment(family, None, dtype=dtype, loss="full")
    state, results = trainer.train(
        task, _config(tmp_path / dtype, num_steps=40, log_every=5, num_devices=1),
        data, {})
    final[dtype] = results["final_train"]["loss"]
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(state.params))
  assert final["bfloat16"] == pytest.approx(final["float32"], rel=0.03), final
  curve = _losses(tmp_path / "float32")
  assert curve[-1] < 0.95 * curve[0], curve  # it did learn

"""Packing loss positions: the loss and its gradients do not change, and no
[positions, items] logits are formed for padding."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import cmnrec, nextitnet, sasrec
from seqrec import benchmark, experiment, packing, registry, trainer
from tests.seqrec.test_losses import largest_array

CONFIGS = {"cmnrec": cmnrec, "nextitnet": nextitnet, "sasrec": sasrec}


def test_capacity_has_eight_sizes_per_octave():
  assert [packing.capacity(n) for n in (0, 5, 8, 9, 16, 17, 100, 1000)] == [
      1, 5, 8, 9, 16, 18, 104, 1024]
  sizes = {packing.capacity(n) for n in range(513, 1025)}
  assert len(sizes) == 8 and all(packing.capacity(n) <= 1.125 * n for n in range(9, 5000))


def test_nearly_full_batches_are_not_packed():
  # Groups of 20 positions: capacities are multiples of 3 (20 / 8, rounded up).
  assert packing.shape(np.array([5, 2, 2, 3]), 10, 2) == (2, 9)
  assert packing.shape(np.array([1, 2, 0, 1]), 10, 2) == (2, 3)
  assert packing.shape(np.array([5, 9, 2, 8]), 10, 2) is None  # 14 of 20
  assert packing.shape(np.array([9, 9, 10, 10]), 10, 2) is None  # 20 of 20


def test_pack_puts_each_groups_weighted_positions_first():
  hidden = jnp.arange(2 * 3 * 1, dtype=jnp.float32).reshape(2, 3, 1)
  weights = jnp.array([[0, 1, 1], [1, 0, 0]])
  kept, (packed, targets) = packing.pack(weights, [hidden, 10 + hidden[..., 0]], 2, 2)
  np.testing.assert_array_equal(packed[..., 0], [[1, 2], [3, 4]])
  np.testing.assert_array_equal(kept, [[1, 1], [1, 0]])
  np.testing.assert_array_equal(targets, [[11, 12], [13, 14]])


@pytest.mark.parametrize("family, overrides", [
    ("cmnrec", {"loss": "full"}), ("cmnrec", {"loss": "sampled"}),
    ("sasrec", {"loss": "bce"}), ("nextitnet", {"mode": "masked"}),
])
def test_packed_loss_and_gradients_equal_the_unpacked_ones(family, overrides):
  config = CONFIGS[family].get_config("tiny")
  config.update(dict(max_len=60, **overrides))  # windows longer than most histories
  if family == "cmnrec":
    # Packing lives in the shared objective, after the model's states: the
    # recurrent baseline compiles in a fraction of the memory models' time.
    config.model.kind = "gru4rec"
  built = registry.build(config, experiment.load_data(config))
  task = built.task
  values = {}
  for pack in (True, False):
    loop = trainer.Trainer(task, trainer.TrainConfig(workdir="", num_steps=1, batch_size=16,
                                                     pack_targets=pack, num_devices=2))
    batch = loop.train_batch(built.train, 3)
    assert (packing.KEY in batch) == pack
    params = task.init(jax.random.key(0))
    with jax.set_mesh(loop.mesh):
      values[pack] = jax.jit(jax.value_and_grad(
          lambda p, b: task.loss(p, b, jax.random.key(1))[0]))(params, batch)
  (packed, packed_grads), (full, full_grads) = values[True], values[False]
  np.testing.assert_allclose(packed, full, rtol=1e-6, atol=1e-6)
  for a, b in zip(jax.tree.leaves(packed_grads), jax.tree.leaves(full_grads)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_no_logits_are_formed_for_padding():
  config = cmnrec.get_config("tiny")
  config.model.kind = "gru4rec"
  config.max_len = 60
  built = registry.build(config, experiment.load_data(config))
  loop = trainer.Trainer(built.task, trainer.TrainConfig(workdir="", num_steps=1,
                                                         batch_size=16, num_devices=1))
  batch = loop.train_batch(built.train, 0)
  groups, size = batch[packing.KEY].shape
  positions = 16 * (config.max_len - 1)
  assert groups == 1 and size < positions
  vocab = built.task.init(jax.random.key(0))["params"]["head"]["bias"].shape[0]
  jaxpr = str(jax.make_jaxpr(lambda p: built.task.loss(p, batch, jax.random.key(0)))(
      built.task.init(jax.random.key(0))))
  assert f"{size},{vocab}]" in jaxpr.replace(" ", "")
  assert f"{positions},{vocab}]" not in jaxpr.replace(" ", "")
  assert f"{config.max_len - 1},{vocab}]" not in jaxpr.replace(" ", "")


def test_throughput_times_every_variant_the_task_allows():
  config = sasrec.get_config("tiny")  # a padding-invariant model: it may bucket
  config.max_len = 60
  data = experiment.load_data(config)
  built = registry.build(config, data)
  whole_config = config.copy_and_resolve_references()
  whole_config.chunk_scores = False
  whole = registry.build(whole_config, data)
  records = benchmark.throughput(built.task, whole.task, built.train, batch_size=16,
                                 repeats=1, steps=2, log=lambda _: None)
  assert [r["variant"] for r in records] == list(benchmark.VARIANTS)
  assert [(r["packed"], r["bucketed"], r["chunked"]) for r in records] == [
      (False, False, False), (True, False, False), (True, False, True), (True, True, True)]
  assert all(r["step_ms"] > 0 and r["seconds_per_epoch"] > 0 for r in records)
  assert all(0 < r["target_share"] < 1 for r in records)
  assert [r["batches_timed"] for r in records] == [1, 2, 2, 2]
  widths = [r["mean_width"] for r in records]
  assert widths[:3] == [60, 60, 60] and widths[3] < 60


@pytest.mark.parametrize("family", ["cmnrec", "nextitnet", "sasrec"])
def test_chunked_scores_leave_every_familys_loss_and_gradients_unchanged(family):
  # Over 1,024 items: above one chunk of `losses.score_chunk`, so the scan runs.
  config = CONFIGS[family].get_config("tiny")
  config.synthetic.update(dict(num_users=2000, num_items=2000))
  if family == "cmnrec":
    config.model.kind = "gru4rec"
  data = experiment.load_data(config)
  values = {}
  for chunked in (True, False):
    config.chunk_scores = chunked
    built = registry.build(config, data)
    loop = trainer.Trainer(built.task, trainer.TrainConfig(workdir="", num_steps=1,
                                                           batch_size=16, num_devices=1))
    batch = loop.train_batch(built.train, 0)
    params = built.task.init(jax.random.key(0))
    grads = jax.value_and_grad(lambda p, b: built.task.loss(p, b, jax.random.key(1))[0])
    targets = (np.prod(batch[packing.KEY].shape) if packing.KEY in batch
               else 16 * (config.max_len - 1))
    # The scores [targets, items] are formed whole only without chunks.
    assert len(built.items) > 1024
    assert (largest_array(grads, params, batch) >= targets * len(built.items)) != chunked
    values[chunked] = jax.jit(grads)(params, batch)
  (chunked, chunked_grads), (whole, whole_grads) = values[True], values[False]
  np.testing.assert_allclose(chunked, whole, rtol=1e-6, atol=1e-6)
  for a, b in zip(jax.tree.leaves(chunked_grads), jax.tree.leaves(whole_grads)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)

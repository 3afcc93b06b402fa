"""Length bucketing: batches of similar-length rows at a short width leave the
loss, its gradients and the evaluation unchanged, and are refused for models
that see the amount of left padding."""

import os

import jax
import numpy as np
import pytest

from configs import caser, cmnrec, sasrec
from seqrec import bucketing, experiment, registry, trainer
from seqrec.errors import InputError

CONFIGS = {"sasrec": sasrec, "caser": caser}


def test_buckets_and_widths_hold_every_token():
  seq = np.array([[0, 0, 0, 0, 0, 0, 0, 0, 3, 4],   # 2 tokens
                  [0, 0, 0, 0, 0, 0, 1, 2, 3, 4],   # 4
                  [5, 6, 7, 8, 9, 1, 2, 3, 4, 5],   # 10
                  [0] * 10])
  buckets = bucketing.buckets(seq)  # units of ceil(10 / 8) = 2 columns
  np.testing.assert_array_equal(buckets, [1, 2, 5, 0])
  assert bucketing.width(buckets[:2], 10) == 4
  assert bucketing.width(buckets[3:], 10) == 2  # an input and a target at least
  assert bucketing.width(buckets, 10) == 10


def test_epoch_order_is_a_pure_function_of_seed_and_epoch_and_groups_lengths():
  rng = np.random.default_rng(0)
  buckets = rng.integers(1, 9, size=1000)
  order = bucketing.epoch_order(buckets, 32, seed=3, epoch=1)
  assert len(order) == 31 * 32 and len(set(order)) == len(order)
  np.testing.assert_array_equal(order, bucketing.epoch_order(buckets, 32, seed=3, epoch=1))
  assert not np.array_equal(order, bucketing.epoch_order(buckets, 32, seed=3, epoch=2))
  per_batch = buckets[order].reshape(31, 32)
  mixed = np.sum(per_batch.min(axis=1) != per_batch.max(axis=1))
  assert mixed <= 7  # only batches that straddle two of the 8 buckets
  assert len(np.unique(per_batch.max(axis=1))) == 8  # and every width occurs


def _built(family, **overrides):
  config = CONFIGS[family].get_config("tiny")
  # Short histories in long windows; no dropout, so both widths draw nothing.
  config.update(dict(max_len=48, **overrides))
  config.synthetic.mean_length = 6.0
  config.model.dropout = 0.0
  return registry.build(config, experiment.load_data(config))


@pytest.mark.parametrize("family, loss", [("sasrec", "full"), ("caser", "full"),
                                          ("sasrec", "sampled")])
def test_a_cut_batch_gives_the_loss_and_gradients_of_the_full_width(family, loss):
  built = _built(family, loss=loss)
  task, params = built.task, built.task.init(jax.random.key(0))
  loops = {bucket: trainer.Trainer(task, trainer.TrainConfig(
      workdir="", num_steps=1, batch_size=16, num_devices=2, bucket_lengths=bucket))
           for bucket in (True, False)}
  cut = loops[True]
  rows = cut.batch_rows(built.train, 2)
  full = {"seq": built.train["seq"][rows]}
  short = cut.train_batch(built.train, 2)
  assert short["seq"].shape[1] < 48 // 2  # most of the width was padding
  np.testing.assert_array_equal(np.asarray(short["seq"]),
                                full["seq"][:, 48 - short["seq"].shape[1]:])
  assert not full["seq"][:, :48 - short["seq"].shape[1]].any()  # only padding was cut

  def value_and_grad(loop, batch):
    with jax.set_mesh(loop.mesh):
      return jax.jit(jax.value_and_grad(
          lambda p, b: task.loss(p, b, jax.random.key(1))[0]))(params, batch)

  # The same rows at full width, unpacked.
  (a, grads_a), (b, grads_b) = value_and_grad(cut, short), value_and_grad(loops[False], full)
  np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
  for x, y in zip(jax.tree.leaves(grads_a), jax.tree.leaves(grads_b)):
    np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


def test_bucketed_evaluation_equals_the_full_width_one():
  built = _built("sasrec")
  params = built.task.init(jax.random.key(0))
  results = {}
  for bucket in (True, False):
    loop = trainer.Trainer(built.task, trainer.TrainConfig(
        workdir="", num_steps=1, batch_size=16, eval_batch_size=16, num_devices=2,
        bucket_lengths=bucket))
    results[bucket] = loop.evaluate(params, built.eval["test"])
  assert set(results[True]) == set(results[False])
  for key, value in results[False].items():
    assert results[True][key] == pytest.approx(value, abs=1e-6), key


def test_bucketing_a_model_that_sees_the_padding_is_refused_before_any_work(tmp_path):
  config = cmnrec.get_config("tiny")
  config.bucket_lengths = True
  with pytest.raises(InputError, match="config.bucket_lengths=True: this model's outputs "
                     "depend on the amount of left padding"):
    experiment.run(config, str(tmp_path / "w"))
  assert not os.path.exists(tmp_path / "w" / "config.json")


def test_a_bucketed_run_trains_and_reports(tmp_path):
  config = sasrec.get_config("tiny")
  config.update(dict(bucket_lengths=True, max_len=40, num_steps=2))
  config.synthetic.mean_length = 6.0
  results, _ = experiment.run(config, str(tmp_path / "w"))
  assert results["steps"] == 2 and np.isfinite(results["final_train"]["loss"])
  assert results["config"]["bucket_lengths"] is True

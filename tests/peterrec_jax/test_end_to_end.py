"""Pretrain then PeterRec fine-tune through the generic trainer on tiny synthetic data."""

import jax
import numpy as np
from flax import traverse_util

from peterrec_jax import downstream, finetune, pretrain
from peterrec_jax.nextitnet import NextItNetConfig
from seqrec import synthetic, trainer
from seqrec.sequences import leave_one_out

MAX_LEN = 10


def flat(params) -> dict:
  return {k: np.asarray(v) for k, v in traverse_util.flatten_dict(params, sep="/").items()}


def test_pretrain_then_peterrec(tmp_path):
  data = synthetic.generate(synthetic.SyntheticConfig(
      num_users=60, num_items=30, num_target_items=10, num_interests=3, mean_length=8,
      mean_target_length=2))
  source = downstream.source_sequences(data)
  splits = leave_one_out(source, MAX_LEN)
  config = NextItNetConfig(num_items=source.num_items, channels=8, dilations=(1, 2))
  loop = dict(num_steps=3, batch_size=8, eval_batch_size=16, log_every=1)
  pre_state, pre_results = trainer.train(
      pretrain.make_pretrain_task(config, loss="sampled"),
      trainer.TrainConfig(workdir=str(tmp_path / "pretrain"), **loop),
      {"seq": splits.train.seqs}, {"valid": {"seq": splits.valid.seqs}})
  assert 0.0 <= pre_results["valid"]["hr@20"] <= 1.0

  task_data = downstream.build_downstream(data, source, "crossdomain", max_len=MAX_LEN,
                                          min_source_len=2)
  assert task_data.num_labels == 10
  pretrained = jax.device_get(pre_state.params)
  task = finetune.make_finetune_task(
      NextItNetConfig(num_items=source.num_items, channels=8, dilations=(1, 2),
                      patch="parallel"),
      task_data.kind, task_data.num_labels, pretrained=lambda: pretrained)
  state, results = trainer.train(
      task, trainer.TrainConfig(workdir=str(tmp_path / "finetune"), learning_rate=1e-2,
                                **loop),
      task_data.train.batch(), {"test": task_data.test.batch()})
  assert {"mrr@5", "hr@10", "ndcg@10"} <= set(results["test"])
  after, before = flat(state.params), flat(pretrained)
  for path, value in after.items():
    if path in before:
      if "/ln2/" in path:
        assert not np.array_equal(value, before[path]), path
      else:
        np.testing.assert_array_equal(value, before[path], err_msg=path)

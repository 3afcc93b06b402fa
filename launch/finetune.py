r"""Fine-tunes a pretrained NextItNet on a downstream task (PeterRec stage 2).

  python -m launch.finetune --pretrained=/tmp/nextitnet --method=peterrec \
      --patch=serial --task=gender --dataset=recbole:../shared/data/ml-100k \
      --workdir=/tmp/peterrec_gender

Tasks: gender, age (MovieLens-1M buckets), occupation (classification), and
crossdomain (rank the user's target-domain items). Methods: peterrec (patches,
second LayerNorms, head), fineall, finecls (head), finelast (last block and
head), scratch (everything, no pretraining). Writes WORKDIR/results.json with
the task metrics, trainable and total parameters, optimizer-state bytes and
examples per second.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from absl import flags, logging

from launch import backbone, common
from peterrec_jax import downstream, finetune, nextitnet
from seqrec import checkpoint, trainer
from seqrec.errors import InputError

PRETRAINED = flags.DEFINE_string(
    "pretrained", None, "Workdir of `launch.pretrain` (its backbone; for "
    "--method=scratch only its architecture is used).", required=True)
METHOD = flags.DEFINE_enum("method", "peterrec", list(finetune.METHODS),
                           "Which parameters train.")
PATCH = flags.DEFINE_enum("patch", "serial", list(nextitnet.PATCH_KINDS),
                          "Model patch insertion (peterrec only).")
PATCH_DIM = flags.DEFINE_integer("patch_dim", None, "Patch bottleneck (default C/4).")
TASK = flags.DEFINE_enum("task", "gender", list(downstream.TASKS), "Downstream task.")
POOLING = flags.DEFINE_enum("pooling", "cls", list(finetune.POOLINGS),
                            "User vector: [CLS] state, or mean over positions.")
FINETUNE_LOSS = flags.DEFINE_enum(
    "finetune_loss", "softmax", list(finetune.LOSSES),
    "crossdomain: softmax over all target items, or the reference BCE with one negative.")
MIN_SOURCE_LEN = flags.DEFINE_integer("min_source_len", 5,
                                      "Skip users with fewer source items.")
SELECT_METRIC = flags.DEFINE_string(
    "select_metric", "", "Report the best-validation step by this metric "
    "(e.g. accuracy, ndcg@10); empty: the last step.")


def main(argv: list[str]) -> None:
  del argv
  common.init_distributed()
  pretrained_config, setup, item_index = backbone.load(PRETRAINED.value)
  data = common.load_interactions()
  source = downstream.source_sequences(
      data, setup["held_out_genres"], min_item_count=common.MIN_ITEM_COUNT.value,
      min_user_count=common.MIN_USER_COUNT.value)
  if not np.array_equal(source.item_index, item_index):
    raise InputError(f"--pretrained={PRETRAINED.value} was trained on a different item "
                     f"vocabulary than --dataset={common.DATASET.value} gives")
  task_data = downstream.build_downstream(
      data, source, TASK.value, max_len=common.MAX_LEN.value,
      min_source_len=MIN_SOURCE_LEN.value, held_out_genres=setup["held_out_genres"],
      seed=common.SEED.value)
  logging.info("task %s: %s", TASK.value, task_data.stats)
  uses_patches = METHOD.value == "peterrec"
  # Item-table padding stays the pretrained one: the embedding must keep its shape.
  config = dataclasses.replace(pretrained_config,
                               patch=PATCH.value if uses_patches else None,
                               patch_dim=PATCH_DIM.value if uses_patches else None,
                               dtype=common.DTYPE.value)
  pretrained = None
  if finetune.METHODS[METHOD.value].pretrained:
    pretrained = checkpoint.restore_params(PRETRAINED.value)
  task = finetune.make_finetune_task(
      config, task_data.kind, task_data.num_labels, method=METHOD.value,
      pretrained=pretrained, pooling=POOLING.value, loss=FINETUNE_LOSS.value,
      eval_seed=common.SEED.value)
  train_config = common.train_config(len(task_data.train),
                                     select_metric=SELECT_METRIC.value or None,
                                     param_rules=finetune.param_rules(task_data.kind))
  _, results = trainer.train(task, train_config, task_data.train.batch(),
                             {"valid": task_data.valid.batch(),
                              "test": task_data.test.batch()})
  used_flags = common.flag_values((__name__,))
  if not uses_patches:  # record what ran, not the ignored flags' defaults
    used_flags.update(patch=None, patch_dim=None)
  results.update(task=TASK.value, method=METHOD.value, data_stats=task_data.stats,
                 flags=used_flags)
  path = trainer.write_results(train_config.workdir, results)
  common.report(
      f"{METHOD.value} on {TASK.value}: test " + ", ".join(
          f"{k} {v:.4f}" for k, v in sorted(results["test"].items())),
      f"trainable {results['trainable_params']} of {results['total_params']} "
      f"parameters; wrote {path}")


if __name__ == "__main__":
  common.run(main)

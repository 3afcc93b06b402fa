r"""Pretrains a NextItNet backbone on source-domain item sequences (PeterRec stage 1).

  python -m launch.pretrain --mode=causal --dataset=recbole:../shared/data/ml-100k \
      --workdir=/tmp/nextitnet

Items of the held-out genres (or of the second domain of data that has one)
are left out, so the cross-domain task's target items are never seen here.
Writes checkpoints, WORKDIR/pretrain_config.json (what `launch.finetune`
needs to rebuild the backbone) and WORKDIR/results.json (leave-one-out test,
full ranking, MRR/HR/NDCG at 5, 10, 20).
"""

from __future__ import annotations

from absl import flags, logging

from launch import backbone, common
from peterrec_jax import downstream, nextitnet, pretrain
from seqrec import sequences, trainer

MODE = flags.DEFINE_enum("mode", "causal", list(pretrain.MODES),
                         "causal: NextItNet next-item; masked: GRec-style 30% masking.")
LOSS = flags.DEFINE_enum("loss", "full", list(pretrain.LOSSES),
                         "full softmax, or sampled softmax with 20% of items as negatives.")
CHANNELS = flags.DEFINE_integer("channels", 256, "C: embedding and convolution width.")
DILATIONS = flags.DEFINE_list("dilations", ["1", "4"] * 4,
                              "Dilation d of each residual block (convs use d and 2d).")
KERNEL_SIZE = flags.DEFINE_integer("kernel_size", 3, "Convolution width.")
HELD_OUT_GENRES = flags.DEFINE_list(
    "held_out_genres", list(downstream.DEFAULT_HELD_OUT_GENRES),
    "Genres whose items form the cross-domain target domain (never pretrained on); "
    "empty: pretrain on every item.")
SELECT_METRIC = flags.DEFINE_string(
    "select_metric", "ndcg@10", "Report the best-validation step by this metric "
    "(evaluated every --eval_every steps); empty: the last step.")


def main(argv: list[str]) -> None:
  del argv
  common.init_distributed()
  data = common.load_interactions()
  seqs = downstream.source_sequences(
      data, HELD_OUT_GENRES.value, min_item_count=common.MIN_ITEM_COUNT.value,
      min_user_count=common.MIN_USER_COUNT.value)
  splits = sequences.leave_one_out(seqs, common.MAX_LEN.value)
  logging.info("pretraining on %d source items: train %d, valid %d, test %d sequences",
               seqs.num_items, len(splits.train), len(splits.valid), len(splits.test))
  config = nextitnet.NextItNetConfig(
      num_items=seqs.num_items, channels=CHANNELS.value,
      dilations=tuple(int(d) for d in DILATIONS.value), kernel_size=KERNEL_SIZE.value,
      causal=MODE.value == "causal", vocab_multiple=common.vocab_multiple(),
      dtype=common.DTYPE.value).validate()
  workdir = common.WORKDIR.value
  backbone.save(workdir, config, seqs.item_index, mode=MODE.value,
                dataset=common.DATASET.value, held_out_genres=HELD_OUT_GENRES.value)
  train_config = common.train_config(len(splits.train),
                                     select_metric=SELECT_METRIC.value or None,
                                     param_rules=pretrain.PARAM_RULES)
  _, results = trainer.train(
      pretrain.make_pretrain_task(config, MODE.value, LOSS.value), train_config,
      {"seq": splits.train.seqs},
      {"valid": {"seq": splits.valid.seqs}, "test": {"seq": splits.test.seqs}})
  results["flags"] = common.flag_values((__name__,))
  path = trainer.write_results(workdir, results)
  common.report(
      f"nextitnet ({MODE.value}): test " + ", ".join(
          f"{k} {results['test'][k]:.4f}" for k in ("mrr@10", "hr@10", "ndcg@10")),
      f"wrote {path}")


if __name__ == "__main__":
  common.run(main)

r"""Trains a memory-based recommender (CmnRec and its baselines).

  python -m launch.train_mnr --model=tsc --memory_slots=6 \
      --dataset=recbole:../shared/data/ml-100k --workdir=/tmp/tsc

Writes WORKDIR/results.json with validation and test MRR/HR/NDCG at 5, 10, 20
(full ranking), training time, examples per second and the flags used.
"""

from __future__ import annotations

from absl import flags, logging

from chunkmnr_jax import models, task as mnr_task
from launch import common, mnr_flags
from seqrec import sequences, trainer

MODEL = flags.DEFINE_enum("model", "tsc", list(models.KINDS), "Model kind.")
MEMORY_SLOTS = flags.DEFINE_integer("memory_slots", 6, "m: memory slots = number of chunks.")
ATTENTION_DIM = flags.DEFINE_integer("attention_dim", 64, "b: chunk attention width.")
CONTROLLER = flags.DEFINE_enum("controller", "lstm", ["lstm", "gru"],
                               "Controller cell of the memory models.")
DROPOUT = flags.DEFINE_float("dropout", 0.5, "Drop rate on controller output and interface.")
ATTENTION_VARIANT = flags.DEFINE_enum(
    "attention_variant", "code", ["code", "paper"],
    "code: access memory from o_t, then a_t replaces h; paper: a_t first.")
LOSS = flags.DEFINE_enum("loss", "full", list(mnr_task.LOSSES),
                         "full softmax, or sampled softmax with |I|/10 negatives.")
SPLIT = flags.DEFINE_enum(
    "split", "leave_one_out", ["leave_one_out", "random"],
    "leave_one_out: RecBole's time split; random: CmnRec's 80/2/18 split of windows.")
MIN_LEN = flags.DEFINE_integer("min_len", 2, "l: drop windows shorter than this.")
SELECT_METRIC = flags.DEFINE_string(
    "select_metric", "ndcg@10", "Report the step with the best validation value of "
    "this metric (evaluated every --eval_every steps); empty: the last step.")

# Small batches: each sequence already carries up to max_len-1 targets, and the
# run with no flags should finish in a couple of minutes on a laptop CPU.
flags.FLAGS.set_default("batch_size", 32)
flags.FLAGS.set_default("num_epochs", 2)

flags.register_multi_flags_validator(
    ["model", "memory_slots", "max_len"],
    lambda f: f["model"] not in models.MEMORY_KINDS or
    1 <= f["memory_slots"] <= f["max_len"] - 1,
    "--memory_slots must be in [1, --max_len - 1] (one write per chunk, T = max_len - 1 steps)")


def main(argv: list[str]) -> None:
  del argv
  common.init_distributed()
  data = common.load_interactions()
  seqs = common.user_sequences(data)
  if SPLIT.value == "leave_one_out":
    splits = sequences.leave_one_out(seqs, common.MAX_LEN.value, MIN_LEN.value)
  else:
    splits = sequences.random_split(seqs, common.MAX_LEN.value, MIN_LEN.value,
                                    seed=common.SEED.value)
  logging.info("train %d, valid %d, test %d sequences, %d items", len(splits.train),
               len(splits.valid), len(splits.test), splits.num_items)
  config = models.MnrConfig(
      kind=MODEL.value, num_items=splits.num_items, memory_slots=MEMORY_SLOTS.value,
      attention_dim=ATTENTION_DIM.value, controller=CONTROLLER.value, dropout=DROPOUT.value,
      attention_variant=ATTENTION_VARIANT.value, **mnr_flags.sizes(),
      vocab_multiple=common.vocab_multiple(), dtype=common.DTYPE.value)
  train_config = common.train_config(len(splits.train),
                                     select_metric=SELECT_METRIC.value or None,
                                     param_rules=models.PARAM_RULES)
  _, results = trainer.train(
      mnr_task.make_task(config, LOSS.value), train_config,
      {"seq": splits.train.seqs},
      {"valid": {"seq": splits.valid.seqs}, "test": {"seq": splits.test.seqs}})
  results["flags"] = common.flag_values((__name__, mnr_flags.__name__))
  path = trainer.write_results(train_config.workdir, results)
  common.report(
      f"{MODEL.value}: test " + ", ".join(
          f"{k} {results['test'][k]:.4f}" for k in ("mrr@5", "hr@5", "ndcg@5", "ndcg@10")),
      f"wrote {path}")


if __name__ == "__main__":
  common.run(main)

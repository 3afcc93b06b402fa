"""A short TSC training run on the built-in synthetic data, through the shared trainer."""

import jax.numpy as jnp
import numpy as np

from chunkmnr_jax import family, models
from seqrec import next_item, metrics, sequences, synthetic, trainer



def family_task(config, loss="full"):
  """CmnRec's next-item task, as the family builds it."""
  return next_item.make_task(family.next_item_model(config), loss=loss)


def test_tsc_on_synthetic_data_lowers_loss_and_beats_popularity(tmp_path):
  data = synthetic.generate(synthetic.SyntheticConfig(
      num_users=300, num_items=60, num_target_items=0, num_interests=6,
      interests_per_user=2, mean_length=30, seed=0))
  splits = sequences.leave_one_out(sequences.build_user_sequences(data), max_len=13)
  config = models.MnrConfig(kind="tsc", num_items=splits.num_items, embed_dim=16,
                            hidden=32, memory_slots=3, slot_width=16, read_heads=2,
                            attention_dim=8, dropout=0.1)
  train_config = trainer.TrainConfig(workdir=str(tmp_path), num_steps=250, batch_size=32,
                                     learning_rate=5e-3, log_every=25, num_devices=1)
  _, results = trainer.train(family_task(config), train_config,
                             {"seq": splits.train.seqs}, {"test": {"seq": splits.test.seqs}})

  with open(tmp_path / "metrics.jsonl") as f:
    train_losses = [float(line.split('"loss": ')[1].split(",")[0])
                    for line in f if '"split": "train"' in line]
  assert train_losses[-1] < 0.85 * train_losses[0]

  targets = splits.test.seqs[:, -1]
  counts = np.bincount(splits.train.seqs.ravel(), minlength=splits.num_items + 1)
  popular = jnp.broadcast_to(jnp.asarray(counts, jnp.float32),
                             (len(targets), splits.num_items + 1))
  popular_hr10 = float(jnp.mean(metrics.full_ranking(popular, jnp.asarray(targets))["hr@10"]))
  assert results["test"]["hr@10"] > popular_hr10 + 0.05, (results["test"], popular_hr10)

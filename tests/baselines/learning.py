"""Does a family learn? Its run through the real trainer against popularity."""

from __future__ import annotations

import importlib

import jax.numpy as jnp
import numpy as np

from seqrec import experiment, metrics, next_item


def learnable_config(family: str):
  """configs/FAMILY.py:tiny on synthetic data with few interests and long
  histories, trained long enough to learn them (~250 steps)."""
  config = importlib.import_module(f"configs.{family}").get_config("tiny")
  config.synthetic.update(dict(num_users=300, num_items=60, num_target_items=0,
                               mean_length=30.0, num_interests=6, interests_per_user=2))
  config.update(dict(max_len=13, batch_size=32, learning_rate=5e-3, num_steps=250,
                     eval_every=0, log_every=25, select_metric="", num_devices=1))
  config.protocol.exclude_seen = True
  return config


def hr10_against_popularity(config, workdir: str) -> tuple[float, float]:
  """(test HR@10 of the trained model, HR@10 of ranking by training counts)."""
  results, _ = experiment.run(config, workdir)
  # Leaving the history out of the ranking only removes rivals of the target.
  assert results["test"]["unseen_hr@10"] >= results["test"]["hr@10"]
  data = experiment.load_data(config)
  seqs = next_item.user_sequences(config, data)
  splits = next_item.split(config, seqs)
  counts = np.bincount(splits.train.seqs.ravel(), minlength=seqs.num_items + 1)
  targets = jnp.asarray(splits.test.seqs[:, -1])
  popular = jnp.broadcast_to(jnp.asarray(counts, jnp.float32),
                             (len(targets), seqs.num_items + 1))
  return results["test"]["hr@10"], float(
      jnp.mean(metrics.full_ranking(popular, targets)["hr@10"]))

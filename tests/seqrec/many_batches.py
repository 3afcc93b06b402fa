"""Evaluates the tiny model with NUM_METRICS metrics over 2,000 batches of two
rows on two devices and prints each metric's mean as JSON.

A test runs it as a subprocess: when `Trainer.evaluate` dispatched every batch
without waiting, the host ran far ahead of the devices and XLA's CPU client
aborted on an all-reduce that one device never launched ("Termination timeout
for all reduce"), 3 runs in 3.
"""

from __future__ import annotations

import dataclasses
import json

import jax

from seqrec import trainer
from tests.seqrec import tiny

NUM_METRICS = 100
NUM_ROWS = 4000


def many_metrics_task():
  """The tiny task reporting NUM_METRICS multiples of its NDCG@10."""
  task = tiny.make_task()

  def evaluate(params, batch):
    ndcg = task.evaluate(params, batch)["ndcg@10"]
    return {f"m{i}": ndcg * (i + 1) for i in range(NUM_METRICS)}

  return dataclasses.replace(task, evaluate=evaluate)


if __name__ == "__main__":
  task = many_metrics_task()
  loop = trainer.Trainer(task, trainer.TrainConfig(
      workdir="", num_steps=1, batch_size=2, eval_batch_size=2, num_devices=2))
  print(json.dumps(loop.evaluate(task.init(jax.random.key(0)),
                                 {"seq": tiny.make_data(num_rows=NUM_ROWS)})))

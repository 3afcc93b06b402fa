"""A tiny real next-item model (item bigram through a hidden layer) for core tests.

Also a script: `python tests/seqrec/tiny.py WORKDIR NUM_STEPS CHECKPOINT_EVERY
[NUM_DEVICES]` trains it on synthetic-like data and saves the final params, so
tests can kill and resume a real training process.
"""

from __future__ import annotations

import os
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from seqrec import losses, metrics, next_item
from seqrec.task import Task

NUM_ITEMS = 30
SEQ_LEN = 8


class Bigram(nn.Module):
  num_items: int
  dim: int = 16

  @nn.compact
  def __call__(self, items: jax.Array) -> jax.Array:
    """items int [B, T] -> hidden [B, T, dim]."""
    h = nn.Embed(self.num_items + 1, self.dim, name="embed")(items)
    return nn.tanh(nn.Dense(self.dim, name="hidden")(h))


def make_task(num_items: int = NUM_ITEMS, positions: bool = False) -> Task:
  """With `positions`, the task reports its loss positions (`Task.loss_positions`),
  so the trainer computes a packing shape for every batch (the loss ignores it)."""
  model = Bigram(num_items)
  dim = model.dim

  def init(rng):
    params = model.init(rng, jnp.zeros((1, 2), jnp.int32))
    out_rng = jax.random.fold_in(rng, 1)
    params["params"]["output"] = {
        "kernel": 0.1 * jax.random.normal(out_rng, (dim, num_items + 1)),
        "bias": jnp.zeros((num_items + 1,))}
    return params

  def hidden_and_out(params, seq):
    out = params["params"]["output"]
    return model.apply(params, seq), out["kernel"], out["bias"]

  def loss(params, batch, rng):
    del rng
    inputs, targets = batch["seq"][:, :-1], batch["seq"][:, 1:]
    hidden, kernel, bias = hidden_and_out(params, inputs)
    weights = (inputs != 0) & (targets != 0)
    return losses.softmax_cross_entropy(hidden, kernel, bias, targets, weights), {}

  def evaluate(params, batch):
    hidden, kernel, bias = hidden_and_out(params, batch["seq"][:, -2:-1])
    scores = losses.logits(hidden[:, 0], kernel, bias)
    return metrics.full_ranking(scores, batch["seq"][:, -1])

  return Task(init=init, loss=loss, evaluate=evaluate,
              loss_positions=next_item.shift_positions if positions else None)


def make_data(num_rows: int = 64, seed: int = 0) -> np.ndarray:
  """int32 [num_rows, SEQ_LEN]: walks where item i is mostly followed by i+1."""
  rng = np.random.default_rng(seed)
  start = rng.integers(1, NUM_ITEMS + 1, size=(num_rows, 1))
  steps = np.where(rng.random((num_rows, SEQ_LEN)) < 0.8, 1,
                   rng.integers(2, 5, size=(num_rows, SEQ_LEN)))
  seqs = (start + np.cumsum(steps, axis=1) - 1) % NUM_ITEMS + 1
  seqs[: num_rows // 4, :2] = 0  # some left padding
  return seqs.astype(np.int32)


def main(argv: list[str]) -> None:
  workdir, num_steps, checkpoint_every = argv[1], int(argv[2]), int(argv[3])
  num_devices = int(argv[4]) if len(argv) > 4 else None
  from seqrec import trainer  # after XLA_FLAGS is set by the caller
  config = trainer.TrainConfig(workdir=workdir, num_steps=num_steps, batch_size=8,
                               checkpoint_every=checkpoint_every, log_every=1,
                               eval_batch_size=16, num_devices=num_devices)
  seqs = make_data()
  state, _ = trainer.train(make_task(), config, {"seq": seqs}, {"valid": {"seq": seqs[:16]}})
  flat = {"/".join(k): np.asarray(v) for k, v in
          __import__("flax").traverse_util.flatten_dict(state.params).items()}
  np.savez(os.path.join(workdir, "final_params.npz"), **flat)


if __name__ == "__main__":
  main(sys.argv)

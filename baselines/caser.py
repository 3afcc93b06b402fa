"""Caser (Tang & Wang, WSDM 2018) as a next-item family: convolutional sequence embedding.

At every step t the last L items (window [t-L+1, t], zero embeddings before
the sequence starts) form an L x E "image". Horizontal filters of every
height h = 1..L slide over it and are max-pooled over time; vertical filters
take weighted sums of its rows. Both go through a fully connected layer to
the hidden state z_t of size d, scored against the item output layer
(kernel [d, V], bias [V]) by the shared next-item chain (`seqrec.next_item`).

Differences from the paper, all so that Caser fits the chain every family
shares: no user embedding P_u (the model recommends from the sequence alone,
so it serves users unseen in training), one next item per step rather than
T = 3 targets, and the full-softmax loss by default (`config.loss="bce"` is
closer to the paper's negative sampling).

Config (configs/caser.py): config.model.{embed_dim, window, horizontal,
vertical, hidden, dropout}.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from seqrec import errors, mesh, next_item, precision
from seqrec.interactions import Interactions
from seqrec.task import Experiment

_INIT = nn.initializers.normal(0.02)
PARAM_RULES = mesh.item_table_rules(["params/embed/embedding"], ["params/head"])


@dataclasses.dataclass(frozen=True)
class CaserConfig:
  """Attributes: num_items; embed_dim E; window L; horizontal n_h filters per
  height; vertical n_v filters; hidden d; dropout on the concatenated
  features; vocab_multiple (item-table padding); dtype (compute)."""

  num_items: int
  embed_dim: int = 64
  window: int = 5
  horizontal: int = 16
  vertical: int = 4
  hidden: int = 64
  dropout: float = 0.5
  vocab_multiple: int = 1
  dtype: str = "float32"

  def __post_init__(self):
    errors.require_at_least_one(
        self, ("num_items", "embed_dim", "window", "horizontal", "vertical", "hidden"),
        "config.model.")
    errors.require_rate(self.dropout, "config.model.dropout")

  @property
  def table_size(self) -> int:
    return mesh.pad_to_multiple(self.num_items + 1, self.vocab_multiple)


def _windows(x: jax.Array, length: int) -> jax.Array:
  """[B, T, ...] -> [B, T, length, ...]: at t the rows t-length+1..t (zeros before 0)."""
  padded = jnp.pad(x, [(0, 0), (length - 1, 0)] + [(0, 0)] * (x.ndim - 2))
  return jnp.stack([padded[:, i:i + x.shape[1]] for i in range(length)], axis=2)


class Caser(nn.Module):
  """inputs int [B, T] (0 = padding) -> hidden states z [B, T, d]; `logits`
  (used by `init`) also applies the item output layer "head"."""

  config: CaserConfig

  def setup(self):
    c = self.config
    dtype = precision.compute_dtype(c.dtype)
    self.embed = nn.Embed(c.table_size, c.embed_dim, embedding_init=_INIT, dtype=dtype)
    self.vertical = nn.DenseGeneral(c.vertical, axis=2, dtype=dtype, kernel_init=_INIT)
    self.horizontal = [nn.Conv(c.horizontal, (h,), padding=[(h - 1, 0)], dtype=dtype,
                               kernel_init=_INIT, name=f"horizontal_{h}")
                       for h in range(1, c.window + 1)]
    self.dropout = nn.Dropout(c.dropout)
    self.fc = nn.Dense(c.hidden, dtype=dtype, kernel_init=_INIT)
    self.head = nn.Dense(c.table_size, kernel_init=_INIT)

  def __call__(self, inputs: jax.Array, train: bool = False) -> jax.Array:
    window = self.config.window
    embedded = self.embed(inputs)
    embedded = jnp.where((inputs != 0)[..., None], embedded, 0.0)
    image = _windows(embedded, window)  # [B, T, L, E]
    # Vertical filters: n_v weighted sums of the L rows, [B, T, E, n_v].
    vertical = self.vertical(jnp.swapaxes(image, 2, 3))
    features = [vertical.reshape(*vertical.shape[:2], -1)]
    for height, conv in enumerate(self.horizontal, start=1):
      # A causal convolution of this height over the whole sequence, then the
      # max over the L - h + 1 placements that fit inside each window.
      placements = _windows(nn.relu(conv(embedded)), window - height + 1)
      features.append(jnp.max(placements, axis=2))
    features = self.dropout(jnp.concatenate(features, axis=-1), deterministic=not train)
    return nn.relu(self.fc(features))

  def logits(self, inputs: jax.Array) -> jax.Array:
    return self.head(self(inputs))


def build(config: Any, data: Interactions) -> Experiment:
  seqs, splits = next_item.prepared(config, data)
  caser = CaserConfig(num_items=seqs.num_items, vocab_multiple=config.vocab_multiple or
                      config.model_parallel, dtype=config.dtype, **config.model.to_dict())
  model = Caser(caser)

  def head(params):
    layer = params["params"]["head"]
    return layer["kernel"], layer["bias"]

  task = next_item.make_task(
      next_item.NextItemModel(
          init=lambda rng: model.init(rng, jnp.ones((1, 2), jnp.int32),
                                      method=Caser.logits),
          hidden=lambda params, inputs, train, rng: model.apply(
              params, inputs, train=train, rngs={"dropout": rng}),
          head=head, vocab_size=seqs.num_items + 1),
      loss=config.loss,
      negatives=next_item.num_negatives(seqs.num_items, config.num_negatives, 0.1),
      param_rules=PARAM_RULES, padding_invariant=True, chunk_scores=config.chunk_scores)
  return next_item.experiment(task, data, seqs, splits, config)

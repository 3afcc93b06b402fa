"""SASRec (Kang & McAuley, ICDM 2018) as a next-item family: causal self-attention.

Item embeddings plus learned absolute positions feed `num_blocks` Transformer
blocks of causal multi-head attention and a point-wise two-layer feed-forward
net, each with a residual and dropout. Two layouts (`config.model.norm`):
"pre", the paper's: embeddings scaled by sqrt(D), a LayerNorm before each
sublayer and one after the last block; "post", RecBole 1.2.1's (BERT's): no
scale, a LayerNorm of the embedding sum and one after each residual. Padding
positions are zeroed after every block and never attended to, so a step sees
exactly the real items up to it.
Scores are the hidden state against the item embedding itself (shared input
and output table, no bias).

The loss is the shared chain's (`seqrec.next_item`): full-softmax CE by
default, "SASRec+" of Klenitskiy & Vasilev (RecSys 2023); `config.loss="bce"`
is the original one-negative binary cross-entropy (negatives drawn uniformly
from the items, where the paper draws from items the user has not seen);
"sampled" is CE over `config.num_negatives` shared negatives.

Config (configs/sasrec.py): config.model.{hidden, num_blocks, num_heads, dropout,
ffn_dim, activation, norm}. The feed-forward net is D wide with ReLU by default
(the paper's); RecBole 1.2.1's SASRec uses ffn_dim=4D (256) with GELU, 2 heads
and norm="post".
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from seqrec import errors, mesh, next_item, precision
from seqrec.errors import InputError
from seqrec.interactions import Interactions
from seqrec.task import Experiment

_INIT = nn.initializers.normal(0.02)
# The one item table: rows split over `model`; as the output layer its
# transpose is split by item columns like every other family's head.
PARAM_RULES = mesh.item_table_rules(["params/embed/embedding"])
# GELU exact (erf), as PyTorch's default that RecBole uses.
_ACTIVATIONS = {"relu": nn.relu, "gelu": lambda y: nn.gelu(y, approximate=False)}
NORMS = ("pre", "post")


@dataclasses.dataclass(frozen=True)
class SASRecConfig:
  """Attributes: num_items; max_steps T (positions); hidden D; num_blocks;
  num_heads; dropout; ffn_dim (the feed-forward net's inner width, 0: D);
  activation ("relu" or "gelu"); norm (the layout: "pre" or "post");
  vocab_multiple (item-table padding); dtype (compute)."""

  num_items: int
  max_steps: int
  hidden: int = 64
  num_blocks: int = 2
  num_heads: int = 1
  dropout: float = 0.2
  ffn_dim: int = 0
  activation: str = "relu"
  norm: str = "pre"
  vocab_multiple: int = 1
  dtype: str = "float32"

  def __post_init__(self):
    errors.require_at_least_one(
        self, ("num_items", "max_steps", "hidden", "num_blocks", "num_heads"),
        "config.model.")
    if self.hidden % self.num_heads:
      raise InputError(f"config.model.hidden={self.hidden} is not divisible by "
                       f"config.model.num_heads={self.num_heads}")
    errors.require_rate(self.dropout, "config.model.dropout")
    if self.ffn_dim < 0:
      raise InputError(f"config.model.ffn_dim={self.ffn_dim}: must be 0 (the width D) "
                       "or positive")
    errors.require_choice(self.activation, _ACTIVATIONS, "config.model.activation")
    errors.require_choice(self.norm, NORMS, "config.model.norm")

  @property
  def table_size(self) -> int:
    return mesh.pad_to_multiple(self.num_items + 1, self.vocab_multiple)


class Block(nn.Module):
  """One Transformer block over [B, T, D], causal and padding-masked."""

  config: SASRecConfig

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array, train: bool) -> jax.Array:
    c = self.config
    dtype = precision.compute_dtype(c.dtype)
    drop = lambda y: nn.Dropout(c.dropout, deterministic=not train)(y)  # noqa: E731
    attention = nn.MultiHeadDotProductAttention(
        c.num_heads, dtype=dtype, kernel_init=_INIT, dropout_rate=c.dropout,
        deterministic=not train, name="attention")
    ffn1 = nn.Dense(c.ffn_dim or c.hidden, dtype=dtype, kernel_init=_INIT, name="ffn1")
    ffn2 = nn.Dense(c.hidden, dtype=dtype, kernel_init=_INIT, name="ffn2")
    ln1 = nn.LayerNorm(dtype=dtype, name="ln1")
    ln2 = nn.LayerNorm(dtype=dtype, name="ln2")
    act = _ACTIVATIONS[c.activation]
    if c.norm == "post":  # RecBole: no dropout inside the feed-forward net
      x = ln1(x + drop(attention(x, x, mask=mask)))
      return ln2(x + drop(ffn2(act(ffn1(x)))))
    # The paper's code normalises the queries only; keys and values are the stream.
    x = x + drop(attention(ln1(x), x, mask=mask))
    return x + drop(ffn2(drop(act(ffn1(ln2(x))))))


class SASRec(nn.Module):
  """inputs int [B, T] (0 = padding, T <= max_steps) -> hidden states [B, T, D]."""

  config: SASRecConfig

  @nn.compact
  def __call__(self, inputs: jax.Array, train: bool = False) -> jax.Array:
    c = self.config
    dtype = precision.compute_dtype(c.dtype)
    real = inputs != 0
    x = nn.Embed(c.table_size, c.hidden, embedding_init=_INIT, dtype=dtype,
                 name="embed")(inputs)
    if c.norm == "pre":
      x = x * jnp.sqrt(jnp.asarray(c.hidden, dtype))
    positions = self.param("positions", _INIT, (c.max_steps, c.hidden))
    x = x + positions[-inputs.shape[1]:].astype(dtype)  # left padding: the last step is T-1
    if c.norm == "post":
      x = nn.LayerNorm(dtype=dtype, name="ln_embed")(x)
    x = nn.Dropout(c.dropout, deterministic=not train)(x)
    causal = jnp.tril(jnp.ones((inputs.shape[1], inputs.shape[1]), bool))
    mask = (causal[None] & real[:, None, :])[:, None]  # [B, 1, T(query), T(key)]
    keep = real[..., None].astype(dtype)
    x = x * keep
    for i in range(c.num_blocks):
      x = Block(c, name=f"block_{i}")(x, mask, train) * keep
    return nn.LayerNorm(dtype=dtype, name="ln_final")(x) if c.norm == "pre" else x


def build(config: Any, data: Interactions) -> Experiment:
  seqs, splits = next_item.prepared(config, data)
  sasrec = SASRecConfig(num_items=seqs.num_items, max_steps=config.max_len - 1,
                        vocab_multiple=config.vocab_multiple or config.model_parallel,
                        dtype=config.dtype, **config.model.to_dict())
  model = SASRec(sasrec)
  task = next_item.make_task(
      next_item.NextItemModel(
          init=lambda rng: model.init(rng, jnp.ones((1, 2), jnp.int32)),
          hidden=lambda params, inputs, train, rng: model.apply(
              params, inputs, train=train, rngs={"dropout": rng}),
          head=lambda params: (params["params"]["embed"]["embedding"].T, None),
          vocab_size=seqs.num_items + 1),
      loss=config.loss,
      negatives=next_item.num_negatives(seqs.num_items, config.num_negatives, 0.1),
      param_rules=PARAM_RULES, padding_invariant=True, chunk_scores=config.chunk_scores)
  return next_item.experiment(task, data, seqs, splits, config)

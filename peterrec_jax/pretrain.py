"""Self-supervised pretraining of NextItNet on item sequences.

Two modes, as in the PeterRec reference:
- "causal" (NextItNet): causal convolutions; the input seq[:, :-1] predicts
  seq[:, 1:] at every real position.
- "masked" (GRec-style, "PeterRec_noncau"): "same" convolutions; 30% of the
  real positions are corrupted (80% mask token, 10% kept, 10% a random item)
  and predicted.
Batches are {"seq": int32 [B, L]}, left-padded with 0. As a model family
("nextitnet"), `build` reads config.model (channels, dilations, kernel_size),
config.mode, config.held_out_genres, config.mask_prob and config.max_masked.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from peterrec_jax import downstream
from peterrec_jax.nextitnet import NextItNet, NextItNetConfig, weight_init
from seqrec import errors, mesh, next_item
from seqrec.errors import InputError
from seqrec.interactions import Interactions
from seqrec.task import Experiment, Params, Task

MODES = ("causal", "masked")
NEGATIVE_FRACTION = 0.2
# Item embedding rows and output-layer columns split over the `model` axis.
PARAM_RULES = mesh.item_table_rules(["params/embed/embedding"], ["params/output"])


class NextItNetLM(nn.Module):
  """The trunk plus an output layer over items ("output": kernel [C, V], bias [V]).

  V = num_items + 1: column 0 is padding, never a target. The mask and [CLS]
  tokens are inputs only, so they have no output column. The layer has
  `config.padded(V)` columns; those past V are table padding.
  """

  config: NextItNetConfig

  def setup(self):
    self.trunk = NextItNet(self.config)
    nn.share_scope(self, self.trunk)  # trunk paths stay "params/block_0/...".
    self.output = nn.Dense(self.config.padded(self.config.num_items + 1),
                           kernel_init=weight_init)

  def __call__(self, tokens: jax.Array, train: bool = False) -> jax.Array:
    """Hidden states [B, L, C]; losses read the output layer from the params."""
    return self.trunk(tokens, train)

  def logits(self, tokens: jax.Array) -> jax.Array:
    """[B, L, V]; `init` goes through here so the output layer is created."""
    return self.output(self.trunk(tokens))


def num_corrupted(num_real: Any, mask_prob: float, max_masked: int, xp: Any = np) -> Any:
  """Positions `corrupt` chooses in rows of `num_real` real items (numpy or jnp `xp`)."""
  chosen = xp.clip(xp.round(mask_prob * num_real).astype(xp.int32), 1, max_masked)
  return xp.minimum(chosen, num_real)


def corrupt(rng: jax.Array, seq: jax.Array, config: NextItNetConfig,
            mask_prob: float = 0.3, max_masked: int = 30
            ) -> tuple[jax.Array, jax.Array]:
  """BERT-style corruption of the real (non-zero) positions of each row.

  Each row with n real items gets min(n, clip(round(mask_prob * n), 1,
  max_masked)) chosen positions, uniformly among its real ones; a chosen
  position becomes the mask token (80%), stays (10%) or becomes a uniformly
  random item (10%). Padding is never chosen.

  Args:
    rng: key.
    seq: int32 [B, L] item ids, 0 = padding.
    config: supplies num_items and the mask id.
    mask_prob: fraction of real positions to choose.
    max_masked: at most this many per row.
  Returns:
    (inputs int32 [B, L], chosen bool [B, L]); the targets are `seq` itself.
  """
  real = seq != 0
  num_chosen = num_corrupted(jnp.sum(real, axis=1), mask_prob, max_masked, jnp)
  pick_rng, kind_rng, item_rng = jax.random.split(rng, 3)
  # Random priorities, padding last; the num_chosen lowest per row are chosen.
  priority = jnp.where(real, jax.random.uniform(pick_rng, seq.shape), 2.0)
  rank = jnp.argsort(jnp.argsort(priority, axis=1), axis=1)
  chosen = rank < num_chosen[:, None]
  kind = jax.random.uniform(kind_rng, seq.shape)
  random_items = jax.random.randint(item_rng, seq.shape, 1, config.num_items + 1)
  inputs = jnp.where(chosen & (kind < 0.8), config.mask_id, seq)
  inputs = jnp.where(chosen & (kind >= 0.9), random_items, inputs)
  return inputs.astype(seq.dtype), chosen


def make_pretrain_task(config: NextItNetConfig, mode: str = "causal",
                       loss: str = "full", *, mask_prob: float = 0.3,
                       max_masked: int = 30, negatives: int | None = None,
                       chunk_scores: bool = True) -> Task:
  """The pretraining `Task`.

  Args:
    config: the network; `config.causal` must match `mode` (a "same"
      convolution would see the next-item target; a causal one cannot use the
      right context that masked pretraining is for).
    mode: "causal" or "masked".
    loss: one of `next_item.LOSSES`; "sampled" shares `negatives` negatives per
      step (default 20% of the items, the reference's).
    mask_prob, max_masked: corruption of masked pretraining (`corrupt`).
    chunk_scores: as `next_item.make_task`.
  Returns:
    A Task over batches {"seq": int32 [B, L]}. `evaluate` ranks every item for
    the last position of each row (targets seq[:, -1]): causal models read
    the hidden state at the last input seq[:, -2]; masked models get the
    sequence with its last item replaced by the mask token and read that
    position (the target is hidden, only its left context is seen). Metrics
    MRR/HR/NDCG at 5, 10, 20, each [B].
  """
  config.validate()
  errors.require_choice(mode, MODES, "config.mode")
  if config.causal != (mode == "causal"):
    raise InputError(f"config.mode={mode} needs causal={mode == 'causal'} "
                     f"convolutions, got causal={config.causal}")
  if not 0.0 < mask_prob <= 1.0 or max_masked < 1:
    raise InputError(f"config.mask_prob={mask_prob}, config.max_masked={max_masked}: "
                     "need 0 < mask_prob <= 1 and max_masked >= 1")
  model = NextItNetLM(config)

  def head(params: Params) -> tuple[jax.Array, jax.Array]:
    output = params["params"]["output"]
    return output["kernel"], output["bias"]

  def masked(rng: jax.Array, seq: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    inputs, chosen = corrupt(rng, seq, config, mask_prob, max_masked)
    return inputs, seq, chosen

  lm = next_item.NextItemModel(
      init=lambda rng: model.init(rng, jnp.ones((1, 2), jnp.int32),
                                  method=NextItNetLM.logits),
      hidden=lambda params, inputs, train, rng: model.apply(
          params, inputs, train=train, rngs={"dropout": rng}),
      head=head, vocab_size=config.num_items + 1)
  causal = mode == "causal"
  return next_item.make_task(
      lm, loss=loss, param_rules=PARAM_RULES,
      negatives=next_item.num_negatives(config.num_items, negatives, NEGATIVE_FRACTION),
      corrupt=None if causal else masked,
      corrupt_positions=lambda batch: (num_corrupted(
          np.sum(batch["seq"] != 0, axis=1), mask_prob, max_masked), batch["seq"].shape[1]),
      eval_inputs=None if causal else lambda seq: seq.at[:, -1].set(config.mask_id),
      chunk_scores=chunk_scores)


def network_config(config: Any, num_items: int) -> NextItNetConfig:
  """The backbone of an experiment config (config.model, config.mode)."""
  model = config.model
  return NextItNetConfig(
      num_items=num_items, channels=model.channels, dilations=tuple(model.dilations),
      kernel_size=model.kernel_size, causal=config.mode == "causal",
      vocab_multiple=config.vocab_multiple or config.model_parallel,
      # Workdirs from before the key pretrained without dropout.
      dtype=config.dtype, dropout=model.get("dropout", 0.0)).validate()


def build(config: Any, data: Interactions) -> Experiment:
  """Pretraining on the source domain: items of config.held_out_genres (or of
  the data's second domain) are left out, so a cross-domain task's targets
  are never seen here."""
  if config.train_stride is not None and config.mode != "causal":
    # Masking corrupts whole windows: overlapping ones would train a target
    # once per window it is masked in.
    raise InputError(f"config.train_stride={config.train_stride}: only for "
                     f"config.mode=causal, not {config.mode}")
  seqs, splits = next_item.prepared(
      config, data, lambda: downstream.source_sequences(
          data, tuple(config.held_out_genres), min_item_count=config.min_item_count,
          min_user_count=config.min_user_count),
      held_out_genres=list(config.held_out_genres))
  task = make_pretrain_task(network_config(config, seqs.num_items), config.mode,
                            config.loss, mask_prob=config.mask_prob,
                            max_masked=config.max_masked, negatives=config.num_negatives,
                            chunk_scores=config.chunk_scores)
  return next_item.experiment(task, data, seqs, splits, config)

"""The next-item machinery every next-item family shares.

A family supplies a `NextItemModel` (its hidden states and its item output
layer); `make_task` turns it into a `Task` with the one chain of inputs,
targets and weights, full / sampled softmax or BCE, and last-position ranking.
`user_sequences`, `split` and `experiment` do the same for the data side of
`build`: user sequences, the configured split and the raw item vocabulary.

Batches are {"seq": int32 [B, L]}, left-padded with 0. By default the model
reads seq[:, :-1] (T = L - 1 steps) and predicts seq[:, 1:]; evaluation ranks
seq[:, -1] against every item from the last input position only. With
config.train_stride, training batches also carry TRAIN_TARGETS, int [B]: a row
trains only its last that many targets (the others are context, trained in
another window).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from seqrec import data_cache, errors, losses, metrics, packing, protocols, sequences
from seqrec.errors import InputError
from seqrec.interactions import Interactions
from seqrec.task import Arrays, Batch, Experiment, ParamRules, Params, Queries, Task

LOSSES = ("full", "sampled", "bce")
SPLITS = ("leave_one_out", "random", "global_time")
REPORT = ("mrr@10", "hr@10", "ndcg@10")
TRAIN_TARGETS = "train_targets"

# (rng, seq [B, L]) -> (inputs [B, T], targets [B, T], weights [B, T]).
Corrupt = Callable[[jax.Array, jax.Array], tuple[jax.Array, jax.Array, jax.Array]]


@dataclasses.dataclass(frozen=True)
class NextItemModel:
  """A next-item network as pure functions.

  Attributes:
    init: rng -> params.
    hidden: (params, inputs int [B, T], train, rng) -> [B, T, D] states.
    head: params -> (kernel [D, V'], bias [V'] or None), the item output layer
      (V' >= vocab_size when the table is padded for model parallelism).
    vocab_size: V = num_items + 1 (column 0 is padding).
    last_hidden: (params, inputs [B, T]) -> [B, D], the state of the last step
      without dropout; None reads `hidden(...)[:, -1]`. Recurrent models give
      one that skips the per-step output work.
  """

  init: Callable[[jax.Array], Params]
  hidden: Callable[[Params, jax.Array, bool, jax.Array], jax.Array]
  head: Callable[[Params], tuple[jax.Array, jax.Array | None]]
  vocab_size: int
  last_hidden: Callable[[Params, jax.Array], jax.Array] | None = None


def shift(seq: jax.Array, last: jax.Array | None = None
          ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """[B, L] left-padded sequences -> inputs, targets [B, L-1] and loss weights.

  A target whose input is padding has no sequence context, so it carries no
  weight; nor does a padding target. With `last` (int [B], TRAIN_TARGETS)
  only a row's last `last` targets carry weight; counted from the right, they
  stay the same when leading padding columns are cut (`seqrec.bucketing`).
  """
  inputs, targets = seq[:, :-1], seq[:, 1:]
  weights = (inputs != 0) & (targets != 0)
  if last is not None:
    steps = seq.shape[1] - 1
    weights &= jnp.arange(steps) >= steps - last[:, None]
  return inputs, targets, weights


def shift_positions(batch: Arrays) -> tuple[np.ndarray, int]:
  """Host twin of `shift`: int [B] weighted positions of each row of
  batch["seq"] [B, L] (and batch[TRAIN_TARGETS]), out of L - 1."""
  seq = batch["seq"]
  positions = np.sum((seq[:, :-1] != 0) & (seq[:, 1:] != 0), axis=1)
  if TRAIN_TARGETS in batch:
    positions = np.minimum(positions, batch[TRAIN_TARGETS])
  return positions, seq.shape[1] - 1


def num_negatives(num_items: int, configured: int | None, default_fraction: float) -> int:
  """Shared negatives of the sampled softmax: `configured`, or a fraction of the items."""
  if configured is not None:
    if configured < 1:
      raise InputError(f"config.num_negatives={configured}: must be at least 1")
    return configured
  return max(1, int(round(default_fraction * num_items)))


def objective(kind: str, hidden: jax.Array, kernel: jax.Array, bias: jax.Array | None,
              targets: jax.Array, weights: jax.Array, rng: jax.Array, vocab_size: int,
              negatives: int, groups_and_size: tuple[int, int] | None = None,
              chunk_scores: bool = True) -> jax.Array:
  """The scalar training loss of `kind` (one of LOSSES) over weighted positions.

  "bce" is SASRec's original loss: each position's target against one
  uniformly drawn negative item, binary cross-entropy on both. With
  `groups_and_size` (the packing shape) the weighted positions are packed
  first; per-position draws are made before packing, so the loss and its
  gradients do not depend on it. `chunk_scores` False forms the full
  softmax's scores whole instead of in chunks (`losses.score_chunk`): the same
  loss, more memory traffic.
  """
  per_position = [hidden, targets]
  if kind == "bce":
    per_position.append(losses.bce_negatives(rng, targets, vocab_size))
  if groups_and_size is not None:
    weights, per_position = packing.pack(weights, per_position, *groups_and_size)
  hidden, targets = per_position[:2]
  if kind == "full":
    return losses.softmax_cross_entropy(hidden, kernel, bias, targets, weights, vocab_size,
                                        chunk=None if chunk_scores else kernel.shape[1])
  if kind == "sampled":
    return losses.sampled_softmax_cross_entropy(hidden, kernel, bias, targets, weights,
                                                negatives, rng, vocab_size)
  return losses.binary_cross_entropy(hidden, kernel, bias, targets, per_position[2],
                                     weights)


def make_task(model: NextItemModel, *, loss: str = "full", negatives: int = 1,
              param_rules: ParamRules = (), ks: Sequence[int] = metrics.DEFAULT_KS,
              corrupt: Corrupt | None = None,
              corrupt_positions: Callable[[Arrays], np.ndarray] | None = None,
              eval_inputs: Callable[[jax.Array], jax.Array] | None = None,
              padding_invariant: bool = False, chunk_scores: bool = True) -> Task:
  """The training and evaluation functions of a next-item model.

  Args:
    model: the network.
    loss: one of LOSSES.
    negatives: shared negatives per step of the sampled softmax.
    param_rules: how the model's item tables split over the mesh.
    ks: cut-offs of the ranking metrics.
    corrupt: training inputs, targets and weights from a batch; the default
      is `shift` (next-item prediction at every position). Masked
      pretraining corrupts positions instead.
    corrupt_positions: with `corrupt`, the host count of each row's weighted
      positions and the row width (`Task.loss_positions`); without it nothing
      is packed.
    eval_inputs: seq [B, L] -> the inputs whose last position predicts
      seq[:, -1]; default seq[:, :-1].
    padding_invariant: the model's states do not depend on the amount of left
      padding (`Task.padding_invariant`).
    chunk_scores: the full softmax scores items in chunks (`objective`).
  Returns:
    The task; `evaluate` gives MRR/HR/NDCG at `ks`, each [B], for full ranking
    and every protocol whose arrays the batch carries (`seqrec.protocols`).
  """
  errors.require_choice(loss, LOSSES, "config.loss")
  last_hidden = model.last_hidden or (
      lambda params, inputs: model.hidden(params, inputs, False, jax.random.key(0))[:, -1])

  def loss_fn(params: Params, batch: Batch, rng: jax.Array
              ) -> tuple[jax.Array, dict[str, jax.Array]]:
    model_rng, corrupt_rng, loss_rng = jax.random.split(rng, 3)
    if corrupt is None:
      inputs, targets, weights = shift(batch["seq"], batch.get(TRAIN_TARGETS))
    else:
      inputs, targets, weights = corrupt(corrupt_rng, batch["seq"])
    hidden = model.hidden(params, inputs, True, model_rng)
    kernel, bias = model.head(params)
    value = objective(loss, hidden, kernel, bias, targets, weights, loss_rng,
                      model.vocab_size, negatives,
                      batch[packing.KEY].shape if packing.KEY in batch else None,
                      chunk_scores)
    return value, {"targets_per_row": jnp.mean(jnp.sum(weights, axis=1,
                                                       dtype=jnp.float32))}

  def next_scores(params: Params, seq: jax.Array) -> jax.Array:
    """Scores for the last position of seq [B, L]: the prediction of seq[:, -1]."""
    inputs = seq[:, :-1] if eval_inputs is None else eval_inputs(seq)
    kernel, bias = model.head(params)
    return losses.logits(last_hidden(params, inputs), kernel, bias, model.vocab_size)

  def evaluate(params: Params, batch: Batch) -> dict[str, jax.Array]:
    return protocols.ranking(next_scores(params, batch["seq"]), batch["seq"][:, -1], batch,
                             ks)

  def score(params: Params, batch: Batch) -> jax.Array:
    # The history [B, L-1] with a placeholder for the item to predict.
    return next_scores(params, jnp.pad(batch["seq"], ((0, 0), (0, 1))))

  positions = shift_positions if corrupt is None else corrupt_positions
  return Task(init=model.init, loss=loss_fn, evaluate=evaluate, param_rules=param_rules,
              loss_positions=positions, score=score, padding_invariant=padding_invariant)


def user_sequences(config: Any, data: Interactions,
                   item_mask: np.ndarray | None = None) -> sequences.UserSequences:
  """Sequences of `data` after the config's count filters (config.min_item_count,
  config.min_user_count)."""
  return sequences.build_user_sequences(
      data, min_item_count=config.min_item_count, min_user_count=config.min_user_count,
      item_mask=item_mask)


def split(config: Any, seqs: sequences.UserSequences) -> sequences.Splits:
  """The split config.split names, with config.max_len, config.min_len and,
  for "random", config.seed; for "global_time", config.time_cuts; training
  windows every config.train_stride items (None: disjoint)."""
  errors.require_choice(config.split, SPLITS, "config.split")
  stride = config.train_stride
  if config.split == "leave_one_out":
    return sequences.leave_one_out(seqs, config.max_len, config.min_len, stride)
  if config.split == "random":
    if stride is not None:
      # Its windows are the evaluation units too: overlapping them would put
      # test targets into training windows.
      raise InputError(f"config.train_stride={stride}: not for config.split=random "
                       "(use leave_one_out or global_time)")
    return sequences.random_split(seqs, config.max_len, config.min_len, seed=config.seed)
  return sequences.global_time(seqs, config.max_len, config.min_len,
                               tuple(config.time_cuts), stride)


_SEQUENCES = ("flat", "offsets", "flat_times", "users", "item_index")
_SPLIT = ("seqs", "users", "ends")


def prepared(config: Any, data: Interactions,
             make_sequences: Callable[[], sequences.UserSequences] | None = None,
             **identity: Any) -> tuple[sequences.UserSequences, sequences.Splits]:
  """The user sequences and the configured split of `data`.

  Sequences are `user_sequences(config, data)`, or `make_sequences()` whose
  settings `identity` names. When `data` came from the data cache, both are
  kept beneath its entry (`data_cache.derived`) under the settings that make
  them: the count filters, the split, its lengths and, where it has them, its
  seed or cuts. A second run maps them instead of building them.
  """
  def build() -> tuple[sequences.UserSequences, sequences.Splits]:
    seqs = make_sequences() if make_sequences else user_sequences(config, data)
    return seqs, split(config, seqs)

  if not data.cache_entry:
    return build()
  identity = dict(identity, min_item_count=config.min_item_count,
                  min_user_count=config.min_user_count, split=config.split,
                  max_len=config.max_len, min_len=config.min_len,
                  train_stride=config.train_stride, seed=config.seed if config.split == "random" else None,
                  time_cuts=list(config.time_cuts) if config.split == "global_time" else None)

  def arrays() -> dict[str, np.ndarray]:
    seqs, splits = build()
    out = {name: getattr(seqs, name) for name in _SEQUENCES}
    out.update(num_items=np.asarray(seqs.num_items), timestamps=np.asarray(seqs.timestamps))
    for part in ("train", "valid", "test"):
      out.update({f"{part}.{name}": getattr(getattr(splits, part), name) for name in _SPLIT})
    return out

  kept = data_cache.derived(data.cache_entry, identity, arrays)
  num_items = int(kept["num_items"])
  seqs = sequences.UserSequences(**{name: kept[name] for name in _SEQUENCES},
                                 num_items=num_items, timestamps=bool(kept["timestamps"]))
  parts = [sequences.Split(*(kept[f"{part}.{name}"] for name in _SPLIT))
           for part in ("train", "valid", "test")]
  return seqs, sequences.Splits(*parts, num_items=num_items)


def vocabulary(data: Interactions, item_index: np.ndarray) -> np.ndarray:
  """str [V]: raw item id of every dense id (`UserSequences.item_index`), "" for 0."""
  return np.concatenate([[""], data.item_ids[item_index[1:]].astype(str)])


def experiment(task: Task, data: Interactions, seqs: sequences.UserSequences,
               splits: sequences.Splits, config: Any) -> Experiment:
  """The `Experiment` of a next-item family on `splits` of `seqs` (made with
  config.train_stride), its evaluation rows carrying the arrays of
  config.protocol."""
  protocol = config.protocol
  train = {"seq": splits.train.seqs}
  if config.train_stride is not None:
    train[TRAIN_TARGETS] = sequences.train_targets(splits.train.ends, config.train_stride)
  counts = None
  if protocols.adds_arrays(protocol):  # else no per-user histories are gathered
    counts = np.bincount(seqs.flat, minlength=seqs.num_items + 1)

  def rows(name: str, split: sequences.Split) -> Arrays:
    if counts is None:
      return {"seq": split.seqs}
    positions = seqs.position(split.users)
    return {"seq": split.seqs, **protocols.eval_arrays(
        protocol, name, split.users,
        [seqs.items[p][:end - 1] for p, end in zip(positions, split.ends)],
        [seqs.items[p] for p in positions], counts)}

  return Experiment(
      task=task, train=train,
      eval={"valid": rows("valid", splits.valid), "test": rows("test", splits.test)},
      items=vocabulary(data, seqs.item_index), report=REPORT,
      info={"data": {"dataset": data.name, "items": seqs.num_items,
                     "users": len(seqs.users), "train_rows": len(splits.train),
                     "valid_rows": len(splits.valid), "test_rows": len(splits.test)}},
      make_queries=lambda: Queries(seqs.tails(splits.train.seqs.shape[1] - 1),
                                   data.user_ids[seqs.users].astype(str), seqs.items))

"""Fine-tuning a pretrained NextItNet on a downstream task: PeterRec and baselines.

A user is represented by the trunk's hidden state at a [CLS] token the model
adds to the source sequence; a task head maps it to class logits (profile
prediction) or to scores over a new table of target-domain items (cross-domain
recommendation). Which parameters train is data: `METHODS` maps each method to
regular expressions over "/"-joined parameter paths (big_vision style).
Batches are {"seq": int32 [B, L] left-padded source items (no [CLS]; the model
adds it), "label": int32 [B] class id in 0..K-1 or target item id in 1..T}.
As a model family ("peterrec"), `build` reads config.pretrained, config.task,
config.method, config.patch, config.patch_dim, config.pooling, config.loss
("softmax" or "bce") and config.min_source_len.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from flax import traverse_util

from peterrec_jax import downstream, pretrain
from peterrec_jax.nextitnet import NextItNet, NextItNetConfig, last_block, weight_init
from seqrec import (checkpoint, errors, losses, mesh, metrics, next_item, protocols,
                    sequences, workdir)
from seqrec.errors import InputError
from seqrec.interactions import Interactions
from seqrec.task import Batch, Experiment, Params, Queries, Task

KINDS = ("classification", "recommendation")
POOLINGS = ("cls", "mean")
LOSSES = ("softmax", "bce")
RECOMMENDATION_KS = (5, 10)


@dataclasses.dataclass(frozen=True)
class Method:
  """A fine-tuning method.

  Attributes:
    trainable: regexes over parameter paths (`re.fullmatch`); "{last}" stands
      for the index of the last residual block.
    pretrained: whether the trunk starts from the pretrained parameters.
  """

  trainable: tuple[str, ...]
  pretrained: bool = True


HEAD = r"params/head/.*"
METHODS = {
    # Patches, the second LayerNorm of every block and the head.
    "peterrec": Method((r"params/block_\d+/(patch1|patch2|ln2)/.*", HEAD)),
    "fineall": Method((".*",)),
    "finecls": Method((HEAD,)),
    "finelast": Method((r"params/block_{last}/.*", HEAD)),
    "scratch": Method((".*",), pretrained=False),
}
# Leaves a fine-tuned model has and a pretrained one lacks: they keep their init.
NEW_PARAMS = (HEAD, r"params/block_\d+/patch\d+/.*")


def param_rules(kind: str) -> tuple[tuple[str, jax.sharding.PartitionSpec], ...]:
  """`TrainConfig.param_rules` for a `kind` task: the item embedding rows and,
  for recommendation, the target-item head columns split over `model` (a
  classification head has a handful of classes and stays replicated)."""
  heads = ["params/head"] if kind == "recommendation" else []
  return mesh.item_table_rules(["params/embed/embedding"], heads)


def trainable_patterns(method: str, config: NextItNetConfig) -> tuple[str, ...]:
  """The trainable regexes of `method` for this network."""
  errors.require_choice(method, METHODS, "config.method")
  last = str(last_block(config))
  return tuple(p.replace("{last}", last) for p in METHODS[method].trainable)


def add_cls(seq: jax.Array, config: NextItNetConfig) -> tuple[jax.Array, jax.Array]:
  """Adds [CLS] tokens to left-padded sequences.

  Causal: [pad.., items.., CLS], [B, L+1]; only the last state has seen the
  whole sequence. Non-causal: [pad.., CLS, items.., CLS], [B, L+2], the first
  [CLS] right before the first item rather than before the padding.

  Returns:
    (tokens, first) where first int32 [B] is the position of the leading
    [CLS] (non-causal) or of the trailing one (causal).
  """
  batch, length = seq.shape
  cls = jnp.full((batch, 1), config.cls_id, seq.dtype)
  if config.causal:
    return jnp.concatenate([seq, cls], axis=1), jnp.full((batch,), length, jnp.int32)
  # The leading [CLS] takes the place of the last padding; with the extra
  # column in front, that is position (number of padding positions).
  first = jnp.sum(seq == 0, axis=1).astype(jnp.int32)
  tokens = jnp.concatenate([jnp.zeros_like(cls), seq, cls], axis=1)
  positions = jnp.arange(length + 2)[None, :]
  return jnp.where(positions == first[:, None], config.cls_id, tokens), first


class UserModel(nn.Module):
  """The trunk, a pooled user vector and a dense head ("head": kernel [C, N], bias [N]).

  For recommendation N = config.padded(T + 1) and kernel.T is the target-item
  table (row 0 and the rows past T padding); for classification N = K classes.
  The head computes in float32 (from the user vector in the compute dtype).
  """

  config: NextItNetConfig
  num_outputs: int
  pooling: str = "cls"

  def setup(self):
    self.trunk = NextItNet(self.config)
    nn.share_scope(self, self.trunk)  # trunk paths equal the pretrained ones.
    self.head = nn.Dense(self.num_outputs, kernel_init=weight_init)

  def represent(self, seq: jax.Array) -> jax.Array:
    """int32 [B, L] source items -> float [B, C] user vectors.

    "cls": the [CLS] state (causal) or the sum of both [CLS] states
    (non-causal); "mean": the mean state over all non-padding positions.
    """
    tokens, first = add_cls(seq, self.config)
    hidden = self.trunk(tokens)
    if self.pooling == "mean":
      real = (tokens != 0)[..., None].astype(hidden.dtype)
      return jnp.sum(hidden * real, axis=1) / jnp.maximum(jnp.sum(real, axis=1), 1.0)
    if self.config.causal:
      return hidden[:, -1]
    return jnp.take_along_axis(hidden, first[:, None, None], axis=1)[:, 0] + hidden[:, -1]

  def __call__(self, seq: jax.Array) -> jax.Array:
    """[B, L] -> head outputs [B, N]."""
    return self.head(self.represent(seq))


def restore_pretrained(finetune_params: Params, pretrained_params: Params) -> Params:
  """`finetune_params` with every trunk leaf replaced by the pretrained one.

  Leaves matching `NEW_PARAMS` (patches, head) keep their init; pretrained
  leaves the fine-tuned model lacks (the pretraining output layer) are
  ignored.

  Raises:
    InputError: a trunk path is missing from the pretrained parameters or
      has another shape there.
  """
  pretrained = traverse_util.flatten_dict(pretrained_params, sep="/")
  out = {}
  for path, value in traverse_util.flatten_dict(finetune_params, sep="/").items():
    if any(re.fullmatch(p, path) for p in NEW_PARAMS):
      out[path] = value
      continue
    if path not in pretrained:
      raise InputError(f"pretrained checkpoint has no parameter {path} "
                       f"(fine-tuning model expects shape {tuple(value.shape)})")
    if tuple(pretrained[path].shape) != tuple(value.shape):
      raise InputError(f"pretrained parameter {path} has shape "
                       f"{tuple(pretrained[path].shape)}, fine-tuning model expects "
                       f"{tuple(value.shape)}")
    out[path] = jnp.asarray(pretrained[path], value.dtype)
  return traverse_util.unflatten_dict(out, sep="/")


def make_finetune_task(config: NextItNetConfig, kind: str, num_labels: int, *,
                       method: str = "peterrec",
                       pretrained: Callable[[], Params] | None = None,
                       pooling: str = "cls", loss: str = "softmax",
                       l2: float = 0.02) -> Task:
  """The fine-tuning `Task`.

  Args:
    config: the trunk; must match the pretrained one, plus `patch` for PeterRec.
    kind: "classification" (num_labels classes, labels 0..K-1) or
      "recommendation" (num_labels target items, labels 1..T, 0 unused).
    num_labels: K or T.
    method: a key of `METHODS`.
    pretrained: loads the pretrained parameters (`{"params": ...}`), which
      the task's warm start restores into the trunk by path
      (`restore_pretrained`); required unless the method trains from
      scratch, ignored when it does. The trainer calls it only for a fresh
      run, never on resume.
    pooling: "cls" or "mean" (`UserModel.represent`).
    loss: recommendation only: "softmax" over all target items, or "bce", the
      reference's binary cross-entropy of the label against one uniformly
      sampled negative plus `l2` times half the squared norm of the two
      target-item vectors each example touches.
  Returns:
    A Task. `evaluate` gives "accuracy" for classification; for
    recommendation MRR/HR/NDCG at 5 and 10 over all T targets and under every
    protocol whose arrays the batch carries (`seqrec.protocols`). Each example
    ranks its own label; in full ranking the user's other target items are
    ordinary candidates, as in the reference.
  """
  config.validate()
  for flag, value, allowed in (("task kind", kind, KINDS),
                               ("config.pooling", pooling, POOLINGS),
                               ("config.loss", loss, LOSSES)):
    errors.require_choice(value, allowed, flag)
  trainable = trainable_patterns(method, config)
  if method == "peterrec" and config.patch is None:
    raise InputError("config.method=peterrec needs model patches: set config.patch "
                     "to serial or parallel")
  if METHODS[method].pretrained and pretrained is None:
    raise InputError(f"config.method={method} fine-tunes a pretrained model: give its "
                     "workdir as config.pretrained (or use config.method=scratch)")
  classify = kind == "classification"
  if num_labels < 2:
    raise InputError(f"{kind} task with {num_labels} labels")
  vocab_size = num_labels + 1  # recommendation: target items 1..T and padding
  model = UserModel(config, num_labels if classify else config.padded(vocab_size),
                    pooling)

  def init(rng: jax.Array) -> Params:
    return model.init(rng, jnp.ones((1, 2), jnp.int32))

  warm_start = None
  if METHODS[method].pretrained:
    warm_start = lambda params: restore_pretrained(params, pretrained())

  def bce(params: Params, user: jax.Array, labels: jax.Array, rng: jax.Array) -> jax.Array:
    head = params["params"]["head"]
    negatives = losses.bce_negatives(rng, labels, vocab_size)
    pos_vec, neg_vec = head["kernel"].T[labels], head["kernel"].T[negatives]
    pos = jnp.sum(user * pos_vec, axis=-1) + head["bias"][labels]
    neg = jnp.sum(user * neg_vec, axis=-1) + head["bias"][negatives]
    penalty = 0.5 * (jnp.sum(pos_vec**2, axis=-1) + jnp.sum(neg_vec**2, axis=-1))
    return jnp.mean(jax.nn.softplus(-pos) + jax.nn.softplus(neg) + l2 * penalty)

  def loss_fn(params: Params, batch: Batch, rng: jax.Array
              ) -> tuple[jax.Array, dict[str, jax.Array]]:
    labels = batch["label"]
    if classify:
      logits = model.apply(params, batch["seq"])
      value = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
      return value, {"accuracy": jnp.mean(metrics.accuracy(logits, labels)["accuracy"])}
    user = model.apply(params, batch["seq"], method=UserModel.represent)
    if loss == "bce":
      return bce(params, user, labels, rng), {}
    head = params["params"]["head"]
    return losses.softmax_cross_entropy(user, head["kernel"], head["bias"], labels,
                                        jnp.ones(labels.shape), vocab_size), {}

  def evaluate(params: Params, batch: Batch) -> dict[str, jax.Array]:
    labels = batch["label"]
    if classify:
      return metrics.accuracy(model.apply(params, batch["seq"]), labels)
    user = model.apply(params, batch["seq"], method=UserModel.represent)
    head = params["params"]["head"]
    scores = losses.logits(user, head["kernel"], head["bias"], vocab_size)
    return protocols.ranking(scores, labels, batch, RECOMMENDATION_KS)

  def score(params: Params, batch: Batch) -> jax.Array:
    if classify:
      return jax.nn.log_softmax(model.apply(params, batch["seq"]).astype(jnp.float32))
    user = model.apply(params, batch["seq"], method=UserModel.represent)
    head = params["params"]["head"]
    return losses.logits(user, head["kernel"], head["bias"], vocab_size)

  return Task(init=init, loss=loss_fn, evaluate=evaluate, trainable=trainable,
              param_rules=param_rules(kind), warm_start=warm_start, score=score)


def network(config: Any) -> NextItNetConfig:
  """The network a fine-tuning config trains: the backbone of its pretraining
  workdir (config.pretrained), with the method's patches and config.dtype.
  Its item tables keep the pretrained padding, so the embedding keeps its shape."""
  pretrained, items = workdir.load(config.pretrained, "config.pretrained")
  patched = config.method == "peterrec"
  return dataclasses.replace(
      pretrain.network_config(ml_collections.ConfigDict(pretrained), len(items) - 1),
      patch=config.patch if patched else None,
      patch_dim=config.patch_dim if patched else None, dtype=config.dtype)


def _eval_rows(examples: downstream.Examples, protocol: Any, split: str,
               counts: np.ndarray | None) -> dict[str, np.ndarray]:
  """The evaluation arrays of `examples`; `counts` (int [labels + 1], every
  label's count over all splits) for recommendation, None for classification.
  For recommendation a user's seen items are all their target items (the
  label stays a candidate), and the negatives come from the target items they
  never had."""
  if counts is None:
    return examples.batch()
  order = np.argsort(examples.users, kind="stable")
  users, starts = np.unique(examples.users[order], return_index=True)
  per_user = np.split(examples.label[order], starts[1:])
  own = [per_user[i] for i in np.searchsorted(users, examples.users)]
  return {**examples.batch(),
          **protocols.eval_arrays(protocol, split, examples.users, own, own, counts)}


def reference(task_data: downstream.Downstream) -> dict[str, Any]:
  """What no model should fall below, from the labelled training examples
  alone: the accuracy of always answering their most frequent class, or the
  full-ranking metrics of ranking target items by how often they are labels.

  Returns:
    {"method": "majority class" | "popularity", "valid": metrics, "test": metrics}.
  """
  counts = np.bincount(task_data.train.label, minlength=task_data.num_labels + 1)
  classify = task_data.kind == "classification"
  out: dict[str, Any] = {"method": "majority class" if classify else "popularity"}
  for name, examples in (("valid", task_data.valid), ("test", task_data.test)):
    if classify:
      out[name] = {"accuracy": float(np.mean(examples.label == counts.argmax()))}
    else:
      scores = np.broadcast_to(counts.astype(np.float32), (len(examples), len(counts)))
      ranks = metrics.target_ranks(jnp.asarray(scores), jnp.asarray(examples.label))
      out[name] = {k: float(jnp.mean(v)) for k, v in metrics.metrics_from_ranks(ranks).items()}
  return out


def build(config: Any, data: Interactions) -> Experiment:
  """Fine-tuning on config.task from the pretraining workdir config.pretrained.

  The backbone is rebuilt from that workdir's config.json and checked against
  its items.npy: the source sequences of `data` must give the same raw item
  ids in the same order. A pretraining run that did not finish (no
  results.json) is refused unless config.allow_unfinished.
  """
  if config.train_stride is not None:
    raise InputError(f"config.train_stride={config.train_stride}: fine-tuning reads each "
                     "user's sequence as one row; leave it unset")
  if not config.pretrained:
    raise InputError("config.pretrained is empty: give the workdir of a nextitnet "
                     "pretraining run")
  setting = f"config.pretrained={config.pretrained}"
  pretrained, items = workdir.load(config.pretrained, "config.pretrained")
  if pretrained.get("family") != "nextitnet":
    raise InputError(f"{setting} is a {pretrained.get('family')!r} workdir; fine-tuning "
                     "needs a nextitnet pretraining workdir")
  if not (config.allow_unfinished or
          os.path.exists(os.path.join(config.pretrained, "results.json"))):
    raise InputError(f"{setting}: the pretraining run has not finished (no results.json); "
                     "finish it or set config.allow_unfinished=True")
  pretrained = ml_collections.ConfigDict(pretrained)
  source = downstream.source_sequences(
      data, tuple(pretrained.held_out_genres), min_item_count=pretrained.min_item_count,
      min_user_count=pretrained.min_user_count)
  if not np.array_equal(next_item.vocabulary(data, source.item_index), items):
    raise InputError(f"{setting} was pretrained on other items than config.dataset="
                     f"{config.dataset} gives (its items.npy differs)")
  protocols.check(config.protocol, config.task == "crossdomain", f"config.task={config.task}")
  task_data = downstream.build_downstream(
      data, source, config.task, max_len=config.max_len,
      min_source_len=config.min_source_len,
      held_out_genres=tuple(pretrained.held_out_genres), seed=config.seed,
      folds=config.folds, fold=config.fold, label_fraction=config.label_fraction)
  logging.info("task %s: %s", config.task, task_data.stats)
  patched = config.method == "peterrec"
  net = network(config)
  task = make_finetune_task(
      net, task_data.kind, task_data.num_labels, method=config.method,
      pretrained=lambda: checkpoint.restore_params(config.pretrained),
      pooling=config.pooling, loss=config.loss)
  classify = task_data.kind == "classification"
  splits = (task_data.train, task_data.valid, task_data.test)
  counts = None if classify else np.bincount(
      np.concatenate([e.label for e in splits]), minlength=task_data.num_labels + 1)
  report = ("accuracy",) if classify else ("ndcg@10", "hr@10", *(
      f"{p.name}_hr@5" for p in protocols.parse_sampled(config.protocol.sampled)))
  return Experiment(
      task=task, train=task_data.train.batch(),
      eval={name: _eval_rows(examples, config.protocol, name, counts)
            for name, examples in (("valid", task_data.valid), ("test", task_data.test))},
      items=np.asarray(task_data.label_names, dtype=str), report=report,
      info={"task": config.task, "method": config.method, "data_stats": task_data.stats,
            "patch": config.patch if patched else None,
            "patch_dim": net.bottleneck if patched else None,
            "reference": reference(task_data)},
      make_queries=lambda: Queries(sequences.left_pad(source.items, config.max_len),
                                   data.user_ids[source.users].astype(str)),
      classes=classify)

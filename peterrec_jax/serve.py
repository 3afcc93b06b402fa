"""Many fine-tuned tasks on one frozen backbone: PeterRec's deployment promise.

Fine-tuned workdirs whose frozen parameters are identical (checked by a
content hash) share one copy of the backbone; each task keeps only what it
trained (patches, second LayerNorms, head), stacked along a leading task
axis. One jitted call scores a batch that mixes users of different tasks:
every example carries its task id, gathers its task's patch set and runs the
shared trunk with it (`jax.vmap` over examples, the frozen weights
unbatched). Heads are padded to the widest task; each example's scores are
exactly its own task's `Task.score`, with the other columns -inf.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from peterrec_jax import finetune
from peterrec_jax.nextitnet import NextItNetConfig
from seqrec import optim, recommend
from seqrec.errors import InputError

Flat = dict[str, np.ndarray]


def frozen_hash(params: Any, trainable: Sequence[str]) -> str:
  """sha256 over the path, dtype, shape and bytes of every frozen parameter."""
  digest = hashlib.sha256()
  labels = traverse_util.flatten_dict(optim.labels(params, trainable), sep="/")
  for path, value in sorted(traverse_util.flatten_dict(params, sep="/").items()):
    if labels[path] == optim.FREEZE:
      value = np.ascontiguousarray(value)
      digest.update(f"{path}|{value.dtype}|{value.shape}".encode())
      digest.update(value.tobytes())
  return digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class MultiTask:
  """Tasks sharing one backbone.

  Attributes:
    network: the patched trunk every task runs; pooling: its user vector.
    frozen: path -> the one copy of every frozen parameter.
    stacked: path -> [K, ...] every task's trained parameters; heads padded
      to the widest task (kernel columns 0, bias -inf).
    widths: int [K] real head columns of each task.
    classes: bool [K] profile (class) tasks.
    models: each task's own `recommend.Recommender` (items, queries), when
      loaded from workdirs.
  """

  network: NextItNetConfig
  pooling: str
  frozen: Flat
  stacked: Flat
  widths: np.ndarray
  classes: np.ndarray
  models: tuple[recommend.Recommender, ...] = ()

  def nbytes(self) -> int:
    """Bytes of parameters held: the backbone once plus K trained sets."""
    return int(sum(v.nbytes for v in (*self.frozen.values(), *self.stacked.values())))


def load(workdirs: Sequence[str]) -> MultiTask:
  """Loads fine-tuned PeterRec workdirs onto one backbone.

  Raises:
    InputError: a workdir of another family, another network, or whose frozen
      parameters differ from the first one's.
  """
  models = tuple(recommend.load(w) for w in workdirs)
  first = models[0]
  networks, hashes = [], []
  for workdir, model in zip(workdirs, models):
    if model.config.family != "peterrec":
      raise InputError(f"--workdir={workdir}: a {model.config.family!r} workdir; only "
                       "fine-tuned peterrec workdirs share a backbone")
    networks.append((model.config.pretrained, model.config.method, model.config.patch,
                     model.config.patch_dim, model.config.pooling))
    hashes.append(frozen_hash(model.params, model.built.task.trainable))
  for workdir, network, digest in zip(workdirs[1:], networks[1:], hashes[1:]):
    if network != networks[0] or digest != hashes[0]:
      raise InputError(f"--workdir={workdir}: its frozen parameters (sha256 {digest[:12]}) "
                       f"differ from those of {workdirs[0]} ({hashes[0][:12]}); only "
                       "tasks fine-tuned on one backbone with the same method share it")
  labels = traverse_util.flatten_dict(
      optim.labels(first.params, first.built.task.trainable), sep="/")
  flats = [traverse_util.flatten_dict(m.params, sep="/") for m in models]
  widths = np.array([f["params/head/bias"].shape[0] for f in flats])
  frozen = {p: v for p, v in flats[0].items() if labels[p] == optim.FREEZE}
  stacked = {}
  for path, label in labels.items():
    if label == optim.FREEZE:
      continue
    parts = [f[path] for f in flats]
    if path.startswith("params/head/"):
      fill = -np.inf if path.endswith("bias") else 0.0
      parts = [np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, widths.max() - x.shape[-1])],
                      constant_values=fill) for x in parts]
    stacked[path] = np.stack(parts)
  return MultiTask(finetune.network(first.config), first.config.pooling, frozen, stacked,
                   widths, np.array([m.built.classes for m in models]), models)


def score_fn(tasks: MultiTask):
  """jit(seq int32 [B, L], task int32 [B]) -> float32 [B, N] scores.

  Row b holds what task[b]'s own `Task.score` gives for seq[b] in its first
  widths[task[b]] columns, -inf after.
  """
  model = finetune.UserModel(tasks.network, int(tasks.widths.max()), tasks.pooling)
  frozen = {k: jnp.asarray(v) for k, v in tasks.frozen.items()}
  stacked = {k: jnp.asarray(v) for k, v in tasks.stacked.items()}
  widths, classes = jnp.asarray(tasks.widths), jnp.asarray(tasks.classes)

  def one(trained: dict, seq: jax.Array, width: jax.Array, is_class: jax.Array):
    params = traverse_util.unflatten_dict({**frozen, **trained}, sep="/")
    user = model.apply(params, seq[None], method=finetune.UserModel.represent)[0]
    head = params["params"]["head"]
    scores = user.astype(jnp.float32) @ head["kernel"] + head["bias"]
    column = jnp.arange(scores.shape[0])
    scores = jnp.where((column < width) & ((column != 0) | is_class), scores, -jnp.inf)
    return jnp.where(is_class, jax.nn.log_softmax(scores), scores)

  @jax.jit
  def fn(seq: jax.Array, task: jax.Array) -> jax.Array:
    trained = {k: v[task] for k, v in stacked.items()}
    return jax.vmap(one)(trained, seq, widths[task], classes[task])

  return fn

"""Optimizer with frozen parameters, chosen by regular expressions over paths.

Which parameters train is data (`Task.trainable`), as in big_vision: a tuple of
regexes over "/"-joined parameter paths. Frozen parameters get `set_to_zero`
inside `optax.multi_transform`, so they hold no optimizer state, and the train
step differentiates only the trainable subtree.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

import jax
import numpy as np
import optax
from flax import traverse_util

TRAIN, FREEZE = "train", "freeze"


def param_paths(params: Any) -> list[str]:
  return list(traverse_util.flatten_dict(params, sep="/"))


def labels(params: Any, trainable: Sequence[str]) -> Any:
  """Same tree as `params` with "train" or "freeze" at every leaf."""
  flat = traverse_util.flatten_dict(params, sep="/")
  return traverse_util.unflatten_dict(
      {path: TRAIN if any(re.fullmatch(p, path) for p in trainable) else FREEZE
       for path in flat}, sep="/")


def split(params: Any, label_tree: Any) -> tuple[dict, dict]:
  """(trainable, frozen) flat dicts keyed by path tuples."""
  flat = traverse_util.flatten_dict(params)
  flat_labels = traverse_util.flatten_dict(label_tree)
  trainable = {k: v for k, v in flat.items() if flat_labels[k] == TRAIN}
  frozen = {k: v for k, v in flat.items() if flat_labels[k] == FREEZE}
  return trainable, frozen


def merge(*flat_parts: dict) -> Any:
  return traverse_util.unflatten_dict({k: v for part in flat_parts for k, v in part.items()})


def make_optimizer(label_tree: Any, learning_rate: float, b1: float = 0.9,
                   b2: float = 0.999, grad_clip: float | None = None
                   ) -> optax.GradientTransformation:
  """Adam (optionally clipped by global norm) on "train" leaves, zero on "freeze".

  The clip sits inside the "train" branch, so the norm it clips sees only the
  trainable gradients.
  """
  adam = optax.adam(learning_rate, b1=b1, b2=b2)
  if grad_clip:
    adam = optax.chain(optax.clip_by_global_norm(grad_clip), adam)
  return optax.multi_transform({TRAIN: adam, FREEZE: optax.set_to_zero()}, label_tree)


def count(tree: Any) -> int:
  return int(sum(np.size(x) for x in jax.tree.leaves(tree)))


def nbytes(tree: Any) -> int:
  return int(sum(np.size(x) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree)))

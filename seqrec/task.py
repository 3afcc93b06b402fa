"""The contract between a model family and the generic trainer (`seqrec.trainer`).

A model family (CmnRec, NextItNet pretraining, PeterRec fine-tuning) builds a
`Task`: plain pure functions over a parameter pytree and a batch dict. The
trainer owns everything else: sharding, jit, optimizer, freezing, checkpoints,
logging and the evaluation loop.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax

Params = Any  # a nested dict of arrays, as returned by flax `Module.init`
Batch = dict[str, jax.Array]  # every value has the (global) batch as leading dim


@dataclasses.dataclass(frozen=True)
class Task:
  """Pure functions the trainer jit-compiles.

  Attributes:
    init: rng -> params. Parameter paths ("params/Block_0/conv1/kernel", joined
      with "/") must be stable: freezing and checkpoint restore select by path.
    loss: (params, batch, rng) -> (scalar mean loss, dict of scalar metrics).
      Called on the global batch; must not depend on how it is sharded.
    evaluate: (params, batch) -> dict of per-example metrics, each [B]. The
      trainer averages them over the real (non-padding) examples.
    trainable: regular expressions over parameter paths (`re.fullmatch`); a
      parameter trains iff one matches. The default trains everything.
  """

  init: Callable[[jax.Array], Params]
  loss: Callable[[Params, Batch, jax.Array], tuple[jax.Array, dict[str, jax.Array]]]
  evaluate: Callable[[Params, Batch], dict[str, jax.Array]]
  trainable: tuple[str, ...] = (".*",)

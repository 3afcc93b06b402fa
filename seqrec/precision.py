"""Mixed precision: the compute dtype of activations and matmuls.

Parameters and optimizer state stay float32 whatever the compute dtype;
models cast weights to it where they use them (flax `dtype=` with
`param_dtype=float32`), and losses and metrics work in float32.
"""

from __future__ import annotations

import jax.numpy as jnp

from seqrec.errors import require_choice

DTYPES = ("float32", "bfloat16")


def compute_dtype(name: str) -> jnp.dtype:
  """The dtype called `name`, one of DTYPES."""
  require_choice(name, DTYPES, "config.dtype")
  return jnp.dtype(name)

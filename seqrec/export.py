"""A workdir's scoring function as a `jax.export` (StableHLO) artifact.

The artifact takes int32 [b, L] item columns with a symbolic batch b and
returns the scores of every column [b, V] (padding -inf), or with `top_k` the
top-K (scores [b, K], columns [b, K]; ties to the lower column). The
parameters are constants inside it. Beside it: items.npy (raw id of every
column), meta.json and load.py (`seqrec.export_loader`, which needs only jax
and numpy).
"""

from __future__ import annotations

import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np

from seqrec import workdir as workdir_lib
from seqrec.recommend import Recommender

FILES = ("model.jax", "items.npy", "meta.json", "load.py")


def scoring_function(recommender: Recommender, top_k: int | None = None):
  """seq int32 [b, L] -> scores [b, V] (or top-k scores and columns), params inside."""
  params = jax.tree.map(jnp.asarray, recommender.params)
  score = recommender.built.task.score
  width = len(recommender.items)

  def fn(seq: jax.Array):
    scores = score(params, {"seq": seq})[:, :width]
    return scores if top_k is None else jax.lax.top_k(scores, top_k)

  return fn


def export(recommender: Recommender, out_dir: str, top_k: int | None = None,
           platforms: tuple[str, ...] | None = None) -> jax.export.Exported:
  """Writes FILES to `out_dir` (each whole or not at all); returns the export."""
  (batch,) = jax.export.symbolic_shape("b")
  spec = jax.ShapeDtypeStruct((batch, recommender.input_length), jnp.int32)
  exported = jax.export.export(jax.jit(scoring_function(recommender, top_k)),
                               platforms=platforms)(spec)
  os.makedirs(out_dir, exist_ok=True)
  tmp = os.path.join(out_dir, f"model.jax.tmp-{os.getpid()}")
  with open(tmp, "wb") as f:
    f.write(exported.serialize())
  os.replace(tmp, os.path.join(out_dir, "model.jax"))
  items = os.path.join(out_dir, f"items.tmp-{os.getpid()}.npy")
  np.save(items, recommender.items)
  os.replace(items, os.path.join(out_dir, "items.npy"))
  loader = os.path.join(out_dir, f"load.py.tmp-{os.getpid()}")
  shutil.copyfile(os.path.join(os.path.dirname(__file__), "export_loader.py"), loader)
  os.replace(loader, os.path.join(out_dir, "load.py"))
  workdir_lib.write_json(os.path.join(out_dir, "meta.json"), {
      "family": recommender.config.family, "input_length": recommender.input_length,
      "top_k": top_k, "classes": recommender.built.classes,
      "platforms": list(exported.platforms)})
  return exported

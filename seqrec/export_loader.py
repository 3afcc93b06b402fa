"""Loads a model written by `launch.export` and scores with it: jax and numpy only.

This file is copied into every export directory as load.py and imports
nothing of the project that wrote it:

  python load.py DIR QUERIES.npy OUT.npz    # int32 [N, L] columns -> outputs

or, from Python, `model = Exported(DIR)` then `model(seq)` or
`model.recommend([["i4", "i9"], ...])` with raw item ids.
"""

import json
import os
import sys

import jax
import numpy as np


class Exported:
  """The exported scoring function, its item vocabulary and its settings."""

  def __init__(self, directory: str):
    with open(os.path.join(directory, "model.jax"), "rb") as f:
      self.function = jax.export.deserialize(bytearray(f.read()))
    with open(os.path.join(directory, "meta.json")) as f:
      self.meta = json.load(f)
    self.items = np.load(os.path.join(directory, "items.npy"), allow_pickle=False)
    self.column = {item: c for c, item in enumerate(self.items) if c}

  def __call__(self, seq: np.ndarray):
    """int32 [N, L] left-padded item columns -> scores [N, V], or with a
    top_k export (scores [N, K], columns [N, K])."""
    return self.function.call(np.asarray(seq, np.int32))

  def recommend(self, histories: list) -> list:
    """Raw item histories (oldest first) -> per query [(item, score), ...]."""
    length = self.meta["input_length"]
    seq = np.zeros((len(histories), length), np.int32)
    for row, history in enumerate(histories):
      tail = [self.column[item] for item in history][-length:]
      seq[row, length - len(tail):] = tail
    scores, columns = self(seq) if self.meta["top_k"] else _top(self(seq), 10)
    return [list(zip(self.items[np.asarray(c)].tolist(), np.asarray(s).tolist()))
            for s, c in zip(scores, columns)]


def _top(scores, k):
  columns = np.argsort(-np.asarray(scores), axis=1, kind="stable")[:, :k]
  return np.take_along_axis(np.asarray(scores), columns, axis=1), columns


if __name__ == "__main__":
  directory, queries, out = sys.argv[1:4]
  result = Exported(directory)(np.load(queries))
  arrays = result if isinstance(result, (tuple, list)) else (result,)
  np.savez(out, *[np.asarray(a) for a in arrays])

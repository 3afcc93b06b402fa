"""Metrics to `workdir/metrics.jsonl` and TensorBoard event files, process 0 only."""

from __future__ import annotations

import json
import os
from typing import Mapping

import jax


class MetricWriter:
  """Appends one JSON object per call and mirrors scalars to TensorBoard."""

  def __init__(self, workdir: str):
    self._active = jax.process_index() == 0
    if not self._active:
      return
    os.makedirs(workdir, exist_ok=True)
    self._jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a")
    from tensorboardX import SummaryWriter  # only process 0 imports it
    self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))

  def write(self, step: int, split: str, values: Mapping[str, float]) -> None:
    if not self._active:
      return
    record = {"step": int(step), "split": split, **{k: float(v) for k, v in values.items()}}
    self._jsonl.write(json.dumps(record) + "\n")
    self._jsonl.flush()
    for key, value in values.items():
      # TensorBoard tag names may not contain "@" ("ndcg@10" -> "ndcg_at_10").
      self._tb.add_scalar(f"{split}/{key.replace('@', '_at_')}", float(value), int(step))

  def close(self) -> None:
    if self._active:
      self._jsonl.close()
      self._tb.close()

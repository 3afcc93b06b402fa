"""Metrics to `workdir/metrics.jsonl` and TensorBoard event files, process 0 only."""

from __future__ import annotations

import json
import os
from typing import Mapping

import jax


def _keep(record: dict, resumed_from: int) -> bool:
  return record["step"] <= resumed_from and not record["split"].startswith("final_")


class MetricWriter:
  """Appends one JSON object per call and mirrors scalars to TensorBoard."""

  def __init__(self, workdir: str, resumed_from: int | None = None):
    """With `resumed_from`, records a killed run wrote after that step (and the
    final records of a finished one) are dropped first, so every step
    appears once and in order."""
    self._active = jax.process_index() == 0
    self._last: dict[str, dict] = {}
    if not self._active:
      return
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, "metrics.jsonl")
    if resumed_from is not None and os.path.exists(path):
      with open(path) as f:
        kept = [line for line in f if line.strip() and _keep(json.loads(line), resumed_from)]
      with open(f"{path}.tmp", "w") as f:
        f.writelines(kept)
      os.replace(f"{path}.tmp", path)
      for record in map(json.loads, kept):
        self._last[record["split"]] = record
    self._jsonl = open(path, "a")
    from tensorboardX import SummaryWriter  # only process 0 imports it
    self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))

  def last(self, split: str) -> dict[str, float]:
    """The values of the last record of `split` kept from earlier runs ({} if
    none, and on every process but 0)."""
    record = self._last.get(split, {})
    return {k: v for k, v in record.items() if k not in ("step", "split")}

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

"""The tiny model as a binary on the shared process flags, for multi-process tests.

  PYTHONPATH=. python tests/seqrec/tiny_binary.py --workdir=DIR --num_steps=6 \
      --batch_size=8 --coordinator_address=127.0.0.1:PORT --num_processes=2 \
      --process_id=0

Goes through `launch.common` like a real binary (`init_distributed`, the
multi-host flags, one-line errors), trains `tiny.make_task()` on
`tiny.make_data()` (its first NUM_VALID rows also validate), writes
results.json and this process's final parameters to
WORKDIR/params_<process index>.npz. Its loop settings are flags of its own.
With --record_rows it also writes WORKDIR/rows_<process index>.npy: every
training row the process read.
"""

from __future__ import annotations

import os

import jax
import numpy as np
from absl import flags
from flax import traverse_util

from launch import common
from seqrec import mesh, trainer
from tests.seqrec import tiny

NUM_VALID = 20
NUM_STEPS = flags.DEFINE_integer("num_steps", 6, "Training steps.")
BATCH_SIZE = flags.DEFINE_integer("batch_size", 8, "Global batch size.")
CHECKPOINT_EVERY = flags.DEFINE_integer("checkpoint_every", 0, "Checkpoint period.")
LOG_EVERY = flags.DEFINE_integer("log_every", 1, "Logging period.")
MODEL_PARALLEL = flags.DEFINE_integer("model_parallel", 1, "Devices per table shard.")
ROW_SHARDS = flags.DEFINE_integer("row_shards", 1, "TrainConfig.row_shards.")
POSITIONS = flags.DEFINE_bool("positions", False, "A task with loss positions (packing shapes).")
RECORD_ROWS = flags.DEFINE_bool("record_rows", False, "Write the training rows read.")
SELECT_METRIC = flags.DEFINE_string(
    "select_metric", "", "Report the best-validation step of this metric (empty: the last).")


class _Recorded(np.ndarray):
  """Training rows that remember which of them were read (by row index)."""

  read: list[np.ndarray] = []

  def __getitem__(self, index):
    rows = index[0] if isinstance(index, tuple) else index
    _Recorded.read.append(np.arange(len(self))[rows].reshape(-1))
    return np.asarray(super().__getitem__(index))


def main(argv: list[str]) -> None:
  del argv
  common.init_distributed()
  # Before any data, as launch.train does.
  mesh.check_batch_size(BATCH_SIZE.value, mesh.make_mesh(None, MODEL_PARALLEL.value))
  config = trainer.TrainConfig(
      workdir=common.WORKDIR.value, num_steps=NUM_STEPS.value, batch_size=BATCH_SIZE.value,
      checkpoint_every=CHECKPOINT_EVERY.value, log_every=LOG_EVERY.value,
      model_parallel=MODEL_PARALLEL.value, eval_batch_size=16,
      select_metric=SELECT_METRIC.value or None, row_shards=ROW_SHARDS.value)
  seqs = tiny.make_data()
  train = seqs.view(_Recorded) if RECORD_ROWS.value else seqs
  state, results = trainer.train(tiny.make_task(positions=POSITIONS.value), config,
                                 {"seq": train}, {"valid": {"seq": seqs[:NUM_VALID]}})
  if RECORD_ROWS.value:
    np.save(os.path.join(config.workdir, f"rows_{jax.process_index()}.npy"),
            np.unique(np.concatenate(_Recorded.read)))
  trainer.write_results(config.workdir, results)
  params = traverse_util.flatten_dict(state.params, sep="/")
  np.savez(os.path.join(config.workdir, f"params_{jax.process_index()}.npz"),
           **{path: np.asarray(value) for path, value in params.items()})


if __name__ == "__main__":
  common.run(main)

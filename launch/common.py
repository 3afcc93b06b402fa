"""Flags shared by every training binary, and the edges they all need.

Flags are defined once here; binaries import this module, may change a
default with `flags.FLAGS.set_default`, and turn flags into plain config
objects. Library code never reads flags.
"""

from __future__ import annotations

import logging as std_logging
import os
import sys
from typing import Callable

import jax
from absl import app, flags, logging

from seqrec import (distributed, mesh as mesh_lib, precision, preemption, sequences, sources,
                    synthetic)
from seqrec.errors import InputError, TrainingError
from seqrec.interactions import Interactions
from seqrec.trainer import TrainConfig, steps_for_epochs

DATASET = flags.DEFINE_string(
    "dataset", "synthetic",
    "Data source: " + ", ".join(sources.SCHEMES) + " (e.g. recbole:../shared/data/ml-100k).")
WORKDIR = flags.DEFINE_string("workdir", "/tmp/seqrec", "Checkpoints, metrics, results.json.")
SEED = flags.DEFINE_integer("seed", 0, "Seed for initialisation, batching and splits.")
NUM_EPOCHS = flags.DEFINE_float("num_epochs", 10, "Training epochs (see --num_steps).")
NUM_STEPS = flags.DEFINE_integer("num_steps", None, "Training steps; overrides --num_epochs.")
BATCH_SIZE = flags.DEFINE_integer("batch_size", 256, "Global batch size (all devices).")
LEARNING_RATE = flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate.")
EVAL_EVERY = flags.DEFINE_integer("eval_every", 0, "Validate every N steps (0: at the end).")
EVAL_ALL_SPLITS = flags.DEFINE_bool(
    "eval_all_splits", False, "At every validation also evaluate the other splits "
    "(test), for learning curves in metrics.jsonl; selection still uses valid only.")
CHECKPOINT_EVERY = flags.DEFINE_integer(
    "checkpoint_every", 500, "Checkpoint every N steps (and always at the end).")
LOG_EVERY = flags.DEFINE_integer("log_every", 50, "Log training metrics every N steps.")
MAX_LEN = flags.DEFINE_integer(
    "max_len", 51, "Padded sequence length L: L-1 input steps and the target.")
MIN_ITEM_COUNT = flags.DEFINE_integer("min_item_count", 1, "Drop rarer items.")
MIN_USER_COUNT = flags.DEFINE_integer("min_user_count", 1, "Drop users with fewer events.")
NUM_DEVICES = flags.DEFINE_integer("num_devices", None, "Devices to use (default: all).")
MODEL_PARALLEL = flags.DEFINE_integer(
    "model_parallel", 1, "Devices per item-table shard group (the mesh's `model` axis): "
    "item embeddings and output layers are split over them, the batch over the rest.")
VOCAB_MULTIPLE = flags.DEFINE_integer(
    "vocab_multiple", None, "Pad item tables to a multiple of this many rows/columns "
    "(default: --model_parallel), so they split evenly; checkpoints move between runs "
    "with equal padding, so set it to the largest --model_parallel you will use.")
DTYPE = flags.DEFINE_enum(
    "dtype", "float32", list(precision.DTYPES), "Compute dtype of activations and "
    "matmuls; parameters, optimizer state, losses and metrics stay float32.")
COMPILATION_CACHE = flags.DEFINE_string(
    "compilation_cache", os.path.expanduser("~/.cache/seqrec_xla"),
    "Persistent XLA compilation cache directory (empty: off); repeated runs skip compiles.")
SYNTHETIC_USERS = flags.DEFINE_integer("synthetic_users", 2000, "Synthetic data: users.")
SYNTHETIC_ITEMS = flags.DEFINE_integer("synthetic_items", 1000, "Synthetic data: items.")
SYNTHETIC_TARGET_ITEMS = flags.DEFINE_integer(
    "synthetic_target_items", 300, "Synthetic data: items of the second domain.")
SYNTHETIC_LENGTH = flags.DEFINE_float(
    "synthetic_length", 60, "Synthetic data: mean history length.")
# Multi-process runs (TPU pod slices, several GPU hosts): every process gets the
# same flags but its own --process_id. Unset flags fall back to the variables
# JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID, so a launcher can
# give each process its id through the environment.
COORDINATOR_ADDRESS = flags.DEFINE_string(
    "coordinator_address", None,
    "host:port of process 0, where it serves the coordinator (env JAX_COORDINATOR_ADDRESS).")
NUM_PROCESSES = flags.DEFINE_integer(
    "num_processes", None, "Processes (usually hosts) in the run (env JAX_NUM_PROCESSES).")
PROCESS_ID = flags.DEFINE_integer(
    "process_id", None, "This process, 0..num_processes-1 (env JAX_PROCESS_ID).")
DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "Join a multi-process run whose unset settings JAX detects "
    "from the cluster (Cloud TPU pod slice, SLURM, Open MPI).")
DISTRIBUTED_TIMEOUT = flags.DEFINE_integer(
    "distributed_timeout", distributed.DEFAULT_TIMEOUT_S,
    "Seconds to wait for the coordinator and the other processes before failing.")

for _flag, _low in ((BATCH_SIZE, 1), (MAX_LEN, 2), (MIN_ITEM_COUNT, 1),
                    (MIN_USER_COUNT, 1), (LOG_EVERY, 1), (MODEL_PARALLEL, 1),
                    (DISTRIBUTED_TIMEOUT, 1)):
  flags.register_validator(_flag.name, lambda v, low=_low: v >= low,
                           f"--{_flag.name} must be at least {_low}")
for _flag in (EVAL_EVERY, CHECKPOINT_EVERY):
  flags.register_validator(_flag.name, lambda v: v >= 0, f"--{_flag.name} must be >= 0")
flags.register_validator("num_epochs", lambda v: v > 0, "--num_epochs must be positive")
flags.register_validator("vocab_multiple", lambda v: v is None or v > 0,
                         "--vocab_multiple must be positive")
flags.register_validator("num_steps", lambda v: v is None or v > 0,
                         "--num_steps must be positive")
flags.register_validator("learning_rate", lambda v: v > 0, "--learning_rate must be positive")
flags.register_validator(
    "dataset",
    lambda v: v == "synthetic" or v.partition(":")[0] in
    {s.partition(":")[0] for s in sources.SCHEMES} and bool(v.partition(":")[2]),
    "--dataset must be one of " + ", ".join(sources.SCHEMES))


def init_distributed() -> None:
  """Joins the multi-process run the flags describe (a no-op for one process),
  quiets logging on all but process 0 and checks --batch_size against the
  global device count before any data is loaded. Call first thing in main."""
  distributed.initialize(
      COORDINATOR_ADDRESS.value or os.environ.get("JAX_COORDINATOR_ADDRESS"),
      _flag_or_env(NUM_PROCESSES, "JAX_NUM_PROCESSES"),
      _flag_or_env(PROCESS_ID, "JAX_PROCESS_ID"),
      auto_detect=DISTRIBUTED.value, timeout_s=DISTRIBUTED_TIMEOUT.value)
  if jax.process_index() != 0:
    logging.set_verbosity(logging.WARNING)
  mesh_lib.check_batch_size(BATCH_SIZE.value,
                            mesh_lib.make_mesh(NUM_DEVICES.value, MODEL_PARALLEL.value))


def _flag_or_env(flag: flags.FlagHolder, variable: str) -> int | None:
  if flag.value is not None or not os.environ.get(variable):
    return flag.value
  try:
    return int(os.environ[variable])
  except ValueError:
    raise InputError(f"{variable}={os.environ[variable]!r} is not an integer "
                     f"(it stands for --{flag.name})") from None


def load_interactions() -> Interactions:
  config = synthetic.SyntheticConfig(
      num_users=SYNTHETIC_USERS.value, num_items=SYNTHETIC_ITEMS.value,
      num_target_items=SYNTHETIC_TARGET_ITEMS.value, mean_length=SYNTHETIC_LENGTH.value,
      seed=SEED.value)
  data = sources.load(DATASET.value, synthetic=config)
  logging.info("dataset %s: %d users, %d items, %d interactions", data.name,
               data.num_users, data.num_items, len(data))
  return data


def user_sequences(data: Interactions, **kwargs) -> sequences.UserSequences:
  return sequences.build_user_sequences(
      data, min_item_count=MIN_ITEM_COUNT.value, min_user_count=MIN_USER_COUNT.value,
      **kwargs)


def vocab_multiple() -> int:
  """What item tables are padded to a multiple of: --vocab_multiple or --model_parallel."""
  return VOCAB_MULTIPLE.value or MODEL_PARALLEL.value


def train_config(num_train_rows: int, **overrides) -> TrainConfig:
  """The loop settings from the common flags; steps from epochs unless --num_steps.

  `overrides` may carry the model family's `param_rules`; with
  --model_parallel=1 they split nothing.
  """
  num_steps = NUM_STEPS.value or steps_for_epochs(
      num_train_rows, BATCH_SIZE.value, NUM_EPOCHS.value)
  return TrainConfig(
      workdir=WORKDIR.value, num_steps=num_steps, batch_size=BATCH_SIZE.value,
      learning_rate=LEARNING_RATE.value, seed=SEED.value, eval_every=EVAL_EVERY.value,
      checkpoint_every=CHECKPOINT_EVERY.value, log_every=LOG_EVERY.value,
      eval_all_splits=EVAL_ALL_SPLITS.value,
      num_devices=NUM_DEVICES.value, model_parallel=MODEL_PARALLEL.value, **overrides)


def flag_values(module_names: tuple[str, ...] = ()) -> dict:
  """The common flags (and those of the named modules) with their values, for results.json."""
  names = {f.name for f in flags.FLAGS.get_flags_for_module(__name__)}
  for module in module_names:
    names |= {f.name for f in flags.FLAGS.get_flags_for_module(module)}
  return {name: flags.FLAGS[name].value for name in sorted(names)}


def report(*lines: str) -> None:
  """Prints a binary's summary lines once per run (process 0), like its logs."""
  if jax.process_index() == 0:
    print("\n".join(lines))


def run(main: Callable[[list[str]], None]) -> None:
  """`app.run(main)`, reporting bad input and stopped training as one line.

  Exit status: 0 done, 1 bad input or failed training, 143 preempted (SIGTERM)
  after saving a checkpoint that the same command resumes from.
  """

  def guarded(argv: list[str]) -> None:
    # Orbax logs every checkpoint operation at INFO; keep the training log readable.
    logging.get_absl_logger().addFilter(
        lambda record: record.levelno >= std_logging.WARNING or "orbax" not in record.pathname)
    if COMPILATION_CACHE.value:
      jax.config.update("jax_compilation_cache_dir", COMPILATION_CACHE.value)
    try:
      main(argv)
    except preemption.Preempted as stopped:
      # The exit status of a process ended by SIGTERM, so schedulers requeue it.
      print(f"stopped: {stopped}", file=sys.stderr)
      sys.exit(preemption.EXIT_CODE)
    except (InputError, TrainingError) as error:
      print(f"error: {error}", file=sys.stderr)
      sys.exit(1)

  app.run(guarded)

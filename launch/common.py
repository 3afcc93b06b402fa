"""Process-level flags every binary shares, and the edges they all need.

An experiment is a config (`--config=configs/FILE.py[:PRESET]`, overridden
with `--config.KEY=VALUE`); absl flags only say where and how this process
runs: the workdir, the multi-host settings and the compilation and data caches. Library
code never reads flags: binaries hand it the plain `ConfigDict`.
"""

from __future__ import annotations

import logging as std_logging
import os
import sys
from typing import Callable

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from seqrec import distributed, preemption, sources
from seqrec.errors import InputError, TrainingError

DEFAULT_CONFIG = os.path.join(os.path.dirname(__file__), os.pardir, "configs", "cmnrec.py")


def _unknown_key(error: AttributeError) -> str:
  """The line for an override `--config.….NAME=…` of a key the config lacks."""
  name = str(error).strip("\"'")
  override = next((a for a in sys.argv if a.startswith("--config.") and
                   a.split("=")[0].split(".")[-1] == name), f"--config....{name}")
  config = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--config=")),
                os.path.relpath(DEFAULT_CONFIG))
  return f"error: {override.split('=')[0]}: {config} has no key {name!r}"


try:
  # With the default file, ml_collections applies the overrides right here.
  CONFIG = config_flags.DEFINE_config_file(
      "config", DEFAULT_CONFIG, "Experiment config: configs/FILE.py[:PRESET]; override "
      "keys with --config.KEY=VALUE.", lock_config=True)
except AttributeError as unknown:
  sys.exit(_unknown_key(unknown))
WORKDIR = flags.DEFINE_string("workdir", "/tmp/seqrec", "Checkpoints, metrics, results.json.")
COMPILATION_CACHE = flags.DEFINE_string(
    "compilation_cache",
    os.environ.get("JAX_COMPILATION_CACHE_DIR", os.path.expanduser("~/.cache/seqrec_xla")),
    "Persistent XLA compilation cache directory (empty: off); repeated runs skip compiles.")
DATA_CACHE = flags.DEFINE_string(
    "data_cache",
    os.environ.get(sources.CACHE_ENV, os.path.expanduser("~/.cache/seqrec_data")),
    "Directory where datasets read from files are kept as memory-mapped arrays "
    "(empty: off); a second run on an unchanged file skips parsing it.")
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
flags.register_validator("distributed_timeout", lambda v: v >= 1,
                         "--distributed_timeout must be at least 1")


def init_distributed() -> None:
  """Joins the multi-process run the flags describe (a no-op for one process)
  and quiets logging on all but process 0. Call first thing in main."""
  distributed.initialize(
      COORDINATOR_ADDRESS.value or os.environ.get("JAX_COORDINATOR_ADDRESS"),
      _flag_or_env(NUM_PROCESSES, "JAX_NUM_PROCESSES"),
      _flag_or_env(PROCESS_ID, "JAX_PROCESS_ID"),
      auto_detect=DISTRIBUTED.value, timeout_s=DISTRIBUTED_TIMEOUT.value)
  if jax.process_index() != 0:
    logging.set_verbosity(logging.WARNING)


def _flag_or_env(flag: flags.FlagHolder, variable: str) -> int | None:
  if flag.value is not None or not os.environ.get(variable):
    return flag.value
  try:
    return int(os.environ[variable])
  except ValueError:
    raise InputError(f"{variable}={os.environ[variable]!r} is not an integer "
                     f"(it stands for --{flag.name})") from None


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
    if len(argv) > 1:
      raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    # Orbax logs every checkpoint operation at INFO; keep the training log readable.
    logging.get_absl_logger().addFilter(
        lambda record: record.levelno >= std_logging.WARNING or "orbax" not in record.pathname)
    if COMPILATION_CACHE.value:
      jax.config.update("jax_compilation_cache_dir", COMPILATION_CACHE.value)
    os.environ[sources.CACHE_ENV] = DATA_CACHE.value  # read by experiment.load_data
    try:
      main(argv)
    except preemption.Preempted as stopped:
      # The exit status of a process ended by SIGTERM, so schedulers requeue it.
      print(f"stopped: {stopped}", file=sys.stderr)
      sys.exit(preemption.EXIT_CODE)
    except (InputError, TrainingError) as error:
      print(f"error: {error}", file=sys.stderr)
      sys.exit(1)

  try:
    app.run(guarded)
  except AttributeError as error:
    if flags.FLAGS.is_parsed():  # a bug, not an override of a key the config lacks
      raise
    sys.exit(_unknown_key(error))

"""Joining a multi-process run (TPU pod slice, GPU hosts, CPU processes).

Every process of a run calls `initialize` before anything touches a JAX
device, with the same coordinator address (host:port of process 0) and process
count and its own id; JAX then sees the devices of all processes as one mesh.
Bad cluster set-ups fail within `timeout_s` with one line instead of JAX's
multi-minute wait and abort. Two cases stay with JAX: process 0 waiting for
processes that never join, and processes whose peers stopped after joining
(e.g. one got different flags and raised); JAX aborts those within about
`timeout_s`; the log of the process that stopped first holds the cause.
"""

from __future__ import annotations

import socket
import time

import jax
from absl import logging

from seqrec.errors import InputError, TrainingError

DEFAULT_TIMEOUT_S = 120
_SETTINGS = ("--coordinator_address", "--num_processes", "--process_id")


def initialize(coordinator_address: str | None, num_processes: int | None,
               process_id: int | None, *, auto_detect: bool = False,
               timeout_s: int = DEFAULT_TIMEOUT_S) -> None:
  """Joins the run described by the arguments; a no-op for one process.

  Args:
    coordinator_address: "host:port" where process 0 serves the coordinator;
      every process passes the same one.
    num_processes: processes in the run; 1 (or all three settings None without
      `auto_detect`) means a plain single-process run.
    process_id: this process, in [0, num_processes).
    auto_detect: join a multi-process run even where settings are None: JAX
      detects them from the cluster (Cloud TPU pod slice, SLURM, Open MPI).
    timeout_s: how long to wait for the coordinator and the other processes.

  Raises:
    InputError: the settings are incomplete or inconsistent, or no coordinator
      answers at `coordinator_address`.
    TrainingError: JAX could not form the run.
  """
  _check_settings(num_processes, process_id)
  settings = (coordinator_address, num_processes, process_id)
  if num_processes == 1 or (not auto_detect and all(v is None for v in settings)):
    return
  if not auto_detect:
    missing = [name for name, value in zip(_SETTINGS, settings) if value is None]
    if missing:
      raise InputError(f"{', '.join(missing)} missing: a multi-process run needs all of "
                       f"{', '.join(_SETTINGS)} (or --distributed to detect them)")
  if coordinator_address is not None:
    host, port = _split_address(coordinator_address)
    if process_id not in (None, 0):
      # JAX retries a missing coordinator until its timeout, then aborts the
      # process with a stack trace; a plain TCP probe fails with one line.
      _wait_for_listener(host, port, timeout_s)
  if jax.config.jax_cpu_collectives_implementation is None:
    # Cross-process collectives on CPU need an implementation; the setting only
    # affects the CPU backend, so it is harmless on TPU and GPU hosts.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  logging.info("joining a run of %s processes as process %s (coordinator %s, timeout %ds)",
               num_processes or "detected", "detected" if process_id is None else process_id,
               coordinator_address or "detected", timeout_s)
  try:
    jax.distributed.initialize(
        coordinator_address, num_processes, process_id,
        initialization_timeout=timeout_s, shutdown_timeout_seconds=timeout_s)
  except (RuntimeError, ValueError) as error:
    lines = str(error).strip().splitlines() or [type(error).__name__]
    # ValueError: JAX found no cluster to fill in missing settings.
    kind = InputError if isinstance(error, ValueError) else TrainingError
    raise kind(f"could not join the multi-process run: {lines[0]}") from error
  if num_processes is not None and jax.process_count() != num_processes:
    raise InputError(
        f"--num_processes={num_processes}, but the coordinator at "
        f"{coordinator_address} runs {jax.process_count()} processes: every process "
        "needs the same --num_processes")


def free_port() -> int:
  """A loopback port free right now: where a coordinator of processes on this
  machine can listen (benchmarks and tests start such runs)."""
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _check_settings(num_processes: int | None, process_id: int | None) -> None:
  if num_processes is not None and num_processes < 1:
    raise InputError(f"--num_processes={num_processes} must be at least 1")
  if process_id is not None and process_id < 0:
    raise InputError(f"--process_id={process_id} must be at least 0")
  if None not in (process_id, num_processes) and process_id >= num_processes:
    raise InputError(f"--process_id={process_id} must be below --num_processes="
                     f"{num_processes} (ids run from 0)")


def _split_address(address: str) -> tuple[str, int]:
  host, _, port = address.rpartition(":")
  if not host or not port.isdigit():
    raise InputError(f"--coordinator_address={address} must be host:port")
  return host.strip("[]"), int(port)  # "[::1]:1234" is an IPv6 host


def _wait_for_listener(host: str, port: int, timeout_s: float) -> None:
  """Returns once something accepts TCP connections at host:port; processes
  start in any order, so a refused connection is retried until `timeout_s`."""
  deadline = time.monotonic() + timeout_s
  while True:
    try:
      with socket.create_connection((host, port), timeout=min(timeout_s, 5)):
        return
    except OSError as error:
      if time.monotonic() >= deadline:
        raise InputError(
            f"--coordinator_address={host}:{port}: no coordinator answered within "
            f"{timeout_s}s ({error.strerror or error}); process 0 must be running "
            "on that host and reachable from this one") from error
      time.sleep(0.2)

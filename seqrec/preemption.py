"""Preemption: on SIGTERM (or Ctrl-C), finish the current step, checkpoint it, and stop.

Spot/preemptible VMs, TPU maintenance events, SLURM and Kubernetes all send
SIGTERM and then wait a grace period before killing. Without handling, a
single process dies at once and loses every step since its last periodic
checkpoint; a multi-process run is worse: `jax.distributed.initialize` installs
JAX's own SIGTERM handler, so the signalled process ignores the signal and
trains on until the scheduler kills it.

`notice()` covers both. One process: a handler records the signal. Several
processes: JAX's preemption sync manager hears SIGTERM on any host, and
`reached_preemption_sync_point` turns true on every process at the same step,
so all of them save that step together.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Callable, Iterator

import jax
from jax.experimental import multihost_utils

from seqrec.errors import TrainingError

EXIT_CODE = 128 + signal.SIGTERM  # what a shell reports for a process ended by SIGTERM


class Preempted(TrainingError):
  """Training stopped on a preemption notice after saving a checkpoint."""


@contextlib.contextmanager
def notice() -> Iterator[Callable[[int], bool]]:
  """Yields `reached(step) -> bool`: True once training should save and stop.

  Call `reached` after every step, on every process, with the number of steps
  done (multi-process runs agree on the step through it). In a single process
  the SIGTERM handler is installed only for the duration of the block and only
  from the main thread (Python allows no other); elsewhere `reached` stays False.
  """
  if jax.process_count() > 1:
    yield multihost_utils.reached_preemption_sync_point
    return
  received = threading.Event()
  if threading.current_thread() is not threading.main_thread():
    yield lambda step: False
    return
  # SIGINT (Ctrl-C) as SIGTERM: save the step and stop, leaving no orbax temp dir.
  previous = {sig: signal.signal(sig, lambda signum, frame: received.set())
              for sig in (signal.SIGTERM, signal.SIGINT)}
  try:
    yield lambda step: received.is_set()
  finally:
    for sig, handler in previous.items():
      signal.signal(sig, handler)

"""Static write schedules of the chunk framework (CmnRec).

A schedule says at which of the T input steps the memory is accessed (read and
written). It is a function of the kind, T and the number of slots m only, so the
model resolves it at trace time and lays out one memory access per chunk.

Step numbers are 1-based, as in the paper: step T is the last input step and
always writes. A chunk is the run of steps that ends at a write step and starts
right after the previous one (the first chunk starts at step 1).
"""

from __future__ import annotations

from typing import Sequence

from seqrec.errors import InputError

KINDS = ("srmn", "pec", "tsc", "exc")


def _check(kind: str, num_steps: int, num_slots: int) -> None:
  if kind not in KINDS:
    raise InputError(f"schedule kind {kind!r} is unknown; expected one of {KINDS}")
  if num_steps < 1:
    raise InputError(f"num_steps={num_steps}: a sequence needs at least 1 step")
  if num_slots < 1:
    raise InputError(f"num_slots={num_slots}: the memory needs at least 1 slot")
  # SRMN writes every step whatever its memory size; the chunked kinds write
  # exactly once per slot, so they cannot have more slots than steps.
  if kind != "srmn" and num_slots > num_steps:
    raise InputError(
        f"num_slots={num_slots} exceeds num_steps={num_steps}: {kind} writes once "
        "per slot, so it needs at least as many steps as slots")


def _distances(kind: str, num_steps: int, num_slots: int) -> list[int]:
  """Distances d from the last step; step T - d writes."""
  if kind == "exc":
    return list(range(num_slots))
  if kind == "tsc":
    gap = 2 * num_steps // (num_slots * (num_slots + 1))
    if gap > 0:
      return [gap * i * (i - 1) // 2 for i in range(1, num_slots + 1)]
    # Too few steps for triangular gaps: TSC degrades to the periodic schedule.
  period = num_steps // num_slots
  return [period * i for i in range(num_slots)]


def write_steps(kind: str, num_steps: int, num_slots: int) -> tuple[int, ...]:
  """Sorted 1-based steps at which the memory is accessed.

  Args:
    kind: "srmn" (every step), "pec" (periodic), "tsc" (time-sensitive: chunks
      shrink toward the end; PEC when 2T < m(m+1)) or "exc" (the last m steps).
    num_steps: T, the number of input steps (padded length - 1).
    num_slots: m, the number of memory slots; the chunked kinds write m times.
  Returns:
    Strictly increasing step numbers in 1..T; the last is always T.
  Raises:
    InputError (a ValueError) naming the bad argument.
  """
  _check(kind, num_steps, num_slots)
  if kind == "srmn":
    return tuple(range(1, num_steps + 1))
  return tuple(sorted(num_steps - d for d in _distances(kind, num_steps, num_slots)))


def chunk_lengths(steps: Sequence[int]) -> tuple[int, ...]:
  """Number of steps in each chunk; they sum to the last write step.

  E.g. write steps (6, 8, 9) give chunks 1..6, 7..8, 9..9: lengths (6, 2, 1).
  """
  bounds = (0, *steps)
  return tuple(end - start for start, end in zip(bounds[:-1], bounds[1:]))


def chunk_runs(lengths: Sequence[int]) -> tuple[tuple[int, int], ...]:
  """Consecutive chunks of equal length, as (length, count) pairs.

  A run of equal chunks shares one compiled scan body, e.g. PEC's (3, 2, 2, 2)
  gives ((3, 1), (2, 3)).
  """
  runs: list[list[int]] = []
  for length in lengths:
    if runs and runs[-1][0] == length:
      runs[-1][1] += 1
    else:
      runs.append([length, 1])
  return tuple((length, count) for length, count in runs)


def read_versions(steps: Sequence[int], num_steps: int) -> tuple[int, ...]:
  """Which read vector each step sees: the number of writes up to and including it.

  Version 0 is the initial read vector; version k the one read at the k-th write.
  Between writes the read vector is held, so steps share versions.
  """
  versions, done = [], 0
  written = set(steps)
  for step in range(1, num_steps + 1):
    done += step in written
    versions.append(done)
  return tuple(versions)

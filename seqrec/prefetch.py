"""Host batches made ahead of the step that uses them, on one host thread.

The training loop dispatches step k and then waits for step k-1; without a
prefetch the rows, gather and transfer of step k+1 start only after that wait.
With one, a thread has already made them while step k ran. Which batch a step
gets does not change: each is `make(step)`, a pure function of the step.
"""

from __future__ import annotations

import collections
import concurrent.futures
from typing import Callable, Iterator, Sequence, TypeVar

T = TypeVar("T")


def ahead(make: Callable[[int], T], steps: Sequence[int], depth: int) -> Iterator[T]:
  """`make(step)` for each of `steps` in order, up to `depth` of them made ahead
  on a host thread (0: each made when it is asked for, on the caller's thread).

  An exception of `make` is raised where its batch is asked for. Close the
  iterator (`contextlib.closing`) when leaving early: that waits for the
  batches in flight instead of leaving the thread to the interpreter's exit.
  """
  if depth <= 0:
    yield from map(make, steps)
    return
  with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="prefetch") as pool:
    pending = collections.deque(pool.submit(make, step) for step in steps[:depth])
    try:
      for step in steps[depth:]:
        batch = pending.popleft().result()
        pending.append(pool.submit(make, step))
        yield batch
      while pending:
        yield pending.popleft().result()
    finally:
      for future in pending:
        future.cancel()

"""Batches made ahead on a host thread: same batches, same order, same training."""

import contextlib
import threading

import numpy as np
import pytest

from seqrec import prefetch
from tests.seqrec import test_trainer


@pytest.mark.parametrize("depth", [0, 1, 3, 10])
def test_every_step_in_order_at_every_depth(depth):
  threads = set()

  def make(step):
    threads.add(threading.current_thread().name)
    return step * step

  assert list(prefetch.ahead(make, range(2, 7), depth)) == [4, 9, 16, 25, 36]
  assert any(n.startswith("prefetch") for n in threads) == (depth > 0)


def test_an_error_arrives_with_its_batch_and_the_earlier_ones_first():
  def make(step):
    if step == 3:
      raise ValueError("bad step 3")
    return step

  batches = prefetch.ahead(make, range(6), depth=2)
  assert [next(batches) for _ in range(3)] == [0, 1, 2]
  with pytest.raises(ValueError, match="bad step 3"):
    next(batches)


def test_closing_early_waits_and_makes_no_further_batch():
  made = []
  with contextlib.closing(prefetch.ahead(made.append, range(100), depth=2)) as batches:
    next(batches)
  # The one asked for, and at most the two made ahead of it.
  assert made == list(range(len(made))) and 1 <= len(made) <= 3


def test_training_with_a_prefetch_equals_training_without(tmp_path):
  with_thread, _ = test_trainer._train(tmp_path / "ahead", prefetch=2)
  inline, _ = test_trainer._train(tmp_path / "inline", prefetch=0)
  assert test_trainer._losses(tmp_path / "ahead") == test_trainer._losses(tmp_path / "inline")
  ahead, plain = test_trainer._flat(with_thread.params), test_trainer._flat(inline.params)
  for key, value in plain.items():
    np.testing.assert_array_equal(ahead[key], value, err_msg=key)

"""Multi-process runs: two real processes on this machine form one 2-device mesh.

Each child runs `tiny_binary.py` (the shared flags, `init_distributed`) with
one CPU device and gloo collectives over a loopback coordinator.
"""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from flax import traverse_util

from seqrec import checkpoint, distributed, trainer
from seqrec.errors import InputError
from tests.paths import REPO
from tests.seqrec import tiny

STEPS, RESUMED_STEPS = 6, 8
NUM_VALID = 20  # tiny_binary.NUM_VALID; importing it would define its flags here


def _start(workdir, *flags, env=None):
  env = {**os.environ, "PYTHONPATH": REPO, "JAX_PLATFORMS": "cpu",
         "JAX_NUM_CPU_DEVICES": "1", **(env or {})}
  return subprocess.Popen(
      [sys.executable, os.path.join(REPO, "tests", "seqrec", "tiny_binary.py"),
       f"--workdir={workdir}", "--batch_size=8", f"--num_steps={STEPS}",
       "--checkpoint_every=3", "--log_every=1",
       "--compilation_cache=" + os.path.join(REPO, ".jax_cache"), *flags],
      env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _start_pair(workdir, *flags):
  address = f"--coordinator_address=127.0.0.1:{distributed.free_port()}"
  return [_start(workdir, address, "--num_processes=2", f"--process_id={i}", *flags)
          for i in range(2)]


def _finish(process, timeout=120) -> tuple[int, str]:
  try:
    _, stderr = process.communicate(timeout=timeout)
  except subprocess.TimeoutExpired:
    process.kill()  # SIGTERM would only ask for a preemption checkpoint
    raise
  return process.returncode, stderr


def _train_in_process(workdir, num_steps, row_shards=1, positions=False):
  """The same run as tiny_binary's, in one process on one device."""
  seqs = tiny.make_data()
  config = trainer.TrainConfig(workdir=str(workdir), num_steps=num_steps, batch_size=8,
                               checkpoint_every=3, log_every=1, eval_batch_size=16,
                               num_devices=1, row_shards=row_shards)
  return trainer.train(tiny.make_task(positions=positions), config, {"seq": seqs},
                       {"valid": {"seq": seqs[:NUM_VALID]}})


def _flat(params):
  return {k: np.asarray(v) for k, v in traverse_util.flatten_dict(params, sep="/").items()}


def _assert_close(actual, expected):
  assert sorted(actual) == sorted(expected)
  for key in expected:
    np.testing.assert_allclose(actual[key], expected[key], atol=1e-5, err_msg=key)


def test_two_processes_train_like_one_and_their_checkpoint_resumes_on_one(tmp_path):
  multi = tmp_path / "multi"
  for process in _start_pair(multi, "--distributed_timeout=30"):
    returncode, stderr = _finish(process)
    assert returncode == 0, stderr[-3000:]
  params = [np.load(multi / f"params_{i}.npz") for i in range(2)]
  for key in params[0].files:
    np.testing.assert_array_equal(params[0][key], params[1][key], err_msg=key)

  single_state, single_results = _train_in_process(tmp_path / "single", STEPS)
  _assert_close(dict(params[0]), _flat(single_state.params))
  with open(multi / "results.json") as f:
    multi_results = json.load(f)
  assert multi_results["num_devices"] == 2
  for name, value in single_results["valid"].items():
    assert multi_results["valid"][name] == pytest.approx(value, abs=1e-5), name
  with open(multi / "metrics.jsonl") as f:  # written by process 0 alone
    steps = [r["step"] for r in map(json.loads, f) if r["split"] == "train"]
  assert steps == list(range(1, STEPS + 1))

  _assert_close(_flat(checkpoint.restore_params(str(multi))), dict(params[0]))
  resumed, results = _train_in_process(multi, RESUMED_STEPS)
  straight, _ = _train_in_process(tmp_path / "single", RESUMED_STEPS)
  assert results["resumed_from"] == STEPS and results["num_devices"] == 1
  _assert_close(_flat(resumed.params), _flat(straight.params))


def test_with_row_shards_each_process_reads_only_its_shard_and_trains_like_one(tmp_path):
  multi = tmp_path / "multi"
  for process in _start_pair(multi, "--row_shards=2", "--positions", "--record_rows"):
    returncode, stderr = _finish(process)
    assert returncode == 0, stderr[-3000:]
  rows = len(tiny.make_data())
  bounds = trainer.shard_bounds(rows, 2)
  for index in range(2):
    read = np.load(multi / f"rows_{index}.npy")
    # Its own shard, all of it (its loss positions), and nothing of the other.
    np.testing.assert_array_equal(read, np.arange(bounds[index], bounds[index + 1]))
  single, _ = _train_in_process(tmp_path / "single", STEPS, row_shards=2, positions=True)
  _assert_close(dict(np.load(multi / "params_0.npz")), _flat(single.params))
  other, _ = _train_in_process(tmp_path / "unsharded", STEPS, positions=True)
  assert any(not np.allclose(a, b) for a, b in zip(
      jax.tree.leaves(other.params), jax.tree.leaves(single.params)))  # other batches


def test_model_axis_across_processes_feeds_each_the_whole_batch(tmp_path):
  # The data axis has size 1: both processes hold, and so must feed, all rows.
  # With --select_metric two checkpoint managers save the last step together.
  for process in _start_pair(tmp_path / "multi", "--model_parallel=2", "--num_steps=2",
                             "--select_metric=mrr@20", "--distributed_timeout=30"):
    returncode, stderr = _finish(process)
    assert returncode == 0, stderr[-3000:]
  single, _ = _train_in_process(tmp_path / "single", 2)
  _assert_close(dict(np.load(tmp_path / "multi" / "params_1.npz")), _flat(single.params))


def test_sigterm_to_one_process_stops_both_at_the_same_saved_step(tmp_path):
  # JAX's preemption service tells process 0 about process 1's SIGTERM; both
  # must save the same step together and stop, not train on until killed.
  # JAX agrees on one step that every process must ask about, so the loop must
  # ask at every step, not only at logged ones (--log_every=7).
  multi = tmp_path / "multi"
  processes = _start_pair(multi, "--num_steps=100000", "--checkpoint_every=0",
                          "--log_every=7", "--distributed_timeout=30")
  metrics, deadline = multi / "metrics.jsonl", time.time() + 120
  while not (metrics.exists() and metrics.read_text().count('"train"') >= 2):
    assert time.time() < deadline and all(p.poll() is None for p in processes)
    time.sleep(0.05)
  processes[1].send_signal(signal.SIGTERM)
  steps = set()
  for process in processes:
    returncode, stderr = _finish(process)
    assert returncode == 143, stderr[-3000:]
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("stopped: preempted (SIGTERM or SIGINT) after step "), stderr[-3000:]
    steps.add(int(last.split("after step ")[1].split("/")[0]))
  assert len(steps) == 1
  step = steps.pop()
  assert checkpoint.manager(str(multi)).all_steps() == [step]
  _, results = _train_in_process(multi, step + 2)
  assert results["resumed_from"] == step


def _one_line_error(returncode, stderr):
  assert returncode == 1, stderr[-3000:]
  last = stderr.strip().splitlines()[-1]
  assert last.startswith("error: "), stderr[-3000:]
  return last


def test_batch_not_divisible_by_global_devices_fails_on_every_process(tmp_path):
  # Settings from JAX_* variables instead of flags, as a launcher may give them.
  port = distributed.free_port()
  processes = [
      _start(tmp_path, "--batch_size=3", "--distributed_timeout=20",
             env={"JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}",
                  "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": str(i)})
      for i in range(2)]
  for process in processes:
    line = _one_line_error(*_finish(process, timeout=60))
    assert "config.batch_size=3 is not divisible by the 2 data-parallel devices" in line
  assert not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize("flags, message", [
    (["--process_id=1", "--distributed_timeout=2"], "no coordinator answered within 2s"),
    (["--process_id=2"], "--process_id=2 must be below --num_processes=2"),
])
def test_bad_cluster_set_up_fails_fast_with_one_line(tmp_path, flags, message):
  start = time.monotonic()
  process = _start(tmp_path, f"--coordinator_address=127.0.0.1:{distributed.free_port()}",
                   "--num_processes=2", *flags)
  assert message in _one_line_error(*_finish(process, timeout=60))
  assert time.monotonic() - start < 30  # imports included; JAX alone waits minutes


@pytest.mark.parametrize("settings, message", [
    (("127.0.0.1:1234", 2, None), "--process_id missing"),
    ((None, 2, 0), "--coordinator_address missing"),
    (("127.0.0.1:1234", 0, 0), "--num_processes=0 must be at least 1"),
    (("127.0.0.1:1234", 2, -1), "--process_id=-1 must be at least 0"),
    (("localhost", 2, 0), "--coordinator_address=localhost must be host:port"),
])
def test_inconsistent_settings_are_rejected_before_jax_starts(settings, message):
  with pytest.raises(InputError, match=message):
    distributed.initialize(*settings)


@pytest.mark.parametrize("settings", [(None, None, None), (None, 1, None),
                                      ("127.0.0.1:1234", 1, 0)])
def test_single_process_settings_are_a_no_op(settings):
  distributed.initialize(*settings)  # the backends already run: joining would raise

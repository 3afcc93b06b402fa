"""The shared training loop: data parallel equivalence, resume, NaN guard, freezing."""

import dataclasses
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

from seqrec import checkpoint, optim, trainer
from seqrec.errors import InputError, TrainingError
from tests.paths import REPO, xla_flags
from tests.seqrec import many_batches, tiny


def _config(workdir, **overrides):
  base = dict(workdir=str(workdir), num_steps=6, batch_size=8, log_every=1,
              eval_batch_size=16, checkpoint_every=3)
  return trainer.TrainConfig(**{**base, **overrides})


def _losses(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [r["loss"] for r in map(json.loads, f) if r["split"] == "train"]


def _flat(params):
  return {k: np.asarray(v) for k, v in traverse_util.flatten_dict(params, sep="/").items()}


def _train(workdir, **overrides):
  seqs = tiny.make_data()
  return trainer.train(tiny.make_task(), _config(workdir, **overrides), {"seq": seqs},
                       {"valid": {"seq": seqs[:20]}})


def test_eight_devices_match_one_device(tmp_path):
  assert jax.device_count() == 8
  state8, results8 = _train(tmp_path / "d8", num_devices=8)
  state1, results1 = _train(tmp_path / "d1", num_devices=1)
  assert results8["num_devices"] == 8 and results1["num_devices"] == 1
  np.testing.assert_allclose(_losses(tmp_path / "d8"), _losses(tmp_path / "d1"), atol=1e-5)
  p8, p1 = _flat(state8.params), _flat(state1.params)
  for key in p1:
    np.testing.assert_allclose(p8[key], p1[key], atol=1e-5, err_msg=key)
  for key, value in results1["valid"].items():
    assert results8["valid"][key] == pytest.approx(value, abs=1e-6), key


def _row_means(task, params, seqs):
  """Each metric of `task` averaged over every row of `seqs`, in one batch."""
  per_example = jax.device_get(jax.jit(task.evaluate)(params, {"seq": seqs}))
  return {k: float(np.mean(v)) for k, v in per_example.items()}


def test_evaluation_is_the_mean_of_every_row_over_many_batches(tmp_path):
  # 45 rows in batches of 16 on 8 devices: three steps carry the running totals, the
  # last one filled up with masked rows.
  task, seqs = tiny.make_task(), tiny.make_data(num_rows=45)
  params = task.init(jax.random.key(0))
  loop = trainer.Trainer(task, _config(tmp_path, num_devices=8))
  got, want = loop.evaluate(params, {"seq": seqs}), _row_means(task, params, seqs)
  assert set(got) == set(want)
  for key, value in want.items():
    assert got[key] == pytest.approx(value, abs=1e-6), key


def test_evaluating_thousands_of_batches_on_two_devices_completes():
  result = subprocess.run(
      [sys.executable, os.path.join(REPO, "tests", "seqrec", "many_batches.py")],
      env={**os.environ, "PYTHONPATH": REPO, "XLA_FLAGS": xla_flags(2)},
      capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-2000:]
  got = json.loads(result.stdout.splitlines()[-1])
  task = many_batches.many_metrics_task()
  want = _row_means(task, task.init(jax.random.key(0)),
                    tiny.make_data(num_rows=many_batches.NUM_ROWS))
  assert len(want) == many_batches.NUM_METRICS and set(got) == set(want)
  for key, value in want.items():  # float32 sums over 2,000 batches
    assert got[key] == pytest.approx(value, rel=1e-5), key


def test_checkpoint_from_eight_devices_restores_on_one(tmp_path):
  _train(tmp_path / "run", num_devices=8, num_steps=6)
  resumed, results = _train(tmp_path / "run", num_devices=1, num_steps=9)
  straight, _ = _train(tmp_path / "straight", num_devices=1, num_steps=9)
  assert results["resumed_from"] == 6
  assert all(len(x.sharding.device_set) == 1 for x in jax.tree.leaves(resumed.params))
  ref = _flat(straight.params)
  for key, value in _flat(resumed.params).items():
    np.testing.assert_allclose(value, ref[key], atol=1e-5, err_msg=key)


def _run_tiny(workdir, num_steps, checkpoint_every):
  env = {**os.environ, "PYTHONPATH": REPO,
         "XLA_FLAGS": xla_flags(2)}
  return subprocess.Popen(
      [sys.executable, os.path.join(REPO, "tests", "seqrec", "tiny.py"), str(workdir),
       str(num_steps), str(checkpoint_every)],
      env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_killed_run_resumes_to_identical_parameters(tmp_path):
  num_steps, every = 1500, 25
  straight = _run_tiny(tmp_path / "straight", num_steps, every)
  killed = _run_tiny(tmp_path / "killed", num_steps, every)
  first = tmp_path / "killed" / "checkpoints" / str(2 * every)
  deadline = time.time() + 120
  while not first.exists() and killed.poll() is None and time.time() < deadline:
    time.sleep(0.05)
  killed.send_signal(signal.SIGKILL)
  killed.wait()
  assert killed.returncode == -signal.SIGKILL
  saved = checkpoint.manager(str(tmp_path / "killed")).latest_step()
  assert saved is not None and saved < num_steps, "the run was not killed part-way"
  resumed = _run_tiny(tmp_path / "killed", num_steps, every)
  assert resumed.wait(timeout=300) == 0, resumed.stderr.read().decode()[-2000:]
  assert straight.wait(timeout=300) == 0, straight.stderr.read().decode()[-2000:]
  a = np.load(tmp_path / "straight" / "final_params.npz")
  b = np.load(tmp_path / "killed" / "final_params.npz")
  assert sorted(a.files) == sorted(b.files)
  for key in a.files:
    np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def _run_tiny_binary(workdir, num_steps):
  """tiny_binary.py through `launch.common.run`, on 2 devices, no periodic checkpoints."""
  env = {**os.environ, "PYTHONPATH": REPO,
         "XLA_FLAGS": xla_flags(2)}
  return subprocess.Popen(
      [sys.executable, os.path.join(REPO, "tests", "seqrec", "tiny_binary.py"),
       f"--workdir={workdir}", f"--num_steps={num_steps}", "--batch_size=8",
       "--checkpoint_every=0", "--log_every=1",
       "--compilation_cache=" + os.path.join(REPO, ".jax_cache")],
      env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait_for_train_steps(workdir, count, process, timeout=120):
  """Waits until process 0 has logged `count` training steps in metrics.jsonl."""
  path, deadline = os.path.join(workdir, "metrics.jsonl"), time.time() + timeout
  while time.time() < deadline and process.poll() is None:
    if os.path.exists(path):
      with open(path) as f:
        if sum('"split": "train"' in line for line in f) >= count:
          return
    time.sleep(0.05)
  raise AssertionError(f"{workdir} logged fewer than {count} steps")


def test_sigterm_saves_the_current_step_and_the_same_command_resumes(tmp_path):
  run = tmp_path / "preempted"
  preempted = _run_tiny_binary(run, num_steps=100_000)
  _wait_for_train_steps(run, 20, preempted)
  preempted.send_signal(signal.SIGTERM)
  _, stderr = preempted.communicate(timeout=120)
  assert preempted.returncode == 143, stderr[-3000:]
  last = stderr.strip().splitlines()[-1]
  assert last.startswith("stopped: preempted (SIGTERM or SIGINT) after step "), stderr[-3000:]
  step = int(last.split("after step ")[1].split("/")[0])
  # --checkpoint_every=0 writes only at the end: this checkpoint is the preemption's.
  assert checkpoint.manager(str(run)).all_steps() == [step]
  with open(run / "metrics.jsonl") as f:
    logged = [r["step"] for r in map(json.loads, f) if r["split"] == "train"]
  assert logged == list(range(1, step + 1))

  # The same command (here with a reachable end) resumes from that step and
  # ends exactly where a run that was never stopped ends.
  resumed = _run_tiny_binary(run, num_steps=step + 5)
  straight = _run_tiny_binary(tmp_path / "straight", num_steps=step + 5)
  for process in (resumed, straight):
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr[-3000:]
  with open(run / "results.json") as f:
    assert json.load(f)["resumed_from"] == step
  a = np.load(tmp_path / "straight" / "params_0.npz")
  b = np.load(run / "params_0.npz")
  assert sorted(a.files) == sorted(b.files)
  for key in a.files:
    np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_nan_loss_stops_with_one_line_and_keeps_last_good_checkpoint(tmp_path):
  _train(tmp_path, num_steps=4, checkpoint_every=4)
  good = checkpoint.restore_params(str(tmp_path))
  task = tiny.make_task()
  poisoned = trainer.Task(
      init=task.init, evaluate=task.evaluate,
      loss=lambda p, b, r: (task.loss(p, b, r)[0] * b["scale"][0], {}))
  seqs = tiny.make_data()
  data = {"seq": seqs, "scale": np.full(len(seqs), np.nan, np.float32)}
  with pytest.raises(TrainingError) as error:
    trainer.train(poisoned, _config(tmp_path, num_steps=8, checkpoint_every=1), data, {})
  message = str(error.value)
  assert "\n" not in message
  assert "at step 5" in message and "last checkpoint, all parameters finite: step 4" in message
  assert checkpoint.manager(str(tmp_path)).all_steps() == [4]
  kept = checkpoint.restore_params(str(tmp_path))
  for key, value in _flat(good).items():
    np.testing.assert_array_equal(_flat(kept)[key], value)


def test_frozen_parameters_do_not_move_and_have_no_optimizer_state(tmp_path):
  task = tiny.make_task()
  frozen_task = trainer.Task(init=task.init, loss=task.loss, evaluate=task.evaluate,
                             trainable=(r"params/output/.*",))
  seqs = tiny.make_data()
  state, results = trainer.train(frozen_task, _config(tmp_path), {"seq": seqs}, {})
  init = _flat(task.init(jax.random.key(0)))
  final = _flat(state.params)
  for key in init:
    if key.startswith("params/output/"):
      assert not np.array_equal(init[key], final[key]), key
    else:
      np.testing.assert_array_equal(init[key], final[key], err_msg=key)
  trainable_size = sum(v.size for k, v in init.items() if k.startswith("params/output/"))
  assert results["trainable_params"] == trainable_size
  # Adam keeps two moments for trainable leaves only (plus scalar counts).
  assert optim.count(state.opt_state) == 2 * trainable_size + 1


@pytest.mark.parametrize("overrides, message", [
    (dict(batch_size=12), "config.batch_size=12 is not divisible by the 8"),
    (dict(batch_size=128), "config.batch_size=128 is larger than the 64 training sequences"),
    (dict(model_parallel=3), "config.model_parallel=3 must divide the device count 8"),
    (dict(row_shards=3), "config.row_shards=3: must be at least 1 and divide "
                         "config.batch_size=8"),
])
def test_bad_settings_fail_with_one_line(tmp_path, overrides, message):
  with pytest.raises(InputError, match=message):
    _train(tmp_path, **overrides)


def test_trainable_patterns_matching_nothing_are_an_error(tmp_path):
  task = tiny.make_task()
  bad = trainer.Task(init=task.init, loss=task.loss, evaluate=task.evaluate,
                     trainable=("params/nothing/.*",))
  with pytest.raises(InputError, match="no parameter matches"):
    trainer.train(bad, _config(tmp_path), {"seq": tiny.make_data()}, {})


def test_select_metric_reports_the_best_validation_step(tmp_path):
  _, results = _train(tmp_path, num_steps=6, eval_every=2, select_metric="mrr@20")
  with open(tmp_path / "metrics.jsonl") as f:
    valid = [r for r in map(json.loads, f) if r["split"] == "valid"]
  assert [r["step"] for r in valid] == [2, 4, 6]
  best = max(valid, key=lambda r: r["mrr@20"])
  assert results["evaluated_step"] == best["step"]
  assert results["valid"]["mrr@20"] == pytest.approx(best["mrr@20"], abs=1e-6)


def test_eval_all_splits_records_learning_curves_without_changing_selection(tmp_path):
  seqs = tiny.make_data()
  eval_data = {"valid": {"seq": seqs[:20]}, "test": {"seq": seqs[20:40]}}
  trainer.train(tiny.make_task(), _config(tmp_path, eval_every=2, eval_all_splits=True),
                {"seq": seqs}, eval_data)
  with open(tmp_path / "metrics.jsonl") as f:
    records = [json.loads(line) for line in f]
  for split in ("valid", "test"):
    curve = [r for r in records if r["split"] == split]
    assert [r["step"] for r in curve] == [2, 4, 6]
    assert all(r["train_seconds"] >= 0 for r in curve)


def test_warm_start_runs_once_for_a_fresh_run_and_never_on_resume(tmp_path):
  task = tiny.make_task()
  calls = []

  def warm_start(params):
    calls.append(1)
    return jax.tree.map(lambda x: np.full_like(x, 0.5), params)

  warm = trainer.Task(init=task.init, loss=task.loss, evaluate=task.evaluate,
                      warm_start=warm_start)
  data = {"seq": tiny.make_data()}
  state, _ = trainer.train(warm, _config(tmp_path, num_steps=1, learning_rate=1e-9),
                           data, {})
  assert calls == [1]
  leaves = jax.tree.leaves(state.params)  # placed on the parameter shardings
  assert all(np.allclose(np.asarray(x), 0.5, atol=1e-6) for x in leaves)
  assert all(len(x.sharding.device_set) == 8 for x in leaves)
  trainer.train(warm, _config(tmp_path, num_steps=3), data, {})
  assert calls == [1]  # resumed from the checkpoint: no warm start


def test_select_metric_the_task_does_not_report_stops_before_training(tmp_path):
  with pytest.raises(InputError, match=r"config.select_metric='accuracy' is not a metric"):
    _train(tmp_path, select_metric="accuracy")
  assert not os.path.exists(tmp_path / "checkpoints")


def test_a_non_finite_update_never_reaches_a_checkpoint(tmp_path):
  _train(tmp_path, num_steps=2, checkpoint_every=1)
  with pytest.raises(TrainingError, match=r"the update made parameters non-finite at step 3; "
                                          r"training stopped \(last checkpoint, all "
                                          r"parameters finite: step 2"):
    _train(tmp_path, num_steps=6, checkpoint_every=1, learning_rate=float("inf"))
  assert checkpoint.manager(str(tmp_path)).all_steps() == [1, 2]
  params = checkpoint.restore_params(str(tmp_path))
  assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(params))
  # The same loop with a sane rate trains on from there.
  _, results = _train(tmp_path, num_steps=4, checkpoint_every=1)
  assert results["resumed_from"] == 2 and results["steps"] == 4


def test_sigint_saves_and_stops_like_sigterm(tmp_path):
  run = _run_tiny_binary(tmp_path, num_steps=100_000)
  _wait_for_train_steps(tmp_path, 10, run)
  run.send_signal(signal.SIGINT)
  _, stderr = run.communicate(timeout=120)
  assert run.returncode == 143, stderr[-3000:]
  assert "stopped: preempted (SIGTERM or SIGINT) after step" in stderr
  assert checkpoint.manager(str(tmp_path)).all_steps()
  leftovers = [d for d in os.listdir(tmp_path / "checkpoints") if "tmp" in d]
  assert not leftovers


def test_a_resumed_run_logs_every_step_once(tmp_path):
  lines = [{"step": s, "split": "train", "loss": 1.0} for s in range(1, 7)]
  lines.append({"step": 6, "split": "final_valid", "mrr@5": 0.1})
  (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
  writer = trainer.MetricWriter(str(tmp_path), resumed_from=4)
  writer.write(5, "train", {"loss": 0.5})
  writer.close()
  with open(tmp_path / "metrics.jsonl") as f:
    steps = [(r["step"], r["split"]) for r in map(json.loads, f)]
  assert steps == [(1, "train"), (2, "train"), (3, "train"), (4, "train"), (5, "train")]


def test_timings_cover_the_whole_run_after_a_resume(tmp_path):
  _, first = _train(tmp_path)
  assert first["train_seconds"] > 0 and first["examples_per_second"] > 0
  # Resumed at the final step: nothing left to train, the same totals.
  _, again = _train(tmp_path)
  assert again["resumed_from"] == 6
  for key in ("train_seconds", "compile_seconds", "examples_per_second", "final_train"):
    assert again[key] == first[key], key
  # A longer schedule adds its own time to the earlier run's.
  _, longer = _train(tmp_path, num_steps=9)
  assert longer["train_seconds"] > first["train_seconds"]
  assert longer["compile_seconds"] > first["compile_seconds"]
  assert longer["final_train"]["loss"] != first["final_train"]["loss"]


def test_row_shards_batches_take_equal_parts_of_every_shard_once_per_epoch():
  rows, size, shards, seed = 103, 12, 4, 5
  bounds = trainer.shard_bounds(rows, shards)
  steps = trainer.steps_per_epoch(rows, size, shards)
  assert steps == min(np.diff(bounds)) // (size // shards) == 8
  batches = [trainer.batch_indices(rows, size, seed, step, shards) for step in range(steps)]
  epoch = np.concatenate(batches)
  assert len(np.unique(epoch)) == len(epoch)  # no row twice in an epoch
  for batch in batches:
    for shard, part in enumerate(batch.reshape(shards, -1)):
      assert np.all((bounds[shard] <= part) & (part < bounds[shard + 1]))
  assert not np.array_equal(batches[0], trainer.batch_indices(rows, size, seed, steps, shards))
  # One shard is the plain per-epoch permutation, as before shards existed.
  np.testing.assert_array_equal(trainer.batch_indices(rows, size, seed, 9),
                                np.random.default_rng([seed, 1]).permutation(rows)[12:24])


def test_row_positions_count_every_row_as_the_task_does():
  seqs = tiny.make_data(num_rows=70_000)  # more than one chunk of counted rows
  task = tiny.make_task(positions=True)
  for shards in (1, 2):
    loop = trainer.Trainer(task, _config("", row_shards=shards, num_devices=2))
    np.testing.assert_array_equal(loop.row_positions({"seq": seqs}),
                                  task.loss_positions({"seq": seqs})[0])


def test_row_shards_with_length_buckets_is_refused_before_any_work():
  task = dataclasses.replace(tiny.make_task(), padding_invariant=True)
  config = _config("", row_shards=2, bucket_lengths=True)
  with pytest.raises(InputError, match=r"^config.row_shards=2 with config.bucket_lengths=True"):
    trainer.check_task(task, config)
  trainer.check_task(task, dataclasses.replace(config, row_shards=1))  # either alone runs


def test_patience_stops_after_validations_without_a_better_value_and_stays_stopped(tmp_path):
  # Gradient ascent: every validation after the first is worse.
  settings = dict(num_steps=40, eval_every=1, select_metric="mrr@20", learning_rate=-0.5,
                  patience=2)
  _, results = _train(tmp_path, **settings)
  with open(tmp_path / "metrics.jsonl") as f:
    valid = [r for r in map(json.loads, f) if r["split"] == "valid"]
  best = max(valid, key=lambda r: r["mrr@20"])["step"]
  assert [r["step"] for r in valid][-1] == best + 2  # two validations without a better one
  assert results["steps"] == best + 2 and results["stopped_early"]
  assert results["evaluated_step"] == best
  _, rerun = _train(tmp_path, **{**settings, "num_steps": 60})  # even a longer schedule
  assert rerun["resumed_from"] == rerun["steps"] == best + 2
  assert rerun["valid"] == results["valid"]
  _, plain = _train(tmp_path / "plain", **{**settings, "patience": 0, "num_steps": 8})
  assert plain["steps"] == 8 and not plain["stopped_early"]


def test_patience_without_validation_is_refused():
  with pytest.raises(InputError, match=r"^config.patience=3: needs config.select_metric"):
    trainer.check_task(tiny.make_task(), _config("", patience=3, eval_every=0,
                                                 select_metric="mrr@20"))

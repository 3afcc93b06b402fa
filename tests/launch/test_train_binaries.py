"""launch.train end to end, as a user runs it, on the configs' tiny presets."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from configs import cmnrec
from seqrec import experiment, sweep
from seqrec.errors import InputError
from tests.paths import REPO, xla_flags


def run_train(*flags: str, devices: int = 2) -> subprocess.CompletedProcess:
  env = {**os.environ, "XLA_FLAGS": xla_flags(devices)}
  return subprocess.run([sys.executable, "-m", "launch.train", *flags], cwd=REPO,
                        env=env, capture_output=True, text=True, timeout=600)


def read_json(path) -> dict:
  with open(path) as f:
    return json.load(f)


def test_cmnrec_writes_config_items_and_results(tmp_path):
  result = run_train("--config=configs/cmnrec.py:tiny", "--config.model.kind=tsc",
                     f"--workdir={tmp_path}")
  assert result.returncode == 0, result.stderr
  results = read_json(tmp_path / "results.json")
  for split in ("valid", "test"):
    for key in ("mrr@5", "hr@5", "ndcg@5", "mrr@20", "hr@20", "ndcg@20"):
      assert 0.0 <= results[split][key] <= 1.0
  config = read_json(tmp_path / "config.json")
  assert config == results["config"]
  assert config["family"] == "cmnrec" and config["model"]["memory_slots"] == 3
  assert results["steps"] == 4 and results["num_devices"] == 2
  assert results["train_seconds"] > 0 and results["examples_per_second"] > 0
  items = np.load(tmp_path / "items.npy")
  assert items[0] == "" and len(items) == results["data"]["items"] + 1
  assert "cmnrec: test mrr@10" in result.stdout


def test_a_different_config_is_refused_and_a_longer_schedule_continues(tmp_path):
  base = ("--config=configs/cmnrec.py:tiny", "--config.model.kind=gru4rec",
          f"--workdir={tmp_path}")
  assert run_train(*base).returncode == 0
  before = read_json(tmp_path / "results.json")
  refused = run_train(*base, "--config.learning_rate=0.01")
  assert refused.returncode == 1
  assert refused.stderr.strip().splitlines()[-1] == (
      f"error: --workdir={tmp_path} holds another experiment (learning_rate: 0.001 -> "
      "0.01); use a new --workdir")
  assert read_json(tmp_path / "results.json") == before  # nothing overwritten
  shorter = run_train(*base, "--config.num_steps=2")
  assert shorter.returncode == 1 and "num_steps: 4 -> 2" in shorter.stderr
  longer = run_train(*base, "--config.num_steps=6")
  assert longer.returncode == 0, longer.stderr[-3000:]
  results = read_json(tmp_path / "results.json")
  assert results["resumed_from"] == 4 and results["steps"] == 6
  assert read_json(tmp_path / "config.json")["num_steps"] == 6


def test_pretrain_then_finetune_every_method(tmp_path):
  pretrained = tmp_path / "pretrain"
  result = run_train("--config=configs/nextitnet.py:tiny", f"--workdir={pretrained}")
  assert result.returncode == 0, result.stderr
  assert {"mrr@10", "hr@10", "ndcg@10", "mrr@20"} <= set(
      read_json(pretrained / "results.json")["test"])
  counts = {}
  for method in ("peterrec", "finecls"):
    workdir = tmp_path / method
    result = run_train("--config=configs/peterrec.py:tiny", f"--config.pretrained={pretrained}",
                       f"--config.method={method}", "--config.task=crossdomain",
                       "--config.protocol.exclude_seen=True",
                       "--config.protocol.sampled=uniform:3", f"--workdir={workdir}")
    assert result.returncode == 0, result.stderr
    results = read_json(workdir / "results.json")
    test = results["test"]
    assert {"mrr@5", "hr@10", "ndcg@10", "uniform3_hr@5", "unseen_mrr@10"} <= set(test)
    # Masking seen items only removes rivals; 3 negatives are fewer than all items.
    assert test["unseen_hr@10"] >= test["hr@10"] and test["uniform3_hr@5"] >= test["hr@5"]
    counts[method] = results["trainable_params"]
    assert results["optimizer_state_bytes"] > 0
    assert (results["patch"] == "serial") == (method == "peterrec")
    # The data came from the pretraining run's config.
    assert read_json(workdir / "config.json")["dataset"] == "synthetic"
  assert counts["finecls"] < counts["peterrec"]
  # The profile task on the same backbone.
  result = run_train("--config=configs/peterrec.py:tiny", f"--config.pretrained={pretrained}",
                     "--config.task=gender", f"--workdir={tmp_path / 'gender'}")
  assert result.returncode == 0, result.stderr
  assert "peterrec: test accuracy" in result.stdout


def _csv(path, prefix: str) -> str:
  """Source items PREFIX0..PREFIX19 and five target items per user."""
  rng = np.random.default_rng(0)
  lines = [",".join(f"{prefix}{i}" for i in rng.integers(0, 20, 12)) + ",," +
           ",".join(f"t{i}" for i in rng.integers(0, 5, 3)) for _ in range(40)]
  path.write_text("\n".join(lines) + "\n")
  return f"csv:{path}"


def test_finetune_on_other_items_of_the_same_count_stops(tmp_path):
  pretrained = tmp_path / "pretrain"
  result = run_train("--config=configs/nextitnet.py:tiny",
                     f"--config.dataset={_csv(tmp_path / 'a.csv', 'a')}",
                     f"--workdir={pretrained}")
  assert result.returncode == 0, result.stderr
  result = run_train("--config=configs/peterrec.py:tiny", f"--config.pretrained={pretrained}",
                     f"--config.dataset={_csv(tmp_path / 'b.csv', 'b')}",
                     "--config.task=crossdomain", f"--workdir={tmp_path / 'ft'}")
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1] == (
      f"error: config.pretrained={pretrained} was pretrained on other items than "
      f"config.dataset=csv:{tmp_path / 'b.csv'} gives (its items.npy differs)")


@pytest.mark.parametrize("overrides, message", [
    ({"max_len": 1}, "config.max_len=1: must be at least 2"),
    ({"model.memory_slots": 20}, "config.model.memory_slots=20: must be in"),
    ({"dataset": "nonsense"}, "config.dataset=nonsense is not a known dataset"),
    ({"batch_size": 0}, "config.batch_size=0: must be at least 1"),
    ({"dataset": "recbole:/nonexistent/dir"}, "/nonexistent/dir"),
    ({"batch_size": 3}, "config.batch_size=3 is not divisible"),
    ({"select_metric": "accuracy"},
     "config.select_metric='accuracy' is not a metric of this task"),
    ({"protocol.sampled": "uniform"}, "config.protocol.sampled='uniform': each entry"),
    ({"split": "global_time", "time_cuts": (0.9, 0.5)},
     "config.time_cuts=(0.9, 0.5): must be two quantiles"),
])
def test_bad_settings_fail_before_any_work(tmp_path, overrides, message):
  config = sweep.apply(cmnrec.get_config("tiny"), tuple(overrides.items()), seed=0)
  with pytest.raises(InputError, match=re.escape(message)):
    experiment.run(config, str(tmp_path))
  assert not os.path.exists(tmp_path / "checkpoints")


@pytest.mark.parametrize("flags, message", [
    (["--config.family=bert4rec"], "config.family='bert4rec': must be one of"),
    (["--config=configs/peterrec.py:tiny", "--config.pretrained=/nonexistent"],
     "config.pretrained=/nonexistent: no config.json"),
    (["--config.no_such_key=1"], "--config.no_such_key: configs/cmnrec.py:tiny has no "
     "key 'no_such_key'"),
])
def test_bad_settings_are_one_line_from_the_binary(tmp_path, flags, message):
  if not flags[0].startswith("--config="):
    flags = ["--config=configs/cmnrec.py:tiny", *flags]
  result = run_train(f"--workdir={tmp_path}", *flags)
  assert result.returncode == 1
  assert message in result.stderr.strip().splitlines()[-1]
  assert "Traceback" not in result.stderr
  assert not os.path.exists(tmp_path / "checkpoints")


def test_finetune_refuses_an_unfinished_pretraining_run(tmp_path):
  pretrained = tmp_path / "pretrain"
  assert run_train("--config=configs/nextitnet.py:tiny", f"--workdir={pretrained}"
                   ).returncode == 0
  os.remove(pretrained / "results.json")  # as if killed before the end
  flags = ("--config=configs/peterrec.py:tiny", f"--config.pretrained={pretrained}",
           f"--workdir={tmp_path / 'ft'}")
  result = run_train(*flags)
  assert result.returncode == 1 and "has not finished" in result.stderr
  assert run_train(*flags, "--config.allow_unfinished=True").returncode == 0


def test_sweep_takes_its_grid_from_the_config_files_tuning(tmp_path):
  config = tmp_path / "tuned.py"
  config.write_text(
      "from configs import cmnrec\n\n"
      "def get_config(arg=None):\n"
      "  c = cmnrec.get_config(arg)\n"
      "  c.model.kind, c.num_steps = 'gru4rec', 2\n"
      "  return c\n\n"
      "def tuning(c):\n"
      "  return [(('learning_rate', 0.001),), (('learning_rate', 0.03),)]\n")
  env = {**os.environ, "XLA_FLAGS": xla_flags(2)}
  sweep_flags = (f"--config={config}:tiny", "--grid=@tuning", "--seeds=0",
                 f"--workdir={tmp_path / 'runs'}")
  result = subprocess.run([sys.executable, "-m", "launch.sweep", *sweep_flags], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr
  table = read_json(tmp_path / "runs" / "sweep.json")
  assert [row["point"] for row in table["rows"]] == [{"learning_rate": 0.001},
                                                     {"learning_rate": 0.03}]
  assert table["selected"] in [row["point"] for row in table["rows"]]
  assert table["select"] == "ndcg@10" and result.stdout.count(" * |") == 1
  config.write_text(config.read_text().split("def tuning")[0])
  missing = subprocess.run([sys.executable, "-m", "launch.sweep", *sweep_flags[:3],
                            f"--workdir={tmp_path / 'none'}"], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=600)
  assert missing.returncode == 1 and not (tmp_path / "none").exists()
  assert missing.stderr.strip().splitlines()[-1] == (
      f"error: --grid=@tuning: {config} defines no tuning(config)")

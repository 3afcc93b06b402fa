"""The training binaries end to end, as a user runs them, on tiny settings."""

import json
import os
import subprocess
import sys

import pytest

from tests.paths import REPO

TINY_DATA = ("--synthetic_users=64", "--synthetic_items=60",
             "--synthetic_target_items=20", "--synthetic_length=15")


def _run(binary: str, *flags: str) -> subprocess.CompletedProcess:
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
  return subprocess.run([sys.executable, "-m", f"launch.{binary}", *flags], cwd=REPO,
                        env=env, capture_output=True, text=True, timeout=600)


def _results(workdir) -> dict:
  with open(os.path.join(workdir, "results.json")) as f:
    return json.load(f)


def test_train_mnr_writes_results(tmp_path):
  result = _run("train_mnr", "--model=tsc", "--memory_slots=3", "--embed_dim=8",
                "--hidden=8", "--slot_width=8", "--read_heads=2", "--attention_dim=4",
                "--max_len=12", "--batch_size=16", "--num_steps=4", "--eval_every=2",
                f"--workdir={tmp_path}", *TINY_DATA)
  assert result.returncode == 0, result.stderr[-3000:]
  results = _results(tmp_path)
  for split in ("valid", "test"):
    for key in ("mrr@5", "hr@5", "ndcg@5", "mrr@20", "hr@20", "ndcg@20"):
      assert 0.0 <= results[split][key] <= 1.0
  assert results["flags"]["model"] == "tsc" and results["flags"]["memory_slots"] == 3
  assert results["flags"]["embed_dim"] == 8 and results["flags"]["read_heads"] == 2
  assert results["steps"] == 4 and results["num_devices"] == 2
  assert results["train_seconds"] > 0 and results["examples_per_second"] > 0
  assert "tsc: test mrr@5" in result.stdout


def test_pretrain_then_finetune_every_method(tmp_path):
  pretrained = tmp_path / "pretrain"
  result = _run("pretrain", "--mode=causal", "--channels=8", "--dilations=1,2",
                "--max_len=10", "--batch_size=16", "--num_steps=3",
                f"--workdir={pretrained}", *TINY_DATA)
  assert result.returncode == 0, result.stderr[-3000:]
  assert {"mrr@10", "hr@10", "ndcg@10", "mrr@20"} <= set(_results(pretrained)["test"])
  counts = {}
  for method in ("peterrec", "finecls", "scratch"):
    workdir = tmp_path / method
    result = _run("finetune", f"--pretrained={pretrained}", f"--method={method}",
                  "--task=crossdomain", "--max_len=10", "--batch_size=16",
                  "--num_steps=2", f"--workdir={workdir}", *TINY_DATA)
    assert result.returncode == 0, result.stderr[-3000:]
    results = _results(workdir)
    assert {"mrr@5", "hr@10", "ndcg@10", "sampled_hr@5", "sampled_mrr@5"} <= set(
        results["test"])
    counts[method] = results["trainable_params"]
    assert results["optimizer_state_bytes"] > 0
    assert (results["flags"]["patch"] == "serial") == (method == "peterrec")
  assert counts["finecls"] < counts["peterrec"] < counts["scratch"]


@pytest.mark.parametrize("binary, flags, message", [
    ("train_mnr", ["--max_len=1"], "--max_len must be at least 2"),
    ("train_mnr", ["--memory_slots=20", "--max_len=12"], "--memory_slots must be in"),
    ("train_mnr", ["--dataset=nonsense"], "--dataset must be one of"),
    ("train_mnr", ["--batch_size=0"], "--batch_size must be at least 1"),
    ("train_mnr", ["--dataset=recbole:/nonexistent/dir"], "/nonexistent/dir"),
    ("train_mnr", ["--batch_size=3", "--num_steps=1"], "--batch_size=3 is not divisible"),
    ("finetune", ["--pretrained=/nonexistent"], "no pretrain_config.json"),
])
def test_bad_flags_fail_with_a_clear_error(tmp_path, binary, flags, message):
  result = _run(binary, f"--workdir={tmp_path}", *TINY_DATA, *flags)
  assert result.returncode != 0
  assert message in result.stderr
  assert "Traceback" not in result.stderr

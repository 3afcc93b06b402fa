"""--model_parallel and --dtype through the binaries, and the scale benchmark."""

import json
import os

from tests.launch.test_train_binaries import TINY_DATA, _results, _run

SPLIT = ("--model_parallel=2", "--dtype=bfloat16")


def test_pretrain_then_finetune_with_split_tables_in_bfloat16(tmp_path):
  pretrained = tmp_path / "pretrain"
  result = _run("pretrain", "--channels=8", "--dilations=1,2", "--max_len=10",
                "--batch_size=16", "--num_steps=3", "--loss=sampled",
                f"--workdir={pretrained}", *SPLIT, *TINY_DATA)
  assert result.returncode == 0, result.stderr[-3000:]
  with open(pretrained / "pretrain_config.json") as f:
    model = json.load(f)["model"]
  assert model["vocab_multiple"] == 2 and model["dtype"] == "bfloat16"
  assert _results(pretrained)["num_devices"] == 2
  result = _run("finetune", f"--pretrained={pretrained}", "--task=crossdomain",
                "--max_len=10", "--batch_size=16", "--num_steps=2",
                f"--workdir={tmp_path / 'finetune'}", *SPLIT, *TINY_DATA)
  assert result.returncode == 0, result.stderr[-3000:]
  assert 0.0 <= _results(tmp_path / "finetune")["test"]["ndcg@10"] <= 1.0


def test_train_mnr_with_split_tables(tmp_path):
  result = _run("train_mnr", "--model=gru4rec", "--embed_dim=8", "--hidden=8",
                "--max_len=12", "--batch_size=16", "--num_steps=2", "--loss=sampled",
                f"--workdir={tmp_path}", *SPLIT, *TINY_DATA)
  assert result.returncode == 0, result.stderr[-3000:]
  assert _results(tmp_path)["flags"]["model_parallel"] == 2


def test_bench_scale_writes_json_and_plot(tmp_path):
  result = _run("bench_scale", f"--out={tmp_path}", "--catalogs=100", "--devices=1,2",
                "--channels=8", "--dilations=1", "--num_negatives=8", "--batch_size=4",
                "--seq_len=6", "--repeats=1")
  assert result.returncode == 0, result.stderr[-3000:]
  with open(tmp_path / "bench_scale.json") as f:
    records = json.load(f)["results"]
  assert [(r["num_devices"], r["model_parallel"]) for r in records] == [
      (1, 1), (2, 1), (2, 2)]
  replicated, split = records[1], records[2]
  assert split["item_table_param_mb"] < 0.6 * replicated["item_table_param_mb"]
  assert all(r["step_ms"] > 0 for r in records)
  assert os.path.getsize(tmp_path / "bench_scale.png") > 0

"""config.model_parallel and config.dtype through launch.train, and the scale benchmark."""

import json
import os
import subprocess
import sys

from tests.launch.test_train_binaries import read_json, run_train
from tests.paths import REPO, xla_flags

SPLIT = ("--config.model_parallel=2", "--config.dtype=bfloat16")


def test_pretrain_then_finetune_with_split_tables_in_bfloat16(tmp_path):
  pretrained = tmp_path / "pretrain"
  result = run_train("--config=configs/nextitnet.py:tiny", "--config.num_steps=3",
                     "--config.loss=sampled", f"--workdir={pretrained}", *SPLIT)
  assert result.returncode == 0, result.stderr[-3000:]
  config = read_json(pretrained / "config.json")
  assert config["model_parallel"] == 2 and config["dtype"] == "bfloat16"
  assert read_json(pretrained / "results.json")["num_devices"] == 2
  result = run_train("--config=configs/peterrec.py:tiny", f"--config.pretrained={pretrained}",
                     "--config.task=crossdomain", "--config.num_steps=2",
                     f"--workdir={tmp_path / 'finetune'}", *SPLIT)
  assert result.returncode == 0, result.stderr[-3000:]
  assert 0.0 <= read_json(tmp_path / "finetune" / "results.json")["test"]["ndcg@10"] <= 1.0


def test_cmnrec_with_split_tables(tmp_path):
  result = run_train("--config=configs/cmnrec.py:tiny", "--config.model.kind=gru4rec",
                     "--config.num_steps=2", "--config.loss=sampled",
                     f"--workdir={tmp_path}", *SPLIT)
  assert result.returncode == 0, result.stderr[-3000:]
  assert read_json(tmp_path / "results.json")["config"]["model_parallel"] == 2


def test_bench_scale_writes_json_and_plot(tmp_path):
  result = subprocess.run(
      [sys.executable, "-m", "launch.bench_scale", f"--out={tmp_path}", "--catalogs=100",
       "--devices=1,2", "--channels=8", "--dilations=1", "--num_negatives=8",
       "--batch_size=4", "--seq_len=6", "--repeats=1"],
      cwd=REPO, capture_output=True, text=True, timeout=600,
      env={**os.environ, "XLA_FLAGS": xla_flags(2)})
  assert result.returncode == 0, result.stderr[-3000:]
  with open(tmp_path / "bench_scale.json") as f:
    records = json.load(f)["results"]
  assert [(r["num_devices"], r["model_parallel"]) for r in records] == [
      (1, 1), (2, 1), (2, 2)]
  replicated, split = records[1], records[2]
  assert split["item_table_param_mb"] < 0.6 * replicated["item_table_param_mb"]
  assert all(r["step_ms"] > 0 for r in records)
  assert os.path.getsize(tmp_path / "bench_scale.png") > 0

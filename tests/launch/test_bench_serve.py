"""launch.bench_serve: a tiny end-to-end run writes its JSON and plot."""

import json
import os
import subprocess
import sys

from tests.paths import REPO, xla_flags


def test_bench_serve_writes_json_and_plot(tmp_path):
  result = subprocess.run(
      [sys.executable, "-m", "launch.bench_serve", f"--out={tmp_path}", "--catalogs=500",
       "--devices=1,2", "--tasks=1,4", "--users=32", "--batch_size=16", "--top_k=10",
       "--repeats=1"],
      cwd=REPO, capture_output=True, text=True, timeout=600,
      env={**os.environ, "XLA_FLAGS": xla_flags(2)})
  assert result.returncode == 0, result.stderr[-3000:]
  with open(tmp_path / "bench_serve.json") as f:
    report = json.load(f)
  assert [(r["num_devices"], r["model_parallel"], r["mode"]) for r in report["recommend"]] == [
      (1, 1, "streamed"), (1, 1, "at_once"), (2, 1, "streamed"), (2, 2, "streamed")]
  assert all(r["users_per_second"] > 0 for r in report["recommend"])
  one, four = report["tasks"]
  assert one["bytes_held"] == one["bytes_fineall"]
  assert four["bytes_held"] == four["bytes_backbone_plus_patches"] < four["bytes_fineall"]
  assert os.path.getsize(tmp_path / "bench_serve.png") > 0

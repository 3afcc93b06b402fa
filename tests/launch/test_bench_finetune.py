"""launch.bench_finetune: tiny end-to-end run, and its settings checks (peterrec_jax.benchmark)."""

import json
import os
import subprocess
import sys

import pytest

from peterrec_jax import benchmark as bench_finetune
from seqrec.benchmark import XLA_MEMORY
from seqrec.errors import InputError
from tests.paths import REPO


def test_bench_finetune_writes_json(tmp_path):
  result = subprocess.run(
      [sys.executable, "-m", "launch.bench_finetune", f"--out={tmp_path}",
       "--channels=16", "--dilations=1,2", "--num_items=500", "--num_labels=20",
       "--batch_size=8", "--max_len=10", "--repeats=2", "--warmup=1",
       "--methods=peterrec,fineall,finecls", "--patches=serial"],
      cwd=REPO, capture_output=True, text=True, timeout=600,
      env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert result.returncode == 0, result.stderr[-3000:]
  with open(tmp_path / f"{bench_finetune.NAME}.json") as f:
    report = json.load(f)
  by_method = {r["method"]: r for r in report["results"]}
  assert set(by_method) == {"peterrec", "fineall", "finecls"}
  peter, full, cls = by_method["peterrec"], by_method["fineall"], by_method["finecls"]
  assert peter["patch"] == "serial" and full["patch"] is None
  # The frozen embedding table and convolutions hold no Adam moments.
  assert peter["optimizer_state_bytes"] < 0.1 * full["optimizer_state_bytes"]
  assert cls["optimizer_state_bytes"] < peter["optimizer_state_bytes"]
  assert cls["trainable_params"] < peter["trainable_params"] < full["trainable_params"]
  assert full["trainable_params"] == full["total_params"]
  # Patched model: more parameters in all than the unpatched one.
  assert peter["total_params"] > full["total_params"]
  for r in report["results"]:
    assert r["step_ms_median"] > 0 and r["examples_per_second"] > 0
    assert r["step_ms_min"] <= r["step_ms_median"] <= r["step_ms_max"]
    assert set(r["memory"]) == {f"xla_{name}_mb" for name in XLA_MEMORY}
    assert r["memory"]["xla_argument_mb"] is None or (
        r["memory"]["xla_argument_mb"] > 0)
  assert 0 < peter["vs_fineall"]["optimizer_state_bytes"] < 0.1
  assert report["config"]["channels"] == 16 and report["settings"]["batch_size"] == 8
  assert "| peterrec (serial) |" in result.stdout


def test_settings_variants_and_checks():
  settings = bench_finetune.Settings(methods=("peterrec", "fineall"),
                                     patches=("serial", "parallel")).check()
  assert settings.variants() == [("peterrec", "serial"), ("peterrec", "parallel"),
                                 ("fineall", None)]
  with pytest.raises(InputError, match="--methods"):
    bench_finetune.Settings(methods=("peter",)).check()
  with pytest.raises(InputError, match="--patches"):
    bench_finetune.Settings(methods=("peterrec",), patches=("diagonal",)).check()
  with pytest.raises(InputError, match="--repeats"):
    bench_finetune.Settings(methods=("fineall",), repeats=0).check()

"""The speed benchmark's bookkeeping, and one tiny end-to-end run."""

import dataclasses
import json
import os
import time

import pytest

from chunkmnr_jax import benchmark
from chunkmnr_jax import models
from seqrec.benchmark import interleaved_ms

TINY = models.MnrConfig(kind="srmn", num_items=20, embed_dim=8, hidden=8,
                        memory_slots=2, slot_width=8, read_heads=2, attention_dim=4)


def _flops(kind, m=6, loss="full"):
  config = dataclasses.replace(TINY, kind=kind, memory_slots=m, num_items=1000,
                               hidden=64, slot_width=64)
  return benchmark.step_flops(config, 49, 32, loss)


def test_analytic_flops_order_the_models():
  assert _flops("srmn")["train"] > _flops("tsc")["train"] > _flops("floor")["train"]
  assert _flops("floor")["train"] > _flops("lstm4rec")["train"]
  # Chunked models do m accesses: their cost grows with m, slower than SRMN's.
  assert _flops("tsc", m=12)["train"] > _flops("tsc", m=2)["train"]
  for kind in ("srmn", "tsc", "floor"):
    assert _flops(kind)["infer"] < _flops(kind)["train"] / 3
    assert _flops(kind, loss="sampled")["train"] < _flops(kind)["train"]


def test_speedups_and_target_bound():
  records = [
      {"shape": "s", "kind": kind, "m": 2, "phase": "infer", "ms": ms, "gflops": 1.0}
      for kind, ms in (("srmn", 100.0), ("floor", 10.0), ("tsc", 14.0))]
  benchmark.add_speedups(records)
  assert [r["speedup_over_srmn"] for r in records] == [1.0, 10.0, 100.0 / 14.0]
  (target,) = benchmark.target_bounds(records, {"s": 10})
  # 1.15 * (10 + 2/10 * (100 - 10)) = 32.2.
  assert target["bound_ms"] == pytest.approx(32.2)
  assert target["holds"]
  records[2]["ms"] = 33.0
  assert not benchmark.target_bounds(records, {"s": 10})[0]["holds"]


def test_tiny_end_to_end_run_writes_json_and_plot(tmp_path):
  shape = benchmark.Shape("tiny", 9, 20)
  records = benchmark.run([shape], ("tsc", "floor"), (2, 3), ("sampled",),
                          batch_size=4, repeats=1, base=TINY, log=lambda _: None)
  report = benchmark.write_report(str(tmp_path), records, [shape], {"quick": True})
  assert os.path.getsize(tmp_path / "bench_chunk.png") > 0
  with open(tmp_path / "bench_chunk.json") as f:
    assert json.load(f) == json.loads(json.dumps(report))
  keys = [(r["kind"], r["m"], r["phase"]) for r in records]
  assert sorted(keys) == sorted(
      (k, m, p) for k in ("tsc", "floor") for m in (2, 3)
      for p in ("train/sampled", "infer"))
  assert all(r["ms"] > 0 for r in records)
  # The floor's work does not depend on m; TSC's grows with it.
  gflops = {(r["kind"], r["m"], r["phase"]): r["gflops"] for r in records}
  assert gflops["floor", 2, "train/sampled"] == gflops["floor", 3, "train/sampled"]
  assert gflops["tsc", 2, "train/sampled"] < gflops["tsc", 3, "train/sampled"]
  assert report["target"] == []  # no SRMN timed, so no bound
  assert "x srmn" in benchmark.table(report["results"])


def test_interleaved_timing_warms_up_then_alternates():
  calls = []

  def sleeper(name, seconds):
    def fn():
      calls.append(name)
      time.sleep(seconds)
      return 0
    return fn

  ms = interleaved_ms({"fast": sleeper("fast", 0.001), "slow": sleeper("slow", 0.02)},
                      repeats=3)
  assert calls == ["fast", "slow"] * 4  # one warm-up round, then 3 timed rounds
  assert 1.0 <= ms["fast"] < ms["slow"] and ms["slow"] >= 20.0

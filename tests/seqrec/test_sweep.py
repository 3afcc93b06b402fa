"""Sweeps: grid parsing, overrides, resumable runs, validation-only selection."""

import os

import pytest

from configs import cmnrec
from seqrec import sweep
from seqrec.errors import InputError


def test_grid_is_the_product_of_its_axes_with_typed_values():
  assert sweep.parse_grid("model.kind=tsc,srmn;learning_rate=1e-3") == [
      (("model.kind", "tsc"), ("learning_rate", 0.001)),
      (("model.kind", "srmn"), ("learning_rate", 0.001))]
  assert sweep.parse_grid("") == [()]
  with pytest.raises(InputError, match="--grid: 'nonsense' is not KEY=V1,V2"):
    sweep.parse_grid("nonsense")


def test_apply_overrides_nested_keys_and_refuses_unknown_ones():
  config = cmnrec.get_config("tiny")
  changed = sweep.apply(config, (("model.kind", "srmn"), ("batch_size", 8)), seed=3)
  assert (changed.model.kind, changed.batch_size, changed.seed) == ("srmn", 8, 3)
  assert config.model.kind == "tsc"  # the original is untouched
  with pytest.raises(InputError, match="no key 'model.nope'"):
    sweep.apply(config, (("model.nope", 1),), seed=0)


def test_sweep_runs_once_resumes_and_selects_on_validation(tmp_path):
  config = cmnrec.get_config("tiny")
  config.model.kind = "gru4rec"
  config.num_steps = 2
  points = sweep.parse_grid("learning_rate=0.001,0.01")
  logged = []
  runs = sweep.run(config, points, [0, 1], str(tmp_path), log=logged.append)
  assert len(runs) == 4 and len(logged) == 4
  assert sorted(os.listdir(tmp_path)) == sorted(
      sweep.name(p, s) for p in points for s in (0, 1))
  again = sweep.run(config, points, [0, 1], str(tmp_path), log=logged.append)
  assert len(logged) == 4 and [r["results"] for r in again] == [r["results"] for r in runs]
  table = sweep.aggregate(runs, ["ndcg@10"])
  assert [row["runs"] for row in table] == [2, 2]
  # The selection reads validation only: make test disagree with it.
  table[0]["valid/ndcg@10"], table[1]["valid/ndcg@10"] = (0.2, 0.0), (0.1, 0.0)
  table[0]["test/ndcg@10"], table[1]["test/ndcg@10"] = (0.0, 0.0), (0.9, 0.0)
  assert sweep.best(table, "ndcg@10") is table[0]
  assert "0.2000 ± 0.0000 | 0.0000 ± 0.0000 *" in sweep.markdown(table, ["ndcg@10"],
                                                                "ndcg@10")

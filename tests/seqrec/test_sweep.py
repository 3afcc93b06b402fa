"""Sweeps: grid parsing, overrides, resumable runs, validation-only selection,
tuning on a few seeds, the families' shared tuning budget."""

import importlib
import itertools
import os

import pytest

from configs import base, cmnrec
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


def gru4rec():
  """Two steps of the tiny GRU4Rec, and a grid of two learning rates."""
  config = cmnrec.get_config("tiny")
  config.model.kind = "gru4rec"
  config.num_steps = 2
  return config, sweep.parse_grid("learning_rate=0.001,0.03")


def test_sweep_runs_once_resumes_and_selects_on_validation(tmp_path):
  config, points = gru4rec()
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
  assert "0.2000 ± 0.0000 | 0.0000 ± 0.0000 *" in sweep.markdown(
      table, ["ndcg@10"], tuple(table[0]["point"].items()))


def test_tune_selects_on_its_seeds_and_runs_only_the_chosen_point_on_more(tmp_path):
  config, points = gru4rec()
  logged = []
  runs, chosen = sweep.tune(config, points, [0], [0, 1], str(tmp_path), "ndcg@10",
                            log=logged.append)
  first = sweep.aggregate(runs[:2], ["ndcg@10"])
  assert chosen == tuple(sweep.best(first, "ndcg@10")["point"].items())
  assert chosen in points and len(logged) == 3  # 2 points x seed 0, then seed 1
  assert sorted(os.listdir(tmp_path)) == sorted(
      [sweep.name(p, 0) for p in points] + [sweep.name(chosen, 1)])
  counts = {tuple(row["point"].items()): row["runs"]
            for row in sweep.aggregate(runs, ["ndcg@10"])}
  assert counts == {p: 2 if p == chosen else 1 for p in points}


@pytest.mark.parametrize("family", ["cmnrec", "sasrec", "caser", "nextitnet"])
def test_every_family_has_the_same_budget_and_it_holds_its_preset(family):
  module = importlib.import_module(f"configs.{family}")
  config = module.get_config("ml100k")
  points = module.tuning(config)
  axes = len(base.DROPOUTS) * len(base.LEARNING_RATES) * len(base.WIDTH_SCALES)
  assert len(set(points)) == len(points) == axes
  configs = [sweep.apply(config, point, seed=0) for point in points]  # every key exists
  assert sorted({(c.model.dropout, c.learning_rate) for c in configs}) == sorted(
      itertools.product(base.DROPOUTS, base.LEARNING_RATES))
  preset = config.copy_and_resolve_references()
  assert sum(c.to_dict() == preset.to_dict() for c in configs) == 1
  doubled = [c for c in configs if c.to_dict() != preset.to_dict() and
             (c.model.dropout, c.learning_rate) == (preset.model.dropout,
                                                   preset.learning_rate)]
  assert len(doubled) == 1
  changed = {k for k, v in doubled[0].model.items() if v != preset.model[k]}
  assert changed and all(doubled[0].model[k] == 2 * preset.model[k] for k in changed)

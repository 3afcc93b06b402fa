"""launch.label_study end to end: folds, nested label fractions, paired differences."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.launch.test_train_binaries import read_json, run_train
from tests.paths import REPO, xla_flags

SET = "num_steps=4;eval_every=2;batch_size=4;eval_batch_size=8;max_len=10"


def _study(pretrained, workdir, *flags):
  env = {**os.environ, "XLA_FLAGS": xla_flags(1)}
  return subprocess.run(
      [sys.executable, "-m", "launch.label_study", f"--pretrained={pretrained}",
       f"--workdir={workdir}", "--tasks=gender,crossdomain", "--fractions=0.5,1.0",
       "--folds=0,1", "--methods=peterrec_serial,finecls", *flags], cwd=REPO, env=env,
      capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
  root = tmp_path_factory.mktemp("labels")
  result = run_train("--config=configs/nextitnet.py:tiny", f"--workdir={root / 'pt'}")
  assert result.returncode == 0, result.stderr[-3000:]
  result = _study(root / "pt", root / "study", f"--set={SET}")
  assert result.returncode == 0, result.stderr[-3000:]
  return root, result


def test_every_run_is_reported_with_its_folds_and_fractions(study):
  root, result = study
  report = read_json(root / "study" / "label_study.json")
  assert os.path.getsize(root / "study" / "label_study.png") > 0
  for task, metric in (("gender", "accuracy"), ("crossdomain", "ndcg@10")):
    entry = report["tasks"][task]
    assert entry["metric"] == metric and entry["folds"] == [0, 1]
    for method in ("peterrec_serial", "finecls"):
      for fraction in ("0.5", "1.0"):
        runs = [read_json(root / "study" / task / (
            f"method={name},label_fraction={fraction},fold={fold},seed=0/results.json"))
                for fold in (0, 1)
                for name in [method.replace("_", ",patch=")]]
        assert entry["values"][method][fraction] == [r["test"][metric] for r in runs]
        config = runs[0]["config"]
        assert (config["folds"], config["num_steps"], config["task"]) == (5, 4, task)
    diff = report["paired"][task]["finecls"]["0.5"][0]
    assert diff == pytest.approx(np.mean(np.subtract(entry["values"]["peterrec_serial"]["0.5"],
                                                     entry["values"]["finecls"]["0.5"])))
  # The reference of each split is the one its runs recorded; a fraction keeps
  # about that share of the training users.
  for task, method, metric in (("gender", "majority class", "accuracy"),
                               ("crossdomain", "popularity", "ndcg@10")):
    reference = report["tasks"][task]["reference"]
    assert reference["method"] == method
    for fraction in ("0.5", "1.0"):
      recorded = [read_json(root / "study" / task / f"method=finecls,label_fraction={fraction},"
                            f"fold={fold},seed=0/results.json")["reference"]
                  for fold in (0, 1)]
      assert reference["values"][fraction] == [r["test"][metric] for r in recorded]
      assert all(r["method"] == method for r in recorded)
  half, full = (read_json(root / "study" / "gender" / f"method=finecls,label_fraction={f},"
                          "fold=0,seed=0/results.json")["data_stats"]["examples_train"]
                for f in ("0.5", "1.0"))
  assert half == round(full / 2)
  assert "peterrec_serial − finecls" in result.stdout


def test_a_rerun_skips_every_finished_run(study):
  root, _ = study
  before = read_json(root / "study" / "label_study.json")["tasks"]
  result = _study(root / "pt", root / "study", f"--set={SET}")
  assert result.returncode == 0, result.stderr[-3000:]
  assert "wrote" not in result.stdout  # no run trained again
  assert read_json(root / "study" / "label_study.json")["tasks"] == before


def test_a_set_key_the_config_lacks_is_one_line(study):
  root, _ = study
  result = _study(root / "pt", root / "other", "--set=num_stepz=3")
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1] == "error: --set: the config has no key 'num_stepz'"

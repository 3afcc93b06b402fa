"""A self-describing workdir: config identity, atomic writes, process 0 only."""

import json
import os
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest

from seqrec import workdir
from seqrec.errors import InputError
from tests.paths import REPO

CONFIG = {"family": "cmnrec", "learning_rate": 1e-3, "num_steps": 100, "num_devices": 8,
          "model": {"kind": "tsc", "dilations": [1, 4]}}


def test_diff_names_every_changed_setting_but_a_longer_schedule_or_the_devices():
  new = {**CONFIG, "learning_rate": 0.01, "num_steps": 200, "num_devices": 1,
         "model": {"kind": "srmn", "dilations": (1, 4)}}
  assert workdir.config_diff(CONFIG, new) == [
      "learning_rate: 0.001 -> 0.01", "model.kind: 'tsc' -> 'srmn'"]
  assert workdir.config_diff(CONFIG, {**CONFIG, "num_steps": 50}) == [
      "num_steps: 100 -> 50"]
  assert workdir.config_diff(CONFIG, {**CONFIG, "extra": 1}) == ["extra: None -> 1"]


def test_a_key_added_later_means_what_older_runs_did():
  # Workdirs written before config.bucket_lengths existed ran without it.
  assert workdir.config_diff(CONFIG, {**CONFIG, "bucket_lengths": False}) == []
  assert workdir.config_diff(CONFIG, {**CONFIG, "bucket_lengths": True}) == [
      "bucket_lengths: False -> True"]
  # NextItNet pretrained without dropout before config.model.dropout existed.
  model = {**CONFIG["model"], "dropout": 0.0}
  assert workdir.config_diff(CONFIG, {**CONFIG, "model": model}) == []
  assert workdir.config_diff(CONFIG, {**CONFIG, "model": {**model, "dropout": 0.1}}) == [
      "model.dropout: 0.0 -> 0.1"]
  # SASRec ran the paper's block before its width, activation and layout were settings.
  block = {**CONFIG["model"], "ffn_dim": 0, "activation": "relu", "norm": "pre"}
  assert workdir.config_diff(CONFIG, {**CONFIG, "model": block}) == []
  assert workdir.config_diff(CONFIG, {**CONFIG, "model": {**block, "norm": "post"}}) == [
      "model.norm: 'pre' -> 'post'"]


def test_check_refuses_another_experiment_only_once_it_has_run(tmp_path):
  workdir.save(str(tmp_path), CONFIG, np.array(["", "a"]))
  other = {**CONFIG, "learning_rate": 0.5}
  workdir.check(str(tmp_path), other)  # nothing trained yet: may be replaced
  os.makedirs(tmp_path / "checkpoints" / "4")
  with pytest.raises(InputError, match=r"holds another experiment \(learning_rate"):
    workdir.check(str(tmp_path), other)
  workdir.check(str(tmp_path), {**CONFIG, "num_steps": 300})


def test_save_and_load_round_trip_raw_ids(tmp_path):
  items = np.array(["", "196", "i-9"])
  workdir.save(str(tmp_path), CONFIG, items)
  config, loaded = workdir.load(str(tmp_path))
  assert config == json.loads(json.dumps(CONFIG)) and loaded.tolist() == items.tolist()
  assert sorted(os.listdir(tmp_path)) == ["config.json", "items.npy"]  # no temp files
  with pytest.raises(InputError, match=r"--x=/nowhere: no config.json"):
    workdir.load("/nowhere", "--x")


def test_only_process_zero_writes(tmp_path, monkeypatch):
  monkeypatch.setattr(jax, "process_index", lambda: 1)
  workdir.save(str(tmp_path), CONFIG, np.array([""]))
  assert os.listdir(tmp_path) == []


def test_an_unrelated_results_json_is_never_overwritten(tmp_path):
  (tmp_path / "results.json").write_text("{}")
  with pytest.raises(InputError, match="holds another run's results.json .* but no config"):
    workdir.check(str(tmp_path), CONFIG)


@pytest.mark.parametrize("name", ["results.json", "config.json", "metrics.jsonl"])
def test_a_directory_where_the_run_writes_a_file_is_refused_before_work(tmp_path, name):
  (tmp_path / name).mkdir()
  with pytest.raises(InputError, match=f"{name} there is not a file"):
    workdir.check(str(tmp_path), CONFIG)


@pytest.mark.parametrize("path", ["/proc/seqrec_run", "FILE", "FILE/below"])
def test_an_unwritable_workdir_is_one_line(tmp_path, path):
  (tmp_path / "file").write_text("")
  path = path.replace("FILE", str(tmp_path / "file"))
  with pytest.raises(InputError, match=f"--workdir={path}: cannot write there"):
    with workdir.lock(path):
      pass


def test_one_run_owns_a_workdir_and_a_killed_holder_frees_it(tmp_path):
  holder = subprocess.Popen(
      [sys.executable, "-c", "import sys, time\nfrom seqrec import workdir\n"
       "with workdir.lock(sys.argv[1]):\n  print('held', flush=True)\n  time.sleep(600)",
       str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE, text=True,
      env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert holder.stdout.readline().strip() == "held"
  with pytest.raises(InputError, match=rf"is in use by pid {holder.pid} on "):
    with workdir.lock(str(tmp_path)):
      pass
  holder.send_signal(signal.SIGKILL)
  holder.wait()
  with workdir.lock(str(tmp_path)):  # the kernel dropped the dead run's lock
    pass

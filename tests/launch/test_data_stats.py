"""Runs the data_stats binary as a user would."""

import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from tests.paths import ML100K, REPO, needs_ml100k


def _run(*flags: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-m", "launch.data_stats", *flags],
                        cwd=REPO, capture_output=True, text=True, timeout=120)


def _table(stdout: str) -> dict[str, str]:
  """'name    value' lines -> {name: value}."""
  rows = (line.rsplit(maxsplit=1) for line in stdout.strip().splitlines())
  return {name.strip(): value for name, value in rows}


def test_synthetic():
  result = _run("--config.dataset=synthetic", "--config.synthetic.num_users=40",
                "--config.synthetic.num_items=100", "--config.synthetic.num_target_items=30",
                "--config.synthetic.mean_length=10")
  assert result.returncode == 0, result.stderr
  table = _table(result.stdout)
  assert table["dataset"] == "synthetic"
  assert table["users"] == "40" and table["items"] == "130"
  assert table["source items"] == "100" and table["target items"] == "30"
  interactions = int(table["interactions"])
  assert float(table["avg length"]) == pytest.approx(interactions / 40, abs=0.01)
  assert int(table["max length"]) >= float(table["avg length"])


@needs_ml100k
def test_ml100k():
  result = _run(f"--config.dataset=recbole:{ML100K}")
  assert result.returncode == 0, result.stderr
  assert _table(result.stdout) == {
      "dataset": "recbole:ml-100k", "users": "943", "items": "1682",
      "interactions": "100000", "avg length": "106.04", "max length": "737"}


@pytest.mark.parametrize("flag, expected", [
    ("--config.dataset=sasrec:/no/such/file", "error: /no/such/file: no such file"),
    ("--config.synthetic.num_items=3", "error: synthetic: num_items=3 must be >= "),
])
def test_bad_input_is_one_line(flag, expected):
  result = _run(flag)
  assert result.returncode == 1
  assert result.stdout == ""
  assert result.stderr.strip().startswith(expected)
  assert len(result.stderr.strip().splitlines()) == 1


def test_unknown_dataset_names_the_setting():
  result = _run("--config.dataset=nonsense")
  assert result.returncode != 0 and result.stdout == ""
  assert "config.dataset=nonsense" in result.stderr.splitlines()[0]


def test_an_unreadable_file_is_one_line():
  # Under /tmp, which everyone may enter, unlike pytest's own temporary tree.
  directory = tempfile.mkdtemp(dir="/tmp")
  try:
    os.chmod(directory, 0o755)
    path = os.path.join(directory, "pairs.txt")
    with open(path, "w") as f:
      f.write("1 2\n1 3\n")
    os.chmod(path, 0)
    command = [sys.executable, "-m", "launch.data_stats", f"--config.dataset=sasrec:{path}"]
    if os.geteuid() == 0:  # root reads anything: run as nobody, without capabilities
      if not shutil.which("setpriv"):
        pytest.skip("running as root and setpriv is missing")
      command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                 "--inh-caps=-all", *command]
    for directory_mode in (0o755, 0o700):  # the file, then its directory, closed
      os.chmod(directory, directory_mode)
      result = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                              timeout=120)
      assert result.returncode == 1, result.stderr[-2000:]
      assert result.stderr.strip() == f"error: {path}: cannot read it (Permission denied)"
  finally:
    shutil.rmtree(directory)

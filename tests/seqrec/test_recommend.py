"""Recommendations and exports out of trained workdirs, for every family."""

import csv
import importlib
import json
import os
import re
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from seqrec import experiment, export, recommend, registry
from seqrec.errors import InputError
from tests.paths import ML100K, REPO, needs_ml100k, xla_flags

NEXT_ITEM = sorted(set(registry.FAMILIES) - {"peterrec"})
# The tests share trained workdirs. Each group runs on one worker (pytest.ini),
# and the fixtures are session-scoped because that worker may run other modules'
# tests in between, which would tear a module fixture down and rebuild it.
pytestmark = pytest.mark.xdist_group("recommend")


def _train(family, workdir, **overrides):
  config = importlib.import_module(f"configs.{family}").get_config("tiny")
  # Trained on one device (a cheaper compile); the tests serve on several.
  config.update(dict(num_steps=2, eval_every=0, select_metric="", vocab_multiple=4,
                     num_devices=1, **overrides))
  experiment.run(config, str(workdir))
  return str(workdir)


@pytest.fixture(scope="session")
def workdirs(tmp_path_factory):
  root = tmp_path_factory.mktemp("workdirs")
  out = {family: _train(family, root / family) for family in NEXT_ITEM}
  out["crossdomain"] = _train("peterrec", root / "crossdomain",
                              pretrained=out["nextitnet"], task="crossdomain")
  out["gender"] = _train("peterrec", root / "gender", pretrained=out["nextitnet"],
                         task="gender")
  return out


def _top(model, k, exclude_seen=False, **mesh):
  out = [(s, c) for _, s, c in recommend.stream(
      model, model.built.queries.seq, model.built.queries.seen, k=k,
      exclude_seen=exclude_seen, batch_size=16, **mesh)]
  return np.concatenate([s for s, _ in out]), np.concatenate([c for _, c in out])


@pytest.mark.parametrize("family", NEXT_ITEM)
def test_eight_devices_and_split_tables_give_the_one_device_lists(workdirs, family):
  model = recommend.load(workdirs[family])
  scores, columns = _top(model, 5, num_devices=1)
  for mesh in (dict(num_devices=8), dict(num_devices=8, model_parallel=4)):
    other_scores, other_columns = _top(model, 5, **mesh)
    np.testing.assert_array_equal(other_columns, columns)
    np.testing.assert_allclose(other_scores, scores, rtol=1e-6)
  # Sorted by score; no padding column.
  assert np.all(np.diff(scores, axis=1) <= 0) and np.all(columns > 0)


def test_ties_rank_by_lower_item_on_any_mesh(workdirs):
  model = recommend.load(workdirs["cmnrec"])
  params = jax.tree.map(np.zeros_like, model.params)  # every item scores the same
  flat = recommend.Recommender(model.config, model.built, params, model.items)
  for mesh in (dict(num_devices=1), dict(num_devices=8, model_parallel=4)):
    _, columns = _top(flat, 6, **mesh)
    np.testing.assert_array_equal(columns, np.tile(np.arange(1, 7), (len(columns), 1)))


def test_exclude_seen_leaves_out_the_whole_history(workdirs):
  model = recommend.load(workdirs["sasrec"])
  _, columns = _top(model, 10, exclude_seen=True, num_devices=8, model_parallel=4)
  for row, seen in enumerate(model.built.queries.seen):
    assert not set(columns[row]) & set(seen.tolist()), row


def test_split_top_k_never_gathers_the_score_matrix(workdirs):
  model = recommend.load(workdirs["cmnrec"])
  mesh = recommend.mesh_lib.make_mesh(8, 4)
  fn = recommend.top_k_fn(model, mesh, 5, exclude_seen=True)
  seq = np.zeros((16, model.input_length), np.int32)
  with jax.set_mesh(mesh):
    hlo = fn.lower(model.params, seq, seq).compile().as_text()
  vocab = model.params["params"]["head"]["bias"].shape[0]
  gathers = [line for line in hlo.splitlines() if re.search(r"= \S+ all-gather", line)]
  assert gathers  # the candidates are merged across item shards
  assert not [g for g in gathers if f",{vocab}]" in g or f"[{vocab}]" in g], gathers


@pytest.mark.parametrize("family", NEXT_ITEM + ["crossdomain", "gender"])
def test_exported_model_gives_the_in_process_scores(workdirs, family, tmp_path):
  model = recommend.load(workdirs[family])
  export.export(model, str(tmp_path / "export"))
  seq = model.built.queries.seq[:7]
  np.save(tmp_path / "queries.npy", seq)
  # -I: no project on the path, no user site; only the venv's jax and numpy.
  result = subprocess.run([sys.executable, "-I", str(tmp_path / "export" / "load.py"),
                           str(tmp_path / "export"), str(tmp_path / "queries.npy"),
                           str(tmp_path / "out.npz")], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, env={"JAX_PLATFORMS": "cpu",
                                                       "PATH": os.environ["PATH"]})
  assert result.returncode == 0, result.stderr[-2000:]
  exported = np.load(tmp_path / "out.npz")["arr_0"]
  expected = np.asarray(model.built.task.score(model.params, {"seq": seq}))
  expected = expected[:, :len(model.items)]
  np.testing.assert_allclose(exported, expected, atol=1e-6, rtol=1e-6)
  assert set(os.listdir(tmp_path / "export")) == set(export.FILES)


def test_exported_top_k_matches_the_streamed_lists(workdirs, tmp_path):
  model = recommend.load(workdirs["caser"])
  exported = export.export(model, str(tmp_path), top_k=4)
  seq = model.built.queries.seq
  scores, columns = exported.call(seq)
  want_scores, want_columns = _top(model, 4, num_devices=1)
  np.testing.assert_array_equal(columns, want_columns)
  np.testing.assert_allclose(scores, want_scores, rtol=1e-6)


def _recommend(*flags, env_devices=2):
  env = {**os.environ, "XLA_FLAGS": xla_flags(env_devices)}
  return subprocess.run([sys.executable, "-m", "launch.recommend", *flags], cwd=REPO,
                        env=env, capture_output=True, text=True, timeout=600)


def test_profile_workdir_gives_a_label_and_its_probability(workdirs, tmp_path):
  result = _recommend(f"--workdir={workdirs['gender']}", f"--out={tmp_path / 'g.csv'}")
  assert result.returncode == 0, result.stderr[-2000:]
  with open(tmp_path / "g.csv") as f:
    rows = list(csv.DictReader(f))
  assert rows and set(rows[0]) == {"user_id", "label", "probability"}
  assert {r["label"] for r in rows} <= {"F", "M"} and all(
      0.5 <= float(r["probability"]) <= 1 for r in rows)


@pytest.mark.parametrize("flags, message", [
    (["--users=USERS"], "line 2: user 'nobody' is not in the workdir's dataset"),
    (["--sequences=SEQUENCES"], "line 1: item 'i9999' is not in the workdir's items.npy"),
    (["--out=OUT.txt"], "the extension must be one of ('.csv', '.jsonl')"),
    (["--top_k=0"], "--top_k=0: must be in [1,"),
])
def test_bad_queries_are_one_line_and_leave_no_file(workdirs, tmp_path, flags, message):
  (tmp_path / "users.txt").write_text("u1\nnobody\n")
  (tmp_path / "seqs.csv").write_text("q1,i1,i9999\n")
  flags = [f.replace("USERS", str(tmp_path / "users.txt"))
           .replace("SEQUENCES", str(tmp_path / "seqs.csv"))
           .replace("OUT", str(tmp_path / "out")) for f in flags]
  if not any(f.startswith("--out") for f in flags):
    flags.append(f"--out={tmp_path / 'out.csv'}")
  result = _recommend(f"--workdir={workdirs['cmnrec']}", *flags)
  assert result.returncode == 1
  assert message in result.stderr.strip().splitlines()[-1], result.stderr[-1000:]
  assert "Traceback" not in result.stderr
  assert not [p for p in os.listdir(tmp_path) if p.startswith("out")]


def test_a_directory_that_is_no_workdir_is_one_line(tmp_path):
  with pytest.raises(InputError, match="no config.json; is it a launch.train workdir"):
    recommend.load(str(tmp_path))


def test_raw_sequences_and_jsonl(workdirs, tmp_path):
  model = recommend.load(workdirs["cmnrec"])
  items = model.items[1:4]
  (tmp_path / "q.csv").write_text(f"a,{items[0]},{items[1]}\nb,{items[2]}\n")
  result = _recommend(f"--workdir={workdirs['cmnrec']}", f"--sequences={tmp_path / 'q.csv'}",
                      "--exclude_seen", "--top_k=3", f"--out={tmp_path / 'q.jsonl'}")
  assert result.returncode == 0, result.stderr[-2000:]
  with open(tmp_path / "q.jsonl") as f:
    lines = [json.loads(line) for line in f]
  assert [line["user_id"] for line in lines] == ["a", "b"]
  assert not set(lines[0]["items"]) & set(items[:2]) and items[2] not in lines[1]["items"]
  assert all(len(line["items"]) == 3 for line in lines)


@pytest.fixture(scope="session")
def ml100k_tsc(tmp_path_factory):
  """A TSC workdir trained from a fresh clone's command line on ML-100k (tiny sizes)."""
  workdir = tmp_path_factory.mktemp("ml100k") / "tsc"
  train = subprocess.run(
      [sys.executable, "-m", "launch.train", "--config=configs/cmnrec.py:tiny",
       f"--config.dataset=recbole:{ML100K}", f"--workdir={workdir}"],
      cwd=REPO, capture_output=True, text=True, timeout=600)
  assert train.returncode == 0, train.stderr[-2000:]
  return workdir


def _ml100k_top10(workdir, out, *flags):
  """launch.recommend's top-10 of every ML-100k user, its stdout, the items of
  ML-100k and every user's history (raw ids)."""
  result = _recommend(f"--workdir={workdir}", "--top_k=10", f"--out={out}", *flags)
  assert result.returncode == 0, result.stderr[-2000:]
  with open(out) as f:
    rows = list(csv.DictReader(f))
  inter = np.loadtxt(os.path.join(ML100K, "ml-100k.inter"), dtype=str, skiprows=1)
  history = {}
  for user, item in inter[:, :2]:
    history.setdefault(user, set()).add(item)
  return rows, result.stdout, set(inter[:, 1]), history


@needs_ml100k
@pytest.mark.xdist_group("recommend_ml100k")
def test_tsc_on_ml100k_recommends_for_all_users(ml100k_tsc, tmp_path):
  rows, stdout, items, history = _ml100k_top10(ml100k_tsc, tmp_path / "top10.csv",
                                               "--exclude_seen")
  assert "already has" not in stdout
  assert len(rows) == 943 * 10 and {r["user_id"] for r in rows} == set(history)
  assert {r["item_id"] for r in rows} <= items
  assert not [r for r in rows if r["item_id"] in history[r["user_id"]]]


@needs_ml100k
@pytest.mark.xdist_group("recommend_ml100k")
def test_the_share_of_slots_spent_on_the_history_is_counted(ml100k_tsc, tmp_path):
  rows, stdout, _, history = _ml100k_top10(ml100k_tsc, tmp_path / "top10.csv")
  share = np.mean([r["item_id"] in history[r["user_id"]] for r in rows])
  assert 0 < share < 1
  assert f"; {share:.1%} of the slots are items the user already has" in stdout


@needs_ml100k
@pytest.mark.xdist_group("recommend_ml100k")
def test_a_killed_recommend_leaves_no_half_file(ml100k_tsc, tmp_path):
  out = tmp_path / "top.csv"
  process = subprocess.Popen(
      [sys.executable, "-m", "launch.recommend", f"--workdir={ml100k_tsc}", "--batch_size=8",
       "--top_k=1000", f"--out={out}"], cwd=REPO, stdout=subprocess.DEVNULL,
      stderr=subprocess.DEVNULL)
  deadline = time.time() + 300
  while not [p for p in os.listdir(tmp_path) if p.startswith("top.csv.tmp")]:
    assert time.time() < deadline and process.poll() is None
    time.sleep(0.05)
  process.send_signal(signal.SIGKILL)
  process.wait()
  assert not out.exists()
